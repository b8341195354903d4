"""Quotas as PRODUCT.md §4.2 shapes them, and their validation.

A quota is a scope (any of participant, application, key, route; several keys narrow it)
plus limits: requests and tokens per minute, and a budget of tokens or cost per day, week
or month. `on_exhausted` says what happens over a limit: refuse (429 `quota_exceeded`) or
reroute to the next permitted model of the class. Validation errors are `QuotaError`s
whose `field` is the dotted path of the offending key (`budget.period`), so the admin API
answers 400 with `param` and the config loader names the file and key.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

SCOPE_KEYS = ("participant", "application", "key", "route")
PERIODS = ("day", "week", "month")
ON_EXHAUSTED = ("refuse", "reroute")
FIXED_KEYS = ("id", "scope", "requests_per_minute", "tokens_per_minute", "budget",
              "on_exhausted")
# Beyond these a limit is a typo, not a policy: 10^12 tokens is more than any cluster
# serves in a month, and one request per minute per microsecond is no limit at all.
MAX_REQUESTS_PER_MINUTE = 60_000_000
MAX_TOKENS = 10**12
MAX_COST = 10**9
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class QuotaError(ValueError):
    """An invalid quota; `field` is the dotted path of the key at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Price:
    """A route's price per million tokens; cost budgets and usage are counted with it."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6

    def nano_cost(self, input_tokens: int, output_tokens: int) -> int:
        """The cost in billionths of the currency unit: an integer, so counters add exactly
        in Redis and SQLite alike."""
        return round(input_tokens * self.input_per_mtok * 1000
                     + output_tokens * self.output_per_mtok * 1000)

    def to_dict(self) -> dict[str, float]:
        return {"input_per_mtok": self.input_per_mtok, "output_per_mtok": self.output_per_mtok}


FREE = Price()


def parse_price(value: Any, where: str = "price") -> Price:
    """A `{input_per_mtok, output_per_mtok}` mapping; both default to 0."""
    if not isinstance(value, Mapping):
        raise QuotaError(where, "must be a mapping {input_per_mtok: N, output_per_mtok: N}")
    unknown = sorted(set(value) - {"input_per_mtok", "output_per_mtok"})
    if unknown:
        raise QuotaError(f"{where}.{unknown[0]}", "unknown key; a price takes input_per_mtok "
                         "and output_per_mtok")
    out = {}
    for name in ("input_per_mtok", "output_per_mtok"):
        item = value.get(name, 0.0)
        if item is None:
            item = 0.0
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise QuotaError(f"{where}.{name}", f"must be a number (currency units per "
                             f"million tokens), not {item!r}")
        if not 0 <= item <= 1_000_000:
            raise QuotaError(f"{where}.{name}", f"must be between 0 and 1000000, not {item}")
        out[name] = float(item)
    return Price(**out)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which requests a quota covers: every key given must match (None: any)."""

    participant: str | None = None
    application: str | None = None
    key: str | None = None
    route: str | None = None

    def covers(self, participant: str, application: str, key: str, route: str) -> bool:
        return ((self.participant is None or self.participant == participant)
                and (self.application is None or self.application == application)
                and (self.key is None or self.key == key)
                and (self.route is None or self.route == route))

    def to_dict(self) -> dict[str, str]:
        return {k: v for k in SCOPE_KEYS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True)
class Budget:
    """`amount` tokens (kind "tokens") or currency units (kind "cost") per `period`."""

    kind: str
    amount: float
    period: str

    def to_dict(self) -> dict[str, Any]:
        amount: float | int = int(self.amount) if self.kind == "tokens" else self.amount
        return {self.kind: amount, "period": self.period}


@dataclass(frozen=True, slots=True)
class Quota:
    id: str
    scope: Scope
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    budget: Budget | None = None
    on_exhausted: str = "refuse"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "id": self.id, "scope": self.scope.to_dict(),
                               "requests_per_minute": self.requests_per_minute,
                               "tokens_per_minute": self.tokens_per_minute,
                               "budget": self.budget.to_dict() if self.budget else None,
                               "on_exhausted": self.on_exhausted}
        return out


def parse_quota(doc: Any, *, routes: Any = None, default_id: str | None = None) -> Quota:
    """Validate a quota document (the body of `POST /admin/v1/quotas`, an entry of the
    config's `quotas:`). `routes`, when given, is the set of route names a `scope.route`
    must be one of. Without an `id` the quota gets `default_id`, or one derived from its
    content (so the same config entry seeds the same quota every time)."""
    if not isinstance(doc, Mapping):
        raise QuotaError("quota", "must be a mapping with scope and at least one limit")
    scope = _scope(doc.get("scope"), routes)
    rpm = _limit(doc, "requests_per_minute", MAX_REQUESTS_PER_MINUTE)
    tpm = _limit(doc, "tokens_per_minute", MAX_TOKENS)
    budget = _budget(doc.get("budget"))
    if rpm is None and tpm is None and budget is None:
        raise QuotaError("requests_per_minute", "a quota needs at least one limit: "
                         "requests_per_minute, tokens_per_minute or budget")
    on_exhausted = doc.get("on_exhausted", "refuse")
    if on_exhausted not in ON_EXHAUSTED:
        raise QuotaError("on_exhausted", f"must be one of {', '.join(ON_EXHAUSTED)}, "
                         f"not {on_exhausted!r}")
    extra = {k: v for k, v in doc.items() if k not in FIXED_KEYS}
    try:
        orjson.dumps(extra)
    except TypeError:
        raise QuotaError(next(iter(extra)), "extra keys must hold JSON values") from None
    quota_id = doc.get("id")
    if quota_id is None:
        quota_id = default_id or derived_id(scope, rpm, tpm, budget, on_exhausted)
    if not isinstance(quota_id, str) or not _ID.fullmatch(quota_id):
        raise QuotaError("id", "must be 1-64 letters, digits, '.', '_', ':' or '-', starting "
                         f"with a letter or digit, not {quota_id!r}")
    return Quota(quota_id, scope, rpm, tpm, budget, on_exhausted, extra)


def derived_id(scope: Scope, rpm: int | None, tpm: int | None, budget: Budget | None,
               on_exhausted: str) -> str:
    body = orjson.dumps({"scope": scope.to_dict(), "rpm": rpm, "tpm": tpm,
                         "budget": budget.to_dict() if budget else None, "on": on_exhausted},
                        option=orjson.OPT_SORT_KEYS)
    return "q-" + hashlib.sha256(body).hexdigest()[:16]


def _scope(value: Any, routes: Any) -> Scope:
    if not isinstance(value, Mapping) or not value:
        raise QuotaError("scope", "must be a mapping with any of participant, application, "
                         "key, route (e.g. {participant: acme})")
    unknown = sorted(set(value) - set(SCOPE_KEYS))
    if unknown:
        raise QuotaError(f"scope.{unknown[0]}", f"unknown scope key; a scope takes "
                         f"{', '.join(SCOPE_KEYS)}")
    out: dict[str, str] = {}
    for key in SCOPE_KEYS:
        if key not in value:
            continue
        item = value[key]
        if not isinstance(item, str) or not item.strip():
            raise QuotaError(f"scope.{key}", f"must be a {key} id (a non-empty string), "
                             f"not {item!r}")
        if len(item) > 64:
            raise QuotaError(f"scope.{key}", "an id is at most 64 characters")
        out[key] = item
    if routes is not None and "route" in out and out["route"] not in routes:
        raise QuotaError("scope.route", f"{out['route']!r} is not a configured route; routes: "
                         f"{', '.join(sorted(routes))}")
    return Scope(**out)


def _number(value: Any, where: str, *, integer: bool, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or (isinstance(value, float) and not math.isfinite(value)):
        raise QuotaError(where, f"must be a number, not {value!r}")
    if integer and isinstance(value, float) and not value.is_integer():
        raise QuotaError(where, f"must be a whole number, not {value}")
    if value <= 0:
        raise QuotaError(where, f"must be positive, not {value} (remove the key for no limit)")
    if value > maximum:
        raise QuotaError(where, f"{value} is beyond any real limit (at most {maximum:g})")
    return value


def _limit(doc: Mapping[str, Any], key: str, maximum: int) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    return int(_number(value, key, integer=True, maximum=maximum))


def _budget(value: Any) -> Budget | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise QuotaError("budget", "must be a mapping: {tokens: N, period: month} or "
                         "{cost: N, period: day}")
    unknown = sorted(set(value) - {"tokens", "cost", "period"})
    if unknown:
        raise QuotaError(f"budget.{unknown[0]}", "unknown key; a budget takes tokens or cost, "
                         "and period")
    kinds = [k for k in ("tokens", "cost") if value.get(k) is not None]
    if len(kinds) != 1:
        raise QuotaError("budget", "give exactly one of tokens or cost")
    kind = kinds[0]
    amount = _number(value[kind], f"budget.{kind}", integer=kind == "tokens",
                     maximum=MAX_TOKENS if kind == "tokens" else MAX_COST)
    period = value.get("period")
    if period not in PERIODS:
        raise QuotaError("budget.period", f"must be one of {', '.join(PERIODS)}, "
                         f"not {period!r}")
    return Budget(kind, float(amount), period)
