"""The request path's own CPU per request, in process: no sockets, no server, no database
on the hot path.

    .venv/bin/python bench/pipeline.py [--requests 2000] [--repeat 5]
    .venv/bin/python bench/pipeline.py --observe [--requests 1000] [--repeat 3]

Builds the app as `harbourgate serve` does (SQLite registry in a temporary data_dir, the
four packs, stand-in routes answering in-process), swaps the audit log for an in-memory
sink, and drives N requests per case through the ASGI app in one event loop: plain and
streamed Chat Completions, Messages, and a prompt the cross-border pack pseudonymises.
Prints CPU microseconds per request (process time; the median of the repeats). To compare
with an older tree, run this script with PYTHONPATH pointing at that tree's `src`.

`--observe` runs plain and streamed Chat Completions under each observability setting side
by side (access log off / text / json, OpenTelemetry off / on), interleaved repeat by
repeat, each round starting with another setting, so a busy machine's drift falls on all
of them alike. Access lines go to /dev/null
through the real formatter; "otel on" exports to a local OTLP/HTTP sink in this process
(`process_time` counts every thread, so the exporter's CPU is charged to the requests).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import orjson

import harbourgate
from harbourgate import config
from harbourgate.app import create_app, prepare
from harbourgate.config import LoggingSettings, TelemetrySettings
from harbourgate.observe import logs, telemetry
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


@contextmanager
def otlp_sink() -> Iterator[str]:
    """A local OTLP/HTTP endpoint that accepts every export (an empty protobuf answer is a
    valid Export*ServiceResponse), so the exporter does its whole job."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def configure_logs(fmt: str, access: bool) -> None:
    """`serve`'s logging set-up, written to /dev/null."""
    logs.configure(LoggingSettings(format=fmt, access=access))
    devnull = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the benchmark)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


def observe(app: Any, key: str, requests: int, repeat: int) -> None:
    """CPU per request under each observability setting, side by side."""
    settings = [("access off, otel off", "text", False, False),
                ("access text, otel off", "text", True, False),
                ("access json, otel off", "json", True, False),
                ("access off, otel on", "text", False, True),
                ("access json, otel on", "json", True, True)]
    chosen = {k: v for k, v in cases().items() if k in ("chat", "chat stream")}
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    with otlp_sink() as url:
        on = telemetry.setup(TelemetrySettings(otlp_endpoint=url, export_interval_s=1))
        figures: dict[tuple[str, str], list[float]] = {}

        async def run() -> None:
            for r in range(repeat + 1):  # the first round warms up
                turn = r % len(settings)  # each round starts with another setting
                for label, fmt, access, otel in settings[turn:] + settings[:turn]:
                    configure_logs(fmt, access)
                    app.gateway.telemetry = on if otel else telemetry.OFF
                    for name, (path, body, headers) in chosen.items():
                        us = await drive(app.gateway, key, path, body, headers,
                                         requests if r else 100)
                        if r:
                            figures.setdefault((label, name), []).append(us)

        try:
            asyncio.run(run())
        finally:
            on.shutdown()
    base = {name: statistics.median(figures[(settings[0][0], name)]) for name in chosen}
    print(f"{'CPU µs per request':24s}" + "".join(f"{n:>18s}{'Δ':>9s}" for n in chosen))
    for label, *_ in settings:
        row = f"{label:24s}"
        for name in chosen:
            us = statistics.median(figures[(label, name)])
            row += f"{us * 1e6:18.1f}{(us - base[name]) * 1e6:+9.1f}"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--observe", action="store_true",
                        help="compare access log off/text/json and OpenTelemetry off/on")
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
    gc.collect()  # as the app's lifespan does once started: a collection under load walks
    gc.freeze()  # only what requests allocate
    print(f"harbourgate from {Path(harbourgate.__file__).parent}")
    if args.observe:
        return observe(app, key, args.requests, args.repeat)

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
