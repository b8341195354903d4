"""The admin API on a fresh SQLite store: with recording fakes for the runtime hooks
(`client`), or wired to a real runtime, compiled policy and audit log (`live`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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
    OPERATOR,
    OPERATOR_TOKEN,
    PREFERENCE,
    Recorder,
    make_services,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'harbourgate.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(store: Store, recorder: Recorder) -> Iterator[TestClient]:
    with TestClient(create_admin_app(make_services(store, recorder)),
                    raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def acme(client: TestClient) -> dict[str, Any]:
    response = client.post("/admin/v1/participants", headers=OPERATOR,
                           json={"id": "acme", "name": "Acme Research", "jurisdiction": "HK"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def research(client: TestClient, acme: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/admin/v1/applications", headers=OPERATOR, json={
        "id": "acme-research", "participant_id": "acme", "name": "Research assistant",
        "use_cases": ["research.b2b"], "data_origin": "HK",
        "model_preference": ["fable-5", "glm-5.2"]})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- a real deployment -------------------------------------------------------------------------

@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    """The embedded default's routes and packs, an empty sandbox, data in tmp_path."""
    path = tmp_path / "harbourgate.yaml"
    path.write_text(f"data_dir: {tmp_path}\nsandbox: {{}}\n", encoding="utf-8")
    return config.load(path, environ={})


@pytest.fixture
def audit_log(store: Store) -> Iterator[AuditLog]:
    log = AuditLog(store.engine, Signer("test.harbourgate/audit", Ed25519PrivateKey.generate()))
    log.start()
    yield log
    log.close()


@pytest.fixture
def runtime(settings: config.Settings, store: Store) -> Runtime:
    return Runtime(settings, store)


@pytest.fixture
def live(runtime: Runtime, audit_log: AuditLog) -> Iterator[TestClient]:
    """The admin API as `harbourgate serve` assembles it (`AdminServices.for_runtime`)."""
    def audit(conn: Any, action: str, details: dict[str, Any]) -> str:
        return audit_log.record_in(conn, {"kind": "admin", "action": action, **details})

    services = AdminServices.for_runtime(
        runtime, tokens=(config.AdminToken(OPERATOR_TOKEN, "operator"),
                         config.AdminToken(AUDITOR_TOKEN, "auditor")), audit=audit)
    with TestClient(create_admin_app(services), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def sandbox(live: TestClient) -> Callable[..., dict[str, Any]]:
    """Register a participant (once) and an application through the live API."""
    def register(app_id: str = "acme-research", participant: str = "acme",
                 use_cases: tuple[str, ...] = ("research.b2b",),
                 preference: list[str] | None = None) -> dict[str, Any]:
        if live.get(f"/admin/v1/participants/{participant}", headers=OPERATOR).status_code \
                == 404:
            made = live.post("/admin/v1/participants", headers=OPERATOR, json={
                "id": participant, "name": participant.title(), "jurisdiction": "HK"})
            assert made.status_code == 201, made.text
        made = live.post("/admin/v1/applications", headers=OPERATOR, json={
            "id": app_id, "participant_id": participant, "name": app_id,
            "use_cases": list(use_cases), "data_origin": "HK",
            "model_preference": PREFERENCE if preference is None else preference})
        assert made.status_code == 201, made.text
        body: dict[str, Any] = made.json()
        return body

    return register
