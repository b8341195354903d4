"""Reads of the decisions index: pages for the console, counts over time, usage.

The index (`schema.decisions`) holds one row per request record; pages are found there and
their records read from the audit leaves, so what an auditor sees is the log's own text.
Time buckets are prefixes of the ISO-8601 timestamps (identical on SQLite and PostgreSQL):
`YYYY-MM-DDTHH:MM` a minute, `YYYY-MM-DDTHH` an hour, `YYYY-MM-DD` a day, `YYYY-MM` a month.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from harbourgate.audit import record
from harbourgate.store.schema import audit_entries, decisions

D = decisions
PREFIX = {"minute": 16, "hour": 13, "day": 10, "month": 7}
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
          "reasoning_tokens")
USAGE_BY = {"participant": D.c.participant, "application": D.c.application, "key": D.c.key,
            "route": sa.func.coalesce(D.c.model_served, D.c.model_requested)}
STATS_BY = {"decision": D.c.decision, "model": D.c.model_served}
QUOTA_EXCEEDED = "quota_exceeded"


class BadCursor(ValueError):
    """A cursor this server did not hand out."""


@dataclass(frozen=True, slots=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    participant: str | None = None
    application: str | None = None
    key: str | None = None
    model: str | None = None
    decision: str | None = None
    rule: str | None = None

    def where(self) -> list[Any]:
        out: list[Any] = []
        if self.since is not None:
            out.append(D.c.ts >= record.timestamp(self.since))
        if self.until is not None:
            out.append(D.c.ts < record.timestamp(self.until))
        for name in ("participant", "application", "key", "decision", "rule"):
            value = getattr(self, name)
            if value is not None:
                out.append(D.c[name] == value)
        if self.model is not None:
            out.append(sa.or_(D.c.model_served == self.model, D.c.model_requested == self.model))
        return out


def encode_cursor(ts: str, audit_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, audit_id])).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, str]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise BadCursor("not a cursor this server handed out; pass next_cursor unchanged")\
            from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise BadCursor("not a cursor this server handed out; pass next_cursor unchanged")
    return value[0], value[1]


def page(engine: sa.Engine, filters: Filters, *, limit: int,
         cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Request records matching `filters`, newest first, at most `limit`, after `cursor`;
    and the cursor of the next page (None at the end). Each record gains `index`."""
    query = (sa.select(D.c.audit_id, D.c.ts).where(*filters.where())
             .order_by(D.c.ts.desc(), D.c.audit_id.desc()).limit(limit + 1))
    if cursor is not None:
        ts, audit_id = decode_cursor(cursor)
        query = query.where(sa.or_(D.c.ts < ts, sa.and_(D.c.ts == ts, D.c.audit_id < audit_id)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        found = rows[:limit]
        leaves: dict[str, tuple[int | None, bytes]] = {}
        if found:
            E = audit_entries
            for entry in conn.execute(sa.select(E.c.id, E.c.idx, E.c.leaf)
                                      .where(E.c.id.in_([r.audit_id for r in found]))):
                leaves[entry.id] = (entry.idx, bytes(entry.leaf))
    out: list[dict[str, Any]] = []
    for row in found:
        idx, leaf = leaves.get(row.audit_id, (None, b""))
        try:
            body = record.decode(leaf)
        except record.RecordError:
            body = {"id": row.audit_id, "ts": row.ts, "kind": "request"}
        out.append({**body, "index": idx})
    following = encode_cursor(found[-1].ts, found[-1].audit_id) if len(rows) > limit else None
    return out, following


def stats(engine: sa.Engine, filters: Filters, *, bucket: str,
          by: str) -> list[dict[str, Any]]:
    """Counts of decisions per time bucket, split by decision or by served model."""
    start = sa.func.substr(D.c.ts, 1, PREFIX[bucket]).label("bucket")
    column = STATS_BY[by].label("value")
    query = (sa.select(start, column, sa.func.count().label("n")).where(*filters.where())
             .group_by(start, column).order_by(start))
    series: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            series.setdefault(row.bucket, {})[row.value or "(none)"] = int(row.n)
    return [{"t": _instant(b), "counts": counts} for b, counts in series.items()]


def usage(engine: sa.Engine, filters: Filters, *, by: str,
          period: str) -> list[dict[str, Any]]:
    """Requests, tokens, cost and quota refusals per period and per `by` value."""
    start = sa.func.substr(D.c.ts, 1, PREFIX["day" if period == "week" else period])
    group = USAGE_BY[by]
    sums = [sa.func.sum(D.c[t]).label(t) for t in TOKENS]
    query = (sa.select(start.label("bucket"), group.label("value"),
                       sa.func.count().label("requests"), *sums,
                       sa.func.sum(D.c.cost).label("cost"))
             .where(*filters.where()).group_by(start, group))
    refusals = (sa.select(start.label("bucket"), group.label("value"), D.c.quota,
                          sa.func.count().label("n"))
                .where(*filters.where(), D.c.code == QUOTA_EXCEEDED)
                .group_by(start, group, D.c.quota))
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            key = (_period_start(row.bucket, period), row.value or "(none)")
            entry = rows.setdefault(key, {"period": key[0], by: key[1], "requests": 0,
                                          **dict.fromkeys(TOKENS, 0), "cost": 0.0,
                                          "refusals": defaultdict(int)})
            entry["requests"] += int(row.requests)
            for t in TOKENS:
                entry[t] += int(getattr(row, t) or 0)
            entry["cost"] += float(row.cost or 0.0)
        for row in conn.execute(refusals):
            key = (_period_start(row.bucket, period), row.value or "(none)")
            if key in rows:
                rows[key]["refusals"][row.quota or "(unnamed)"] += int(row.n)
    out = []
    for key in sorted(rows):
        entry = rows[key]
        entry["cost"] = round(entry["cost"], 9)
        entry["refusals"] = dict(sorted(entry["refusals"].items()))
        out.append(entry)
    return out


def _instant(prefix: str) -> str:
    """The start of a bucket as an ISO-8601 instant."""
    template = "0000-01-01T00:00:00Z"
    return prefix + template[len(prefix):]


def _period_start(prefix: str, period: str) -> str:
    if period == "week":
        day = datetime.fromisoformat(prefix).replace(tzinfo=UTC)
        return (day - timedelta(days=day.weekday())).strftime("%Y-%m-%d")
    return prefix
