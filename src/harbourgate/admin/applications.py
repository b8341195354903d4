"""`/admin/v1/applications`: register, list, show, change; with the policy's tier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query

from harbourgate.admin.auth import Operator, Reader, Services
from harbourgate.admin.errors import CONFLICT, invalid
from harbourgate.admin.schemas import (
    ApplicationChanged,
    ApplicationIn,
    ApplicationList,
    ApplicationOut,
    ApplicationPatch,
    changed_fields,
)
from harbourgate.admin.services import AdminServices
from harbourgate.identity.model import Application
from harbourgate.store import registry
from harbourgate.store.errors import InvalidReference

router = APIRouter(tags=["applications"])


@router.post("/admin/v1/applications", status_code=201, response_model=ApplicationChanged,
             responses=CONFLICT)
def register_application(body: ApplicationIn, actor: Operator,
                         services: Services) -> ApplicationChanged:
    """Register an application; the answer carries the tier the policy gives it."""
    check_routes(services, body.model_preference)
    with services.store.change() as conn:
        app = registry.register_application(
            conn, id=body.id, participant_id=body.participant_id, name=body.name,
            use_cases=body.use_cases, data_categories=body.data_categories,
            data_origin=body.data_origin, model_preference=body.model_preference,
            transfer_mechanisms=body.transfer_mechanisms)
        out = describe(services, app)
        audit_id = services.record(conn, "application.register", {
            "actor": actor.as_details(), "application": out.model_dump()})
    services.changed()
    return ApplicationChanged(**out.model_dump(), audit_id=audit_id)


@router.get("/admin/v1/applications", response_model=ApplicationList)
def list_applications(_actor: Reader, services: Services,
                      participant_id: Annotated[str | None, Query()] = None,
                      ) -> ApplicationList:
    """Every application, oldest first (or one participant's)."""
    with services.store.read() as conn:
        if participant_id is not None and not registry.participant_exists(conn, participant_id):
            raise InvalidReference("participant_id", "participant", participant_id)
        found = registry.list_applications(conn, participant_id=participant_id)
    return ApplicationList(data=[describe(services, app) for app in found])


@router.get("/admin/v1/applications/{application_id}", response_model=ApplicationOut)
def show_application(application_id: str, _actor: Reader, services: Services) -> ApplicationOut:
    with services.store.read() as conn:
        app = registry.get_application(conn, application_id)
    return describe(services, app)


@router.patch("/admin/v1/applications/{application_id}", response_model=ApplicationChanged)
def change_application(application_id: str, body: ApplicationPatch, actor: Operator,
                       services: Services) -> ApplicationChanged:
    """Change declarations, preference order or status; the tier is computed afresh."""
    requested = changed_fields(body)
    if "model_preference" in requested:
        check_routes(services, requested["model_preference"])
    with services.store.transaction() as conn:
        before = registry.get_application(conn, application_id)
        changes = {k: v for k, v in requested.items() if _stored(before, k) != v}
        if not changes:
            return ApplicationChanged(**describe(services, before).model_dump(), audit_id=None)
        after = registry.update_application(conn, application_id, **changes)
        registry.bump_state_version(conn)
        out = describe(services, after)
        audit_id = services.record(conn, "application.update", {
            "actor": actor.as_details(), "application_id": application_id,
            "changes": {k: {"from": _stored(before, k), "to": v} for k, v in changes.items()},
            "tier": out.tier})
    services.changed()
    return ApplicationChanged(**out.model_dump(), audit_id=audit_id)


def describe(services: AdminServices, app: Application) -> ApplicationOut:
    """An application as the API shows it, with the policy's classification."""
    result: ApplicationOut = ApplicationOut.of(app, services.classify(app))
    return result


def check_routes(services: AdminServices, names: Sequence[str]) -> None:
    """Every name in a preference order must be a configured model route."""
    known = set(services.route_names())
    for i, name in enumerate(names):
        if name not in known:
            raise invalid("model_preference",
                          f"model_preference[{i}]: {name!r} is not a known model route; "
                          f"known routes: {', '.join(sorted(known)) or '(none configured)'}")


def _stored(app: Application, field: str) -> object:
    value = getattr(app, field)
    return list(value) if isinstance(value, tuple) else value
