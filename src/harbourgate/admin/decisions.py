"""`/admin/v1/decisions`: the request decisions recorded in the audit log, newest first."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Query

from harbourgate.admin.auth import Reader, Services
from harbourgate.admin.errors import invalid
from harbourgate.admin.records import DECISIONS, parse_since, recorded_requests
from harbourgate.admin.schemas import DecisionList
from harbourgate.store import registry
from harbourgate.store.errors import InvalidReference

router = APIRouter(tags=["decisions"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@router.get("/admin/v1/decisions", response_model=DecisionList)
def list_decisions(
    _actor: Reader, services: Services,
    since: Annotated[str | None, Query(description="ISO-8601 instant with a zone, or a date "
                                                   "(midnight UTC)")] = None,
    application: Annotated[str | None, Query(description="only this application's")] = None,
    decision: Annotated[str | None, Query(description="allow, reroute or deny")] = None,
    limit: Annotated[str | None, Query(description=f"at most this many (1-{MAX_LIMIT}, "
                                                   f"default {DEFAULT_LIMIT})")] = None,
) -> DecisionList:
    """Recorded request decisions, newest first: who asked for which model, what was
    decided and served, the rule and citation, the policy version; never personal data."""
    when = None
    if since is not None:
        try:
            when = parse_since(since)
        except ValueError as exc:
            raise invalid("since", f"since: {exc}") from None
    if decision is not None and decision not in DECISIONS:
        raise invalid("decision", f"decision: {decision!r} is not one of "
                      f"{', '.join(DECISIONS)}")
    count = _limit(limit)
    if application is not None:
        with services.store.read() as conn:
            if not registry.application_exists(conn, application):
                raise InvalidReference("application", "application", application)
    found = list(islice(recorded_requests(services.store.engine, since=when,
                                          application=application, decision=decision),
                        count + 1))
    return DecisionList(data=found[:count], has_more=len(found) > count)


def _limit(value: str | None) -> int:
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
