"""Approvals of high-risk applications: record, list, withdraw."""

from __future__ import annotations

from fastapi import APIRouter

from harbourgate.admin.auth import Operator, Reader, Services
from harbourgate.admin.errors import invalid
from harbourgate.admin.schemas import ApprovalChanged, ApprovalIn, ApprovalList, ApprovalOut
from harbourgate.store import registry
from harbourgate.store.timestamps import utc_now

router = APIRouter(tags=["approvals"])


@router.post("/admin/v1/applications/{application_id}/approvals", status_code=201,
             response_model=ApprovalChanged)
def approve_application(application_id: str, body: ApprovalIn, actor: Operator,
                        services: Services) -> ApprovalChanged:
    """Record who approved the application, on which conditions, until when."""
    if body.expired():
        raise invalid("expires_at", "expires_at: must be in the future, not "
                      f"{body.expiry()}")
    with services.store.change() as conn:
        approval = registry.record_approval(conn, application_id, approver=body.approver,
                                            conditions=body.conditions,
                                            expires_at=body.expiry())
    out = ApprovalOut.of(approval, utc_now())
    audit_id = services.committed("approval.record", {
        "actor": actor.as_details(), "approval": out.model_dump()})
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
        if newly:
            registry.bump_state_version(conn)
    out = ApprovalOut.of(approval, utc_now())
    audit_id = None
    if newly:
        audit_id = services.committed("approval.revoke", {
            "actor": actor.as_details(), "approval_id": approval.id,
            "application_id": approval.application_id})
    return ApprovalChanged(**out.model_dump(), audit_id=audit_id)
