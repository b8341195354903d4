"""Malformed bodies of every shape: a 400 `invalid_request` naming the field, in the
caller's shape, audited; and (property) no input at all makes the worker raise."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harbourgate.gateway import validate
from tests.gateway.doubles import request, rig

USER = {"role": "user", "content": "hi"}

CASES: list[tuple[str, dict[str, Any], str]] = [
    # OpenAI Chat Completions
    ("/v1/chat/completions", {"model": "fable-5", "messages": [{"role": ["user"],
                                                                "content": "hi"}]},
     "messages[0].role"),
    ("/v1/chat/completions", {"model": "fable-5", "messages": [
        {"role": "user", "content": [{"type": "text", "text": 1}]}]},
     "messages[0].content[0].text"),
    ("/v1/chat/completions", {"model": "fable-5", "messages": [
        {"role": "user", "content": [{"type": "video", "url": "x"}]}]},
     "messages[0].content[0].type"),
    ("/v1/chat/completions", {"model": "fable-5", "messages": [USER], "tools": True},
     "tools"),
    ("/v1/chat/completions", {"model": "fable-5", "messages": [USER],
                              "tools": [{"type": "function", "function": {"name": 3}}]},
     "tools[0].function.name"),
    ("/v1/chat/completions", {"model": "fable-5", "messages": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ("/v1/chat/completions", {"model": "fable-5", "messages": [
        {"role": "tool", "content": "result"}]}, "messages[0].tool_call_id"),
    ("/v1/chat/completions", {"model": "fable-5", "messages": [USER], "n": 0}, "n"),
    ("/v1/chat/completions", {"model": "fable-5", "messages": [USER],
                              "response_format": "json"}, "response_format"),
    ("/v1/chat/completions", {"model": ["fable-5"], "messages": [USER]}, "model"),
    # Anthropic Messages
    ("/v1/messages", {"model": "fable-5", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": [{"type": "text", "text": None}]}]}]},
     "messages[0].content[0].content[0].text"),
    ("/v1/messages", {"model": "fable-5", "max_tokens": 5, "messages": [
        {"role": "system", "content": "hi"}]}, "messages[0].role"),
    ("/v1/messages", {"model": "fable-5", "max_tokens": 5, "messages": [USER],
                      "system": [{"type": "text", "text": 5}]}, "system[0].text"),
    ("/v1/messages", {"model": "fable-5", "max_tokens": 5, "messages": [USER],
                      "tool_choice": "auto"}, "tool_choice"),
    ("/v1/messages", {"model": "fable-5", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                      "input": "x"}]}]}, "messages[0].content[0].input"),
    ("/v1/messages", {"model": "fable-5", "max_tokens": True, "messages": [USER]},
     "max_tokens"),
    ("/v1/messages/count_tokens", {"model": "fable-5", "messages": "hi"}, "messages"),
    # OpenAI Responses
    ("/v1/responses", {"model": "fable-5", "input": 7}, "input"),
    ("/v1/responses", {"model": "fable-5", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": ["hi"]}]}]}, "input[0].content[0].text"),
    ("/v1/responses", {"model": "fable-5", "input": [{"type": "function_call_output",
                                                      "output": "x"}]},
     "input[0].call_id"),
    ("/v1/responses", {"model": "fable-5", "input": [{"type": "teleport"}]}, "input[0].type"),
    ("/v1/responses", {"model": "fable-5", "input": "hi", "instructions": {"a": 1}},
     "instructions"),
    ("/v1/responses", {"model": "fable-5", "input": "hi", "tools": [{"name": "f"}]},
     "tools[0].type"),
    ("/v1/responses/input_tokens", {"model": "fable-5", "input": [["hi"]]}, "input[0]"),
    # Embeddings
    ("/v1/embeddings", {"model": "embed-small", "input": [[1, True]]}, "input"),
]


@pytest.mark.parametrize(("path", "body", "param"), CASES,
                         ids=[f"{p}:{param}" for p, _, param in CASES])
def test_a_malformed_body_is_a_400_naming_the_field_and_audited(
        path: str, body: dict[str, Any], param: str) -> None:
    r = rig()
    reply = asyncio.run(request(r.gateway, "POST", path, body))
    assert reply.status == 400, reply.body
    payload = reply.json()
    error = payload["error"]
    assert error["code"] == "invalid_request" and error["param"] == param
    assert param.split(".")[-1].split("[")[0] in error["message"]
    assert (payload.get("type") == "error") is path.startswith("/v1/messages")
    record = r.audit.records[-1]
    assert record["status"] == 400 and record["code"] == "invalid_request"
    assert error["audit_id"] == reply.headers["x-harbourgate-audit"]
    assert not any(up.seen for up in r.upstreams.values())


def test_nesting_deeper_than_allowed_is_a_400() -> None:
    deep: Any = "x"
    for _ in range(validate.MAX_DEPTH + 5):
        deep = [deep]
    r = rig()
    body = {"model": "fable-5", "messages": [{"role": "user", "content": "hi"}], "extra": deep}
    reply = asyncio.run(request(r.gateway, "POST", "/v1/chat/completions", body))
    assert reply.status == 400 and "deeper than" in reply.json()["error"]["message"]
    raw = b'{"model": "fable-5", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    reply = asyncio.run(request(r.gateway, "POST", "/v1/chat/completions", raw=raw))
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_request"
    assert len(r.audit.records) == 2


# -- property: no body makes a worker raise ---------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["role", "content", "type", "text", "input", "messages", "model",
                         "tools", "function", "name", "arguments", "max_tokens", "stream",
                         "system", "instructions", "output", "call_id", "tool_use_id", "x"]),
        inner, max_size=4),
    max_leaves=20)
PATHS = ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings",
         "/v1/messages/count_tokens", "/v1/responses/input_tokens"]
RIG = rig()


def _part() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({"type": st.sampled_from(
        ["text", "input_text", "image_url", "tool_result", "tool_use", "function_call_output",
         "message", "refusal", "thinking"])}, optional={"text": JSON, "content": JSON,
                                                       "input": JSON, "output": JSON})


def _message() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool"]) | JSON},
                                 optional={"content": st.text() | st.lists(_part(), max_size=3)
                                           | JSON, "type": JSON, "call_id": JSON})


BODY = st.fixed_dictionaries(
    {"model": st.sampled_from(["fable-5", "embed-small", "nope"]) | JSON},
    optional={"messages": st.lists(_message(), max_size=3) | JSON,
              "input": st.text() | st.lists(_message() | _part(), max_size=3) | JSON,
              "max_tokens": st.integers(-1, 5) | JSON, "stream": st.booleans() | JSON,
              "tools": JSON, "system": JSON, "instructions": JSON, "tool_choice": JSON})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), body=BODY | JSON)
def test_no_body_makes_the_worker_raise(path: str, body: Any) -> None:
    reply = asyncio.run(request(RIG.gateway, "POST", path, raw=json.dumps(body).encode()))
    assert reply.status < 500 or reply.status == 503, reply.body
    if reply.status >= 400:
        assert reply.json()["error"]["code"]


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64))
def test_no_bytes_make_the_worker_raise(raw: bytes) -> None:
    """Any bytes: an answer (a Responses body may name no model, e.g. `{"": true}`, and is
    served by the application's first preference) or a 400, never a worker error."""
    reply = asyncio.run(request(RIG.gateway, "POST", "/v1/responses", raw=raw))
    assert reply.status in (200, 400), reply.body
    if reply.status == 400:
        assert reply.json()["error"]["code"] == "invalid_request"
