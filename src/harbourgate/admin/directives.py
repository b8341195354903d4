"""`/admin/v1/directives`: issue, list, show, revoke; simulate a proposal first.

A directive is stored (one transaction that bumps the state version) and the runtime
reloads: it compiles the directives in force from the store itself, so every replica
applies the same documents. The answer to a change carries its audit entry id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from harbourgate.admin.auth import Operator, Reader, Services
from harbourgate.admin.errors import CONFLICT, invalid
from harbourgate.admin.policy import NEEDS_POLICY, directive_out, problems_error
from harbourgate.admin.records import parse_since, recorded_requests
from harbourgate.admin.schemas import DirectiveChanged, DirectiveList, DirectiveOut, SimulateIn
from harbourgate.directives.model import FIXED_KEYS, Directive, DirectiveError
from harbourgate.directives.simulate import simulate
from harbourgate.store import directives as store
from harbourgate.store import registry
from harbourgate.store.timestamps import utc_now

router = APIRouter(tags=["directives"])

STATUSES = ("issued", "revoked", "all")
MAX_ID = 64  # the width of the directives table's id column

_EXAMPLE = {
    "authority": "US Department of Commerce", "citation": "Order to Anthropic of 2026-06-12",
    "title": "Frontier models for US nationals only", "models": ["fable-5", "mythos-5"],
    "permit_only": {"nationality": ["US"]}, "effective_from": "2026-06-12T00:00:00Z",
    "effective_until": None,
}


@router.post("/admin/v1/directives", status_code=201, response_model=DirectiveChanged,
             responses=CONFLICT)
def issue_directive(actor: Operator, services: Services,
                    document: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
        ) -> dict[str, Any]:
    """Record a directive the moment it is issued; every replica applies it within a second.

    The document is validated whole: every problem is named in one answer.
    """
    directive = read_directive(document, services.route_names(), param_prefix="")
    with services.store.change() as conn:
        stored = store.issue_directive(conn, directive)
        audit_id = services.record(conn, "directive.issue", {
            "actor": actor.as_details(), "directive": stored.to_dict()})
    services.changed()
    out = directive_out(stored, utc_now())
    return {**out, "audit_id": audit_id}


@router.get("/admin/v1/directives", response_model=DirectiveList)
def list_directives(_actor: Reader, services: Services,
                    status: Annotated[str, Query(description="issued, revoked or all")] = "all",
                    ) -> dict[str, Any]:
    """Directives in the order they were issued (`?status=issued` for those not revoked)."""
    if status not in STATUSES:
        raise invalid("status", f"status: {status!r} is not one of {', '.join(STATUSES)}")
    with services.store.read() as conn:
        found = store.list_directives(conn, include_revoked=status != "issued")
    if status == "revoked":
        found = [d for d in found if d.revoked_at is not None]
    now = utc_now()
    return {"data": [directive_out(d, now) for d in found]}


@router.get("/admin/v1/directives/{directive_id}", response_model=DirectiveOut)
def show_directive(directive_id: str, _actor: Reader, services: Services) -> dict[str, Any]:
    with services.store.read() as conn:
        stored = store.get_directive(conn, directive_id)
    return directive_out(stored, utc_now())


@router.delete("/admin/v1/directives/{directive_id}", response_model=DirectiveChanged)
def revoke_directive(directive_id: str, actor: Operator, services: Services) -> dict[str, Any]:
    """Revoke a directive; revoking it again changes nothing and answers `audit_id: null`."""
    with services.store.transaction() as conn:
        stored, newly = store.revoke_directive(conn, directive_id)
        if not newly:
            return {**directive_out(stored, utc_now()), "audit_id": None}
        registry.bump_state_version(conn)
        audit_id = services.record(conn, "directive.revoke", {
            "actor": actor.as_details(), "directive_id": stored.id,
            "revoked_at": stored.revoked_at})
    services.changed()
    out = directive_out(stored, utc_now())
    return {**out, "audit_id": audit_id}


@router.post("/admin/v1/directives/simulate", responses=NEEDS_POLICY)
def simulate_directive(body: SimulateIn, _actor: Reader, services: Services) -> dict[str, Any]:
    """Replay the traffic recorded since `since` under the policy in force, and under it
    plus the proposed directive: who would be affected, where they would be rerouted, who
    would be left with no permitted model. Read-only: auditors may call it."""
    current = services.current()
    directive = read_directive(body.directive, current.routes.keys(), param_prefix="directive.")
    try:
        since = parse_since(body.since)
    except ValueError as exc:
        raise invalid("since", f"since: {exc}") from None
    try:
        result = simulate(recorded_requests(services.store.engine, since=since), current,
                          directive, since=since)
    except DirectiveError as exc:
        raise problems_error("the proposed directive cannot be simulated", exc.problems,
                             param="directive") from None
    return result.to_dict()


def read_directive(document: dict[str, Any], routes: Any, *, param_prefix: str) -> Directive:
    """Validate a directive document against the routes; a 400 names every problem."""
    try:
        directive = Directive.from_dict(document, known_models=set(routes), source="directive")
    except DirectiveError as exc:
        first = exc.problems[0].message if exc.problems else ""
        key = first.replace(":", " ").replace(".", " ").split(" ", 1)[0]
        param = param_prefix + key if key in (*FIXED_KEYS, "id") else param_prefix.rstrip(".")
        raise problems_error("the directive is invalid", exc.problems,
                             param=param or None) from None
    if directive.id is not None and len(directive.id) > MAX_ID:
        raise invalid(f"{param_prefix}id", f"{param_prefix}id: at most {MAX_ID} characters, "
                      f"not {len(directive.id)}")
    return directive
