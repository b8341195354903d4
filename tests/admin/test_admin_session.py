"""Console sessions: sign in with a token, a signed HttpOnly cookie, CSRF on every change,
expiry, roles enforced by the server, and the holder's name in every audit entry."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.admin import create_admin_app
from harbourgate.admin.auth import SESSION_COOKIE, SESSION_TTL_S, TokenTable
from harbourgate.admin.errors import ApiError
from harbourgate.config import AdminToken
from harbourgate.store import Store
from tests.admin.admin_support import (
    AUDITOR_TOKEN,
    OPERATOR,
    OPERATOR_TOKEN,
    Recorder,
    error_of,
    make_services,
)

TOKENS = (AdminToken(OPERATOR_TOKEN, "operator", "Ada Operator"),
          AdminToken(AUDITOR_TOKEN, "auditor", "Mei Auditor"))
ADMIT = {"id": "acme", "name": "Acme Research", "jurisdiction": "HK"}


@pytest.fixture
def console(store: Store, recorder: Recorder) -> Iterator[TestClient]:
    with TestClient(create_admin_app(make_services(store, recorder, tokens=TOKENS)),
                    raise_server_exceptions=False) as client:
        yield client


def sign_in(client: TestClient, token: str) -> dict[str, Any]:
    response = client.post("/admin/v1/session", json={"token": token})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_sign_in_sets_a_strict_http_only_cookie_and_names_the_holder(
        console: TestClient, recorder: Recorder) -> None:
    response = console.post("/admin/v1/session", json={"token": OPERATOR_TOKEN})
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "operator" and body["name"] == "Ada Operator"
    assert len(body["csrf_token"]) == 43 and body["expires_at"].endswith("Z")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/admin/",
            f"max-age={SESSION_TTL_S}"} <= attributes
    assert "secure" not in attributes  # plain http in the test; https adds it
    assert response.headers["cache-control"] == "no-store"
    assert recorder.audits == [("console.sign_in", {
        "actor": {"role": "operator", "token_id": body["token_id"], "name": "Ada Operator",
                  "via": "console"}, "expires_at": body["expires_at"]})]
    shown = console.get("/admin/v1/session")
    assert shown.status_code == 200 and shown.json() == body


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"token": "x" * 32}, 401, "unknown admin token"),
    ({"token": ""}, 400, "token: string should have at least 1 character"),
    ({}, 400, "token is required"),
    ({"token": OPERATOR_TOKEN, "role": "operator"}, 400,
     "role is not a field of this request; check the spelling"),
])
def test_a_bad_sign_in_is_refused_and_sets_no_cookie(console: TestClient, recorder: Recorder,
                                                    body: dict[str, Any], status: int,
                                                    message: str) -> None:
    response = console.post("/admin/v1/session", json=body)
    assert response.status_code == status
    assert error_of(response)["message"] == message
    assert "set-cookie" not in response.headers
    assert recorder.audits == []


def test_a_change_with_the_session_needs_its_csrf_token(console: TestClient,
                                                        recorder: Recorder) -> None:
    session = sign_in(console, OPERATOR_TOKEN)
    missing = console.post("/admin/v1/participants", json=ADMIT)
    assert missing.status_code == 403
    assert error_of(missing) == {
        "type": "permission_error", "code": "csrf_failed", "param": None,
        "message": "a console change must carry the session's CSRF token in the X-CSRF-Token "
                   "header; it is missing"}
    wrong = console.post("/admin/v1/participants", json=ADMIT,
                         headers={"X-CSRF-Token": session["csrf_token"][:-2] + "AA"})
    assert wrong.status_code == 403
    assert error_of(wrong)["message"] == ("the X-CSRF-Token header does not match this "
                                          "console session; reload the console")
    # A malformed body is not even looked at without the CSRF token.
    broken = console.post("/admin/v1/participants", content=b"{", headers={
        "Content-Type": "application/json"})
    assert broken.status_code == 403 and error_of(broken)["code"] == "csrf_failed"
    assert [a for a, _ in recorder.audits] == ["console.sign_in"]
    made = console.post("/admin/v1/participants", json=ADMIT,
                        headers={"X-CSRF-Token": session["csrf_token"]})
    assert made.status_code == 201, made.text
    action, details = recorder.audits[-1]
    assert action == "participant.admit"
    assert details["actor"] == {"role": "operator", "token_id": session["token_id"],
                                "name": "Ada Operator", "via": "console"}


def test_reads_need_no_csrf_token(console: TestClient) -> None:
    sign_in(console, OPERATOR_TOKEN)
    assert console.get("/admin/v1/participants").status_code == 200


def test_an_auditor_session_is_refused_every_change_by_the_server(console: TestClient,
                                                                  recorder: Recorder) -> None:
    session = sign_in(console, AUDITOR_TOKEN)
    csrf = {"X-CSRF-Token": session["csrf_token"]}
    assert console.post("/admin/v1/participants", json=ADMIT, headers=OPERATOR).status_code \
        == 201  # a bearer token, when sent, speaks instead of the cookie
    for method, path, body in [
        ("post", "/admin/v1/participants", {**ADMIT, "id": "other"}),
        ("patch", "/admin/v1/participants/acme", {"status": "suspended"}),
        ("post", "/admin/v1/applications", {"participant_id": "acme", "name": "x",
                                            "use_cases": ["research.b2b"]}),
        ("post", "/admin/v1/directives", {}),
        ("delete", "/admin/v1/directives/d1", None),
        ("delete", "/admin/v1/keys/k1", None),
        ("post", "/admin/v1/applications/a/keys", None),
        ("post", "/admin/v1/applications/a/approvals", {}),
    ]:
        response = console.request(method, path, json=body, headers=csrf)
        assert response.status_code == 403, (method, path, response.text)
        assert error_of(response)["code"] == "forbidden"
        assert error_of(response)["message"].startswith("the auditor role may not do this")
    assert [a for a, _ in recorder.audits] == ["console.sign_in", "participant.admit"]


def test_an_expired_session_is_refused(console: TestClient) -> None:
    table = TokenTable(TOKENS)
    old = table.open_session(OPERATOR_TOKEN, now=time.time() - SESSION_TTL_S - 5)
    console.cookies.set(SESSION_COOKIE, old.cookie, domain="testserver.local", path="/admin/")
    response = console.get("/admin/v1/participants")
    assert response.status_code == 401
    assert error_of(response) == {
        "type": "authentication_error", "code": "session_expired", "param": None,
        "message": "the console session has expired; sign in again"}


def test_a_session_of_a_token_no_longer_configured_is_refused(store: Store,
                                                              recorder: Recorder) -> None:
    other = TokenTable((AdminToken("z" * 24, "operator"),)).open_session("z" * 24)
    with TestClient(create_admin_app(make_services(store, recorder, tokens=TOKENS))) as client:
        client.cookies.set(SESSION_COOKIE, other.cookie, domain="testserver.local",
                           path="/admin/")
        response = client.get("/admin/v1/session")
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_session"


def test_sign_out_clears_the_cookie_and_is_audited(console: TestClient,
                                                   recorder: Recorder) -> None:
    session = sign_in(console, AUDITOR_TOKEN)
    response = console.delete("/admin/v1/session", headers={"X-CSRF-Token":
                                                            session["csrf_token"]})
    assert response.status_code == 200 and response.json() == {"signed_out": True}
    assert 'harbourgate_session=""' in response.headers["set-cookie"]
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert recorder.audits[-1] == ("console.sign_out", {"actor": {
        "role": "auditor", "token_id": session["token_id"], "name": "Mei Auditor",
        "via": "console"}})
    assert console.get("/admin/v1/participants").status_code == 401


def test_session_show_with_a_bearer_token_says_sessions_are_for_the_console(
        console: TestClient) -> None:
    response = console.get("/admin/v1/session", headers=OPERATOR)
    assert response.status_code == 400
    assert "sessions are for the console" in error_of(response)["message"]


@pytest.mark.parametrize("claims", [b'{"t":"x","e":1e999}', b'{"t":1,"e":1}', b"[]", b"null",
                                    b'{"t":"x","e":true}', b'{"t":"x","e":1.5}', b"\xff"])
def test_malformed_session_claims_are_a_401_not_a_500(console: TestClient,
                                                     claims: bytes) -> None:
    payload = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
    console.cookies.set(SESSION_COOKIE, f"{payload}.AAAA", domain="testserver.local",
                        path="/admin/")
    response = console.get("/admin/v1/participants")
    assert response.status_code == 401
    assert error_of(response) == {
        "type": "authentication_error", "code": "invalid_session", "param": None,
        "message": "the console session cookie is malformed; sign in again"}


@settings(max_examples=200, deadline=None)
@given(cookie=st.text(max_size=200), position=st.integers(min_value=0, max_value=200),
       flip=st.integers(min_value=1, max_value=255))
def test_no_altered_or_arbitrary_cookie_is_accepted(cookie: str, position: int,
                                                    flip: int) -> None:
    """Any text, and any one-character change of a genuine cookie, is refused (401)."""
    table = TokenTable(TOKENS)
    genuine = table.open_session(OPERATOR_TOKEN).cookie
    index = position % len(genuine)
    altered = genuine[:index] + chr((ord(genuine[index]) ^ flip) % 128 or 1) + \
        genuine[index + 1:]
    for candidate in (cookie, altered):
        if candidate == genuine:
            continue
        with pytest.raises(ApiError) as refused:
            table.session(candidate)
        assert refused.value.status == 401
    assert table.session(genuine).actor.name == "Ada Operator"
