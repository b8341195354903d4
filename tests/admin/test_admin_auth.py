"""Admin authentication and roles: who may call what, and what they are told."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from harbourgate.admin import create_admin_app
from harbourgate.admin.auth import AUDITOR as AUDITOR_ROLE
from harbourgate.admin.auth import OPERATOR as OPERATOR_ROLE
from harbourgate.admin.auth import Actor, Operator, Reader, TokenTable, requires
from harbourgate.config import AdminToken
from harbourgate.store import Store
from tests.admin.admin_support import (
    AUDITOR,
    AUDITOR_TOKEN,
    OPERATOR,
    Recorder,
    error_of,
    make_services,
)

WRITES = [
    ("post", "/admin/v1/participants", {"name": "X", "jurisdiction": "HK"}),
    ("patch", "/admin/v1/participants/acme", {"status": "suspended"}),
    ("post", "/admin/v1/applications",
     {"participant_id": "acme", "name": "X", "use_cases": ["research.b2b"]}),
    ("patch", "/admin/v1/applications/acme-research", {"name": "Y"}),
    ("post", "/admin/v1/applications/acme-research/keys", None),
    ("delete", "/admin/v1/keys/key_0000000000000000", None),
    ("post", "/admin/v1/applications/acme-research/approvals",
     {"approver": "C", "expires_at": "2099-01-01T00:00:00Z"}),
    ("delete", "/admin/v1/approvals/apr_0000000000000000", None),
]
READS = [
    "/admin/v1/participants",
    "/admin/v1/participants/acme",
    "/admin/v1/applications",
    "/admin/v1/applications/acme-research",
    "/admin/v1/applications/acme-research/keys",
    "/admin/v1/applications/acme-research/approvals",
]


def call(client: TestClient, method: str, path: str, body: Any,
         headers: dict[str, str]) -> Any:
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_write_without_a_token_is_401(client: TestClient, method: str, path: str,
                                        body: Any) -> None:
    response = call(client, method, path, body, {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_of(response) == {
        "type": "authentication_error", "code": "invalid_admin_token",
        "message": "missing admin token; send Authorization: Bearer TOKEN", "param": None}


@pytest.mark.parametrize("path", READS)
def test_a_read_with_an_unknown_token_is_401(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Authorization": "Bearer " + "x" * 32})
    assert response.status_code == 401
    assert error_of(response)["message"] == "unknown admin token"
    assert error_of(response)["code"] == "invalid_admin_token"


@pytest.mark.parametrize("header", [
    f"Basic {AUDITOR_TOKEN}", AUDITOR_TOKEN, "Bearer", "Bearer ", f"Token {AUDITOR_TOKEN}"])
def test_only_a_bearer_token_counts(client: TestClient, header: str) -> None:
    response = client.get("/admin/v1/participants", headers={"Authorization": header})
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_admin_token"


def test_a_prefix_or_extension_of_a_token_is_not_the_token(client: TestClient) -> None:
    for token in (AUDITOR_TOKEN[:-1], AUDITOR_TOKEN + "a", AUDITOR_TOKEN.upper()):
        response = client.get("/admin/v1/participants",
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_an_auditor_may_not_write(client: TestClient, recorder: Recorder,
                                  research: dict[str, Any], method: str, path: str,
                                  body: Any) -> None:
    before = len(recorder.events)
    response = call(client, method, path, body, AUDITOR)
    assert response.status_code == 403
    assert error_of(response) == {
        "type": "permission_error", "code": "forbidden",
        "message": "the auditor role may not do this; it needs an operator token",
        "param": None}
    assert len(recorder.events) == before


@pytest.mark.parametrize("path", READS)
def test_an_auditor_may_read(client: TestClient, research: dict[str, Any], path: str) -> None:
    assert client.get(path, headers=AUDITOR).status_code == 200


def test_the_scheme_is_case_insensitive(client: TestClient) -> None:
    response = client.get("/admin/v1/participants",
                          headers={"Authorization": f"bearer {AUDITOR_TOKEN}"})
    assert response.status_code == 200


def test_a_malformed_body_from_the_wrong_caller_is_refused_first(client: TestClient) -> None:
    """FastAPI decodes the body before dependencies run; the role check still comes first."""
    bad = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    anonymous = client.post("/admin/v1/participants", **bad)  # type: ignore[arg-type]
    assert anonymous.status_code == 401
    auditor = client.post("/admin/v1/participants", content=b"{not json",
                          headers={**AUDITOR, "content-type": "application/json"})
    assert auditor.status_code == 403
    operator = client.post("/admin/v1/participants", content=b"{not json",
                           headers={**OPERATOR, "content-type": "application/json"})
    assert operator.status_code == 400


def test_an_invalid_body_from_the_wrong_caller_is_refused_first(client: TestClient) -> None:
    response = client.post("/admin/v1/participants", headers=AUDITOR,
                           json={"name": "X", "jurisdiction": "nowhere"})
    assert response.status_code == 403


def test_without_configured_tokens_every_call_says_how_to_enable(store: Store,
                                                                 recorder: Recorder) -> None:
    app = create_admin_app(make_services(store, recorder, tokens=()))
    with TestClient(app) as client:
        for path in ("/admin/v1/participants", "/admin/v1/applications/x"):
            response = client.get(path, headers=OPERATOR)
            assert response.status_code == 401
            error = error_of(response)
            assert error["code"] == "invalid_admin_token"
            assert "set HARBOURGATE_ADMIN_TOKEN" in error["message"]
        response = client.post("/admin/v1/participants", headers=OPERATOR,
                               json={"name": "X", "jurisdiction": "HK"})
        assert response.status_code == 401
        assert "no admin token is configured" in error_of(response)["message"]


def test_a_router_can_open_a_post_to_auditors(store: Store, recorder: Recorder) -> None:
    """Read-only POSTs (simulate, explain) are marked per route with `Reader`."""
    extra = APIRouter()

    @extra.post("/admin/v1/extra/lookup")
    def explain(actor: Reader) -> dict[str, str]:
        return {"role": actor.role}

    @extra.post("/admin/v1/extra/reload")
    def reload(actor: Operator) -> dict[str, str]:
        return {"role": actor.role}

    app = create_admin_app(make_services(store, recorder), routers=[extra])
    with TestClient(app) as client:
        assert client.post("/admin/v1/extra/lookup", headers=AUDITOR).json() == {
            "role": "auditor"}
        assert client.post("/admin/v1/extra/reload", headers=AUDITOR).status_code == 403
        assert client.post("/admin/v1/extra/reload", headers=OPERATOR).json() == {
            "role": "operator"}
        assert client.post("/admin/v1/extra/lookup").status_code == 401


def test_the_actor_fingerprint_identifies_the_token_without_revealing_it() -> None:
    table = TokenTable((AdminToken("t" * 20, "operator"), AdminToken("u" * 20, "auditor")))
    first = table.authenticate("t" * 20)
    assert first == Actor(role="operator", token_id=first.token_id)
    assert first.token_id == hashlib.sha256(b"t" * 20).hexdigest()[:12]
    assert "t" * 20 not in str(first.as_details())
    assert table.authenticate("u" * 20).role == "auditor"
    assert table.authenticate("u" * 20).token_id != first.token_id
    assert bool(table) and not bool(TokenTable(()))


def test_a_nested_router_guarded_at_its_prefix(store: Store, recorder: Recorder) -> None:
    """How a router that knows nothing of auth (e.g. the audit endpoints) is mounted."""
    inner = APIRouter(prefix="/audit")

    @inner.get("/key")
    def key() -> dict[str, str]:
        return {"vkey": "harbourgate+1234"}

    outer = APIRouter(prefix="/admin/v1", dependencies=[requires(OPERATOR_ROLE, AUDITOR_ROLE)])
    outer.include_router(inner)
    with TestClient(create_admin_app(make_services(store, recorder), routers=[outer])) as client:
        assert client.get("/admin/v1/audit/key").status_code == 401
        assert client.get("/admin/v1/audit/key", headers=AUDITOR).json() == {
            "vkey": "harbourgate+1234"}
        wrong = client.delete("/admin/v1/audit/key", headers=AUDITOR)
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET"
        assert "/admin/v1/audit/key" in client.get("/admin/v1/openapi.json").json()["paths"]
