"""Approvals of high-risk applications: record, list, withdraw."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from harbourgate.admin.auth import Operator, Reader, Services
from harbourgate.admin.policy import problems_error
from harbourgate.admin.schemas import ApprovalChanged, ApprovalIn, ApprovalList, ApprovalOut
from harbourgate.policy import PolicyError
from harbourgate.policy.approvals import parse_approval
from harbourgate.store import registry
from harbourgate.store.timestamps import format_timestamp, utc_now

router = APIRouter(tags=["approvals"])


@router.post("/admin/v1/applications/{application_id}/approvals", status_code=201,
             response_model=ApprovalChanged)
def approve_application(application_id: str, body: ApprovalIn, actor: Operator,
                        services: Services) -> ApprovalChanged:
    """Record who approved the application, on which conditions, until when."""
    try:  # the policy's own check, so every way of recording one refuses the same way
        checked = parse_approval(body.model_dump(), now=datetime.now(UTC).replace(microsecond=0),
                                 source="approval")
    except PolicyError as exc:
        raise problems_error(None, exc.problems, param="expires_at") from None
    with services.store.change() as conn:
        approval = registry.record_approval(conn, application_id, approver=checked.approver,
                                            conditions=checked.conditions,
                                            expires_at=format_timestamp(checked.expires_at))
        out = ApprovalOut.of(approval, utc_now())
        audit_id = services.record(conn, "approval.record", {
            "actor": actor.as_details(), "approval": out.model_dump()})
    services.changed()
    return ApprovalChanged(**out.model_dump(), audit_id=audit_id)


@router.get("/admin/v1/applications/{application_id}/approvals", response_model=ApprovalList)
def list_approvals(application_id: str, _actor: Reader, services: Services) -> ApprovalList:
    """Every approval of the application, withdrawn and expired ones included."""
    with services.store.read() as conn:
        found = registry.list_approvals(conn, application_id)
    now = utc_now()
    return ApprovalList(data=[ApprovalOut.of(a, now) for a in found])


@router.delete("/admin/v1/approvals/{approval_id}", response_model=ApprovalChanged)
def withdraw_approval(approval_id: str, actor: Operator, services: Services) -> ApprovalChanged:
    """Withdraw an approval; withdrawing it again changes nothing and answers the same."""
    with services.store.transaction() as conn:
        approval, newly = registry.revoke_approval(conn, approval_id)
        out = ApprovalOut.of(approval, utc_now())
        if not newly:
            return ApprovalChanged(**out.model_dump(), audit_id=None)
        registry.bump_state_version(conn)
        audit_id = services.record(conn, "approval.revoke", {
            "actor": actor.as_details(), "approval_id": approval.id,
            "application_id": approval.application_id})
    services.changed()
    return ApprovalChanged(**out.model_dump(), audit_id=audit_id)
