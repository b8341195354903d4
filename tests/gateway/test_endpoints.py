"""Every data-plane endpoint through the ASGI app, in process: the same steps, the same
headers, the same audit record; pseudonyms restored in every string a model writes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from harbourgate.providers.base import UpstreamError
from tests.gateway.doubles import HKID, PHONE, SUSPENDED_KEY, Reply, request, rig

ORIGIN = {"X-Harbourgate-Data-Origin": "HK"}
PROMPT = f"HKID {HKID}, call {PHONE}"


def bodies(model: str = "fable-5", text: str = PROMPT) -> dict[str, tuple[str, dict]]:
    return {
        "openai": ("/v1/chat/completions",
                   {"model": model, "messages": [{"role": "user", "content": text}]}),
        "anthropic": ("/v1/messages", {"model": model, "max_tokens": 50,
                                       "messages": [{"role": "user", "content": text}]}),
        "responses": ("/v1/responses", {"model": model, "instructions": "be brief",
                                        "input": [{"role": "user", "content": [
                                            {"type": "input_text", "text": text}]}]}),
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def streamed_strings(shape: str, reply: Reply) -> tuple[str, str]:
    """(text, tool-call arguments) as a client accumulates them from the stream."""
    text, args = "", ""
    for _, data in reply.events():
        if data == "[DONE]":
            continue
        if shape == "openai":
            delta = data["choices"][0]["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                args += call["function"].get("arguments") or ""
        elif shape == "anthropic":
            delta = data.get("delta") or {}
            text += delta.get("text", "")
            args += delta.get("partial_json", "")
        elif data["type"] == "response.output_text.delta":
            text += data["delta"]
        elif data["type"] == "response.function_call_arguments.delta":
            args += data["delta"]
    return text, args


@pytest.mark.parametrize("shape", ["openai", "anthropic", "responses"])
def test_plain_answers_are_restored_everywhere(shape: str) -> None:
    r = rig()
    path, body = bodies()[shape]
    reply = run(request(r.gateway, "POST", path, body, headers=ORIGIN))
    assert reply.status == 200, reply.body
    assert reply.headers["x-harbourgate-pseudonymised"] == "hk_id=1,phone=1"
    sent = orjson.dumps(r.upstreams["fable-5"].seen[0][2]).decode()
    assert HKID not in sent and "[HK_ID_1]" in sent
    text = reply.body.decode()
    assert text.count(HKID) == 2 and "[HK_ID_1]" not in text and "[PHONE_1]" not in text
    record = r.audit.records[-1]
    assert record["api"] == shape and record["usage"]["cache_read_tokens"] == 2
    assert record["usage"]["input_tokens"] >= 7 and record["usage"]["output_tokens"] == 5
    assert reply.headers["x-harbourgate-audit"] == f"entry-{len(r.audit.records)}"


@pytest.mark.parametrize("shape", ["openai", "anthropic", "responses"])
def test_streams_restore_text_and_tool_arguments_across_events(shape: str) -> None:
    r = rig()
    path, body = bodies()[shape]
    reply = run(request(r.gateway, "POST", path, {**body, "stream": True}, headers=ORIGIN))
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/event-stream")
    text, args = streamed_strings(shape, reply)
    assert text == PROMPT
    assert orjson.loads(args) == {"q": PROMPT}
    events = reply.events()
    if shape == "openai":
        assert events[-1] == (None, "[DONE]")
    if shape == "responses":
        done = next(d for _, d in events if d["type"] == "response.completed")
        assert orjson.dumps(done["response"]["output"]).decode().count(HKID) == 2
        finished = next(d for _, d in events if d["type"] == "response.output_text.done")
        assert finished["text"] == PROMPT
    assert "[HK_ID_1]" not in reply.body.decode()
    assert r.upstreams["fable-5"].streams[0].closed.is_set()


def test_responses_request_strings_are_pseudonymised() -> None:
    r = rig()
    body = {"model": "fable-5", "instructions": f"The customer is {HKID}", "input": [
        {"role": "user", "content": "look them up"},
        {"type": "function_call", "call_id": "call_9", "name": "crm", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_9", "output": f"phone {PHONE}"}]}
    reply = run(request(r.gateway, "POST", "/v1/responses", body, headers=ORIGIN))
    assert reply.status == 200
    sent = r.upstreams["fable-5"].seen[0][2]
    assert sent["instructions"] == "The customer is [HK_ID_1]"
    assert sent["input"][2] == {"type": "function_call_output", "call_id": "call_9",
                                "output": "phone [PHONE_1]"}
    assert sent["input"][1]["call_id"] == "call_9"


@pytest.mark.parametrize(("path", "shape", "expected"), [
    ("/v1/messages/count_tokens", "anthropic", {"input_tokens": 42}),
    ("/v1/responses/input_tokens", "responses",
     {"object": "response.input_tokens", "input_tokens": 42}),
])
def test_token_counting_asks_the_upstream(path: str, shape: str, expected: dict) -> None:
    r = rig()
    r.upstreams["fable-5"].count = 42
    body = bodies()[shape][1]
    body.pop("max_tokens", None)
    reply = run(request(r.gateway, "POST", path, body,
                        headers={**ORIGIN, "anthropic-beta": "token-counting-2024-11-01"}))
    assert reply.status == 200 and reply.json() == expected
    assert reply.headers["x-harbourgate-token-count"] == "upstream"
    kind, seen_shape, sent, headers = r.upstreams["fable-5"].seen[0]
    assert (kind, seen_shape) == ("count", shape)
    assert HKID not in orjson.dumps(sent).decode()  # counted like generation: governed
    assert headers == {"anthropic-beta": "token-counting-2024-11-01"}
    record = r.audit.records[-1]
    assert record["endpoint"] == "count_tokens" and record["token_count"] == "upstream"
    assert record["input_tokens_counted"] == 42 and record["decision"] == "allow"
    assert "usage" not in record  # a count is not generation: not metered as usage


def test_token_counting_estimates_when_the_upstream_cannot() -> None:
    r = rig()
    reply = run(request(r.gateway, "POST", "/v1/messages/count_tokens",
                        {"model": "fable-5", "messages": [{"role": "user", "content": "x" * 400}]}))
    assert reply.status == 200 and reply.json()["input_tokens"] >= 100
    assert reply.headers["x-harbourgate-token-count"] == "estimate"
    assert r.audit.records[-1]["token_count"] == "estimate"


def test_token_counting_is_refused_like_generation() -> None:
    r = rig()
    reply = run(request(r.gateway, "POST", "/v1/messages/count_tokens",
                        {"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]},
                        key=SUSPENDED_KEY))
    assert reply.status == 403 and reply.json()["error"]["code"] == "participant_suspended"
    assert r.audit.records[-1]["endpoint"] == "count_tokens"
    assert not r.upstreams["fable-5"].seen


@pytest.mark.parametrize(("headers", "shape"), [({}, "openai"),
                                                ({"anthropic-version": "2023-06-01"},
                                                 "anthropic")])
def test_model_lookup_in_the_callers_shape(headers: dict[str, str], shape: str) -> None:
    r = rig()
    reply = run(request(r.gateway, "GET", "/v1/models/mythos-5", headers=headers))
    assert reply.status == 200
    entry = reply.json()
    assert entry["id"] == "mythos-5"
    assert entry.get("type" if shape == "anthropic" else "object") == "model"
    assert r.audit.records[-1]["endpoint"] == "model"
    missing = run(request(r.gateway, "GET", "/v1/models/mythos-5", headers=headers,
                          key=SUSPENDED_KEY))
    assert missing.status == 404
    error = missing.json()
    assert error["error"]["code"] == "model_not_found"
    assert (error.get("type") == "error") is (shape == "anthropic")
    assert error["error"]["audit_id"] == missing.headers["x-harbourgate-audit"]
    assert r.audit.records[-1]["decision"] == "deny"
    unknown = run(request(r.gateway, "GET", "/v1/models/nope", headers=headers))
    assert unknown.status == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_model_listing_is_audited_and_shaped() -> None:
    r = rig()
    listing = run(request(r.gateway, "GET", "/v1/models",
                          headers={"anthropic-version": "2023-06-01"}))
    assert listing.status == 200 and listing.json()["has_more"] is False
    assert r.audit.records[-1]["endpoint"] == "models"
    assert run(request(r.gateway, "GET", "/v1/models", key=SUSPENDED_KEY)).json()["data"] == []


def test_embeddings() -> None:
    r = rig()
    reply = run(request(r.gateway, "POST", "/v1/embeddings",
                        {"model": "embed-small", "input": "hello"}))
    assert reply.status == 200 and reply.json()["data"][0]["embedding"] == [0.1, 0.2]
    assert r.audit.records[-1]["endpoint"] == "embeddings"


def test_provider_headers_reach_the_adapter() -> None:
    r = rig()
    path, body = bodies()["anthropic"]
    run(request(r.gateway, "POST", path, body, headers={
        "anthropic-version": "2023-06-01", "anthropic-beta": "output-128k-2025-02-19",
        "x-other": "no"}))
    assert r.upstreams["fable-5"].seen[0][3] == {"anthropic-version": "2023-06-01",
                                                 "anthropic-beta": "output-128k-2025-02-19"}


@pytest.mark.parametrize(("code", "status", "shape"), [
    ("upstream_rate_limited", 429, "anthropic"), ("upstream_overloaded", 503, "openai")])
def test_exhausted_upstreams_pass_on_retry_after(code: str, status: int, shape: str) -> None:
    r = rig()
    for name in ("fable-5", "mythos-5"):
        r.upstreams[name].failures.append(
            UpstreamError("busy", status=status, code=code, retry_after="12"))
    path, body = bodies()[shape]
    reply = run(request(r.gateway, "POST", path, body))
    assert reply.status == status and reply.headers["retry-after"] == "12"
    error = reply.json()["error"]
    assert error["code"] == code
    if shape == "anthropic":
        assert error["type"] == ("rate_limit_error" if status == 429 else "overloaded_error")
    assert r.audit.records[-1]["code"] == code


# -- audit failures: one mapping to 503 on every path -----------------------------------

@pytest.mark.parametrize("case", ["answer", "refusal", "count", "lookup"])
def test_an_unrecordable_outcome_is_503_audit_unavailable(case: str) -> None:
    r = rig()
    r.audit.broken = True
    path, body = bodies()["anthropic"]
    method = "POST"
    if case == "refusal":
        body = {**body, "model": "no-such-model"}
    elif case == "count":
        path, body = "/v1/messages/count_tokens", {**body, "max_tokens": None}
    elif case == "lookup":
        method, path, body = "GET", "/v1/models/fable-5", None
    reply = run(request(r.gateway, method, path, body,
                        headers={"anthropic-version": "2023-06-01"}))
    assert reply.status == 503 and reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["code"] == "audit_unavailable"
    assert reply.headers["x-harbourgate-decision"] == "deny"


def test_an_unrecordable_stream_answer_closes_the_upstream() -> None:
    r = rig()
    r.audit.broken = True
    path, body = bodies()["openai"]
    reply = run(request(r.gateway, "POST", path, {**body, "stream": True}))
    assert reply.status == 503 and reply.json()["error"]["code"] == "audit_unavailable"
    assert r.upstreams["fable-5"].streams[0].closed.is_set()


def test_stored_responses_are_refused_with_the_reason() -> None:
    reply = run(request(rig().gateway, "GET", "/v1/responses/resp_123"))
    assert reply.status == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_request" and "keeps no responses" in error["message"]


def test_a_responses_request_without_a_model_is_served_by_the_first_preference() -> None:
    """The Responses API lets a stored prompt name the model upstream; the gateway serves
    such a request by the application's first preferred model, decided and audited."""
    r = rig()
    reply = run(request(r.gateway, "POST", "/v1/responses", {"input": "hello"}))
    assert reply.status == 200
    assert reply.headers["x-harbourgate-model"] == "fable-5"
    assert r.audit.records[-1]["model_requested"] == "fable-5"
    counted = run(request(r.gateway, "POST", "/v1/responses/input_tokens", {"input": "hello"}))
    assert counted.status == 200 and counted.json()["input_tokens"] > 0


def test_a_token_limit_of_zero_is_the_upstreams_to_judge() -> None:
    """OpenAI's schema sets no minimum for max_tokens: the gateway checks the type only."""
    r = rig()
    for field in ("max_tokens", "max_completion_tokens"):
        reply = run(request(r.gateway, "POST", "/v1/chat/completions", {
            "model": "fable-5", field: 0, "messages": [{"role": "user", "content": "hi"}]}))
        assert reply.status == 200, reply.json()
    bad = run(request(r.gateway, "POST", "/v1/chat/completions", {
        "model": "fable-5", "max_tokens": -1, "messages": [{"role": "user", "content": "hi"}]}))
    assert bad.status == 400
    assert bad.json()["error"]["message"] == ("'max_tokens' must be a whole number, 0 or "
                                              "more, not -1")


def test_anthropic_model_entries_carry_their_lifecycle() -> None:
    r = rig()
    entry = run(request(r.gateway, "GET", "/v1/models/fable-5",
                        headers={"anthropic-version": "2023-06-01"})).json()
    assert entry["lifecycle"] == "active" and entry["type"] == "model"
