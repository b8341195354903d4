"""`/admin/v1/policy`: the bundle and directives in force; explain a context."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from harbourgate.admin.auth import Reader, Services
from harbourgate.admin.errors import ApiError, ErrorBody
from harbourgate.policy import Context, PolicyError
from harbourgate.policy.errors import Problem
from harbourgate.store.directives import StoredDirective
from harbourgate.store.timestamps import parse_timestamp, utc_now

router = APIRouter(tags=["policy"])

NEEDS_POLICY: dict[int | str, dict[str, Any]] = {
    503: {"description": "No policy is loaded in this process", "model": ErrorBody}}

_CONTEXT_EXAMPLE = {
    "application": {"id": "acme-research", "use_cases": ["research.b2b"], "data_origin": "HK"},
    "participant": {"id": "acme", "jurisdiction": "HK"},
    "end_user": {"verified": True, "nationality": ["HK"]},
    "model": {"name": "fable-5", "origin": "US", "hosting": "US",
              "export_tags": ["us-frontier"], "class": "frontier-chat"},
    "request": {"time": "2026-06-12T09:00:00Z"},
}


@router.get("/admin/v1/policy", responses=NEEDS_POLICY)
def show_policy(_actor: Reader, services: Services) -> dict[str, Any]:
    """The policy in force: its `X-Harbourgate-Policy` header, the bundle (every pack and
    rule with its citation) and the directives in force, with when they were issued."""
    current = services.current()
    now = utc_now()
    return {**current.policy.to_dict(), "header": current.policy_header,
            "directives": [directive_out(d, now) for d in current.directives]}


@router.post("/admin/v1/policy/explain", responses=NEEDS_POLICY)
def explain(_actor: Reader, services: Services,
            context: Annotated[dict[str, Any], Body(examples=[_CONTEXT_EXAMPLE])],
        ) -> dict[str, Any]:
    """The decision for a context and every rule considered: fired or not, and why.

    Read-only: auditors may call it. The context has the shape of policy context files
    (docs/policy.md); the policy in force (with its directives) decides.
    """
    try:
        ctx = Context.from_dict(context, source="context")
    except PolicyError as exc:
        raise problems_error("the context is invalid", exc.problems, param="context") from None
    result: dict[str, Any] = services.current().policy.explain(ctx).to_dict()
    return result


def directive_out(stored: StoredDirective, now: str) -> dict[str, Any]:
    """A stored directive as the admin API shows it, with `in_force` as of `now`."""
    in_force = stored.revoked_at is None and stored.directive.in_force_at(parse_timestamp(now))
    return {**stored.to_dict(), "in_force": in_force}


def problems_error(lead: str | None, problems: tuple[Problem, ...], *,
                   param: str | None) -> ApiError:
    """A 400 naming every problem (with its fix), as one message."""
    listed = "; ".join(p.message + (f" (fix: {p.fix})" if p.fix else "") for p in problems)
    return ApiError(400, "invalid_request", f"{lead}: {listed}" if lead else listed,
                    param=param)
