"""API keys through the admin API: shown once, listed without the key, revoked idempotently."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from harbourgate.identity.keys import hash_key, looks_like_key
from harbourgate.store import Store, registry
from tests.admin.admin_support import AUDITOR, OPERATOR, Recorder, error_of

KEYS = "/admin/v1/applications/acme-research/keys"


def issue(client: TestClient) -> dict[str, Any]:
    response = client.post(KEYS, headers=OPERATOR)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_issued_key_is_shown_once_and_works(client: TestClient, store: Store,
                                               recorder: Recorder,
                                               research: dict[str, Any]) -> None:
    body = issue(client)
    assert set(body) == {"id", "key", "application_id", "prefix", "created_at", "audit_id"}
    assert looks_like_key(body["key"])
    assert body["prefix"] == body["key"][:11]
    assert body["application_id"] == "acme-research"
    assert body["id"].startswith("key_")
    found = registry.load_registry(store.engine).identify(hash_key(body["key"]))
    assert found is not None and found[1].id == "acme-research"
    action, details = recorder.audits[-1]
    assert action == "key.issue"
    assert details["key_id"] == body["id"]
    assert body["key"] not in json.dumps(recorder.events)


def test_listing_never_shows_a_key(client: TestClient, research: dict[str, Any]) -> None:
    first, second = issue(client), issue(client)
    response = client.get(KEYS, headers=AUDITOR)
    assert response.status_code == 200
    listed = response.json()["data"]
    assert {k["id"] for k in listed} == {first["id"], second["id"]}
    assert all(set(k) == {"id", "application_id", "prefix", "created_at", "revoked_at"}
               for k in listed)
    assert first["key"] not in response.text and second["key"] not in response.text


def test_keys_of_an_unknown_application_are_404(client: TestClient) -> None:
    for response in (client.post("/admin/v1/applications/ghost/keys", headers=OPERATOR),
                     client.get("/admin/v1/applications/ghost/keys", headers=OPERATOR)):
        assert response.status_code == 404
        assert error_of(response)["message"] == "no application with id 'ghost'"


def test_revoking_takes_the_key_out_of_the_snapshot(client: TestClient, store: Store,
                                                    recorder: Recorder,
                                                    research: dict[str, Any]) -> None:
    body = issue(client)
    version = store.state_version()
    response = client.delete(f"/admin/v1/keys/{body['id']}", headers=OPERATOR)
    assert response.status_code == 200
    revoked = response.json()
    assert revoked["revoked_at"] is not None and revoked["audit_id"] is not None
    assert "key" not in revoked
    assert store.state_version() == version + 1
    assert registry.load_registry(store.engine).identify(hash_key(body["key"])) is None
    assert recorder.audits[-1][0] == "key.revoke"
    listed = client.get(KEYS, headers=OPERATOR).json()["data"]
    assert listed[0]["revoked_at"] == revoked["revoked_at"]


def test_revoking_again_answers_the_same_and_changes_nothing(client: TestClient,
                                                             store: Store,
                                                             recorder: Recorder,
                                                             research: dict[str, Any]) -> None:
    body = issue(client)
    first = client.delete(f"/admin/v1/keys/{body['id']}", headers=OPERATOR).json()
    before = (store.state_version(), len(recorder.events))
    again = client.delete(f"/admin/v1/keys/{body['id']}", headers=OPERATOR)
    assert again.status_code == 200
    assert again.json() == {**first, "audit_id": None}
    assert (store.state_version(), len(recorder.events)) == before


def test_revoking_an_unknown_key_is_404(client: TestClient) -> None:
    response = client.delete("/admin/v1/keys/key_0123456789abcdef", headers=OPERATOR)
    assert response.status_code == 404
    assert error_of(response) == {"type": "not_found_error", "code": "not_found",
                                  "message": "no key with id 'key_0123456789abcdef'",
                                  "param": None}
