"""API keys: issue (shown once), list (never the key), revoke (idempotent)."""

from __future__ import annotations

from fastapi import APIRouter

from harbourgate.admin.auth import Operator, Reader, Services
from harbourgate.admin.schemas import KeyIssued, KeyList, KeyOut, KeyRevoked
from harbourgate.store import registry

router = APIRouter(tags=["keys"])


@router.post("/admin/v1/applications/{application_id}/keys", status_code=201,
             response_model=KeyIssued)
def issue_key(application_id: str, actor: Operator, services: Services) -> KeyIssued:
    """Issue a key for an application. The answer holds the key once; it is stored hashed."""
    with services.store.change() as conn:
        issued = registry.issue_key(conn, application_id)
        key = issued.record
        audit_id = services.record(conn, "key.issue", {
            "actor": actor.as_details(), "key_id": key.id,
            "application_id": key.application_id, "prefix": key.prefix})
    services.changed()
    return KeyIssued.of(issued, audit_id)


@router.get("/admin/v1/applications/{application_id}/keys", response_model=KeyList)
def list_keys(application_id: str, _actor: Reader, services: Services) -> KeyList:
    """An application's keys, revoked ones included; never the keys themselves."""
    with services.store.read() as conn:
        found = registry.list_keys(conn, application_id)
    return KeyList(data=[KeyOut.of(key) for key in found])


@router.delete("/admin/v1/keys/{key_id}", response_model=KeyRevoked)
def revoke_key(key_id: str, actor: Operator, services: Services) -> KeyRevoked:
    """Revoke a key. Revoking a revoked key changes nothing and answers the same."""
    with services.store.transaction() as conn:
        key, newly = registry.revoke_key(conn, key_id)
        if not newly:
            return KeyRevoked.of(key, audit_id=None)
        registry.bump_state_version(conn)
        audit_id = services.record(conn, "key.revoke", {
            "actor": actor.as_details(), "key_id": key.id,
            "application_id": key.application_id, "prefix": key.prefix})
    services.changed()
    return KeyRevoked.of(key, audit_id=audit_id)
