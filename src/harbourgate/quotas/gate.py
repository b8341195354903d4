"""The quota gate: reserve before the upstream call, settle with the real usage after.

`reserve` finds every quota covering a request (participant, application, key, route)
and, in ONE atomic store operation, checks and reserves all their counters: a request,
its tokens (input estimate plus the declared `max_tokens`, or a default) and their cost
at the route's price. If any does not fit, nothing is reserved and a `Refusal` names the
quota and when to retry. `settle` replaces the reservation with what the upstream really
used (or refunds it all when the upstream failed), in the windows it was reserved in.

When the shared store (Redis) cannot be reached, the gate fails open to per-process
counters (the default) or closed (`QuotaUnavailable`), and `health()` says which.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from harbourgate.quotas import metrics
from harbourgate.quotas.model import FREE, Price, Quota
from harbourgate.quotas.stores import Check, CounterStore, MemoryStore, StoreUnavailable
from harbourgate.quotas.windows import WINDOWS, seconds_until, window

log = logging.getLogger("harbourgate.quotas")

DEFAULT_OUTPUT_RESERVE = 1024  # tokens held for an answer whose maximum was not declared
NANO = 1_000_000_000
_CACHE_LIMIT = 65_536


class QuotaUnavailable(Exception):
    """The shared counters cannot be reached and the gate is configured to fail closed."""


class UsageLike(Protocol):
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the gate needs to know about a request before the upstream call."""

    participant: str
    application: str
    key: str
    route: str
    input_tokens: int = 0  # counted or estimated
    max_output_tokens: int | None = None  # declared by the caller (max_tokens, ...)

    @property
    def reserved_tokens(self) -> int:
        out = DEFAULT_OUTPUT_RESERVE if self.max_output_tokens is None else self.max_output_tokens
        return self.input_tokens + out


class Standing(NamedTuple):
    """One limit as a request left it: what the rate-limit headers report."""

    quota: str
    metric: str  # requests | tokens | budget_tokens | budget_cost
    limit: int
    used: int
    resets_at: int  # POSIX seconds

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class _Held(NamedTuple):
    key: str
    metric: str
    amount: int
    ends: int


class _Spec(NamedTuple):
    """One limit of one quota, precomputed: the counter key prefix and how much a request
    adds to it (`one` request, its `tokens`, or its `cost` in billionths)."""

    quota: Quota
    metric: str
    limit: int
    period: str
    adds: str
    prefix: str


def _specs(quota: Quota) -> tuple[_Spec, ...]:
    out: list[_Spec] = []
    if quota.requests_per_minute is not None:
        out.append(_Spec(quota, "requests", quota.requests_per_minute, "minute", "one",
                         f"{quota.id}:requests:"))
    if quota.tokens_per_minute is not None:
        out.append(_Spec(quota, "tokens", quota.tokens_per_minute, "minute", "tokens",
                         f"{quota.id}:tokens:"))
    budget = quota.budget
    if budget is not None:
        if budget.kind == "tokens":
            out.append(_Spec(quota, "budget_tokens", int(budget.amount), budget.period,
                             "tokens", f"{quota.id}:budget_tokens:"))
        else:
            out.append(_Spec(quota, "budget_cost", round(budget.amount * NANO), budget.period,
                             "cost", f"{quota.id}:budget_cost:"))
    return tuple(out)


class QuotaSet:
    """The quotas in force, with the limits covering a caller and route worked out once."""

    def __init__(self, quotas: Iterable[Quota] = ()) -> None:
        self.quotas = tuple(quotas)
        self._specs = {q.id: _specs(q) for q in self.quotas}
        self._cache: dict[tuple[str, str, str, str], tuple[_Spec, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.quotas)

    def covering(self, participant: str, application: str, key: str,
                 route: str) -> tuple[Quota, ...]:
        """The quotas whose scope covers this caller and route."""
        seen: dict[str, Quota] = {}
        for spec in self.plan(participant, application, key, route):
            seen.setdefault(spec.quota.id, spec.quota)
        return tuple(seen.values())

    def plan(self, participant: str, application: str, key: str,
             route: str) -> tuple[_Spec, ...]:
        at = (participant, application, key, route)
        found = self._cache.get(at)
        if found is None:
            found = tuple(spec for q in self.quotas if q.scope.covers(*at)
                          for spec in self._specs[q.id])
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[at] = found
        return found


EMPTY = QuotaSet()


class Admission:
    """A request let through: what it holds, and the numbers for its rate-limit headers."""

    __slots__ = ("_settled", "_standings", "_values", "held", "now", "plan", "price",
                 "request", "store")

    def __init__(self, request: RequestFacts, price: Price, plan: tuple[_Spec, ...],
                 held: tuple[_Held, ...], values: Sequence[int], store: CounterStore | None,
                 now: float) -> None:
        self.request = request
        self.price = price
        self.plan = plan
        self.held = held
        self._values = values
        self.store = store
        self.now = now
        self._settled = False
        self._standings: tuple[Standing, ...] | None = None

    @property
    def governed(self) -> bool:
        """Whether any quota covers the request (then its answer carries the headers)."""
        return bool(self.held)

    @property
    def standings(self) -> tuple[Standing, ...]:
        if self._standings is None:
            self._standings = tuple(
                Standing(s.quota.id, s.metric, s.limit, v, h.ends)
                for s, h, v in zip(self.plan, self.held, self._values, strict=True))
        return self._standings


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request a quota does not let through."""

    quota: Quota
    metric: str
    limit: int
    used: int
    retry_after: int  # seconds
    message: str
    up_front: bool  # the declared maximum alone exceeds the limit
    reroute: bool  # every quota that refused says on_exhausted: reroute
    standings: tuple[Standing, ...]

    @property
    def code(self) -> str:
        return "quota_exceeded"


class QuotaGate:
    """Reserve and settle against `store`; see the module docstring for failure modes."""

    def __init__(self, store: CounterStore, *, fail_open: bool = True,
                 clock: Callable[[], float] = time.time, retry_s: float = 1.0) -> None:
        self.store = store
        self.fail_open = fail_open
        self.clock = clock
        self.retry_s = retry_s
        self.fallback = MemoryStore(clock)
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._error = ""
        self._lock = threading.Lock()
        self._window_cache: tuple[int, dict[str, tuple[str, int]]] | None = None
        metrics.STORE_UP.set(1)

    # --- health -----------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """(ready, detail) for /readyz: degraded-open is ready, closed-and-down is not."""
        if self._down_since is None:
            return True, f"ok ({self.store.name})"
        mode = "failing open to per-process limits" if self.fail_open else "failing closed"
        # (`on_redis_unreachable` decides for the local file too: it fails rarely, e.g. a
        # full disk, and the same choice between availability and exact limits applies)
        return self.fail_open, f"{self.store.name} unreachable ({self._error}); {mode}"

    def check(self) -> tuple[bool, str]:
        """Ping the store, then `health()`: for /readyz, which must not wait for a request
        to find Redis gone (or back)."""
        now = self.clock()
        try:
            self.store.ping()
        except StoreUnavailable as exc:
            self._went_down(exc, now)
        else:
            self._came_back()
        return self.health()

    def _store_now(self, now: float) -> CounterStore:
        if self._down_since is not None and now < self._retry_at:
            if not self.fail_open:
                raise QuotaUnavailable(f"the quota store is unreachable ({self._error}); "
                                       "requests under a quota are refused until it is back")
            return self.fallback
        return self.store

    def _went_down(self, exc: StoreUnavailable, now: float) -> None:
        with self._lock:
            if self._down_since is None:
                log.error("quota store %s unreachable (%s); %s", self.store.name, exc,
                          "failing open" if self.fail_open else "failing closed")
                self._down_since = now
            self._error = str(exc)
            self._retry_at = now + self.retry_s
        metrics.STORE_UP.set(0)

    def _came_back(self) -> None:
        if self._down_since is not None:
            with self._lock:
                self._down_since = None
            log.warning("quota store %s reachable again", self.store.name)
            metrics.STORE_UP.set(1)

    # --- reserve / settle -------------------------------------------------------------------

    def reserve(self, quotas: QuotaSet, request: RequestFacts,
                price: Price = FREE) -> Admission | Refusal:
        """Check and reserve every quota covering `request` at once."""
        plan = quotas.plan(request.participant, request.application, request.key,
                           request.route) if quotas else ()
        now = self.clock()
        if not plan:
            return Admission(request, price, (), (), (), None, now)
        declared = request.max_output_tokens is not None
        tokens = request.reserved_tokens
        adds = {"one": 1, "tokens": tokens,
                "cost": price.nano_cost(request.input_tokens, tokens - request.input_tokens)}
        windows = self._windows(now)
        checks: list[Check] = []
        for spec in plan:
            amount = adds[spec.adds]
            if amount > spec.limit:
                if declared or spec.adds == "cost":
                    return self._up_front(spec.quota, spec.metric, spec.limit, amount,
                                          request, now)
                amount = spec.limit
            start, ends = windows[spec.period]
            checks.append(Check(spec.prefix + start, spec.limit, amount, ends))
        store = self._store_now(now)
        try:
            fits, values = store.reserve(checks)
        except StoreUnavailable as exc:
            self._went_down(exc, now)
            if not self.fail_open:
                raise QuotaUnavailable(f"the quota store is unreachable ({exc})") from exc
            store = self.fallback
            fits, values = store.reserve(checks)
        else:
            if self._down_since is not None and store is self.store:
                self._came_back()
        if fits:
            held = tuple(_Held(c.key, s.metric, c.amount, c.ends)
                         for s, c in zip(plan, checks, strict=True))
            return Admission(request, price, plan, held, values, store, now)
        return self._refusal(plan, checks, values, now)

    async def areserve(self, quotas: QuotaSet, request: RequestFacts,
                       price: Price = FREE) -> Admission | Refusal:
        """`reserve` for an event loop: inline on the local stores (a transaction of
        microseconds), in a thread on Redis, so a slow or vanished server never stalls
        the loop."""
        if not self.store.blocking or not quotas:
            return self.reserve(quotas, request, price)
        return await asyncio.to_thread(self.reserve, quotas, request, price)

    async def asettle(self, admission: Admission, usage: UsageLike | None) -> None:
        """`settle` for an event loop (see `areserve`)."""
        if admission.store is None or not admission.store.blocking:
            self.settle(admission, usage)
        else:
            await asyncio.to_thread(self.settle, admission, usage)

    def _windows(self, now: float) -> dict[str, tuple[str, int]]:
        """Every period's window (start as counter-key text, end) at `now`; the calendar
        windows only change on a minute boundary, so they are worked out once a minute."""
        minute = int(now // 60)
        cached = self._window_cache
        if cached is None or cached[0] != minute:
            out = {}
            for period in WINDOWS:
                start, ends = window(period, now)
                out[period] = (str(start), ends)
            cached = self._window_cache = (minute, out)
        return cached[1]

    def settle(self, admission: Admission, usage: UsageLike | None) -> None:
        """Replace the reservation with `usage` (None: the upstream failed, refund it all).

        Settling twice does nothing the second time.
        """
        if admission._settled or admission.store is None:
            return
        admission._settled = True
        if usage is None:
            changes = [(h.key, -h.amount, h.ends) for h in admission.held]
        else:
            real_tokens = usage.input_tokens + usage.output_tokens
            real = {"requests": 1, "tokens": real_tokens, "budget_tokens": real_tokens,
                    "budget_cost": admission.price.nano_cost(usage.input_tokens,
                                                             usage.output_tokens)}
            changes = [(h.key, real[h.metric] - h.amount, h.ends) for h in admission.held
                       if real[h.metric] != h.amount]
        if not changes:
            return
        try:
            admission.store.adjust(changes)
        except StoreUnavailable as exc:
            self._went_down(exc, self.clock())
            log.warning("a quota settlement was lost: %s", exc)

    def _up_front(self, quota: Quota, metric: str, limit: int, amount: int,
                  request: RequestFacts, now: float) -> Refusal:
        ends = window(_period(quota, metric), now)[1]
        what = _describe(metric, limit, quota)
        if metric == "budget_cost":
            message = (f"this request's declared maximum (up to {request.reserved_tokens} tokens, "
                       f"costing up to {amount / NANO:g}) alone exceeds quota {quota.id!r}: "
                       f"{what}; lower max_tokens")
        else:
            message = (f"this request's declared maximum of {amount} tokens (input "
                       f"{request.input_tokens} + max_tokens {request.max_output_tokens}) "
                       f"alone exceeds quota {quota.id!r}: {what}; lower max_tokens")
        metrics.REFUSALS.labels(quota.id).inc()
        standing = Standing(quota.id, metric, limit, 0, ends)
        return Refusal(quota, metric, limit, 0, seconds_until(ends, now), message, True,
                       quota.on_exhausted == "reroute", (standing,))

    def _refusal(self, plan: Sequence[_Spec], checks: Sequence[Check],
                 values: Sequence[int], now: float) -> Refusal:
        failed = [(s, c, v) for s, c, v in zip(plan, checks, values, strict=True)
                  if v + c.amount > c.limit]
        reroute = all(s.quota.on_exhausted == "reroute" for s, _, _ in failed)
        # report the one that keeps the caller out longest: retrying earlier cannot help
        spec, check, value = max(failed, key=lambda f: f[1].ends)
        retry = seconds_until(check.ends, now)
        message = (f"quota {spec.quota.id!r} is exhausted: "
                   f"{_describe(spec.metric, check.limit, spec.quota)}; retry after {retry} s")
        metrics.REFUSALS.labels(spec.quota.id).inc()
        standings = tuple(Standing(s.quota.id, s.metric, c.limit, v, c.ends)
                          for s, c, v in zip(plan, checks, values, strict=True))
        return Refusal(spec.quota, spec.metric, check.limit, value, retry, message, False,
                       reroute, standings)


def _period(quota: Quota, metric: str) -> str:
    if metric.startswith("budget") and quota.budget is not None:
        return quota.budget.period
    return "minute"


def _describe(metric: str, limit: int, quota: Quota) -> str:
    period = quota.budget.period if quota.budget is not None else ""
    return {
        "requests": f"{limit} requests per minute",
        "tokens": f"{limit} tokens per minute",
        "budget_tokens": f"a budget of {limit} tokens per {period}",
        "budget_cost": f"a budget of {limit / NANO:g} per {period}",
    }[metric]
