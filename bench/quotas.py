"""Quota gate benchmark (PRODUCT.md §6: ≤ 50 µs added at p50): reserve + settle of one
request that four quotas cover (participant, application, key, and participant × route),
each with requests and tokens per minute and a budget, so 12 counters per request.

    .venv/bin/python bench/quotas.py [--requests 20000] [--redis redis://127.0.0.1:6379/4]

Reported separately: reserve + headers (before the upstream call: on the request's path)
and settle (after the answer; the gateway can do it once the answer is sent).
Stores: `memory` (one process), `local` (the SQLite file workers share; on a temporary
directory), and `redis` when --redis is given (the Lua script; one client, as each replica
has), then two processes at once on the same counters (two workers on the local file; two
replicas on Redis). Sequential calls in each: the latency one request adds.
Limits are set high so every call is admitted and settled. For comparison, rows with one
key quota of one limit (1 counter), the common case. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from harbourgate.quotas import (
    Admission,
    MemoryStore,
    Price,
    QuotaGate,
    QuotaSet,
    RedisStore,
    RequestFacts,
    SqliteStore,
    parse_quota,
    rate_limit_headers,
)
from harbourgate.quotas.stores import CounterStore

LIMITS = {"requests_per_minute": 10**7, "tokens_per_minute": 10**12,
          "budget": {"tokens": 10**12, "period": "month"}}
QUOTAS = QuotaSet([parse_quota({"scope": scope, **LIMITS}) for scope in (
    {"participant": "acme"}, {"application": "acme-research"}, {"key": "key_1"},
    {"participant": "acme", "route": "qwen-local"})])
ONE = QuotaSet([parse_quota({"scope": {"key": "key_1"}, "requests_per_minute": 10**7})])
REQUEST = RequestFacts("acme", "acme-research", "key_1", "qwen-local", 420, 256)
PRICE = Price(0.2, 0.6)


class Usage:
    input_tokens = 420
    output_tokens = 97


def measure(store: CounterStore, n: int,
            quotas: QuotaSet = QUOTAS) -> tuple[list[float], list[float], float]:
    """(reserve + headers, settle) durations of `n` requests, and the CPU time of this
    process per request (steadier than wall time on a shared machine; excludes the time
    Redis itself spends)."""
    gate = QuotaGate(store)
    usage = Usage()
    for _ in range(min(500, n)):  # warm up (connections, prepared statements, script load)
        gate.settle(gate.reserve(quotas, REQUEST, PRICE), usage)  # type: ignore[arg-type]
    before, after = [], []
    clock = time.perf_counter
    cpu = time.process_time()
    for _ in range(n):
        start = clock()
        admission = gate.reserve(quotas, REQUEST, PRICE)
        rate_limit_headers("openai", admission, 0.0)
        middle = clock()
        gate.settle(admission, usage)  # type: ignore[arg-type]
        after.append(clock() - middle)
        before.append(middle - start)
        assert isinstance(admission, Admission)
    return before, after, (time.process_time() - cpu) / n


def row(name: str, samples: tuple[list[float], list[float], float]) -> str:
    before, after, cpu = samples
    total = [a + b for a, b in zip(before, after, strict=True)]
    cells = []
    for series in (before, after, total):
        q = statistics.quantiles(series, n=100)
        cells.append(f"{statistics.median(series) * 1e6:.1f} / {q[98] * 1e6:.0f}")
    return f"| {name} | {len(total)} | " + " | ".join(cells) + f" | {cpu * 1e6:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis", help="a Redis URL (a DB of its own: keys are namespaced)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          "µs, p50 / p99")
    print("| store | requests | reserve + headers (before the call) | settle (after) | "
          "both | CPU µs / request |")
    print("|---|---|---|---|---|---|")
    print(row("memory (one process)", measure(MemoryStore(), args.requests)), flush=True)
    print(row("memory, one key quota (1 counter)", measure(MemoryStore(), args.requests, ONE)),
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        local = SqliteStore(Path(tmp) / "quota-counters.db")
        print(row("local (SQLite, shared by workers)", measure(local, args.requests)),
              flush=True)
        print(row("local, one key quota (1 counter)", measure(local, args.requests, ONE)),
              flush=True)
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            both = list(pool.map(_local_replica, [local.path] * 2, [args.requests] * 2))
        for n, samples in enumerate(both):
            print(row(f"local, worker {n + 1} of 2 at once", samples), flush=True)
        local.close()
    if args.redis:
        prefix = f"hg-bench:{uuid.uuid4().hex}:"
        redis = RedisStore(args.redis, prefix=prefix)
        try:
            print(row("redis (one Lua script per request)", measure(redis, args.requests)),
                  flush=True)
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                both = list(pool.map(_redis_replica, [args.redis] * 2, [prefix] * 2,
                                     [args.requests] * 2))
            for n, samples in enumerate(both):
                print(row(f"redis, replica {n + 1} of 2 at once", samples), flush=True)
        finally:
            keys = redis._redis.keys(prefix + "*")
            if keys:
                redis._redis.delete(*keys)
            redis.close()


def _local_replica(path: str, n: int) -> tuple[list[float], list[float], float]:
    store = SqliteStore(path)
    try:
        return measure(store, n)
    finally:
        store.close()


def _redis_replica(url: str, prefix: str, n: int) -> tuple[list[float], list[float], float]:
    store = RedisStore(url, prefix=prefix)
    try:
        return measure(store, n)
    finally:
        store.close()


if __name__ == "__main__":
    main()
