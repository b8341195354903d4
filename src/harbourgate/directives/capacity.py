"""Whether the routes a directive shifts traffic onto can take it (PRODUCT.md §2, GPU
cluster operator: "see whether the cluster can absorb the traffic that a directive would
shift onto it").

The simulation replays each recorded request under the policy in force and under the
proposal; `Load.observe` is told, for each, which route serves it now and which would
serve it then, when it was made, and the tokens it used (the record's `usage`, where the
gateway recorded one). Per route and per minute of recorded time it counts what the route
carries now and would carry then; the report gives, for every route that would receive
moved traffic, the average and the busiest minute in requests (and tokens) per second,
before and after, against the route's declared `capacity`. The busiest minute is what a
cluster must absorb: an average over a week hides the peak that saturates it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.table import Table

from harbourgate.config import RouteConfig

MINUTE_S = 60


@dataclass(frozen=True)
class Declared:
    """What the simulation needs to know of a route: its declared capacity and servers."""

    requests_per_second: float | None
    tokens_per_second: float | None
    servers: int  # 0: not a pool

    @classmethod
    def of(cls, route: RouteConfig) -> Declared:
        return cls(route.capacity.requests_per_second, route.capacity.tokens_per_second,
                   len(route.endpoints))


@dataclass
class RouteLoad:
    """One route's traffic per minute of recorded time, now and under the proposal."""

    requests_now: Counter[int] = field(default_factory=Counter)
    requests_then: Counter[int] = field(default_factory=Counter)
    tokens_now: Counter[int] = field(default_factory=Counter)
    tokens_then: Counter[int] = field(default_factory=Counter)
    moved_in: int = 0
    moved_in_tokens: int = 0
    with_usage: int = 0  # of the requests it would serve, those with recorded usage

    def merge(self, other: RouteLoad) -> None:
        self.requests_now.update(other.requests_now)
        self.requests_then.update(other.requests_then)
        self.tokens_now.update(other.tokens_now)
        self.tokens_then.update(other.tokens_then)
        self.moved_in += other.moved_in
        self.moved_in_tokens += other.moved_in_tokens
        self.with_usage += other.with_usage


@dataclass
class Load:
    """Traffic by route, before and after a proposal; fed one replayed request at a time."""

    declared: dict[str, Declared] = field(default_factory=dict)
    routes: dict[str, RouteLoad] = field(default_factory=dict)
    first: int | None = None  # minute indexes of the recorded window
    last: int | None = None

    @classmethod
    def for_routes(cls, routes: Iterable[RouteConfig]) -> Load:
        return cls(declared={r.name: Declared.of(r) for r in routes})

    def observe(self, now: str | None, then: str | None, at: datetime,
                usage: Any = None) -> None:
        """One replayed request: served by `now` today, by `then` under the proposal."""
        minute = int(at.timestamp()) // MINUTE_S
        self.first = minute if self.first is None else min(self.first, minute)
        self.last = minute if self.last is None else max(self.last, minute)
        tokens = tokens_of(usage)
        if now is not None:
            load = self._route(now)
            load.requests_now[minute] += 1
            if tokens is not None:
                load.tokens_now[minute] += tokens
        if then is not None:
            load = self._route(then)
            load.requests_then[minute] += 1
            if tokens is not None:
                load.tokens_then[minute] += tokens
                load.with_usage += 1
            if then != now:
                load.moved_in += 1
                load.moved_in_tokens += tokens or 0

    def merge(self, other: Load) -> None:
        """Add another part's observations (a replay split across workers)."""
        self.declared.update(other.declared)
        for name, load in other.routes.items():
            self._route(name).merge(load)
        for minute in (other.first, other.last):
            if minute is not None:
                self.first = minute if self.first is None else min(self.first, minute)
                self.last = minute if self.last is None else max(self.last, minute)

    def _route(self, name: str) -> RouteLoad:
        found = self.routes.get(name)
        if found is None:
            found = self.routes[name] = RouteLoad()
        return found

    def to_dict(self) -> list[dict[str, Any]]:
        """Every route that would receive moved traffic, most moved first (JSON-able)."""
        if self.first is None or self.last is None:
            return []
        window_s = (self.last - self.first + 1) * MINUTE_S
        out = []
        for name, load in sorted(self.routes.items(), key=lambda i: (-i[1].moved_in, i[0])):
            if not load.moved_in:
                continue
            declared = self.declared.get(name, Declared(None, None, 0))
            row: dict[str, Any] = {
                "route": name,
                "pool_servers": declared.servers,
                "moved_in_requests": load.moved_in,
                "window_s": window_s,
                "requests_per_second": _rates(load.requests_now, load.requests_then,
                                              window_s, declared.requests_per_second),
                "tokens_per_second": None,
                "usage_recorded": load.with_usage,
            }
            if load.with_usage:
                row["tokens_per_second"] = _rates(load.tokens_now, load.tokens_then, window_s,
                                                  declared.tokens_per_second)
                row["moved_in_tokens"] = load.moved_in_tokens
            checks = [r["exceeds"] for r in (row["requests_per_second"],
                                            row["tokens_per_second"]) if r is not None]
            known = [c for c in checks if c is not None]
            row["verdict"] = ("no capacity declared" if not known
                              else "exceeds capacity" if any(known) else "within capacity")
            out.append(row)
        return out


def _rates(now: Counter[int], then: Counter[int], window_s: int,
           capacity: float | None) -> dict[str, Any]:
    peak_then = max(then.values(), default=0) / MINUTE_S
    return {
        "now_average": round(sum(now.values()) / window_s, 4),
        "now_peak_minute": round(max(now.values(), default=0) / MINUTE_S, 4),
        "then_average": round(sum(then.values()) / window_s, 4),
        "then_peak_minute": round(peak_then, 4),
        "capacity": capacity,
        "exceeds": None if capacity is None else peak_then > capacity,
    }


def tokens_of(usage: Any) -> int | None:
    """Input + output tokens of a recorded `usage` (None when none was recorded)."""
    if not isinstance(usage, Mapping):
        return None
    total, found = 0, False
    for key in ("input_tokens", "output_tokens"):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            total += value
            found = True
    return total if found else None


def render(rows: list[dict[str, Any]]) -> Table | None:
    """The capacity report as a table (None when no traffic would move)."""
    if not rows:
        return None
    table = Table(title="Load on the routes that would receive traffic (per second; peak = "
                  "busiest recorded minute)", title_justify="left")
    for column in ("route", "moved in", "req/s now → then (peak)", "capacity req/s",
                   "tok/s then (peak)", "capacity tok/s", "verdict"):
        table.add_column(column, justify="left" if column in ("route", "verdict") else "right")
    for row in rows:
        req, tok = row["requests_per_second"], row["tokens_per_second"]
        name = row["route"] + (f" (pool of {row['pool_servers']})" if row["pool_servers"]
                               else "")
        style = {"exceeds capacity": "bold red", "within capacity": "green"}.get(row["verdict"])
        table.add_row(
            name, str(row["moved_in_requests"]),
            f"{req['now_peak_minute']:g} → {req['then_peak_minute']:g}",
            _num(req["capacity"]),
            f"{tok['then_peak_minute']:g}" if tok else "no usage recorded",
            _num(tok["capacity"]) if tok else _num(None),
            row["verdict"], style=style)
    return table


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
