"""The admin API on a fresh SQLite store, with recording fakes for the runtime hooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.admin import create_admin_app
from harbourgate.store import Store
from tests.admin.admin_support import OPERATOR, Recorder, make_services


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
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


