"""One request at a time through the gateway, in process: CPU per request of bench/run's
variants, before and after a change.

    .venv/bin/python bench/request_path.py [--baseline REF] [--variants plain,clean,...]
        [--requests 2000] [--rounds 4] [--no-audit] [--profile | --steps]

Builds the deployment `bench/run` measures (key, attestation, the four packs, the same
prompts: bench/compare.py), starts the stand-in upstream in its own process, and drives
the ASGI app with one request after another on uvloop: the upstream call goes over HTTP
and the audit log commits to SQLite as `serve` does, but there is no HTTP server in front,
so the figure is the request path's own CPU (process time, the writer thread included)
without uvicorn and without the other processes' noise. `--no-audit` swaps the audit log for an
in-memory sink (what is left is the pipeline and the upstream call). With `--baseline`
each round runs both trees in turn, each in its own process (PYTHONPATH to a `git archive`
of REF), and the table gives the median of the rounds with their spread. `--profile`
prints cProfile's heaviest functions for the working tree instead (one round).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # bench/compare.py: the deployment and the prompts bench/run uses
from pipeline import MemorySink, drive_timed  # bench/pipeline.py: sink and driver

# (depth, label, module, attribute path) of the steps `--steps` times, in request order.
STEPS = (
    (0, "identify: the API key", "harbourgate.gateway.pipeline", "identify"),
    (0, "admit", "harbourgate.gateway.pipeline", "admit"),
    (1, "parse the JSON body", "harbourgate.gateway.validate", "parse_json"),
    (1, "end user: attestation", "harbourgate.gateway.pipeline", "_end_user"),
    (1, "privacy scan", "harbourgate.privacy.scanner", "Scanner.scan_many"),
    (1, "policy context", "harbourgate.gateway.pipeline", "_context"),
    (1, "policy decision and plan", "harbourgate.gateway.pipeline", "plan"),
    (0, "forward", "harbourgate.gateway.pipeline", "forward"),
    (1, "pseudonymise the body", "harbourgate.gateway.pipeline", "_outgoing"),
    (1, "upstream call (plain)", "harbourgate.providers.upstream", "HTTPUpstream.chat"),
    (1, "upstream call (stream opened)", "harbourgate.providers.upstream",
     "HTTPUpstream.open_stream"),
    (0, "audit record: the mapping", "harbourgate.gateway.pipeline", "audit_record"),
    (0, "audit commit", "harbourgate.gateway.app", "Gateway._commit"),
    (1, "entry: encode, id, leaf hash", "harbourgate.audit.log", "AuditLog._prepare"),
    (1, "SQLite transaction", "harbourgate.audit.storage", "SqliteWriter.write"),
    (2, "decisions index row", "harbourgate.audit.storage", "index_rows"),
    (0, "answer: restore, encode, headers", "harbourgate.gateway.pipeline", "respond"),
    (0, "metrics", "harbourgate.gateway.app", "Gateway._observe"),
    (0, "stream relay", "harbourgate.gateway.app", "Gateway._stream"),
    (0, "access line, trace end", "harbourgate.gateway.app", "Gateway._finish"),
)


def time_steps() -> dict[str, list[float]]:
    """Wrap every step of STEPS in a timer; returns label -> [thread CPU s, wall s, calls].
    A module-level function is replaced where the pipeline looks it up (its own module)."""
    spent: dict[str, list[float]] = {}

    def timed(label: str, fn: Any) -> Any:
        cell = spent.setdefault(label, [0.0, 0.0, 0])
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                cpu, wall = time.thread_time(), time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    cell[0] += time.thread_time() - cpu
                    cell[1] += time.perf_counter() - wall
                    cell[2] += 1
            return run_async

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cell[0] += time.thread_time() - cpu
                cell[1] += time.perf_counter() - wall
                cell[2] += 1
        return run

    for _, label, module, path in STEPS:
        owner: Any = importlib.import_module(module)
        *outer, name = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        raw = inspect.getattr_static(owner, name)
        if isinstance(raw, staticmethod):
            setattr(owner, name, staticmethod(timed(label, raw.__func__)))
        else:
            setattr(owner, name, timed(label, raw))
    return spent


def print_steps(name: str, spent: dict[str, list[float]], cpu: float, requests: int) -> None:
    print(f"\n{name}: {cpu * 1e6:.1f} µs of CPU per request (the process), one at a time\n")
    print("| step | CPU µs/request | wall µs/request | calls/request |")
    print("|---|---|---|---|")
    top = 0.0
    for depth, label, _, _ in STEPS:
        cell = spent[label]
        if not cell[2]:
            continue
        if depth == 0:
            top += cell[0]
        print(f"| {'&nbsp;' * 4 * depth}{label} | {cell[0] / requests * 1e6:.1f} | "
              f"{cell[1] / requests * 1e6:.1f} | {cell[2] / requests:g} |")
    print(f"| the rest: ASGI shell, event loop, writer thread | "
          f"{cpu * 1e6 - top / requests * 1e6:.1f} | | |")


def measure(variants: list[str], requests: int, audit: bool, profile: bool,
            steps: bool = False) -> None:
    """Child mode: print one JSON line of µs per request for each variant."""
    from harbourgate import config
    from harbourgate.app import create_app, prepare
    from harbourgate.store import registry

    work = Path(tempfile.mkdtemp(prefix="hg-request-path-"))
    fleet = compare.Fleet(work)
    try:
        upstream = compare.start_standin(fleet)
        jwks, attestation = compare.verifier(work)
        settings = config.load(compare.harbourgate_config(
            work, upstream.bases[0], jwks, database_url=None, redis_url=None), environ={})
        prepare(settings)
        app = create_app(settings)
        with app.store.change() as conn:
            key = registry.issue_key(conn, "acme-research").key
        app.runtime.reload()
        spent = time_steps() if steps else {}
        headers = [(b"authorization", f"Bearer {key}".encode()),
                   (b"content-type", b"application/json"),
                   (b"x-harbourgate-attestation", attestation.encode())]

        async def run() -> dict[str, list[float]]:
            inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            await inbox.put({"type": "lifespan.startup"})
            life = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
            assert (await outbox.get())["type"] == "lifespan.startup.complete"
            if not audit:
                app.gateway.audit = MemorySink()
            out: dict[str, list[float]] = {}
            for name in variants:
                variant = compare.VARIANT[name]
                body = json.dumps(variant.body, ensure_ascii=False).encode()
                path = "/v1/" + variant.path
                await drive_timed(app, headers, path, body, 200)  # warm up
                if steps:
                    for cell in spent.values():
                        cell[:] = [0.0, 0.0, 0]
                    cpu, _ = await drive_timed(app, headers, path, body, requests)
                    print_steps(name, spent, cpu, requests)
                    continue
                if profile:
                    import cProfile
                    import pstats
                    profiler = cProfile.Profile()
                    profiler.enable()
                    await drive_timed(app, headers, path, body, requests)
                    profiler.disable()
                    print(f"\n== {name}")
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
                    continue
                cpu, first = await drive_timed(app, headers, path, body, requests)
                out[name] = [cpu * 1e6, first * 1e6]
            await inbox.put({"type": "lifespan.shutdown"})
            await life
            return out

        figures = uvloop.run(run())
        if not (profile or steps):
            print(json.dumps(figures), flush=True)
    finally:
        fleet.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", metavar="REF")
    parser.add_argument("--variants", default="plain,clean,stream,responses")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--steps", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in compare.VARIANT]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}: {', '.join(compare.VARIANT)}")
    if args.child or args.profile or args.steps:
        return measure(variants, args.requests, not args.no_audit, args.profile, args.steps)

    work = Path(tempfile.mkdtemp(prefix="hg-request-path-"))
    trees = {"working tree": {}}
    compare.snapshot_source(work / "new", None, trees["working tree"])
    if args.baseline:
        trees = {args.baseline: {}, **trees}
        compare.snapshot_source(work / "base", args.baseline, trees[args.baseline])
    argv = [sys.executable, __file__, "--child", "--variants", args.variants,
            "--requests", str(args.requests), *(["--no-audit"] if args.no_audit else [])]
    figures: dict[str, dict[str, list[list[float]]]] = {t: {} for t in trees}
    for n in range(args.rounds):
        for tree, env in trees.items() if n % 2 == 0 else reversed(trees.items()):
            done = subprocess.run(argv, capture_output=True, text=True, check=False,
                                  env={**os.environ, **env})
            if done.returncode != 0:
                raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
            for name, value in json.loads(done.stdout.splitlines()[-1]).items():
                figures[tree].setdefault(name, []).append(value)
    print(f"CPU µs per request, one at a time, in process ({args.requests} requests x "
          f"{args.rounds} rounds; audit {'in memory' if args.no_audit else 'SQLite'}); "
          "median of the rounds (lowest-highest); first byte: CPU until the answer's "
          "first body byte\n")
    print("| variant | tree | CPU µs/request | first byte µs |")
    print("|---|---|---|---|")
    for name in variants:
        for tree in trees:
            runs = figures[tree][name]
            cpu, first = [r[0] for r in runs], [r[1] for r in runs]
            print(f"| {name} | {tree} | {statistics.median(cpu):.1f} ({min(cpu):.1f}-"
                  f"{max(cpu):.1f}) | {statistics.median(first):.1f} |")


if __name__ == "__main__":
    main()
