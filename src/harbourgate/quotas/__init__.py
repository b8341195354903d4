"""Quotas: rate limits and budgets per participant, application, key and route (no HTTP).

The gateway reserves before each upstream call and settles after::

    gate = QuotaGate(open_store(settings))
    outcome = gate.reserve(snapshot.quotas, RequestFacts(...), price)
    if isinstance(outcome, Refusal): ...  # 429 quota_exceeded, or reroute
    ...
    gate.settle(outcome, usage)           # None when the upstream failed: refund
    headers = rate_limit_headers(shape, outcome, gate.clock())
"""

from harbourgate.quotas.gate import (
    Admission,
    QuotaGate,
    QuotaSet,
    QuotaUnavailable,
    Refusal,
    RequestFacts,
    Standing,
)
from harbourgate.quotas.headers import rate_limit_headers
from harbourgate.quotas.model import (
    FREE,
    Budget,
    Price,
    Quota,
    QuotaError,
    Scope,
    parse_price,
    parse_quota,
)
from harbourgate.quotas.stores import MemoryStore, RedisStore, SqliteStore, StoreUnavailable

__all__ = [
    "FREE", "Admission", "Budget", "MemoryStore", "Price", "Quota", "QuotaError", "QuotaGate",
    "QuotaSet", "QuotaUnavailable", "RedisStore", "Refusal", "RequestFacts", "Scope",
    "SqliteStore", "Standing", "StoreUnavailable", "parse_price", "parse_quota",
    "rate_limit_headers",
]
