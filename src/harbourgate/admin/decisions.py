"""`/admin/v1/decisions`: recorded request decisions, newest first, from the decisions
index (filters, cursor paging), and `/admin/v1/decisions/stats` (counts over time)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from harbourgate.admin.auth import Reader, Services
from harbourgate.admin.errors import invalid
from harbourgate.admin.records import DECISIONS, parse_since
from harbourgate.admin.schemas import DecisionList
from harbourgate.store import decisions as index
from harbourgate.store import registry
from harbourgate.store.errors import InvalidReference

router = APIRouter(tags=["decisions"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
BUCKETS = ("minute", "hour", "day")
STATS_BY = ("decision", "model")
MAX_BUCKETS = 10_000
_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
Instant = Annotated[str | None, Query(description="ISO-8601 instant with a zone, or a date "
                                                  "(midnight UTC)")]


@router.get("/admin/v1/decisions", response_model=DecisionList)
def list_decisions(
    _actor: Reader, services: Services,
    since: Instant = None,
    until: Instant = None,
    participant: Annotated[str | None, Query(description="only this participant's")] = None,
    application: Annotated[str | None, Query(description="only this application's")] = None,
    model: Annotated[str | None, Query(description="asked for or served this model")] = None,
    decision: Annotated[str | None, Query(description="allow, reroute or deny")] = None,
    rule: Annotated[str | None, Query(description="decided by this rule id")] = None,
    limit: Annotated[str | None, Query(description=f"at most this many (1-{MAX_LIMIT}, "
                                                   f"default {DEFAULT_LIMIT})")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Recorded request decisions, newest first: who asked for which model, what was
    decided and served, the rule and citation, the policy version; never personal data.
    Each record adds `index`, its leaf index in the log (null until integrated)."""
    filters = read_filters(services, since=since, until=until, participant=participant,
                           application=application, model=model, decision=decision, rule=rule)
    count = page_limit(limit)
    try:
        found, following = index.page(services.store.engine, filters, limit=count,
                                      cursor=cursor)
    except index.BadCursor as exc:
        raise invalid("cursor", f"cursor: {exc}") from None
    return {"data": found, "has_more": following is not None, "next_cursor": following}


@router.get("/admin/v1/decisions/stats")
def decision_stats(
    _actor: Reader, services: Services,
    since: Instant = None,
    until: Instant = None,
    bucket: Annotated[str, Query(description="minute, hour or day")] = "hour",
    by: Annotated[str, Query(description="decision or model (the served model)")] = "decision",
    participant: Annotated[str | None, Query()] = None,
    application: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """How many decisions per time bucket, by effect or by served model: the console's
    plots. Defaults to the last 24 hours (hour buckets)."""
    if bucket not in BUCKETS:
        raise invalid("bucket", f"bucket: {bucket!r} is not one of {', '.join(BUCKETS)}")
    if by not in STATS_BY:
        raise invalid("by", f"by: {by!r} is not one of {', '.join(STATS_BY)}")
    filters = read_filters(services, since=since, until=until, participant=participant,
                           application=application)
    end = filters.until or datetime.now(UTC)
    start = filters.since or end - timedelta(days=1)
    if (end - start).total_seconds() / _SECONDS[bucket] > MAX_BUCKETS:
        raise invalid("since", f"since: {start:%Y-%m-%dT%H:%M:%SZ} to {end:%Y-%m-%dT%H:%M:%SZ} "
                      f"is more than {MAX_BUCKETS} {bucket}s; narrow it or use a larger bucket")
    filters = replace(filters, since=start, until=end)
    series = index.stats(services.store.engine, filters, bucket=bucket, by=by)
    return {"since": _iso(start), "until": _iso(end), "bucket": bucket, "by": by,
            "series": series}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_filters(services: Any, *, since: str | None = None, until: str | None = None,
                 participant: str | None = None, application: str | None = None,
                 key: str | None = None, model: str | None = None,
                 decision: str | None = None, rule: str | None = None) -> index.Filters:
    """Validated filters; 400 naming the parameter at fault."""
    window: dict[str, datetime | None] = {"since": None, "until": None}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                window[name] = parse_since(value)
            except ValueError as exc:
                raise invalid(name, f"{name}: {exc}") from None
    if window["since"] and window["until"] and window["until"] <= window["since"]:
        raise invalid("until", "until: must be later than since")
    if decision is not None and decision not in DECISIONS:
        raise invalid("decision", f"decision: {decision!r} is not one of "
                      f"{', '.join(DECISIONS)}")
    with services.store.read() as conn:
        if application is not None and not registry.application_exists(conn, application):
            raise InvalidReference("application", "application", application)
        if participant is not None and not registry.participant_exists(conn, participant):
            raise InvalidReference("participant", "participant", participant)
    return index.Filters(since=window["since"], until=window["until"], participant=participant,
                         application=application, key=key, model=model, decision=decision,
                         rule=rule)


def page_limit(value: str | None) -> int:
    """A list endpoint's `limit` query: the default when absent, else 1 to MAX_LIMIT."""
    if value is None:
        return DEFAULT_LIMIT
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_LIMIT:
        raise invalid("limit", f"limit: must be a whole number from 1 to {MAX_LIMIT}, "
                      f"not {value!r}")
    return number
