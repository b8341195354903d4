"""The counter stores against the real thing: Redis (one Lua script per request), the
local SQLite file, and what the gate does when Redis cannot be reached."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from harbourgate.quotas import (
    Admission,
    MemoryStore,
    QuotaGate,
    QuotaSet,
    QuotaUnavailable,
    RedisStore,
    Refusal,
    RequestFacts,
    parse_quota,
)
from harbourgate.quotas.stores import Check, StoreUnavailable
from tests.quotas.test_gate import JUNE_12, Clock, Usage

REQUEST = RequestFacts("acme", "acme-research", "key_1", "fable-5", 10, 10)


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_url, prefix=f"hg-test:{uuid.uuid4().hex}:")
    yield store
    keys = store._redis.keys(store.prefix + "*")
    if keys:
        store._redis.delete(*keys)
    store.close()


def _dead_url() -> str:
    """A Redis URL where nothing listens (a port just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_redis_reserves_all_or_nothing(redis_store: RedisStore) -> None:
    ends = int(JUNE_12) + 60
    ok, values = redis_store.reserve([Check("a", 2, 1, ends), Check("b", 10, 6, ends)])
    assert (ok, values) == (True, [1, 6])
    ok, values = redis_store.reserve([Check("a", 2, 1, ends), Check("b", 10, 6, ends)])
    assert (ok, values) == (False, [1, 6])  # b would reach 12: nothing is added
    assert redis_store.read(["a", "b", "never"]) == [1, 6, 0]
    redis_store.adjust([("b", -4, ends)])
    assert redis_store.reserve([Check("a", 2, 1, ends), Check("b", 10, 6, ends)]) == \
        (True, [2, 8])
    ttl = redis_store._redis.ttl(redis_store.prefix + "a")
    assert ttl == -2 or ttl > 0  # expired already (JUNE_12 is past) or expiring


def test_the_gate_on_redis(redis_store: RedisStore) -> None:
    clock = Clock(JUNE_12 + 5)
    gate = QuotaGate(redis_store, clock=clock)
    quotas = QuotaSet([parse_quota({"id": "r", "scope": {"participant": "acme"},
                                    "requests_per_minute": 2, "tokens_per_minute": 100})])
    first = gate.reserve(quotas, REQUEST)
    assert isinstance(first, Admission) and first.store is redis_store
    assert isinstance(gate.reserve(quotas, REQUEST), Admission)
    third = gate.reserve(quotas, REQUEST)
    assert isinstance(third, Refusal) and third.metric == "requests"
    gate.settle(first, None)
    assert isinstance(gate.reserve(quotas, REQUEST), Admission)
    gate.settle(first, Usage(1, 1))  # already settled: nothing moves
    assert gate.health() == (True, "ok (redis)")


def _gauge() -> float | None:
    return REGISTRY.get_sample_value("harbourgate_quota_store_up")


def test_fail_open_counts_per_process_and_comes_back() -> None:
    clock = Clock(JUNE_12 + 5)
    gate = QuotaGate(RedisStore(_dead_url(), timeout_s=0.2), clock=clock, fail_open=True)
    quotas = QuotaSet([parse_quota({"id": "r", "scope": {"key": "key_1"},
                                    "requests_per_minute": 1})])
    first = gate.reserve(quotas, REQUEST)
    assert isinstance(first, Admission) and isinstance(first.store, MemoryStore)
    ready, detail = gate.health()
    assert ready and "redis unreachable" in detail and "failing open" in detail
    assert _gauge() == 0
    # the per-process counters still hold the limit
    assert isinstance(gate.reserve(quotas, REQUEST), Refusal)
    gate.settle(first, Usage(5, 5))  # settles against the store it reserved in


def test_fail_closed_refuses_and_is_not_ready() -> None:
    gate = QuotaGate(RedisStore(_dead_url(), timeout_s=0.2), clock=Clock(), fail_open=False)
    quotas = QuotaSet([parse_quota({"scope": {"key": "key_1"}, "requests_per_minute": 5})])
    with pytest.raises(QuotaUnavailable, match="unreachable"):
        gate.reserve(quotas, REQUEST)
    ready, detail = gate.health()
    assert not ready and "failing closed" in detail
    with pytest.raises(QuotaUnavailable):  # within the retry interval: not even tried
        gate.reserve(quotas, REQUEST)
    # requests no quota covers do not need the store
    other = RequestFacts("globex", "g", "key_9", "fable-5")
    assert isinstance(gate.reserve(quotas, other), Admission)


def test_redis_back_after_an_outage(redis_url: str) -> None:
    clock = Clock(JUNE_12 + 5)
    store = RedisStore(redis_url, prefix=f"hg-test:{uuid.uuid4().hex}:")
    gate = QuotaGate(store, clock=clock, fail_open=True, retry_s=1.0)
    quotas = QuotaSet([parse_quota({"scope": {"key": "key_1"}, "requests_per_minute": 5})])
    gate._went_down(StoreUnavailable("Redis: test outage"), clock.now)
    assert isinstance(gate.reserve(quotas, REQUEST).store, MemoryStore)  # type: ignore[union-attr]
    clock.now += 1.5
    back = gate.reserve(quotas, REQUEST)
    assert isinstance(back, Admission) and back.store is store
    assert gate.health() == (True, "ok (redis)") and _gauge() == 1
    store._redis.delete(*store._redis.keys(store.prefix + "*"))
    store.close()


def test_the_event_loop_calls(redis_store: RedisStore, tmp_path: Any) -> None:
    import asyncio

    from harbourgate.quotas import SqliteStore

    quotas = QuotaSet([parse_quota({"scope": {"key": "key_1"}, "requests_per_minute": 1})])

    async def run(gate: QuotaGate) -> tuple[Any, Any]:
        first = await gate.areserve(quotas, REQUEST)
        second = await gate.areserve(quotas, REQUEST)
        assert isinstance(first, Admission)
        await gate.asettle(first, None)
        third = await gate.areserve(quotas, REQUEST)
        return second, third

    local = SqliteStore(tmp_path / "c.db")
    for store in (redis_store, local):
        second, third = asyncio.run(run(QuotaGate(store, clock=Clock())))
        assert isinstance(second, Refusal) and isinstance(third, Admission)
    local.close()


def test_readiness_pings_the_store(tmp_path: Any, redis_url: str) -> None:
    """/readyz: a deployment failing closed is not ready while Redis is gone; failing open
    it is ready and says it counts per process; the local store is simply ok."""
    import asyncio

    from harbourgate import app, config

    def ready(extra: str) -> tuple[bool, dict[str, Any]]:
        path = tmp_path / "harbourgate.yaml"
        path.write_text(f"data_dir: {tmp_path}\nsandbox: {{}}\n{extra}", encoding="utf-8")
        settings = config.load(path, environ={})
        app.prepare(settings)
        gateway = app.create_app(settings)
        try:
            return asyncio.run(gateway._ready())
        finally:
            gateway.quota_gate.store.close()
            gateway.store.close()

    assert ready("") == (True, {"storage": "ok", "audit": "ok", "quotas": "ok (local)",
                                "pools": {}})
    assert ready(f"redis_url: {redis_url}\n")[1]["quotas"] == "ok (redis)"
    dead = _dead_url()
    closed, detail = ready(f"redis_url: {dead}\nquota_store: {{on_redis_unreachable: closed}}\n")
    assert not closed and "failing closed" in detail["quotas"]
    opened, detail = ready(f"redis_url: {dead}\n")
    assert opened and "failing open to per-process limits" in detail["quotas"]


def test_a_local_file_that_fails_is_unavailable_not_a_crash(tmp_path: Any) -> None:
    from harbourgate.quotas import SqliteStore

    store = SqliteStore(tmp_path / "c.db")
    gate = QuotaGate(store, clock=Clock())
    quotas = QuotaSet([parse_quota({"scope": {"key": "key_1"}, "requests_per_minute": 5})])
    store._conn().execute("DROP TABLE quota_counters")  # what a broken file looks like
    outcome = gate.reserve(quotas, REQUEST)
    assert isinstance(outcome, Admission) and isinstance(outcome.store, MemoryStore)
    assert "the local quota file" in gate.health()[1]
    store.close()
