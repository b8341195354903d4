"""Micro-benchmark: what observability costs one request, per piece (issue 15).

Drives the API the gateway calls for one request (telemetry: a request trace with the
identify/scan/decide spans, one upstream attempt, usage and end; logs: one access line)
and reports the mean CPU time per request of each configuration (all threads of the process,
so the background exporter counts; CPU rather than wall time, so a busy machine does not
inflate it) next to doing nothing:

    .venv/bin/python bench/observe.py [--n 200000]
    .venv/bin/python bench/observe.py --app [--requests 1000] [--repeat 3]

`--app` measures the same settings in place: plain and streamed Chat Completions through
the whole ASGI app as `bench/pipeline.py` builds it, under access log off / text / json and
OpenTelemetry off / on, side by side, interleaved repeat by repeat (each round starting
with another setting, so a busy machine's drift falls on all of them alike); "otel on"
exports to a local OTLP/HTTP sink in this process, whose CPU is charged to the requests.

Access lines go to /dev/null through the real formatter and handler; telemetry "on"
exports to an OTLP endpoint where nothing listens (the spans are built, queued and dropped
by the background exporter, as with a collector that is down: the request-side cost).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pipeline  # bench/pipeline.py: the app as serve builds it, and the request driver
from compare import otlp_sink  # bench/compare.py: a local OTLP endpoint that takes anything

from harbourgate import config
from harbourgate.app import create_app, prepare
from harbourgate.config import LoggingSettings, TelemetrySettings
from harbourgate.observe import labels, logs, telemetry
from harbourgate.store import registry

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def one_request(tel: telemetry.Telemetry, traceparent: bytes | None = TRACEPARENT) -> None:
    trace = tel.request("/v1/chat/completions", "chat", traceparent=traceparent,
                        request_id="req-1")
    with trace.span("identify"):
        pass
    trace.identified(application="acme-research")
    with trace.span("scan"):
        pass
    with trace.span("decide"):
        pass
    trace.decided(decision="allow", rule="hk-sandbox/allow", model="fable-5", served="fable-5")
    with trace.upstream("fable-5", attempt=1, provider="openai") as attempt:
        _ = attempt.traceparent
    trace.usage(input_tokens=12, output_tokens=40, first_token_s=0.01)
    with trace.span("audit.commit"):
        pass
    trace.end(status=200, audit_id="01JAUDIT")


def access_line() -> None:
    if logs.access_enabled():
        logs.access(request_id="req-1", audit_id="01JAUDIT", application="acme-research",
                    model="fable-5", served="fable-5", decision="allow", status=200,
                    overhead_ms=0.4, upstream_ms=12.0, endpoint="/v1/chat/completions")


def per_call_us(fn: Callable[[], None], n: int) -> float:
    for _ in range(min(n // 10, 10_000)):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()  # CPU of every thread (the exporter's too), not waiting
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


def configure_logs(fmt: str, access: bool) -> None:
    logs.configure(LoggingSettings(format=fmt, access=access))
    devnull = open("/dev/null", "w")  # noqa: SIM115 (lives as long as the benchmark)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


def _build() -> tuple[Any, str]:
    """The app as `bench/pipeline.py` builds it: stand-in routes in-process, SQLite in a
    temporary data_dir, the audit log an in-memory sink; start-up objects frozen as the
    lifespan freezes them."""
    data = Path(tempfile.mkdtemp(prefix="hg-bench-observe-"))
    base = config.load(None, environ={})
    settings = config.Settings(data_dir=data, routes=base.routes, sandbox=base.sandbox)
    prepare(settings)
    app = create_app(settings)
    with app.store.change() as conn:
        key = registry.issue_key(conn, "acme-research").key
    app.runtime.reload()
    app.gateway.audit = pipeline.MemorySink()
    gc.collect()
    gc.freeze()
    return app, key


def in_app(requests: int, repeat: int) -> None:
    """CPU per request through the whole ASGI app under each observability setting."""
    app, key = _build()
    settings = [("access off, otel off", "text", False, False),
                ("access text, otel off", "text", True, False),
                ("access json, otel off", "json", True, False),
                ("access off, otel on", "text", False, True),
                ("access json, otel on", "json", True, True)]
    chosen = {k: v for k, v in pipeline.cases().items() if k in ("chat", "chat stream")}
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    with otlp_sink() as url:
        on = telemetry.setup(TelemetrySettings(otlp_endpoint=url, export_interval_s=3600))
        figures: dict[tuple[str, str], list[float]] = {}

        async def run() -> None:
            for r in range(repeat + 1):  # the first round warms up
                turn = r % len(settings)  # each round starts with another setting
                for label, fmt, access, otel in settings[turn:] + settings[:turn]:
                    configure_logs(fmt, access)
                    app.gateway.telemetry = on if otel else telemetry.OFF
                    for name, (path, body, headers) in chosen.items():
                        us = await pipeline.drive(app.gateway, key, path, body, headers,
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="requests per measurement")
    parser.add_argument("--app", action="store_true", help="through the whole ASGI app")
    parser.add_argument("--requests", type=int, default=1000, help="--app: per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="--app: rounds")
    args = parser.parse_args()
    if args.app:
        return in_app(args.requests, args.repeat)
    n = args.n
    labels.configure(["fable-5"])
    rows: list[tuple[str, float]] = [("nothing (empty call)", per_call_us(lambda: None, n))]
    off = telemetry.setup(TelemetrySettings())
    rows.append(("telemetry off, no traceparent sent",
                 per_call_us(lambda: one_request(off, None), n)))
    rows.append(("telemetry off, traceparent passed on", per_call_us(lambda: one_request(off), n)))
    configure_logs("text", access=False)
    rows.append(("access log off (logging.access: false)", per_call_us(access_line, n)))
    configure_logs("text", access=True)
    rows.append(("access log on, text", per_call_us(access_line, n // 4)))
    configure_logs("json", access=True)
    rows.append(("access log on, json", per_call_us(access_line, n // 4)))
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    on = telemetry.setup(TelemetrySettings(otlp_endpoint=dead))
    try:
        rows.append(("telemetry on (7 spans, metrics)", per_call_us(lambda: one_request(on),
                                                                   n // 20)))
    finally:
        on.shutdown()
    print(f"python {sys.version.split()[0]}; mean CPU per request, best of 3")
    for name, us in rows:
        print(f"  {name:<42} {us:8.2f} µs")


if __name__ == "__main__":
    main()
