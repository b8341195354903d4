"""The request path's own CPU per request, in process: no sockets, no server, no database
on the hot path.

    .venv/bin/python bench/pipeline.py [--requests 2000] [--repeat 5]

Builds the app as `harbourgate serve` does (SQLite registry in a temporary data_dir, the
four packs, stand-in routes answering in-process), swaps the audit log for an in-memory
sink, and drives N requests per case through the ASGI app in one event loop: plain and
streamed Chat Completions, Messages, and a prompt the cross-border pack pseudonymises.
Prints CPU microseconds per request (process time; the median of the repeats). To compare
with an older tree, run this script with PYTHONPATH pointing at that tree's `src`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

import harbourgate
from harbourgate import config
from harbourgate.app import create_app, prepare
from harbourgate.store import registry

PII = ("Please draft a follow-up to 陳大文, HKID A123456(3), phone +852 9123 4567, about "
       "the renewal of the research contract; keep it short. ") * 4
PLAIN = "Summarise the attached note on model governance in two sentences. " * 8


class MemorySink:
    def __init__(self) -> None:
        self.n = 0

    async def append(self, record: dict[str, Any], entry_id: str | None = None) -> str:
        self.n += 1
        orjson.dumps(record)  # what the real sink does first
        return f"e{self.n}"


def cases() -> dict[str, tuple[str, dict[str, Any], dict[str, str]]]:
    user = [{"role": "user", "content": PLAIN}]
    return {
        "chat": ("/v1/chat/completions", {"model": "fable-5", "messages": user}, {}),
        "chat stream": ("/v1/chat/completions",
                        {"model": "fable-5", "messages": user, "stream": True}, {}),
        "messages": ("/v1/messages", {"model": "fable-5", "max_tokens": 64, "messages": user},
                     {"anthropic-version": "2023-06-01"}),
        "chat pseudonymised": ("/v1/chat/completions", {"model": "fable-5", "messages": [
            {"role": "user", "content": PII}]}, {"x-harbourgate-data-origin": "HK"}),
        "stream pseudonymised": ("/v1/chat/completions", {"model": "fable-5", "stream": True,
                                                          "messages": [{"role": "user",
                                                                        "content": PII}]},
                                 {"x-harbourgate-data-origin": "HK"}),
    }


async def drive(gateway: Any, key: str, path: str, body: dict[str, Any],
                headers: dict[str, str], n: int) -> float:
    raw = orjson.dumps(body)
    head = [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json"),
            *((k.encode(), v.encode()) for k, v in headers.items())]
    scope = {"type": "http", "method": "POST", "path": path, "headers": head}
    never = asyncio.Event()
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    start = time.process_time()
    for _ in range(n):
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await never.wait()
            return {"type": "http.disconnect"}

        await gateway(scope, receive, send)
        if status != 200:
            raise SystemExit(f"{path}: status {status}")
    return (time.process_time() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="hg-bench-pipeline-"))
    base = config.load(None, environ={})
    settings = config.Settings(data_dir=data, routes=base.routes, sandbox=base.sandbox)
    prepare(settings)
    app = create_app(settings)
    with app.store.change() as conn:
        key = registry.issue_key(conn, "acme-research").key
    app.runtime.reload()
    app.gateway.audit = MemorySink()
    print(f"harbourgate from {Path(harbourgate.__file__).parent}")

    async def run() -> None:
        for name, (path, body, headers) in cases().items():
            await drive(app.gateway, key, path, body, headers, 200)  # warm up
            figures = [await drive(app.gateway, key, path, body, headers, args.requests)
                       for _ in range(args.repeat)]
            print(f"{name:22s} {statistics.median(figures) * 1e6:8.1f} µs CPU/request "
                  f"(min {min(figures) * 1e6:.1f})")

    asyncio.run(run())


if __name__ == "__main__":
    main()
