"""Approvals of high-risk applications through the admin API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.store import Store, registry
from tests.admin.admin_support import AUDITOR, OPERATOR, Recorder, error_of

APPROVALS = "/admin/v1/applications/acme-research/approvals"


def test_an_approval_is_recorded_in_utc_and_in_force(client: TestClient, store: Store,
                                                     recorder: Recorder,
                                                     research: dict[str, Any]) -> None:
    response = client.post(APPROVALS, headers=OPERATOR, json={
        "approver": "Sandbox committee (J. Chan)", "conditions": "human review of denials",
        "expires_at": "2099-06-30T08:00:00+08:00"})
    assert response.status_code == 201
    body = response.json()
    assert body["expires_at"] == "2099-06-30T00:00:00Z"
    assert body["valid"] is True and body["revoked_at"] is None
    assert body["id"].startswith("apr_")
    assert recorder.audits[-1][0] == "approval.record"
    snapshot = registry.load_registry(store.engine)
    assert [a.id for a in snapshot.approvals_for("acme-research")] == [body["id"]]
    listed = client.get(APPROVALS, headers=AUDITOR).json()["data"]
    assert [a["id"] for a in listed] == [body["id"]]


@pytest.mark.parametrize(("body", "message"), [
    ({"approver": "C", "expires_at": "2001-01-01T00:00:00Z"},
     "expires_at 2001-01-01T00:00:00Z is not in the future (now 20"),
    ({"approver": "C", "expires_at": "2099-01-01T00:00:00"},
     "expires_at: input should have timezone info"),
    ({"approver": "C", "expires_at": "next year"}, "expires_at: input should be a valid datetime"),
    ({"approver": "C"}, "expires_at is required"),
])
def test_an_invalid_approval_is_400(client: TestClient, research: dict[str, Any],
                                    body: dict[str, Any], message: str) -> None:
    response = client.post(APPROVALS, headers=OPERATOR, json=body)
    assert response.status_code == 400
    assert error_of(response)["param"] == "expires_at"
    assert error_of(response)["message"].startswith(message), error_of(response)["message"]


def test_approving_an_unknown_application_is_404(client: TestClient) -> None:
    response = client.post("/admin/v1/applications/ghost/approvals", headers=OPERATOR,
                           json={"approver": "C", "expires_at": "2099-01-01T00:00:00Z"})
    assert response.status_code == 404
    assert error_of(response)["message"] == "no application with id 'ghost'"


def test_withdrawing_is_idempotent(client: TestClient, store: Store, recorder: Recorder,
                                   research: dict[str, Any]) -> None:
    approval = client.post(APPROVALS, headers=OPERATOR, json={
        "approver": "C", "expires_at": "2099-01-01T00:00:00Z"}).json()
    first = client.delete(f"/admin/v1/approvals/{approval['id']}", headers=OPERATOR)
    assert first.status_code == 200
    assert first.json()["valid"] is False and first.json()["audit_id"] is not None
    assert registry.load_registry(store.engine).approvals_for("acme-research") == ()
    before = (store.state_version(), len(recorder.events))
    again = client.delete(f"/admin/v1/approvals/{approval['id']}", headers=OPERATOR)
    assert again.json() == {**first.json(), "audit_id": None}
    assert (store.state_version(), len(recorder.events)) == before
    missing = client.delete("/admin/v1/approvals/apr_nothing", headers=OPERATOR)
    assert missing.status_code == 404
    assert error_of(missing)["message"] == "no approval with id 'apr_nothing'"
