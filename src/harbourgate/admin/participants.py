"""`/admin/v1/participants`: admit, list, show, change (suspend, rename, screening)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from harbourgate.admin.auth import Operator, Reader, Services
from harbourgate.admin.errors import CONFLICT
from harbourgate.admin.schemas import (
    ParticipantChanged,
    ParticipantIn,
    ParticipantList,
    ParticipantOut,
    ParticipantPatch,
    ParticipantStatus,
    changed_fields,
)
from harbourgate.store import registry

router = APIRouter(tags=["participants"])


@router.post("/admin/v1/participants", status_code=201, response_model=ParticipantChanged,
             responses=CONFLICT)
def admit_participant(body: ParticipantIn, actor: Operator,
                      services: Services) -> ParticipantChanged:
    """Admit an organisation to the sandbox."""
    with services.store.change() as conn:
        participant = registry.admit_participant(
            conn, id=body.id, name=body.name, jurisdiction=body.jurisdiction,
            screening=body.screening)
        audit_id = services.record(conn, "participant.admit", {
            "actor": actor.as_details(), "participant": ParticipantOut.of(participant)
            .model_dump()})
    services.changed()
    return ParticipantChanged.of(participant, audit_id=audit_id)


@router.get("/admin/v1/participants", response_model=ParticipantList)
def list_participants(_actor: Reader, services: Services,
                      status: Annotated[ParticipantStatus | None, Query()] = None,
                      ) -> ParticipantList:
    """Every participant, oldest first (or only those with `status`)."""
    with services.store.read() as conn:
        found = registry.list_participants(conn, status=status)
    return ParticipantList(data=[ParticipantOut.of(p) for p in found])


@router.get("/admin/v1/participants/{participant_id}", response_model=ParticipantOut)
def show_participant(participant_id: str, _actor: Reader, services: Services) -> ParticipantOut:
    with services.store.read() as conn:
        return ParticipantOut.of(registry.get_participant(conn, participant_id))


@router.patch("/admin/v1/participants/{participant_id}", response_model=ParticipantChanged)
def change_participant(participant_id: str, body: ParticipantPatch, actor: Operator,
                       services: Services) -> ParticipantChanged:
    """Suspend (`{"status": "suspended"}`), re-admit, rename or record screening.

    A suspended participant's applications keep existing; the data plane refuses them.
    """
    with services.store.transaction() as conn:
        before = registry.get_participant(conn, participant_id)
        changes = {k: v for k, v in changed_fields(body).items() if getattr(before, k) != v}
        if not changes:
            return ParticipantChanged.of(before, audit_id=None)
        after = registry.update_participant(conn, participant_id, **changes)
        registry.bump_state_version(conn)
        audit_id = services.record(conn, "participant.update", {
            "actor": actor.as_details(), "participant_id": participant_id,
            "changes": {k: {"from": getattr(before, k), "to": v} for k, v in changes.items()}})
    services.changed()
    return ParticipantChanged.of(after, audit_id=audit_id)
