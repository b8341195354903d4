"""Workers before and after the audit sequencer, interleaved on one machine (issue 17).

    python bench/sequencer.py [--before REF] [--workers 1,2] [--concurrency 64]
        [--requests 4000] [--rounds 3] [--postgres ADMIN_URL]

Starts the stand-in upstream and, for each round, each of `--workers` and each of two
trees — BEFORE (the commit `--before`, default the merge base with main) and AFTER (this
working tree) — `harbourgate serve` with bench/compare.py's full pipeline on SQLite (or on
a fresh PostgreSQL database per run with `--postgres`), drives
it with bench/loadgen.py at `--concurrency`, and prints requests per second, the server's
CPU, and the mean time a request waited for its audit commit (from
`harbourgate_audit_commit_wait_seconds`, where the tree has it). Interleaving puts a noisy
machine's drift on both trees alike; compare figures within one run only.

    python bench/sequencer.py --appenders 1,2,4 [--requests 20000] [--rounds 3]

The audit layer alone, with this tree: W processes append bench/audit.py's decision
records to one SQLite file, `--concurrency` at a time in all (as the gateway's workers
share the requests in flight), either each through its own `AuditLog`
(what every worker did before the sequencer) or through one `Sequencer` in this process;
prints entries/s, the CPU all processes spent per entry, and how long an append waited
for its commit (p50, p99): the time workers spend waiting on each other's commits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # the bench's own helpers: processes, config, loadgen

ORIGIN = "bench.harbourgate/audit"


def commit_wait(url: str) -> tuple[float, float] | None:
    """(sum, count) of the audit commit wait histogram, or None without it."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found = {m[1]: float(m[2]) for m in re.finditer(
        r"^harbourgate_audit_commit_wait_seconds_(sum|count) (\S+)$", text, re.MULTILINE)}
    return (found["sum"], found["count"]) if len(found) == 2 else None


def one(fleet: compare.Fleet, work: Path, upstream: str, body: Path, *, source: str,
        workers: int, concurrency: int, requests: int, postgres: str | None
        ) -> dict[str, Any]:
    compare.HG_ENV["PYTHONPATH"] = source
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(compare.postgres_database(postgres)) if postgres else None
        return _measure(fleet, work, upstream, body, workers=workers, database=database,
                        concurrency=concurrency, requests=requests)


def _measure(fleet: compare.Fleet, work: Path, upstream: str, body: Path, *, workers: int,
             database: str | None, concurrency: int, requests: int) -> dict[str, Any]:
    target = compare.start_harbourgate(fleet, work, upstream, workers=workers,
                                       database_url=database)
    try:
        base = target.urls[0].rsplit("/v1/", 1)[0]
        before = commit_wait(base)
        cpu = compare.cpu_seconds(target.pids)
        result = compare.loadgen(target, body, stream=False, concurrency=concurrency,
                                 requests=requests, max_seconds=60)
        cpu = compare.cpu_seconds(target.pids) - cpu
        after = commit_wait(base)
    finally:
        fleet.stop_target(target)
    wait = None
    if before is not None and after is not None and after[1] > before[1]:
        wait = (after[0] - before[0]) / (after[1] - before[1])
    return {"rps": result["rps"], "errors": result.get("errors"), "cpu_s": cpu,
            "seconds": result.get("seconds"), "commit_wait_ms": wait and wait * 1000}


async def _append(log: Any, count: int, concurrency: int) -> list[float]:
    """`count` appends, `concurrency` at a time; how long each waited for its commit."""
    from audit import decision  # bench/audit.py's realistic records

    waits: list[float] = []

    async def writer(k: int) -> None:
        for i in range(k, count, concurrency):
            started = time.perf_counter()
            await log.append(decision(i))
            waits.append(time.perf_counter() - started)

    await asyncio.gather(*(writer(k) for k in range(concurrency)))
    return waits


def appender(url: str, key: str, count: int, concurrency: int, sequencer: str) -> None:
    """A child process: `count` appends, then the CPU seconds they took and the
    percentiles of the appends' waits for their commit, as JSON on stdout."""
    import uvloop

    from harbourgate.audit.keys import read_key
    from harbourgate.audit.log import AuditLog
    from harbourgate.audit.note import Signer
    from harbourgate.store import Store

    store = Store(url)
    log = AuditLog(store.engine, Signer(ORIGIN, read_key(Path(key))),
                   sequencer=sequencer or None)
    log.start()
    sys.stdin.readline()  # every appender starts at once
    cpu = _cpu()
    waits = uvloop.run(_append(log, count, concurrency))
    log.close()
    waits.sort()  # its percentiles (0..100) stand for it: 101 numbers, not every wait
    grid = [waits[min(len(waits) - 1, len(waits) * q // 100)] for q in range(101)]
    print(json.dumps({"cpu": _cpu() - cpu, "waits": grid}))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def appenders(work: Path, processes: int, count: int, concurrency: int,
              sequenced: bool) -> dict[str, float]:
    from harbourgate.audit.keys import create_key, read_key
    from harbourgate.audit.log import AuditLog
    from harbourgate.audit.note import Signer
    from harbourgate.audit.sequencer import Sequencer
    from harbourgate.store import Store

    work.mkdir(parents=True)
    url, key = f"sqlite:///{work / 'audit.db'}", work / "key.pem"
    create_key(key)
    store = Store(url)
    store.migrate()
    sequencer = None
    if sequenced:
        sequencer = Sequencer(AuditLog(store.engine, Signer(ORIGIN, read_key(key))))
        sequencer.start()
    children = [subprocess.Popen(
        [sys.executable, __file__, "--appender", url, str(key), str(count // processes),
         str(max(1, concurrency // processes)), sequencer.path if sequencer else ""],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    time.sleep(3)  # imports and start-up, not measured
    cpu = _cpu()
    started = time.perf_counter()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outs = [json.loads(child.communicate(timeout=600)[0].splitlines()[-1])
            for child in children]
    seconds = time.perf_counter() - started
    spent = sum(out["cpu"] for out in outs)
    waits = sorted(w for out in outs for w in out["waits"])  # equal shares: pooled grids
    if sequencer is not None:
        sequencer.close()
        spent += _cpu() - cpu
    store.close()
    return {"entries_per_s": count // processes * processes / seconds,
            "cpu_us_per_entry": spent / count * 1e6,
            "wait_p50_ms": waits[len(waits) // 2] * 1e3,
            "wait_p99_ms": waits[int(len(waits) * 0.99)] * 1e3}


def audit_only(args: argparse.Namespace) -> None:
    runs: dict[tuple[int, bool], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="hg-seq-audit-") as tmp:
        for r in range(args.rounds):
            for processes in [int(p) for p in args.appenders.split(",")]:
                for sequenced in (False, True):
                    got = appenders(Path(tmp) / f"{r}-{processes}-{sequenced}", processes,
                                    args.requests, args.concurrency, sequenced)
                    runs.setdefault((processes, sequenced), []).append(got)
                    print(f"round {r + 1} processes={processes} sequencer={sequenced}: "
                          f"{json.dumps(got)}", flush=True)
    print(f"\nmedian over {args.rounds} rounds, {args.requests} appends each, "
          f"{args.concurrency} at a time in all, SQLite (CPU: all processes, the sequencer's "
          "included):")
    for (processes, sequenced), results in sorted(runs.items()):
        print(f"  {processes} process{'es' if processes > 1 else '  '} "
              f"{'one sequencer   ' if sequenced else 'a log in each   '}"
              f"{statistics.median(r['entries_per_s'] for r in results):8.0f} entries/s, "
              f"{statistics.median(r['cpu_us_per_entry'] for r in results):6.1f} µs CPU/entry, "
              f"commit wait p50 {statistics.median(r['wait_p50_ms'] for r in results):6.2f} ms, "
              f"p99 {statistics.median(r['wait_p99_ms'] for r in results):6.2f} ms")


def main() -> None:
    if sys.argv[1:2] == ["--appender"]:
        appender(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=None,
                        help="commit measured as BEFORE (default: merge base with main)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=None, metavar="ADMIN_URL",
                        help="measure on PostgreSQL (a database per run) instead of SQLite")
    parser.add_argument("--appenders", default=None, metavar="W,W",
                        help="measure the audit layer alone with W appending processes")
    args = parser.parse_args()
    if args.appenders:
        audit_only(args)
        return
    before_ref = args.before or subprocess.run(
        ["git", "-C", str(compare.ROOT), "merge-base", "main", "HEAD"], capture_output=True,
        text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="hg-seq-bench-") as tmp:
        work = Path(tmp)
        trees: dict[str, str] = {}
        for name, ref in (("before", before_ref), ("after", None)):
            (work / name).mkdir()
            label = compare.snapshot_source(work / name, ref)
            trees[f"{name} ({label})"] = compare.HG_ENV["PYTHONPATH"]  # type: ignore[assignment]
        body = work / "body.json"
        body.write_text(json.dumps(compare.chat_body(False), ensure_ascii=False))
        fleet = compare.Fleet(work)
        try:
            standin = compare.start_standin(fleet)
            runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for r in range(args.rounds):
                for workers in [int(w) for w in args.workers.split(",")]:
                    order = list(trees.items())  # who goes first alternates by round
                    for tree, source in order[::-1] if r % 2 else order:
                        got = one(fleet, work / f"r{r}-{workers}-{len(runs)}",
                                  standin.info["base"], body, source=source, workers=workers,
                                  concurrency=args.concurrency, requests=args.requests,
                                  postgres=args.postgres)
                        runs.setdefault((tree, workers), []).append(got)
                        print(f"round {r + 1} {tree} workers={workers}: {json.dumps(got)}",
                              flush=True)
        finally:
            fleet.close()
    print(f"\nmedian over {args.rounds} rounds, concurrency {args.concurrency}, "
          f"{args.requests} requests each, {'PostgreSQL' if args.postgres else 'SQLite'}:")
    for (tree, workers), results in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        waits = [r["commit_wait_ms"] for r in results if r["commit_wait_ms"] is not None]
        wait = f", audit commit wait {statistics.median(waits):.2f} ms" if waits else ""
        print(f"  {tree:<40} workers={workers}: "
              f"{statistics.median(r['rps'] for r in results):7.0f} req/s, "
              f"cpu {statistics.median(r['cpu_s'] for r in results):5.1f} s{wait}")


if __name__ == "__main__":
    main()
