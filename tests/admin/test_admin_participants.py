"""`/admin/v1/participants`: every endpoint and every error a caller can meet."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.store import Store, registry
from tests.admin.admin_support import AUDITOR, OPERATOR, Recorder, error_of

URL = "/admin/v1/participants"


def test_admitting_answers_the_participant_and_its_audit_id(
        client: TestClient, store: Store, recorder: Recorder) -> None:
    response = client.post(URL, headers=OPERATOR,
                           json={"name": "Acme Research", "jurisdiction": "HK"})
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": "acme-research", "name": "Acme Research", "jurisdiction": "HK",
                    "status": "admitted", "screening": "clear", "created_at": body["created_at"],
                    "updated_at": body["created_at"], "audit_id": "aud_0001"}
    # audited in the change's own transaction (version bumped), then the runtime reloaded
    assert store.state_version() == 1
    assert [e[0] for e in recorder.events] == ["audit", "change"]
    action, details = recorder.audits[0]
    assert action == "participant.admit"
    assert details["participant"]["id"] == "acme-research"
    assert details["actor"]["role"] == "operator"


def test_an_explicit_id_is_kept(client: TestClient) -> None:
    response = client.post(URL, headers=OPERATOR,
                           json={"id": "ACME.hk", "name": "Acme", "jurisdiction": "HK",
                                 "screening": "pending"})
    assert response.status_code == 201
    assert (response.json()["id"], response.json()["screening"]) == ("ACME.hk", "pending")


def test_a_duplicate_id_is_409(client: TestClient, acme: dict[str, Any],
                               recorder: Recorder) -> None:
    before = len(recorder.events)
    response = client.post(URL, headers=OPERATOR,
                           json={"id": "acme", "name": "Again", "jurisdiction": "HK"})
    assert response.status_code == 409
    assert error_of(response) == {"type": "conflict_error", "code": "conflict",
                                  "message": "a participant with id 'acme' already exists",
                                  "param": "id"}
    assert len(recorder.events) == before


def test_a_second_participant_of_the_same_name_gets_its_own_id(client: TestClient) -> None:
    first = client.post(URL, headers=OPERATOR, json={"name": "Acme", "jurisdiction": "HK"})
    second = client.post(URL, headers=OPERATOR, json={"name": "Acme", "jurisdiction": "SG"})
    assert second.status_code == 201
    assert first.json()["id"] == "acme"
    assert second.json()["id"].startswith("acme-")


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"name": "A", "jurisdiction": "hk"}, "jurisdiction",
     "jurisdiction: 'hk' is not an ISO 3166-1 alpha-2 code (write it in capitals: HK)"),
    ({"name": "A", "jurisdiction": "HKG"}, "jurisdiction",
     "jurisdiction: 'HKG' is not an ISO 3166-1 alpha-2 code"),
    ({"name": "A", "jurisdiction": "ZZ"}, "jurisdiction",
     "jurisdiction: 'ZZ' is not an ISO 3166-1 alpha-2 code"),
    ({"name": "A", "jurisdiction": "UK"}, "jurisdiction",
     "jurisdiction: 'UK' is not an ISO 3166-1 alpha-2 code (use GB)"),
    ({"name": "A"}, "jurisdiction", "jurisdiction is required"),
    ({"jurisdiction": "HK"}, "name", "name is required"),
    ({"name": "   ", "jurisdiction": "HK"}, "name", "name: must not be empty"),
    ({"name": "A" * 201, "jurisdiction": "HK"}, "name", "name: must be at most 200 characters"),
    ({"name": None, "jurisdiction": "HK"}, "name", "name must not be null"),
    ({"name": 7, "jurisdiction": "HK"}, "name", "name: input should be a valid string"),
    ({"name": "A", "jurisdiction": "HK", "id": "has space"}, "id",
     "id: must be 1-64 letters, digits, '.', '_' or '-'"),
    ({"name": "A", "jurisdiction": "HK", "id": "-lead"}, "id", "id: must be 1-64"),
    ({"name": "A", "jurisdiction": "HK", "screening": "fine"}, "screening",
     "screening: must be one of clear, pending, match, listed, not 'fine'"),
    ({"name": "A", "jurisdiction": "HK", "jurisdicton": "HK"}, "jurisdicton",
     "jurisdicton is not a field of this request; check the spelling"),
    ({"name": "A", "jurisdiction": "HK", "status": "suspended"}, "status",
     "status is not a field of this request"),
])
def test_an_invalid_participant_is_400_naming_the_field(client: TestClient,
                                                        recorder: Recorder,
                                                        body: dict[str, Any], param: str,
                                                        message: str) -> None:
    response = client.post(URL, headers=OPERATOR, json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "invalid_request", param)
    assert error["message"].startswith(message), error["message"]
    assert recorder.events == []


@pytest.mark.parametrize(("content", "message"), [
    (b"{\"name\": \"A\",", "the body is not valid JSON ("),
    (b"", "the request needs a JSON object body"),
    (b"[1, 2]", "the body must be a JSON object, not an array"),
    (b"\"text\"", "the body must be a JSON object, not a string"),
])
def test_a_malformed_body_is_400_saying_what_is_wrong(client: TestClient, content: bytes,
                                                      message: str) -> None:
    response = client.post(URL, content=content,
                           headers={**OPERATOR, "content-type": "application/json"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(message), error["message"]


def test_list_and_show(client: TestClient, acme: dict[str, Any]) -> None:
    client.post(URL, headers=OPERATOR, json={"id": "beta", "name": "Beta", "jurisdiction": "SG"})
    listed = client.get(URL, headers=AUDITOR)
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["data"]] == ["acme", "beta"]
    assert "audit_id" not in listed.json()["data"][0]
    shown = client.get(f"{URL}/acme", headers=AUDITOR)
    assert shown.json() == {k: v for k, v in acme.items() if k != "audit_id"}


def test_show_unknown_is_404(client: TestClient) -> None:
    response = client.get(f"{URL}/nobody", headers=OPERATOR)
    assert response.status_code == 404
    assert error_of(response) == {"type": "not_found_error", "code": "not_found",
                                  "message": "no participant with id 'nobody'", "param": None}


def test_suspending_is_audited_with_before_and_after(client: TestClient, store: Store,
                                                     recorder: Recorder,
                                                     acme: dict[str, Any]) -> None:
    response = client.patch(f"{URL}/acme", headers=OPERATOR, json={"status": "suspended"})
    assert response.status_code == 200
    assert response.json()["status"] == "suspended"
    assert response.json()["audit_id"] == "aud_0002"
    action, details = recorder.audits[-1]
    assert action == "participant.update"
    assert details["changes"] == {"status": {"from": "admitted", "to": "suspended"}}
    assert store.state_version() == 2
    filtered = client.get(URL, headers=OPERATOR, params={"status": "suspended"})
    assert [p["id"] for p in filtered.json()["data"]] == ["acme"]
    assert client.get(URL, headers=OPERATOR, params={"status": "admitted"}).json() == {
        "data": []}


def test_suspension_keeps_the_applications(client: TestClient, store: Store,
                                           research: dict[str, Any]) -> None:
    client.patch(f"{URL}/acme", headers=OPERATOR, json={"status": "suspended"})
    assert client.get("/admin/v1/applications/acme-research",
                      headers=OPERATOR).status_code == 200
    snapshot = registry.load_registry(store.engine)
    assert snapshot.participants["acme"].status == "suspended"
    assert "acme-research" in snapshot.applications


def test_renaming_and_readmitting(client: TestClient, acme: dict[str, Any]) -> None:
    client.patch(f"{URL}/acme", headers=OPERATOR, json={"status": "suspended"})
    response = client.patch(f"{URL}/acme", headers=OPERATOR,
                            json={"status": "admitted", "name": "Acme Ltd",
                                  "screening": "match", "jurisdiction": "SG"})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["name"], body["screening"], body["jurisdiction"]) == (
        "admitted", "Acme Ltd", "match", "SG")


def test_a_patch_that_changes_nothing_is_not_a_change(client: TestClient, store: Store,
                                                      recorder: Recorder,
                                                      acme: dict[str, Any]) -> None:
    before = (store.state_version(), len(recorder.events))
    for body in ({}, {"status": "admitted"}, {"name": "Acme Research"}):
        response = client.patch(f"{URL}/acme", headers=OPERATOR, json=body)
        assert response.status_code == 200
        assert response.json()["audit_id"] is None
    assert (store.state_version(), len(recorder.events)) == before


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"status": "banned"}, "status",
     "status: must be one of admitted, suspended, not 'banned'"),
    ({"status": None}, "status", "status must not be null"),
    ({"name": ""}, "name", "name: must not be empty"),
    ({"id": "other"}, "id", "id is not a field of this request"),
    ({"jurisdiction": "Hong Kong"}, "jurisdiction",
     "jurisdiction: 'Hong Kong' is not an ISO 3166-1"),
])
def test_an_invalid_patch_is_400(client: TestClient, acme: dict[str, Any],
                                 body: dict[str, Any], param: str, message: str) -> None:
    response = client.patch(f"{URL}/acme", headers=OPERATOR, json=body)
    assert response.status_code == 400
    assert error_of(response)["param"] == param
    assert error_of(response)["message"].startswith(message)


def test_patching_an_unknown_participant_is_404(client: TestClient) -> None:
    response = client.patch(f"{URL}/nobody", headers=OPERATOR, json={"status": "suspended"})
    assert response.status_code == 404
    assert error_of(response)["message"] == "no participant with id 'nobody'"


def test_an_invalid_list_filter_is_400(client: TestClient) -> None:
    response = client.get(URL, headers=OPERATOR, params={"status": "gone"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "status"
    assert "must be one of admitted, suspended" in error_of(response)["message"]


def test_unknown_paths_and_methods_answer_in_the_error_shape(client: TestClient) -> None:
    missing = client.get("/admin/v1/nothing", headers=OPERATOR)
    assert missing.status_code == 404
    assert error_of(missing) == {"type": "not_found_error", "code": "not_found",
                                 "message": "no such endpoint: GET /admin/v1/nothing",
                                 "param": None}
    wrong = client.put(URL, headers=OPERATOR, json={})
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"] and "POST" in wrong.headers["allow"]


def test_a_failing_runtime_hook_is_a_500_in_the_error_shape(client: TestClient,
                                                            recorder: Recorder) -> None:
    def broken(_action: str, _details: dict[str, Any]) -> str:
        raise RuntimeError("audit log unavailable")

    client.app.state.services.audit = broken  # type: ignore[attr-defined]
    response = client.post(URL, headers=OPERATOR, json={"name": "A", "jurisdiction": "HK"})
    assert response.status_code == 500
    assert error_of(response) == {
        "type": "api_error", "code": "internal_error",
        "message": "the admin API failed unexpectedly; the server log has details",
        "param": None}
