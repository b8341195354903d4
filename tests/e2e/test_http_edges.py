"""Malformed input over plain HTTP: each gets the error a user expects, in the caller's
shape, and the worker keeps serving."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e


def post(gw: Gateway, path: str, content: bytes, **headers: str) -> httpx.Response:
    hdrs = {"authorization": f"Bearer {gw.keys['acme-research']}",
            "content-type": "application/json", **headers}
    return httpx.post(gw.url + path, content=content, headers=hdrs, timeout=20)


@pytest.mark.parametrize(("content", "fragment"), [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "must be a JSON object, not an array"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
])
def test_body_that_is_not_a_json_object(gateway: Gateway, content: bytes, fragment: str) -> None:
    for path, shape in (("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")):
        r = post(gateway, path, content)
        assert r.status_code == 400
        body = r.json()
        error = body["error"]
        assert error["code"] == "invalid_request"
        assert fragment in error["message"]
        if shape == "anthropic":
            assert body["type"] == "error" and error["type"] == "invalid_request_error"
        assert r.headers["x-harbourgate-audit"]


@pytest.mark.parametrize(("body", "param"), [
    (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
    (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
    (b'{"model": "fable-5"}', "messages"),
    (b'{"model": "fable-5", "messages": "hi"}', "messages"),
    (b'{"model": "fable-5", "messages": [{"role": "robot", "content": "x"}]}',
     "messages[0].role"),
    (b'{"model": "fable-5", "messages": [{"role": "user", "content": 7}]}',
     "messages[0].content"),
    (b'{"model": "fable-5", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
     "stream"),
    (b'{"model": "fable-5", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
     "max_tokens"),
])
def test_field_errors_name_the_field(gateway: Gateway, body: bytes, param: str) -> None:
    r = post(gateway, "/v1/chat/completions", body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param
    assert param.split("[")[0] in r.json()["error"]["message"]


def test_embeddings_bad_input(gateway: Gateway) -> None:
    r = post(gateway, "/v1/embeddings", b'{"model": "embed-small", "input": [1.5]}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"


def test_x_api_key_works_for_openai_shape_too(gateway: Gateway) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions",
                   headers={"x-api-key": gateway.keys["acme-research"]},
                   json={"model": "fable-5", "messages": [{"role": "user", "content": "k"}]})
    assert r.status_code == 200


def test_wrong_auth_scheme(gateway: Gateway) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions",
                   headers={"authorization": f"Basic {gateway.keys['acme-research']}"},
                   json={"model": "fable-5", "messages": [{"role": "user", "content": "k"}]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_bad_fallback_header(gateway: Gateway) -> None:
    r = post(gateway, "/v1/chat/completions",
             b'{"model": "fable-5", "messages": [{"role": "user", "content": "x"}]}',
             **{"x-harbourgate-fallback": "sometimes"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "X-Harbourgate-Fallback"


def test_oversized_by_content_length_is_refused_before_reading(gateway: Gateway) -> None:
    r = post(gateway, "/v1/messages", b"{" + b" " * 200_000 + b"}")
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "request_too_large"


def test_unknown_path_and_wrong_method(gateway: Gateway) -> None:
    r = httpx.get(gateway.url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(gateway.url + "/v1/chat/completions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_operations_endpoints(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    post(gateway, "/v1/chat/completions",
         b'{"model": "fable-5", "messages": [{"role": "user", "content": "m"}]}')
    text = httpx.get(gateway.url + "/metrics").text
    assert 'harbourgate_requests_total{code="ok",decision="allow",endpoint="chat",' \
           'model="fable-5"}' in text
    assert "harbourgate_request_duration_seconds_bucket" in text
    assert "harbourgate_upstream_errors_total" in text


def test_worker_survives_a_burst_of_bad_requests(gateway: Gateway) -> None:
    for i in range(30):
        post(gateway, "/v1/chat/completions", b"{" * i)
    r = post(gateway, "/v1/chat/completions",
             b'{"model": "fable-5", "messages": [{"role": "user", "content": "still here"}]}')
    assert r.status_code == 200 and "still here" in r.text


def test_admin_reads_json_sent_the_way_curl_sends_it(gateway: Gateway) -> None:
    """`curl -d '{...}'` sends application/x-www-form-urlencoded; the admin API reads JSON."""
    from tests.e2e.conftest import ADMIN_TOKEN

    for headers in ({}, {"content-type": "application/x-www-form-urlencoded"}):
        r = httpx.post(gateway.url + "/admin/v1/participants", content=(
            b'{"name": "Curl Co", "jurisdiction": "HK"}'), headers={
            "authorization": f"Bearer {ADMIN_TOKEN}", **headers})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "Curl Co"
    r = httpx.post(gateway.url + "/admin/v1/participants", content=b"name=x",
                   headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
