"""`POST /admin/v1/directives/simulate`: a proposal against the recorded traffic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.audit.log import AuditLog
from harbourgate.store import Store
from tests.admin.admin_support import AUDITOR, JUNE, OPERATOR, error_of, request_record

SIMULATE = "/admin/v1/directives/simulate"


@pytest.fixture
def traffic(sandbox: Callable[..., dict[str, Any]], audit_log: AuditLog) -> None:
    sandbox("acme-research")
    sandbox("beta-us-only", participant="beta", preference=["fable-5", "mythos-5"])
    for record in (
        request_record(nationality=["HK"], time="2026-06-01T09:00:00Z"),
        request_record(nationality=["US"], time="2026-06-01T09:00:00Z"),
        request_record(application="beta-us-only", participant="beta", nationality=["HK"],
                       time="2026-06-01T09:00:00Z"),
    ):
        audit_log.append_sync(record)


def test_an_auditor_simulates_against_recorded_traffic(live: TestClient, store: Store,
                                                       traffic: None) -> None:
    version = store.state_version()
    response = live.post(SIMULATE, headers=AUDITOR,
                         json={"directive": JUNE, "since": "2000-01-01"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["since"] == "2000-01-01T00:00:00Z"
    assert body["totals"] == {"records": 3, "replayed": 3, "skipped": 0, "unaffected": 1,
                              "already_refused": 0, "affected": 2, "rerouted": 1,
                              "no_permitted_model": 1}
    assert body["reroutes"] == [{"application": "acme-research", "participant": "acme",
                                 "from": "fable-5", "to": "glm-5.2", "requests": 1}]
    [refused] = body["no_permitted_model"]
    assert (refused["application"], refused["citation"]) == (
        "beta-us-only", "Order to Anthropic of 2026-06-12")
    # nothing was issued: simulation changes nothing
    assert store.state_version() == version
    assert live.get("/admin/v1/directives", headers=OPERATOR).json()["data"] == []


def test_since_limits_the_traffic(live: TestClient, traffic: None) -> None:
    body = live.post(SIMULATE, headers=AUDITOR,
                     json={"directive": JUNE, "since": "2999-01-01T00:00:00Z"}).json()
    assert body["totals"]["records"] == 0
    assert body["affected"] == [] and body["window"] == {"first": None, "last": None}


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"directive": JUNE}, "since", "since is required"),
    ({"since": "2026-06-01"}, "directive", "directive is required"),
    ({"directive": JUNE, "since": "last week"}, "since",
     "since: 'last week' is not an ISO-8601 time such as 2026-06-12T00:00:00Z"),
    ({"directive": {**JUNE, "models": ["gpt-9"]}, "since": "2026-06-01"}, "directive.models",
     "the directive is invalid: models: unknown model 'gpt-9' (fix: use a route name: "
     "embed-small, fable-5, glm-5.2, mythos-5, qwen-local)"),
    ({"directive": {**JUNE, "permit_only": {}}, "since": "2026-06-01"},
     "directive.permit_only",
     "the directive is invalid: permit_only is empty: it would cut everyone off without "
     "saying whom it permits (fix: write `permit_only: {nationality: [US]}` (or residence: "
     "[...]))"),
    ({"directive": JUNE, "since": "2026-06-01", "until": "2026-07-01"}, "until",
     "until is not a field of this request; check the spelling"),
])
def test_a_bad_request_is_400(live: TestClient, body: dict[str, Any], param: str,
                              message: str) -> None:
    response = live.post(SIMULATE, headers=AUDITOR, json=body)
    assert response.status_code == 400
    assert error_of(response) == {"type": "invalid_request_error", "code": "invalid_request",
                                  "param": param, "message": message}


def test_proposing_a_directive_in_force_is_400(live: TestClient) -> None:
    live.post("/admin/v1/directives", headers=OPERATOR, json={**JUNE, "id": "us-doc"})
    response = live.post(SIMULATE, headers=AUDITOR,
                         json={"directive": {**JUNE, "id": "us-doc"}, "since": "2026-06-01"})
    assert response.status_code == 400
    assert error_of(response)["message"] == (
        "the proposed directive cannot be simulated: directive us-doc is already in force "
        "(fix: simulate a proposal with another id (or none), or revoke the one in force)")


def test_simulation_needs_a_token(live: TestClient) -> None:
    response = live.post(SIMULATE, json={"directive": JUNE, "since": "2026-06-01"})
    assert response.status_code == 401
