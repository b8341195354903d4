"""What balancing over a pool adds to a request (PRODUCT.md §6: ≤ 10 µs at p50 over 8 servers).

One command: ``.venv/bin/python bench/pool.py`` (``--calls N``, ``--endpoints E``); with
``PROMETHEUS_MULTIPROC_DIR=$(mktemp -d)`` in front it measures the metrics as
`serve --workers N` keeps them (memory-mapped files, a few µs more per call).

A `Pool` wraps one adapter per server; the bench gives it adapters that answer at once
(a precomputed answer, no I/O), so the only difference between calling the pool and
calling one adapter directly is the pool's own work: choosing the server, counting it
in flight, the per-server metrics (in-flight gauge, request counter, latency
histogram), and releasing it. Each call is timed alone with perf_counter_ns inside one
event loop; the figure reported is p50(pool) - p50(direct), for both balancing modes,
with every server idle and with the servers carrying uneven outstanding requests (the
state under load: least_outstanding must scan them all).
Results go to stdout and ``bench/results/pool.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from harbourgate.config import EndpointConfig, HealthConfig, RouteConfig
from harbourgate.providers.pool import Pool

RESULTS = Path(__file__).parent / "results" / "pool.json"
ANSWER = {"id": "x", "object": "chat.completion", "model": "qwen-local",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                       "finish_reason": "stop"}]}
BODY = {"model": "qwen-local", "messages": [{"role": "user", "content": "hi"}]}


class Instant:
    """An adapter whose server answers immediately: no I/O, so only the pool is timed."""

    def __init__(self, route: RouteConfig) -> None:
        self.route = route

    async def chat(self, shape: str, body: dict[str, Any]) -> dict[str, Any]:
        return ANSWER

    async def aclose(self) -> None:
        return None


async def _time(call: Any, n: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await call("openai", BODY)
        samples.append(clock() - t0)
    return samples


def _route(endpoints: int, balance: str) -> RouteConfig:
    return RouteConfig(name="qwen-local", provider="openai", balance=balance,
                       health=HealthConfig(interval_s=0),
                       endpoints=tuple(EndpointConfig(f"http://gpu-node-{i}:8000/v1", 64)
                                       for i in range(endpoints)))


async def measure(calls: int, endpoints: int) -> dict[str, Any]:
    rows = {}
    direct = Instant(_route(endpoints, "least_outstanding"))
    await _time(direct.chat, calls // 10)  # warm up
    base = statistics.median(await _time(direct.chat, calls))
    rows["direct adapter"] = {"p50_ns": base}
    rng = random.Random(7)
    for balance in ("least_outstanding", "round_robin"):
        for loaded in (False, True):
            route = _route(endpoints, balance)
            pool = Pool(route, [Instant(route) for _ in range(endpoints)])
            if loaded:  # uneven outstanding requests, as under load
                for ep in pool.endpoints:
                    ep.outstanding = rng.randrange(0, 32)
            await _time(pool.chat, calls // 10)
            samples = await _time(pool.chat, calls)
            p50 = statistics.median(samples)
            p99 = sorted(samples)[int(len(samples) * 0.99)]
            rows[f"pool {balance}{', servers loaded' if loaded else ''}"] = {
                "p50_ns": p50, "p99_ns": p99, "added_p50_us": round((p50 - base) / 1000, 3)}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--endpoints", type=int, default=8)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.calls, args.endpoints))
    print(f"Balancing over {args.endpoints} servers, {args.calls} calls each "
          f"(Python {platform.python_version()}, {platform.machine()})")
    print(f"{'':44} {'p50 µs':>8} {'p99 µs':>8} {'added p50 µs':>13}")
    for name, row in rows.items():
        p99 = f"{row['p99_ns'] / 1000:8.2f}" if "p99_ns" in row else f"{'':8}"
        added = f"{row['added_p50_us']:13.2f}" if "added_p50_us" in row else ""
        print(f"{name:44} {row['p50_ns'] / 1000:8.2f} {p99} {added}")
    worst = max(r["added_p50_us"] for r in rows.values() if "added_p50_us" in r)
    verdict = "meets" if worst <= 10 else "MISSES"
    print(f"worst added p50: {worst:.2f} µs ({verdict} the 10 µs target)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"endpoints": args.endpoints, "calls": args.calls,
                                   "python": sys.version.split()[0],
                                   "machine": platform.machine(), "rows": rows,
                                   "worst_added_p50_us": worst}, indent=2) + "\n")


if __name__ == "__main__":
    main()
