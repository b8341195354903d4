"""`/admin/v1/directives`: issue, list, show, revoke, on a real runtime and audit log."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.audit.log import AuditLog
from harbourgate.runtime import Runtime
from harbourgate.store import Store
from tests.admin.admin_support import AUDITOR, JUNE, OPERATOR, error_of

DIRECTIVES = "/admin/v1/directives"


def issue(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = client.post(DIRECTIVES, headers=OPERATOR, json={**JUNE, **changes})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_issuing_stores_audits_and_applies_it_at_once(live: TestClient, store: Store,
                                                       runtime: Runtime,
                                                       audit_log: AuditLog) -> None:
    version = store.state_version()
    body = issue(live, notes="received by fax at 23:10")
    assert body["id"].startswith("dir_")
    assert {k: body[k] for k in JUNE} == JUNE
    assert body["notes"] == "received by fax at 23:10"  # more keys are kept
    assert body["status"] == "issued" and body["revoked_at"] is None
    assert body["in_force"] is True  # effective since 2026-06-12, before today
    assert body["issued_at"].endswith("Z")
    assert store.state_version() == version + 1
    # the runtime reloaded: the directive is compiled into the policy in force
    assert [d.id for d in runtime.snapshot.directives] == [body["id"]]
    assert runtime.snapshot.policy_header.endswith(f"; directives={body['id']}")
    # and the action is an audit entry whose id the answer carries
    entry = audit_log.entry(body["audit_id"]).record
    assert entry["action"] == "directive.issue"
    assert entry["directive"]["id"] == body["id"]
    assert entry["actor"]["role"] == "operator"


def test_an_id_in_the_document_is_kept_and_a_second_use_conflicts(live: TestClient) -> None:
    body = issue(live, id="us-doc-2026-06-12")
    assert body["id"] == "us-doc-2026-06-12"
    again = live.post(DIRECTIVES, headers=OPERATOR, json={**JUNE, "id": "us-doc-2026-06-12"})
    assert again.status_code == 409
    assert error_of(again) == {
        "type": "conflict_error", "code": "conflict", "param": "id",
        "message": "a directive with id 'us-doc-2026-06-12' already exists"}


def test_a_future_directive_is_issued_but_not_yet_in_force(live: TestClient) -> None:
    body = issue(live, effective_from="2099-01-01T00:00:00Z")
    assert (body["status"], body["in_force"]) == ("issued", False)


@pytest.mark.parametrize(("changes", "param", "message"), [
    ({"models": ["fable-5", "gpt-9"]}, "models",
     "the directive is invalid: models: unknown model 'gpt-9' (fix: use a route name: "
     "embed-small, fable-5, glm-5.2, mythos-5, qwen-local)"),
    ({"effective_until": "2026-06-11T00:00:00Z"}, "effective_until",
     "the directive is invalid: effective_until 2026-06-11T00:00:00Z is not after "
     "effective_from 2026-06-12T00:00:00Z (fix: a directive must be in force for some time: "
     "fix one of the dates)"),
    ({"permit_only": {}}, "permit_only",
     "the directive is invalid: permit_only is empty: it would cut everyone off without "
     "saying whom it permits (fix: write `permit_only: {nationality: [US]}` (or residence: "
     "[...]))"),
    ({"permit_only": {"nationality": ["usa"]}}, "permit_only",
     "the directive is invalid: permit_only.nationality: 'usa' is not an ISO 3166-1 alpha-2 "
     "code (fix: use two capital letters, e.g. US, HK)"),
    ({"effective_from": "2026-06-12 00:00"}, "effective_from",
     "the directive is invalid: effective_from: 2026-06-12 00:00 has no time zone; add Z for "
     "UTC (e.g. 2026-06-12T00:00:00Z)"),
    ({"id": "x" * 65}, "id", "id: at most 64 characters, not 65"),
])
def test_an_invalid_directive_is_400_and_names_the_problem(
        live: TestClient, store: Store, changes: dict[str, Any], param: str,
        message: str) -> None:
    version = store.state_version()
    response = live.post(DIRECTIVES, headers=OPERATOR, json={**JUNE, **changes})
    assert response.status_code == 400
    assert error_of(response) == {"type": "invalid_request_error", "code": "invalid_request",
                                  "param": param, "message": message}
    assert store.state_version() == version  # nothing stored


def test_every_problem_is_named_in_one_answer(live: TestClient) -> None:
    response = live.post(DIRECTIVES, headers=OPERATOR, json={
        "authority": "", "models": ["gpt-9"], "permit_only": {"nationality": ["US"]}})
    error = error_of(response)
    assert response.status_code == 400
    assert error["param"] == "authority"
    assert error["message"] == (
        "the directive is invalid: authority must be non-empty text (fix: write who issued it, "
        "e.g. `authority: US Department of Commerce`); citation is required (fix: add its "
        "source, e.g. `citation: \"Order to Anthropic of 2026-06-12\"`); title is required "
        "(fix: add a short title, e.g. `title: Frontier models for US nationals only`); "
        "models: unknown model 'gpt-9' (fix: use a route name: embed-small, fable-5, glm-5.2, "
        "mythos-5, qwen-local)")


@pytest.mark.parametrize(("body", "message"), [
    ([JUNE], "the body must be a JSON object, not an array"),
    (None, "the request needs a JSON object body"),
])
def test_a_body_that_is_not_a_document_is_400(live: TestClient, body: Any,
                                             message: str) -> None:
    response = live.post(DIRECTIVES, headers=OPERATOR, json=body)
    assert response.status_code == 400
    assert error_of(response)["message"] == message


def test_only_operators_issue_and_revoke(live: TestClient) -> None:
    denied = live.post(DIRECTIVES, headers=AUDITOR, json=JUNE)
    assert denied.status_code == 403
    assert error_of(denied)["message"] == ("the auditor role may not do this; it needs an "
                                           "operator token")
    assert live.post(DIRECTIVES, json=JUNE).status_code == 401
    body = issue(live)
    assert live.delete(f"{DIRECTIVES}/{body['id']}", headers=AUDITOR).status_code == 403
    assert live.get(DIRECTIVES, headers=AUDITOR).status_code == 200
    assert live.get(f"{DIRECTIVES}/{body['id']}", headers=AUDITOR).status_code == 200


def test_revoking_lifts_it_at_once_and_twice_is_idempotent(live: TestClient, store: Store,
                                                            runtime: Runtime,
                                                            audit_log: AuditLog) -> None:
    body = issue(live)
    first = live.delete(f"{DIRECTIVES}/{body['id']}", headers=OPERATOR)
    assert first.status_code == 200
    revoked = first.json()
    assert (revoked["status"], revoked["in_force"]) == ("revoked", False)
    assert revoked["revoked_at"] is not None
    assert runtime.snapshot.directives == ()
    assert "directives=" not in runtime.snapshot.policy_header
    entry = audit_log.entry(revoked["audit_id"]).record
    assert (entry["action"], entry["directive_id"]) == ("directive.revoke", body["id"])
    version = store.state_version()
    again = live.delete(f"{DIRECTIVES}/{body['id']}", headers=OPERATOR)
    assert again.status_code == 200
    assert again.json() == {**revoked, "audit_id": None}
    assert store.state_version() == version


def test_revoking_or_showing_an_unknown_id_is_404(live: TestClient) -> None:
    for method in ("get", "delete"):
        response = live.request(method, f"{DIRECTIVES}/dir_nothing", headers=OPERATOR)
        assert response.status_code == 404
        assert error_of(response) == {"type": "not_found_error", "code": "not_found",
                                      "param": None,
                                      "message": "no directive with id 'dir_nothing'"}


def test_listing_by_status(live: TestClient) -> None:
    first = issue(live, id="first")
    second = issue(live, id="second", models=["mythos-5"])
    live.delete(f"{DIRECTIVES}/first", headers=OPERATOR)

    def ids(query: str) -> list[str]:
        response = live.get(DIRECTIVES + query, headers=AUDITOR)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["data"]]

    assert ids("") == ["first", "second"]  # everything, in issue order
    assert ids("?status=all") == ["first", "second"]
    assert ids("?status=issued") == ["second"]
    assert ids("?status=revoked") == ["first"]
    shown = live.get(f"{DIRECTIVES}/second", headers=AUDITOR).json()
    assert shown == {k: v for k, v in second.items() if k != "audit_id"}
    assert first["audit_id"] is not None
    bad = live.get(DIRECTIVES + "?status=active", headers=AUDITOR)
    assert bad.status_code == 400
    assert error_of(bad) == {"type": "invalid_request_error", "code": "invalid_request",
                             "param": "status",
                             "message": "status: 'active' is not one of issued, revoked, all"}
