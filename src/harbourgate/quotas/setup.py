"""The quota gate of a serving process, as the settings describe it."""

from __future__ import annotations

from harbourgate.config import Settings
from harbourgate.quotas.gate import QuotaGate
from harbourgate.quotas.stores import CounterStore, RedisStore, SqliteStore

LOCAL_FILE = "quota-counters.db"


def open_store(settings: Settings) -> CounterStore:
    """Redis when `redis_url` is set (limits across replicas); otherwise the local file
    every worker of this server shares."""
    if settings.redis_url:
        return RedisStore(settings.redis_url)
    path = settings.quota_store.path or str(settings.data_dir / LOCAL_FILE)
    return SqliteStore(path)


def open_gate(settings: Settings) -> QuotaGate:
    return QuotaGate(open_store(settings),
                     fail_open=settings.quota_store.on_redis_unreachable == "open")
