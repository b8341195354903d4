"""`/admin/v1/applications`: registration with the policy's tier, and every error."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.store import Store, registry
from tests.admin.admin_support import AUDITOR, OPERATOR, Recorder, error_of

URL = "/admin/v1/applications"


def valid(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"participant_id": "acme", "name": "Scoring",
                            "use_cases": ["finance.credit_scoring"]}
    body.update(overrides)
    return body


def test_registering_answers_the_application_with_its_tier(
        client: TestClient, store: Store, recorder: Recorder, acme: dict[str, Any]) -> None:
    response = client.post(URL, headers=OPERATOR, json=valid(
        data_categories=["person_name", "financial"], data_origin="CN",
        model_preference=["qwen-local", "glm-5.2"], transfer_mechanisms=["gba_standard_contract"]))
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": "scoring", "participant_id": "acme", "name": "Scoring",
        "use_cases": ["finance.credit_scoring"], "data_categories": ["person_name", "financial"],
        "data_origin": "CN", "model_preference": ["qwen-local", "glm-5.2"],
        "transfer_mechanisms": ["gba_standard_contract"], "status": "active", "tier": "high",
        "classification": {"tier": "high", "rule": "hk.high.credit",
                           "citation": "EU AI Act Annex III 5(b)", "reason": "credit scoring"},
        "created_at": body["created_at"], "updated_at": body["updated_at"],
        "audit_id": "aud_0002"}
    action, details = recorder.audits[-1]
    assert action == "application.register"
    assert details["application"]["tier"] == "high"
    assert store.state_version() == 2
    assert registry.load_registry(store.engine).applications["scoring"].data_origin == "CN"


def test_the_seed_spelling_participant_is_accepted(client: TestClient,
                                                   acme: dict[str, Any]) -> None:
    body = valid(id="seedlike")
    body["participant"] = body.pop("participant_id")
    response = client.post(URL, headers=OPERATOR, json=body)
    assert response.status_code == 201
    assert response.json()["participant_id"] == "acme"


def test_without_a_policy_the_tier_is_null(store: Store, recorder: Recorder,
                                           client: TestClient, acme: dict[str, Any]) -> None:
    client.app.state.services.classify = lambda app: None  # type: ignore[attr-defined]
    response = client.post(URL, headers=OPERATOR, json=valid())
    assert (response.json()["tier"], response.json()["classification"]) == (None, None)


def test_an_unknown_participant_is_400_naming_participant_id(client: TestClient,
                                                             recorder: Recorder) -> None:
    response = client.post(URL, headers=OPERATOR, json=valid(participant_id="ghost"))
    assert response.status_code == 400
    assert error_of(response) == {"type": "invalid_request_error", "code": "invalid_request",
                                  "message": "participant_id: no participant with id 'ghost'",
                                  "param": "participant_id"}
    assert recorder.events == []


def test_a_duplicate_id_is_409(client: TestClient, research: dict[str, Any]) -> None:
    response = client.post(URL, headers=OPERATOR, json=valid(id="acme-research"))
    assert response.status_code == 409
    assert error_of(response)["message"] == \
        "an application with id 'acme-research' already exists"


@pytest.mark.parametrize(("overrides", "param", "message"), [
    ({"use_cases": ["mind_reading"]}, "use_cases",
     "use_cases[0]: 'mind_reading' is not a known use case; known: research.b2b"),
    ({"use_cases": []}, "use_cases", "use_cases: must list at least 1 entry"),
    ({"use_cases": ["research.b2b", "research.b2b"]}, "use_cases",
     "use_cases: lists 'research.b2b' twice"),
    ({"use_cases": "research.b2b"}, "use_cases", "use_cases: input should be a valid list"),
    ({"data_categories": ["shoe_size"]}, "data_categories",
     "data_categories[0]: 'shoe_size' is not a known data category"),
    ({"data_origin": "cn"}, "data_origin", "data_origin: 'cn' is not an ISO 3166-1 alpha-2 "
     "code (write it in capitals: CN)"),
    ({"model_preference": ["fable-5", "gpt-9"]}, "model_preference",
     "model_preference[1]: 'gpt-9' is not a known model route; known routes: fable-5, glm-5.2, "
     "mythos-5, qwen-local"),
    ({"model_preference": ["fable-5", "fable-5"]}, "model_preference",
     "model_preference: lists 'fable-5' twice"),
    ({"model_preference": [""]}, "model_preference",
     "model_preference[0]: string should have at least 1 character"),
    ({"transfer_mechanisms": ["handshake"]}, "transfer_mechanisms",
     "transfer_mechanisms[0]: 'handshake' is not a known transfer mechanism"),
    ({"participant_id": None}, "participant_id", "participant_id must not be null"),
    ({"name": ""}, "name", "name: must not be empty"),
    ({"tier": "minimal"}, "tier", "tier is not a field of this request"),
])
def test_an_invalid_application_is_400_naming_the_field(
        client: TestClient, recorder: Recorder, acme: dict[str, Any],
        overrides: dict[str, Any], param: str, message: str) -> None:
    before = len(recorder.events)
    response = client.post(URL, headers=OPERATOR, json=valid(**overrides))
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert error["message"].startswith(message), error["message"]
    assert len(recorder.events) == before


def test_a_missing_field_is_named(client: TestClient, acme: dict[str, Any]) -> None:
    response = client.post(URL, headers=OPERATOR, json={"participant_id": "acme", "name": "X"})
    assert error_of(response)["message"] == "use_cases is required"
    response = client.post(URL, headers=OPERATOR, json={"name": "X", "use_cases": ["translation"]})
    assert error_of(response)["message"] == "participant_id is required"


def test_list_show_and_filter(client: TestClient, research: dict[str, Any]) -> None:
    client.post("/admin/v1/participants", headers=OPERATOR,
                json={"id": "beta", "name": "Beta", "jurisdiction": "SG"})
    client.post(URL, headers=OPERATOR, json=valid(participant_id="beta", id="beta-score"))
    everything = client.get(URL, headers=AUDITOR).json()["data"]
    assert [a["id"] for a in everything] == ["acme-research", "beta-score"]
    assert [a["tier"] for a in everything] == ["minimal", "high"]
    betas = client.get(URL, headers=AUDITOR, params={"participant_id": "beta"}).json()["data"]
    assert [a["id"] for a in betas] == ["beta-score"]
    shown = client.get(f"{URL}/acme-research", headers=AUDITOR)
    assert shown.status_code == 200
    assert shown.json() == {k: v for k, v in research.items() if k != "audit_id"}


def test_filtering_by_an_unknown_participant_is_400(client: TestClient) -> None:
    response = client.get(URL, headers=OPERATOR, params={"participant_id": "ghost"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "participant_id"
    assert error_of(response)["message"] == "participant_id: no participant with id 'ghost'"


def test_show_unknown_is_404(client: TestClient) -> None:
    response = client.get(f"{URL}/nothing", headers=OPERATOR)
    assert response.status_code == 404
    assert error_of(response)["message"] == "no application with id 'nothing'"


def test_a_patch_changes_declarations_and_the_tier(client: TestClient, store: Store,
                                                  recorder: Recorder,
                                                  research: dict[str, Any]) -> None:
    response = client.patch(f"{URL}/acme-research", headers=OPERATOR, json={
        "use_cases": ["finance.credit_scoring"], "model_preference": ["qwen-local"],
        "data_origin": None, "status": "suspended"})
    assert response.status_code == 200
    body = response.json()
    assert (body["tier"], body["model_preference"], body["data_origin"], body["status"]) == (
        "high", ["qwen-local"], None, "suspended")
    action, details = recorder.audits[-1]
    assert action == "application.update"
    assert details["changes"]["use_cases"] == {"from": ["research.b2b"],
                                               "to": ["finance.credit_scoring"]}
    assert details["changes"]["data_origin"] == {"from": "HK", "to": None}
    assert details["tier"] == "high"
    stored = registry.load_registry(store.engine).applications["acme-research"]
    assert stored.model_preference == ("qwen-local",)


def test_a_patch_that_changes_nothing_is_not_a_change(client: TestClient, store: Store,
                                                      recorder: Recorder,
                                                      research: dict[str, Any]) -> None:
    before = (store.state_version(), len(recorder.events))
    response = client.patch(f"{URL}/acme-research", headers=OPERATOR,
                            json={"model_preference": ["fable-5", "glm-5.2"], "data_origin": "HK"})
    assert response.status_code == 200
    assert response.json()["audit_id"] is None
    assert response.json()["tier"] == "minimal"
    assert (store.state_version(), len(recorder.events)) == before


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"participant_id": "beta"}, "participant_id", "participant_id is not a field"),
    ({"model_preference": ["gpt-9"]}, "model_preference", "model_preference[0]: 'gpt-9'"),
    ({"use_cases": None}, "use_cases", "use_cases must not be null"),
    ({"status": "paused"}, "status", "status: must be one of active, suspended"),
])
def test_an_invalid_patch_is_400(client: TestClient, research: dict[str, Any],
                                 body: dict[str, Any], param: str, message: str) -> None:
    response = client.patch(f"{URL}/acme-research", headers=OPERATOR, json=body)
    assert response.status_code == 400
    assert error_of(response)["param"] == param
    assert error_of(response)["message"].startswith(message)


def test_patching_an_unknown_application_is_404(client: TestClient) -> None:
    response = client.patch(f"{URL}/nothing", headers=OPERATOR, json={"name": "X"})
    assert response.status_code == 404
    assert error_of(response)["message"] == "no application with id 'nothing'"
