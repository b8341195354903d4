"""Workers against cores, on a machine with many of them (issue 17, item 3).

    python bench/cores.py [--workers 1,2,4,8] [--standins 3] [--loadgens 3]
        [--concurrency 64] [--levels 64,256] [--kinds harbourgate,forwarder] [--seconds 6]
        [--rounds 2] [--parts scaling,sizing,latency] [--profile SECONDS] [--out DIR]
        [--postgres URL|pgserver] [--pg-cores 2]

bench/run measures on one machine's shared cores, where two workers cannot show scaling:
the stand-in and the load generator take the cores they would use. This pins each part to
cores of its own: `--loadgens` processes of bench/loadgen.py on the last cores (one each),
`--standins` stand-in upstreams before them (one each; Harbourgate's route is a pool of
them), and Harbourgate (supervisor with the audit sequencer, and its workers) on the rest.
With the kind `harbourgate-pg` (Harbourgate on PostgreSQL, a fresh database for each
deployment), PostgreSQL gets `--pg-cores` cores of its own before the stand-ins: the
server at `--postgres` (an admin URL; its processes are pinned there), or with
`--postgres pgserver` one started from the `pgserver` package (`pip install pgserver`: a
PostgreSQL in a wheel, for a machine that has none, such as the lent ones).

1. Scaling: for each worker count, in `--rounds` interleaved rounds, the full pipeline (a)
   at each of `--levels` (default: `--concurrency`) for `--seconds`, through each of
   `--kinds`: Harbourgate, Harbourgate on PostgreSQL (`harbourgate-pg`), and
   bench/forwarder.py (bare uvicorn + aiohttp, the yardstick) with as many workers.
   Reports req/s, the ratio to one worker, every process's share of a core over the load
   generators' run (each worker, the supervisor that hosts the sequencer, PostgreSQL,
   stand-ins, load generators: which side ran out) and the mean audit-commit wait from
   /metrics. The stand-ins alone at the same load first: what the upstream side
   can give.
2. Sizing: one worker, every variant at `--concurrency`: CPU per request, req/s per core.
3. Latency: one worker, concurrency 1, its route a single stand-in: the latency added to
   the direct call (p50, p99) for (a), and a stream's first byte for (c) and (d).
4. With `--profile S`: one more run at the largest worker count, py-spy recording the
   supervisor and one worker for S seconds (raw stacks to `--out`); not measured.

Prints each figure as it is taken and writes everything to `--out`/cores.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # the bench's processes, config, variants and bodies


def layout(cores: list[int], standins: int, loadgens: int,
           postgres: int = 0) -> dict[str, list[int]]:
    """Load generators on the last cores, stand-ins before them, then PostgreSQL (when
    measured), Harbourgate on the rest; on a machine too small for that (a smoke run), one
    of each, sharing every core."""
    if len(cores) < standins + loadgens + postgres + 1:
        return {"loadgen": cores[-1:], "standin": cores[-1:], "postgres": cores,
                "harbourgate": cores}
    rest = len(cores) - loadgens - standins
    return {"loadgen": cores[len(cores) - loadgens:], "standin": cores[rest:rest + standins],
            "postgres": cores[rest - postgres:rest], "harbourgate": cores[:rest - postgres]}


def postgres_cpu() -> dict[int, float]:
    """Every PostgreSQL process on this machine (the server measured is the only one) and
    its CPU seconds so far; a backend that exits meanwhile is left out."""
    out = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                out[int(entry.name)] = compare.process_cpu(int(entry.name))
    return out


@contextlib.contextmanager
def postgres(url: str, work: Path, cpus: set[int]) -> Iterator[str]:
    """The admin URL of the PostgreSQL to measure, its processes pinned to `cpus`: the
    server at `url`, or one started from the `pgserver` package (`url` "pgserver")."""
    server = None
    if url == "pgserver":
        import pgserver  # only here: a bench extra for machines without PostgreSQL

        server = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
        url = server.get_uri()
    try:
        for pid in postgres_cpu():  # backends started later inherit the postmaster's
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, cpus)
        yield url
    finally:
        if server is not None:
            server.cleanup()


def process_cpu(roots: list[int]) -> dict[int, tuple[str, float]]:
    """Each process under `roots`: its role and its user + system CPU seconds so far."""
    out = {}
    for root in roots:
        tree = {}
        for pid in compare.process_tree(root):
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                role = ("tracker" if b"resource_tracker" in cmd else
                        "supervisor" if pid == root else "worker")
                tree[pid] = (role, compare.process_cpu(pid))
        if not any(role == "worker" for role, _ in tree.values()):  # it serves alone
            tree = {pid: ("worker" if role == "supervisor" else role, cpu)
                    for pid, (role, cpu) in tree.items()}
        out |= tree
    return out


def busy(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
         seconds: float) -> dict[str, list[float]]:
    """Share of one core each process was busy between two `process_cpu` readings, by role,
    busiest first."""
    out: dict[str, list[float]] = {}
    for pid, (role, cpu) in after.items():
        if role != "tracker":
            out.setdefault(role, []).append((cpu - before.get(pid, (role, 0.0))[1]) / seconds)
    return {role: sorted(values, reverse=True) for role, values in out.items()}


def drive(target: compare.Target, variant: compare.Variant, body: Path, *, concurrency: int,
          seconds: float, cpus: list[int], upstreams: list[compare.Target]) -> dict[str, Any]:
    """`variant` through `target` for `seconds`: one load generator per core in `cpus`
    (no more than `concurrency`), each keeping its share of the requests in flight."""
    gens = cpus[:max(1, min(len(cpus), concurrency))]
    shares = [concurrency // len(gens) + (i < concurrency % len(gens)) for i in range(len(gens))]
    roots = [pid for t in upstreams for pid in t.pids]
    on_pg = target.info.get("storage", "").startswith("PostgreSQL")
    pg0 = postgres_cpu() if on_pg else {}
    wait0, up0 = compare.commit_wait(target), process_cpu(roots)
    cpu0 = process_cpu(target.pids) if target.name != "direct" else {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hg-loadgen-") as tmp:
        # files, not pipes: a generator must never wait for us to read another's output
        files = [(Path(tmp) / f"{i}.json").open("w+") for i in range(len(gens))]
        procs = [subprocess.Popen(
            compare.loadgen_argv(target, variant, body, concurrency=share, requests=10**7,
                                 max_seconds=seconds + 2, warmup=share),  # bound by time
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=compare.pinned({core}))
                 for core, share, out in zip(gens, shares, files, strict=True)]
        outs = []
        for proc, out in zip(procs, files, strict=True):
            proc.wait(timeout=seconds + 120)
            out.seek(0)
            text = out.read()
            out.close()
            if proc.returncode != 0:
                raise RuntimeError(f"loadgen failed ({proc.returncode}): {text[-2000:]}")
            outs.append(json.loads(text.strip().splitlines()[-1]))
    wall = time.perf_counter() - started
    cpu1 = process_cpu(target.pids) if target.name != "direct" else {}
    up1, wait1 = process_cpu(roots), compare.commit_wait(target)
    pg1 = postgres_cpu() if on_pg else {}
    window = max(o["seconds"] for o in outs)
    lat = sorted(x for o in outs for x in o["latencies_s"])
    first = sorted(x for o in outs for x in o["first_bytes_s"])
    n = len(lat)
    errors: dict[str, int] = {}
    for o in outs:
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    server = busy(cpu0, cpu1, wall)
    cpu_s = sum(sum(v) for v in server.values()) * wall
    result: dict[str, Any] = {
        "requests": n, "errors": errors, "seconds": window, "rps": n / window,
        "p50_ms": compare.pct(lat, 0.5), "p99_ms": compare.pct(lat, 0.99),
        "cpu_ms_per_req": cpu_s * 1000 / n if n and server else math.nan,
        "busy": server, "standin_busy": busy(up0, up1, wall).get("worker", []),
        "loadgen_busy": sorted((o["loadgen_cpu_s"] / wall for o in outs), reverse=True)}
    if first:
        result |= {"ttfb_p50_ms": compare.pct(first, 0.5), "ttfb_p99_ms": compare.pct(first, 0.99)}
    if on_pg:  # every server process together, in cores (a backend started meanwhile from 0)
        result["postgres_busy"] = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items()) / wall
    if wait0 and wait1 and wait1[1] > wait0[1]:
        result["audit_commit_wait_ms"] = (wait1[0] - wait0[0]) * 1000 / (wait1[1] - wait0[1])
    return result


def show(label: str, r: dict[str, Any]) -> None:
    def cores(values: list[float]) -> str:
        return "/".join(f"{v:.2f}" for v in values) or "-"

    b = r["busy"]
    wait = r.get("audit_commit_wait_ms")
    pg = r.get("postgres_busy")
    compare.say(
        f"  {label:<34} {r['rps']:8,.0f} req/s  p50 {r['p50_ms']:7.3f}  p99 {r['p99_ms']:7.3f} ms"
        f"  errors {sum(r['errors'].values())}  CPU/req {r['cpu_ms_per_req']:.3f} ms"
        f"{f'  commit wait {wait:.2f} ms' if wait is not None else ''}"
        f"  | busy: supervisor {cores(b.get('supervisor', []))}, workers "
        f"{cores(b.get('worker', []))}, "
        f"{f'postgres {pg:.2f} cores, ' if pg is not None else ''}stand-ins "
        f"{cores(r['standin_busy'])}, load {cores(r['loadgen_busy'])}")


def profile(target: compare.Target, seconds: float, out: Path,
            run: Callable[[], object]) -> list[str]:
    """py-spy on the supervisor and one worker while `run()` drives load; raw stacks."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not spy:
        return ["py-spy not found: no profile"]
    pids = process_cpu(target.pids)
    chosen = {role: next(p for p, (r, _) in pids.items() if r == role)
              for role in ("supervisor", "worker") if role in {r for r, _ in pids.values()}}
    spies = {role: subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", f"{seconds:g}", "--rate", "250",
         "--format", "raw", "--nonblocking", "--threads", "--output",
         str(out / f"profile-{role}.txt")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True) for role, pid in chosen.items()}
    run()
    notes = []
    for role, proc in spies.items():
        text = proc.communicate(timeout=seconds + 60)[0]
        notes.append(f"py-spy {role}: exit {proc.returncode}: {text.strip()[-300:]}")
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--standins", type=int, default=3)
    parser.add_argument("--loadgens", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--levels", default=None, help="concurrency levels of the scaling "
                        "rows [--concurrency]")
    parser.add_argument("--kinds", default="harbourgate,forwarder")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parts", default="scaling,sizing,latency")
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--out", type=Path, default=compare.RESULTS)
    parser.add_argument("--postgres", default=os.environ.get(
        "HARBOURGATE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin URL of the PostgreSQL for `harbourgate-pg`, or 'pgserver'")
    parser.add_argument("--pg-cores", type=int, default=2)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    parts = set(args.parts.split(","))
    levels = [int(c) for c in (args.levels or str(args.concurrency)).split(",")]
    kinds = args.kinds.split(",")
    cores = sorted(os.sched_getaffinity(0))
    plan = layout(cores, args.standins, args.loadgens,
                  args.pg_cores if "harbourgate-pg" in kinds else 0)
    hg_cpus = set(plan["harbourgate"])
    args.out.mkdir(parents=True, exist_ok=True)
    compare.HG_ENV["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(compare.ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    report: dict[str, Any] = {
        "environment": {"date": time.strftime("%Y-%m-%d %H:%M:%S%z"),
                        "cpu": compare.cpu_model(), "cores": len(cores),
                        "python": platform.python_version(), "layout": plan,
                        "load_average_at_start": os.getloadavg()[0],
                        "command": " ".join(["bench/cores.py", *sys.argv[1:]])},
        "scaling": [], "variants": {}, "latency": {}, "notes": []}
    compare.say(f"{len(cores)} cores: Harbourgate {plan['harbourgate']}, "
                + (f"PostgreSQL {plan['postgres']}, " if "harbourgate-pg" in kinds else "")
                + f"stand-ins {plan['standin']}, load generators {plan['loadgen']}")
    work = Path(tempfile.mkdtemp(prefix="hg-cores-"))
    bodies = {v.key: work / f"body-{v.key}.json" for v in compare.VARIANTS}
    for v in compare.VARIANTS:
        bodies[v.key].write_text(json.dumps(v.body, ensure_ascii=False))
    fleet = compare.Fleet(work)
    plain = compare.VARIANT["plain"]
    servers = contextlib.ExitStack()
    try:
        admin = servers.enter_context(postgres(args.postgres, work, set(plan["postgres"]))) \
            if "harbourgate-pg" in kinds else ""
        standins = [compare.start_standin(fleet, f"stand-in-{i}", {core})
                    for i, core in enumerate(plan["standin"])]
        pool = [s.info["base"] for s in standins]
        direct = compare.Target("direct", pool, pids=[p for s in standins for p in s.pids])

        def measure(target: compare.Target, variant: compare.Variant, concurrency: int,
                    label: str) -> dict[str, Any]:
            r = drive(target, variant, bodies[variant.key], concurrency=concurrency,
                      seconds=args.seconds, cpus=plan["loadgen"], upstreams=standins)
            show(label, r)
            return r

        compare.say("the stand-ins alone:")
        report["direct"] = measure(direct, plain, args.concurrency, "direct (stand-ins)")
        if "sizing" in parts:
            compare.say("sizing, one worker, every variant:")
            hg = compare.start_harbourgate(fleet, work / "hg-sizing", pool[0], workers=1,
                                           pool=pool, cpus=hg_cpus)
            try:
                for v in compare.VARIANTS:
                    report["variants"][v.key] = measure(hg, v, args.concurrency, v.title[:3])
            finally:
                fleet.stop_target(hg)
        if "scaling" in parts:
            compare.say(f"scaling, (a) at concurrency {', '.join(map(str, levels))}:")
        for r in range(args.rounds if "scaling" in parts else 0):
            for w in counts if r % 2 == 0 else counts[::-1]:
                starts: dict[str, Callable[[contextlib.ExitStack], compare.Target]] = {
                    "harbourgate": lambda _, w=w, r=r: compare.start_harbourgate(
                        fleet, work / f"hg-{r}-{w}", pool[0], workers=w, pool=pool,
                        cpus=hg_cpus),
                    "harbourgate-pg": lambda stack, w=w, r=r: compare.start_harbourgate(
                        fleet, work / f"hg-pg-{r}-{w}", pool[0], workers=w, pool=pool,
                        cpus=hg_cpus, database_url=stack.enter_context(
                            compare.postgres_database(admin))),
                    "forwarder": lambda _, w=w: compare.start_forwarder(
                        fleet, pool, workers=w, cpus=hg_cpus)}
                chosen = [k for k in sorted(starts) if k in kinds]
                for kind in chosen[::-1] if r % 2 else chosen:
                    with contextlib.ExitStack() as database:  # dropped after the stop
                        target = starts[kind](database)
                        try:
                            for c in levels:
                                got = measure(target, plain, c,
                                              f"round {r + 1}, {kind}, {w} workers, c={c}")
                                report["scaling"].append({"round": r + 1, "kind": kind,
                                                          "workers": w, "concurrency": c,
                                                          **got})
                        finally:
                            fleet.stop_target(target)
        if "latency" in parts:
            latency(report, fleet, work, standins[0], bodies, plan, hg_cpus, args.seconds)
        if args.profile:
            w = max(counts)
            compare.say(f"profile: {w} workers, py-spy for {args.profile:g} s (not measured)")
            hg = compare.start_harbourgate(fleet, work / "hg-profile", pool[0], workers=w,
                                           pool=pool, cpus=hg_cpus)
            try:
                report["notes"] += profile(hg, args.profile, args.out, lambda: measure(
                    hg, plain, args.concurrency, f"{w} workers, profiled"))
            finally:
                fleet.stop_target(hg)
    finally:
        fleet.close()
        servers.close()
        shutil.rmtree(work, ignore_errors=True)
    report["environment"]["load_average_at_end"] = os.getloadavg()[0]
    summarise(report)
    (args.out / "cores.json").write_text(json.dumps(report, indent=1))


def latency(report: dict[str, Any], fleet: compare.Fleet, work: Path,
            standin: compare.Target, bodies: dict[str, Path], plan: dict[str, list[int]],
            cpus: set[int], seconds: float) -> None:
    """Concurrency 1, one worker whose route is one stand-in, against that stand-in."""
    compare.say("latency added at concurrency 1, one worker, the route one stand-in:")
    hg = compare.start_harbourgate(fleet, work / "hg-c1", standin.info["base"], workers=1,
                                   cpus=cpus)
    try:
        for v in compare.VARIANTS:
            if v.key == "clean":
                continue
            for t in (standin, hg):
                got = drive(t, v, bodies[v.key], concurrency=1, seconds=seconds,
                            cpus=plan["loadgen"], upstreams=[standin])
                show(f"{v.title[:3]} {t.name}", got)
                report["latency"][f"{v.key}/{t.name}"] = got
    finally:
        fleet.stop_target(hg)


def summarise(report: dict[str, Any]) -> None:
    """The median of the rounds per worker count, its ratio to one worker; the sizing and
    latency figures."""
    by: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for row in report["scaling"]:
        by.setdefault((row["kind"], row["concurrency"], row["workers"]), []).append(row)
    compare.say("\nkind         concurrency  workers  req/s (median)  vs 1   efficiency  "
                "CPU ms/req  commit wait ms")
    summary = []
    for (kind, c, w), rows in sorted(by.items()):
        rps = statistics.median(r["rps"] for r in rows)
        ones = by.get((kind, c, 1))
        one = statistics.median(r["rps"] for r in ones) if ones else None
        waits = [r["audit_commit_wait_ms"] for r in rows if "audit_commit_wait_ms" in r]
        row = {"kind": kind, "concurrency": c, "workers": w, "rps": rps,
               "vs_1": rps / one if one else None,
               "cpu_ms_per_req": statistics.median(r["cpu_ms_per_req"] for r in rows),
               "audit_commit_wait_ms": statistics.median(waits) if waits else None}
        summary.append(row)
        compare.say(f"{kind:<12} {c:11}  {w:7}  {rps:13,.0f}  {row['vs_1'] or 0:5.2f}×  "
                    f"{(row['vs_1'] or 0) / w:9.0%}  {row['cpu_ms_per_req']:10.3f}  "
                    f"{row['audit_commit_wait_ms'] or 0:12.2f}")
    report["summary"] = summary
    for key, r in report["variants"].items():
        compare.say(f"sizing {key:9} {r['cpu_ms_per_req']:.3f} ms CPU/req = "
                    f"{1000 / r['cpu_ms_per_req']:,.0f} req/s per core")
    lat = report["latency"]
    for key in ("plain", "stream", "responses"):
        d, h = lat.get(f"{key}/direct"), lat.get(f"{key}/harbourgate")
        if d and h:
            extra = (f", first byte +{h['ttfb_p50_ms'] - d['ttfb_p50_ms']:.3f} ms p50"
                     if "ttfb_p50_ms" in h and "ttfb_p50_ms" in d else "")
            compare.say(f"added at c=1, {key}: p50 +{h['p50_ms'] - d['p50_ms']:.3f} ms, "
                        f"p99 +{h['p99_ms'] - d['p99_ms']:.3f} ms{extra}")


if __name__ == "__main__":
    main()
