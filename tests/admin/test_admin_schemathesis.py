"""Schemathesis against /admin/v1/openapi.json: no server error, every status documented.

The admin API as `harbourgate serve` assembles it (real store, runtime, policy and audit
log) with a participant, two applications, a key, an approval and a directive to find.
Bounded and repeatable: a fixed number of examples per operation, derandomized.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from harbourgate import config
from harbourgate.admin import AdminServices, create_admin_app
from harbourgate.admin.app import OPENAPI_URL
from harbourgate.admin.audit import audit_router
from harbourgate.admin.auth import requires
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.runtime import Runtime
from harbourgate.store import Store
from tests.admin.admin_support import AUDITOR_TOKEN, JUNE, OPERATOR, OPERATOR_TOKEN, PREFERENCE

EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def api_schema(tmp_path: Path) -> Iterator[Any]:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(f"data_dir: {tmp_path}\nsandbox: {{}}\n", encoding="utf-8")
    settings_ = config.load(path, environ={})
    store = Store(f"sqlite:///{tmp_path / 'harbourgate.db'}")
    store.migrate()
    log = AuditLog(store.engine, Signer("test.harbourgate/audit", Ed25519PrivateKey.generate()))
    log.start()

    def audit(conn: sa.Connection, action: str, details: dict[str, Any]) -> str:
        return log.record_in(conn, {"kind": "admin", "action": action, **details})

    services = AdminServices.for_runtime(
        Runtime(settings_, store), audit=audit,
        tokens=(config.AdminToken(OPERATOR_TOKEN, "operator"),
                config.AdminToken(AUDITOR_TOKEN, "auditor")))
    router = APIRouter(prefix="/admin/v1", dependencies=[requires("operator", "auditor")])
    router.include_router(audit_router(lambda: log))
    app = create_admin_app(services, routers=[router])
    with TestClient(app) as client:
        assert client.post("/admin/v1/participants", headers=OPERATOR, json={
            "id": "acme", "name": "Acme", "jurisdiction": "HK"}).status_code == 201
        for app_id, uses in (("research", ["research.b2b"]),
                             ("credit", ["finance.credit_scoring"])):
            assert client.post("/admin/v1/applications", headers=OPERATOR, json={
                "id": app_id, "participant_id": "acme", "name": app_id, "use_cases": uses,
                "data_origin": "HK", "model_preference": PREFERENCE}).status_code == 201
        key = client.post("/admin/v1/applications/research/keys", headers=OPERATOR).json()
        approval = client.post("/admin/v1/applications/credit/approvals", headers=OPERATOR,
                               json={"approver": "Board", "expires_at": "2099-01-01T00:00:00Z"})
        directive = client.post("/admin/v1/directives", headers=OPERATOR, json=JUNE).json()
    known = {"participant_id": "acme", "application_id": "research", "key_id": key["id"],
             "approval_id": approval.json()["id"], "directive_id": directive["id"],
             "entry_id": key["audit_id"]}
    yield schemathesis.openapi.from_asgi(OPENAPI_URL, app), known
    log.close()
    store.close()


def _fuzz(operation: Any, known: dict[str, str]) -> None:
    """`EXAMPLES` cases of one operation; the first failure raises."""
    target = known["participant_id"] if "participants" in operation.path \
        else known["application_id"]

    @given(case=operation.as_strategy(), existing=st.booleans())
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case: Any, existing: bool) -> None:
        if existing:
            for name in case.path_parameters or {}:
                case.path_parameters[name] = known.get(name, case.path_parameters[name])
            if isinstance(case.body, dict) and "id" in case.body:
                case.body["id"] = target
        response = case.call(headers=OPERATOR)
        case.validate_response(response, checks=CHECKS)

    run()


def test_no_server_error_and_every_status_documented(api_schema: Any) -> None:
    """Every operation, `EXAMPLES` generated cases each; all failures reported together.

    Half the cases aim at what exists (the path's ids, and a body's `id`, replaced by those
    of the seeded objects), so that changes and conflicts are tried, not only 404s.
    """
    schema, known = api_schema
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        try:
            _fuzz(operation, known)
        except (Exception, BaseExceptionGroup) as exc:  # each operation's first failure
            failures.append(f"{operation.label}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
