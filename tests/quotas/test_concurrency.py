"""1,000 concurrent reservations from two processes against a limit of 100 per minute:
exactly 100 admitted, on Redis (two replicas) and on the local store (two workers)."""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harbourgate.quotas import (
    Admission,
    QuotaGate,
    QuotaSet,
    RedisStore,
    RequestFacts,
    SqliteStore,
    parse_quota,
)

JUNE_12_NOON = 1_781_265_600.0 + 1  # one fixed instant: all 1,000 fall in one minute
PER_PROCESS = 500
THREADS = 16


def _hammer(kind: str, where: str, prefix: str, results: multiprocessing.Queue) -> None:
    store = RedisStore(where, prefix=prefix, timeout_s=30) if kind == "redis" \
        else SqliteStore(where)
    gate = QuotaGate(store, clock=lambda: JUNE_12_NOON, fail_open=False)
    quotas = QuotaSet([
        parse_quota({"id": "p", "scope": {"participant": "acme"}, "requests_per_minute": 100}),
        parse_quota({"id": "a", "scope": {"application": "acme-research"},
                     "tokens_per_minute": 10**9}),
        parse_quota({"id": "k", "scope": {"key": "key_1"},
                     "budget": {"tokens": 10**9, "period": "day"}}),
        parse_quota({"id": "r", "scope": {"route": "qwen-local"}, "requests_per_minute": 10**6}),
    ])
    request = RequestFacts("acme", "acme-research", "key_1", "qwen-local", 10, 10)

    def one(_: int) -> bool:
        return isinstance(gate.reserve(quotas, request), Admission)

    with ThreadPoolExecutor(THREADS) as pool:
        admitted = sum(pool.map(one, range(PER_PROCESS)))
    store.close()
    results.put(admitted)


def _run(kind: str, where: str, prefix: str = "") -> int:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(kind, where, prefix, results)) for _ in range(2)]
    for p in procs:
        p.start()
    counts = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    return sum(counts)


def test_exactly_the_limit_on_redis(redis_url: str) -> None:
    prefix = f"hg-test:{uuid.uuid4().hex}:"
    try:
        assert _run("redis", redis_url, prefix) == 100
    finally:
        store = RedisStore(redis_url, prefix=prefix)
        keys = store._redis.keys(prefix + "*")
        assert store.read([k.decode()[len(prefix):] for k in keys if b":p:" in k]) == [100]
        if keys:
            store._redis.delete(*keys)
        store.close()


def test_exactly_the_limit_on_the_local_store(tmp_path: Path) -> None:
    path = str(tmp_path / "counters.db")
    SqliteStore(path).close()  # create the file before the processes race to
    assert _run("local", path) == 100

