"""`/admin/v1/policy` and `/admin/v1/policy/explain` on the shipped packs; the tier of an
application from the real policy; approvals refused as the policy module refuses them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.runtime import Runtime, application_facts
from harbourgate.store import Store
from tests.admin.admin_support import AUDITOR, JUNE, OPERATOR, Recorder, context, error_of

POLICY = "/admin/v1/policy"
EXPLAIN = "/admin/v1/policy/explain"


def test_the_policy_in_force_with_its_header_and_directives(live: TestClient,
                                                           runtime: Runtime) -> None:
    before = live.get(POLICY, headers=AUDITOR)
    assert before.status_code == 200
    body = before.json()
    assert body["header"] == runtime.snapshot.policy_header
    assert body["version"]["header"] == body["header"]
    packs = [f["bundle"] for f in body["bundle"]["files"]]
    assert packs == ["hk-sandbox", "eu-ai-act", "cross-border", "export-directives"]
    rule = next(r for f in body["bundle"]["files"] for r in f["rules"]
                if r["id"] == "export.screening.listed-party")
    assert rule["citation"] == "EAR deemed export, 15 CFR 734.13(a)(2), (b)"
    assert body["directives"] == []

    issued = live.post("/admin/v1/directives", headers=OPERATOR, json=JUNE).json()
    after = live.get(POLICY, headers=AUDITOR).json()
    assert after["header"] == f"{body['header']}; directives={issued['id']}"
    [directive] = after["directives"]
    assert directive["id"] == issued["id"]
    assert directive["issued_at"] == issued["issued_at"]
    assert directive["in_force"] is True


def test_explain_names_the_directive_that_refuses(live: TestClient) -> None:
    issued = live.post("/admin/v1/directives", headers=OPERATOR, json=JUNE).json()
    response = live.post(EXPLAIN, headers=AUDITOR,
                         json=context(nationality=["HK"], time="2026-07-01T00:00:00Z"))
    assert response.status_code == 200, response.text
    body = response.json()
    decision = body["decision"]
    assert (decision["effect"], decision["code"], decision["status"]) == (
        "deny", "legal_restriction", 451)
    assert decision["rule"] == f"directive:{issued['id']}"
    assert decision["citation"] == "Order to Anthropic of 2026-06-12"
    assert decision["model_dependent"] is True
    fired = [r["rule"] for r in body["rules"] if r["fired"]]
    assert f"directive:{issued['id']}" in fired
    assert body["tier"]["tier"] == "minimal"
    # a US national is inside the directive: allowed
    us = live.post(EXPLAIN, headers=AUDITOR,
                   json=context(nationality=["US", "HK"], time="2026-07-01T00:00:00Z"))
    assert us.json()["decision"]["effect"] == "allow"


def test_explain_with_an_invalid_context_names_every_problem(live: TestClient) -> None:
    bad = context()
    bad["application"]["use_cases"] = ["research.b2c"]
    bad["end_user"]["verified"] = "yes"
    del bad["request"]["time"]
    response = live.post(EXPLAIN, headers=AUDITOR, json=bad)
    assert response.status_code == 400
    assert error_of(response) == {
        "type": "invalid_request_error", "code": "invalid_request", "param": "context",
        "message": "the context is invalid: application.use_cases[0]: unknown use case "
                   "'research.b2c'; did you mean research.b2b?; end_user.verified must be "
                   "true or false, not a string (fix: write verified: true); request.time is "
                   "required: decisions never read the wall clock (fix: add time: "
                   "2026-06-12T10:00:00Z)"}


def test_explain_takes_a_json_object(live: TestClient) -> None:
    response = live.post(EXPLAIN, headers=AUDITOR, json=["not", "a", "context"])
    assert response.status_code == 400
    assert error_of(response)["message"] == "the body must be a JSON object, not an array"


def test_without_a_runtime_the_policy_endpoints_answer_503(client: TestClient) -> None:
    for method, path, body in (("get", POLICY, None), ("post", EXPLAIN, context()),
                               ("post", "/admin/v1/directives/simulate",
                                {"directive": JUNE, "since": "2026-06-01"})):
        response = client.request(method, path, headers=AUDITOR, json=body)
        assert response.status_code == 503, path
        assert error_of(response) == {
            "type": "api_error", "code": "policy_unavailable", "param": None,
            "message": "no policy is loaded in this process; the policy, explain and "
                       "simulate endpoints need a running gateway"}


def test_the_policy_needs_a_token(live: TestClient) -> None:
    assert live.get(POLICY).status_code == 401
    assert live.post(EXPLAIN, json=context()).status_code == 401


# --- the tier of an application, from the shipped packs ----------------------------------------

@pytest.mark.parametrize(("use_cases", "tier", "rule"), [
    (["research.b2b"], "minimal", "hk.tier.minimal.b2b-research"),
    (["finance.credit_scoring"], "high", None),
    (["social_scoring"], "prohibited", None),
])
def test_registration_answers_the_tier_of_the_real_policy(
        live: TestClient, runtime: Runtime, sandbox: Callable[..., dict[str, Any]],
        use_cases: list[str], tier: str, rule: str | None) -> None:
    body = sandbox("app-1", use_cases=tuple(use_cases))
    assert body["tier"] == tier
    classification = body["classification"]
    assert classification["tier"] == tier
    assert classification["citation"]  # every tier rule cites its basis
    app = runtime.snapshot.registry.applications["app-1"]
    expected = runtime.snapshot.policy.classify(
        application_facts(app, runtime.snapshot.registry))
    assert classification["rule"] == expected.rule
    if rule is not None:
        assert classification["rule"] == rule
    listed = live.get("/admin/v1/applications/app-1", headers=AUDITOR).json()
    assert listed["tier"] == tier


def test_an_approval_that_has_already_expired_is_refused_precisely(
        live: TestClient, store: Store, sandbox: Callable[..., dict[str, Any]]) -> None:
    sandbox("credit", use_cases=("finance.credit_scoring",))
    version = store.state_version()
    response = live.post("/admin/v1/applications/credit/approvals", headers=OPERATOR,
                         json={"approver": "Sandbox committee",
                               "expires_at": "2026-01-01T08:00:00+08:00"})
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["param"]) == ("invalid_request", "expires_at")
    assert re.fullmatch(
        r"expires_at 2026-01-01T00:00:00Z is not in the future \(now "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\): the approval would never be valid "
        r"\(fix: give a future expiry\)", error["message"]), error["message"]
    assert store.state_version() == version
    valid = live.post("/admin/v1/applications/credit/approvals", headers=OPERATOR,
                      json={"approver": "  Sandbox committee ", "conditions": " review ",
                            "expires_at": "2099-01-01T00:00:00Z"})
    assert valid.status_code == 201
    assert (valid.json()["approver"], valid.json()["conditions"]) == (
        "Sandbox committee", "review")


def test_the_recording_fakes_still_classify(client: TestClient, recorder: Recorder,
                                            research: dict[str, Any]) -> None:
    """The fake services of the other tests keep working without a runtime."""
    assert research["tier"] == "minimal"
    assert recorder.reloads >= 2
