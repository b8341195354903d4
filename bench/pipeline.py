"""The request path's own CPU per request, in process: no sockets, no server, no database
on the hot path.

    .venv/bin/python bench/pipeline.py [--requests 2000] [--repeat 5] [--quotas [--redis URL]]

Builds the app as `harbourgate serve` does (SQLite registry in a temporary data_dir, the
four packs, stand-in routes answering in-process), swaps the audit log for an in-memory
sink, and drives N requests per case through the ASGI app in one event loop: plain and
streamed Chat Completions, Messages, and a prompt the cross-border pack pseudonymises.
Prints CPU microseconds per request (process time; the median of the repeats). To compare
with an older tree, run this script with PYTHONPATH pointing at that tree's `src`.

`--quotas`: each case also with four quotas covering every request (participant,
application, key, participant x route; requests and tokens per minute and a monthly
budget each, limits too high to refuse), reserved and settled through the gate
`harbourgate serve` builds (the local counter file, or Redis with `--redis`); repeats
alternate off and on, and the table shows both with the throughput of one core.
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
from harbourgate.app import Harbourgate, create_app, prepare
from harbourgate.quotas import parse_quota
from harbourgate.store import quotas as quota_store
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
    """CPU seconds per request of `n` requests, one after another."""
    head = [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json"),
            *((k.encode(), v.encode()) for k, v in headers.items())]
    cpu, _ = await drive_timed(gateway, head, path, orjson.dumps(body), n)
    return cpu


async def drive_timed(gateway: Any, headers: list[tuple[bytes, bytes]], path: str, body: bytes,
                      n: int) -> tuple[float, float]:
    """CPU seconds per request, and per request until its answer's first body byte."""
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers,
             "query_string": b"", "scheme": "http", "http_version": "1.1", "root_path": "",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000)}
    never = asyncio.Event()
    status, first, started = 0, 0.0, 0.0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, first, started
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message.get("body") and started:
            first += time.process_time() - started
            started = 0.0

    begin = time.process_time()
    for _ in range(n):
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await never.wait()
            return {"type": "http.disconnect"}

        started = time.process_time()
        await gateway(scope, receive, send)
        if status != 200:
            raise SystemExit(f"{path}: status {status}")
    return (time.process_time() - begin) / n, first / n


LIMITS = {"requests_per_minute": 10**7, "tokens_per_minute": 10**12,
          "budget": {"tokens": 10**12, "period": "month"}}


def set_quotas(app: Harbourgate, key_id: str, on: bool) -> None:
    """Four quotas covering every request of the bench's key (or none), in force."""
    app_id = "acme-research"
    participant = app.runtime.snapshot.registry.applications[app_id].participant_id
    scopes = ({"participant": participant}, {"application": app_id}, {"key": key_id},
              {"participant": participant, "route": "fable-5"})
    with app.store.change() as conn:
        for n, scope in enumerate(scopes):
            quota_id = f"bench-{n}"
            if on:
                quota_store.set_quota(conn, parse_quota({"id": quota_id, "scope": scope,
                                                         **LIMITS}))
            elif any(q.id == quota_id for q in quota_store.load_quotas(conn)):
                quota_store.delete_quota(conn, quota_id)
        registry.bump_state_version(conn)
    app.runtime.reload()
    assert bool(app.runtime.snapshot.quotas) is on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quotas", action="store_true",
                        help="each case with quotas off and on, in one run")
    parser.add_argument("--redis", help="with --quotas: count in Redis (a DB of its own)")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="hg-bench-pipeline-"))
    base = config.load(None, environ={})
    settings = config.Settings(data_dir=data, routes=base.routes, sandbox=base.sandbox,
                               redis_url=args.redis)
    prepare(settings)
    app = create_app(settings)
    with app.store.change() as conn:
        issued = registry.issue_key(conn, "acme-research")
    key = issued.key
    app.runtime.reload()
    app.gateway.audit = MemorySink()
    print(f"harbourgate from {Path(harbourgate.__file__).parent}")
    if args.quotas:
        print(f"quota store: {app.quota_gate.store.name}; µs CPU/request (median of "
              f"{args.repeat}) and requests/s of one core\n")
        print("| case | quotas off | quotas on | added | off req/s | on req/s |")
        print("|---|---|---|---|---|---|")

    async def run() -> None:
        for name, (path, body, headers) in cases().items():
            await drive(app.gateway, key, path, body, headers, 200)  # warm up
            if not args.quotas:
                figures = [await drive(app.gateway, key, path, body, headers, args.requests)
                           for _ in range(args.repeat)]
                print(f"{name:22s} {statistics.median(figures) * 1e6:8.1f} µs CPU/request "
                      f"(min {min(figures) * 1e6:.1f})")
                continue
            off: list[float] = []
            on: list[float] = []
            for _ in range(args.repeat):  # alternate, so drift on a shared machine cancels
                for state, figures in ((False, off), (True, on)):
                    set_quotas(app, issued.record.id, state)
                    figures.append(await drive(app.gateway, key, path, body, headers,
                                               args.requests))
            a, b = statistics.median(off), statistics.median(on)
            print(f"| {name} | {a * 1e6:.1f} | {b * 1e6:.1f} | {(b - a) * 1e6:+.1f} | "
                  f"{1 / a:,.0f} | {1 / b:,.0f} |", flush=True)
        set_quotas(app, issued.record.id, False)

    asyncio.run(run())


if __name__ == "__main__":
    main()
