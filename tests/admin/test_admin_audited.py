"""Every admin change and its audit entry commit together, or neither does.

Each write endpoint is called on the assembled admin API with a real audit log: the answer
names an entry that is in the log and names the change. Then the same calls on a log whose
database was damaged: each answers 503 `audit_unavailable`, and nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from harbourgate import config
from harbourgate.admin import AdminServices, create_admin_app
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.runtime import Runtime
from harbourgate.store import Store
from tests.admin.admin_support import (
    AUDITOR_TOKEN,
    JUNE,
    OPERATOR,
    OPERATOR_TOKEN,
    PREFERENCE,
    error_of,
)

P = "/admin/v1/participants"
A = "/admin/v1/applications"


def _setup(client: TestClient) -> dict[str, Any]:
    """A participant, two applications (one high-risk, approved), a key, a directive."""
    ids: dict[str, Any] = {}
    for body in ({"id": "acme", "name": "Acme", "jurisdiction": "HK"},
                 {"id": "beta", "name": "Beta", "jurisdiction": "SG"}):
        assert client.post(P, headers=OPERATOR, json=body).status_code == 201
    for app_id, uses in (("research", ["research.b2b"]), ("credit", ["finance.credit_scoring"])):
        made = client.post(A, headers=OPERATOR, json={
            "id": app_id, "participant_id": "acme", "name": app_id, "use_cases": uses,
            "data_origin": "HK", "model_preference": PREFERENCE})
        assert made.status_code == 201, made.text
    ids["key"] = client.post(f"{A}/research/keys", headers=OPERATOR).json()["id"]
    ids["approval"] = client.post(f"{A}/credit/approvals", headers=OPERATOR, json={
        "approver": "Risk committee", "expires_at": "2099-01-01T00:00:00Z"}).json()["id"]
    ids["directive"] = client.post("/admin/v1/directives", headers=OPERATOR,
                                   json={**JUNE, "id": "dir_june"}).json()["id"]
    return ids


# (method path, expected action, the change its record must name)
WRITES: list[tuple[str, str, Callable[[dict[str, Any]], str], dict[str, Any] | None,
                   Callable[[dict[str, Any]], bool]]] = [
    ("POST", "participant.admit", lambda ids: P,
     {"id": "gamma", "name": "Gamma", "jurisdiction": "JP"},
     lambda r: r["participant"]["id"] == "gamma" and r["participant"]["jurisdiction"] == "JP"),
    ("PATCH", "participant.update", lambda ids: f"{P}/beta", {"status": "suspended"},
     lambda r: r["participant_id"] == "beta" and r["changes"] == {
         "status": {"from": "admitted", "to": "suspended"}}),
    ("POST", "application.register", lambda ids: A,
     {"id": "chat", "participant_id": "beta", "name": "Chat", "use_cases": ["research.b2b"]},
     lambda r: r["application"]["id"] == "chat" and r["application"]["participant_id"] == "beta"),
    ("PATCH", "application.update", lambda ids: f"{A}/research",
     {"name": "Research II", "status": "suspended"},
     lambda r: r["application_id"] == "research" and r["changes"] == {
         "name": {"from": "research", "to": "Research II"},
         "status": {"from": "active", "to": "suspended"}}),
    ("POST", "key.issue", lambda ids: f"{A}/research/keys", None,
     lambda r: r["application_id"] == "research" and r["key_id"].startswith("key_")),
    ("DELETE", "key.revoke", lambda ids: f"/admin/v1/keys/{ids['key']}", None,
     lambda r: r["application_id"] == "research"),
    ("POST", "approval.record", lambda ids: f"{A}/credit/approvals",
     {"approver": "Board", "expires_at": "2098-01-01T00:00:00Z"},
     lambda r: r["approval"]["approver"] == "Board"
     and r["approval"]["application_id"] == "credit"),
    ("DELETE", "approval.revoke", lambda ids: f"/admin/v1/approvals/{ids['approval']}", None,
     lambda r: r["application_id"] == "credit"),
    ("POST", "directive.issue", lambda ids: "/admin/v1/directives",
     {**JUNE, "id": "dir_two", "title": "Second"},
     lambda r: r["directive"]["id"] == "dir_two" and r["directive"]["title"] == "Second"),
    ("DELETE", "directive.revoke", lambda ids: "/admin/v1/directives/dir_june", None,
     lambda r: r["directive_id"] == "dir_june" and r["revoked_at"]),
]


def _client(settings: config.Settings, store: Store, log: AuditLog) -> TestClient:
    def audit(conn: sa.Connection, action: str, details: dict[str, Any]) -> str:
        return log.record_in(conn, {"kind": "admin", "action": action, **details})

    services = AdminServices.for_runtime(
        Runtime(settings, store), audit=audit,
        tokens=(config.AdminToken(OPERATOR_TOKEN, "operator"),
                config.AdminToken(AUDITOR_TOKEN, "auditor")))
    return TestClient(create_admin_app(services), raise_server_exceptions=False)


def _state(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every registry table and the audit log, as rows: to show nothing changed."""
    with store.engine.connect() as conn:
        return {table: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]
                for table in ("participants", "applications", "api_keys", "approvals",
                              "directives", "state_version", "audit_entries",
                              "audit_checkpoints")}


@pytest.fixture
def signer_log(store: Store) -> Iterator[Callable[[], AuditLog]]:
    """Start logs on the store, one key for all (a restart of the same deployment)."""
    signer = Signer("test.harbourgate/audit", Ed25519PrivateKey.generate())
    started: list[AuditLog] = []

    def start() -> AuditLog:
        log = AuditLog(store.engine, signer)
        log.start()
        started.append(log)
        return log

    yield start
    for log in started:
        log.close()


@pytest.fixture
def deployment(settings: config.Settings, store: Store,
               audit_log: AuditLog) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with _client(settings, store, audit_log) as client:
        yield client, _setup(client)


@pytest.mark.parametrize(("method", "action", "path", "body", "names_change"), WRITES,
                         ids=[w[1] for w in WRITES])
def test_every_write_commits_with_its_audit_entry(
        deployment: tuple[TestClient, dict[str, Any]], audit_log: AuditLog, method: str,
        action: str, path: Callable[[dict[str, Any]], str], body: dict[str, Any] | None,
        names_change: Callable[[dict[str, Any]], bool]) -> None:
    client, ids = deployment
    response = client.request(method, path(ids), headers=OPERATOR, json=body)
    assert response.status_code in (200, 201), response.text
    audit_id = response.json()["audit_id"]
    entry = audit_log.entry(audit_id)  # committed, with its leaf index, at once
    assert entry.record["kind"] == "admin" and entry.record["action"] == action
    assert entry.record["actor"]["role"] == "operator"
    assert names_change(entry.record), entry.record


def test_a_conflict_changes_nothing_and_records_nothing(
        deployment: tuple[TestClient, dict[str, Any]], store: Store) -> None:
    client, _ = deployment
    before = _state(store)
    response = client.post(P, headers=OPERATOR,
                           json={"id": "acme", "name": "Again", "jurisdiction": "HK"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert _state(store) == before


def test_a_damaged_log_refuses_every_change_and_nothing_changes(
        settings: config.Settings, store: Store,
        signer_log: Callable[[], AuditLog]) -> None:
    log = signer_log()
    with _client(settings, store, log) as client:
        ids = _setup(client)
    log.checkpoint()
    log.close()
    with store.engine.begin() as conn:  # the tail of the log, signed, deleted
        conn.execute(sa.text("DELETE FROM audit_entries WHERE idx >= "
                             "(SELECT MAX(idx) FROM audit_entries)"))
    damaged = signer_log()
    assert damaged.damage is not None
    before = _state(store)
    with _client(settings, store, damaged) as client:
        for method, _action, path, body, _names in WRITES:
            response = client.request(method, path(ids), headers=OPERATOR, json=body)
            assert response.status_code == 503, (method, path(ids), response.text)
            error = error_of(response)
            assert error["code"] == "audit_unavailable"
            assert error["message"].startswith("the change was not made: it could not be "
                                               "recorded in the audit log (entries were "
                                               "deleted")
            assert response.headers["retry-after"] == "30"
    assert _state(store) == before
