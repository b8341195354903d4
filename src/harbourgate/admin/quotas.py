"""`/admin/v1/quotas` (set, list, show, remove) and `/admin/v1/usage`.

A quota change is stored in a transaction that bumps the state version: this process
reloads at once, the others on the Redis announcement or their poll, so the change is
enforced on every replica within a second. Each change is an audit entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from harbourgate.admin.auth import Operator, Reader, Services
from harbourgate.admin.decisions import MAX_LIMIT, page_limit, read_filters
from harbourgate.admin.errors import invalid
from harbourgate.quotas.model import QuotaError, parse_quota
from harbourgate.store import decisions as index
from harbourgate.store import quotas as store

router = APIRouter(tags=["quotas"])

USAGE_BY = ("participant", "application", "key", "route")
PERIODS = ("hour", "day", "week", "month")

_EXAMPLE = {"scope": {"participant": "acme", "route": "qwen-local"},
            "requests_per_minute": 600, "tokens_per_minute": 200000,
            "budget": {"tokens": 50000000, "period": "month"}, "on_exhausted": "reroute"}


@router.post("/admin/v1/quotas", status_code=201,
             responses={200: {"description": "replaced: a quota with that `id` existed"}})
def set_quota(actor: Operator, services: Services, response: Response,
              document: Annotated[Any, Body(examples=[_EXAMPLE])]) -> dict[str, Any]:
    """Set a quota: created (201), or replaced when its `id` exists (200). In force on
    every replica within a second; every quota covering a request must pass."""
    try:
        quota = parse_quota(document, routes=set(services.route_names()))
    except QuotaError as exc:
        raise invalid(exc.field, str(exc)) from None
    with services.store.change() as conn:
        store.check_scope(conn, quota)
        stored, created = store.set_quota(conn, quota)
        audit_id = services.record(conn, "quota.set", {
            "actor": actor.as_details(), "quota": quota.to_dict(), "created": created})
    services.changed()
    if not created:
        response.status_code = 200
    return {**stored, "audit_id": audit_id}


@router.get("/admin/v1/quotas")
def list_quotas(_actor: Reader, services: Services,
                limit: Annotated[str | None, Query(description=f"1-{MAX_LIMIT}")] = None,
                cursor: Annotated[str | None, Query(description="next_cursor of the previous "
                                                                "page")] = None,
                ) -> dict[str, Any]:
    """The quotas in force, by id."""
    count = page_limit(limit)
    with services.store.read() as conn:
        found = store.list_quotas(conn, after=cursor, limit=count + 1)
    following = found[count - 1]["id"] if len(found) > count else None
    return {"data": found[:count], "next_cursor": following}


@router.get("/admin/v1/quotas/{quota_id}")
def show_quota(quota_id: str, _actor: Reader, services: Services) -> dict[str, Any]:
    with services.store.read() as conn:
        return store.get_quota(conn, quota_id)


@router.delete("/admin/v1/quotas/{quota_id}")
def remove_quota(quota_id: str, actor: Operator, services: Services) -> dict[str, Any]:
    """Remove a quota; the requests it covered are no longer limited by it."""
    with services.store.change() as conn:
        removed = store.delete_quota(conn, quota_id)
        audit_id = services.record(conn, "quota.remove", {"actor": actor.as_details(),
                                                          "quota_id": quota_id})
    services.changed()
    return {**removed, "removed": True, "audit_id": audit_id}


@router.get("/admin/v1/usage")
def usage(_actor: Reader, services: Services,
          since: Annotated[str | None, Query(description="ISO-8601 instant or date; default: "
                                                         "the start of this month")] = None,
          until: Annotated[str | None, Query(description="ISO-8601 instant or date")] = None,
          by: Annotated[str, Query(description="participant, application, key or route")
                        ] = "participant",
          period: Annotated[str, Query(description="hour, day, week or month")] = "day",
          ) -> dict[str, Any]:
    """Requests, tokens in and out (with cache and reasoning), cost, and refusals by
    quota, per period and per participant, application, key or route."""
    if by not in USAGE_BY:
        raise invalid("by", f"by: {by!r} is not one of {', '.join(USAGE_BY)}")
    if period not in PERIODS:
        raise invalid("period", f"period: {period!r} is not one of {', '.join(PERIODS)}")
    filters = read_filters(services, since=since or month_start(), until=until)
    rows = index.usage(services.store.engine, filters, by=by, period=period)
    return {"since": _iso(filters.since), "until": _iso(filters.until), "by": by,
            "period": period, "data": rows}


def month_start() -> str:
    return datetime.now(UTC).strftime("%Y-%m-01")


def _iso(when: Any) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


