"""The HTTP adapters against a real stand-in server: every shape pairing, every failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from harbourgate.config import RouteConfig
from harbourgate.providers import StreamEvent, UpstreamError
from harbourgate.providers.http import ClientPool, status_error, upstream_message
from harbourgate.providers.registry import build_upstreams
from harbourgate.providers.standin import StandInUpstream
from harbourgate.providers.upstream import AnthropicUpstream, HTTPUpstream, OpenAIUpstream
from harbourgate.shapes import Usage

PAIRS = [(caller, provider) for caller in ("openai", "anthropic")
         for provider in ("openai", "anthropic")]


def route(standin: Any, provider: str, *, model: str = "fable-5", name: str = "gw-model",
          timeout_s: float = 10, **kw: Any) -> RouteConfig:
    base = standin.openai_url if provider == "openai" else standin.url
    return RouteConfig(name=name, provider=provider, base_url=kw.pop("base_url", base),
                       upstream_model=model, timeout_s=timeout_s, **kw)


def adapter(r: RouteConfig) -> HTTPUpstream:
    return build_upstreams([r])[r.name]  # type: ignore[return-value]


def run(r: RouteConfig, scenario: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `scenario(upstream)` in a fresh event loop, closing the adapter afterwards."""
    async def main() -> Any:
        upstream = adapter(r)
        try:
            return await scenario(upstream)
        finally:
            await upstream.aclose()

    return asyncio.run(main())


def chat_body(caller: str, text: str = "hello harbour", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gw-model", "messages": [{"role": "user", "content": text}]}
    if caller == "anthropic":
        body["max_tokens"] = 64
    return {**body, **kw}


async def collect(upstream: Any, caller: str, body: dict[str, Any]) -> list[StreamEvent]:
    stream = await upstream.open_stream(caller, body)
    return [event async for event in stream]


def text_of(caller: str, answer: dict[str, Any]) -> str:
    if caller == "openai":
        return answer["choices"][0]["message"]["content"]
    return "".join(b["text"] for b in answer["content"] if b["type"] == "text")


def streamed_text(caller: str, events: list[StreamEvent]) -> str:
    if caller == "openai":
        return "".join(e.data["choices"][0]["delta"].get("content") or ""
                       for e in events if e.data["choices"])
    return "".join(e.data["delta"]["text"] for e in events
                   if e.event == "content_block_delta" and e.data["delta"]["type"] == "text_delta")


# --------------------------------------------------------------------------- the four pairings


@pytest.mark.parametrize(("caller", "provider"), PAIRS)
def test_plain_chat_in_every_pairing(standin, caller: str, provider: str) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    answer = run(route(standin, provider), lambda up: up.chat(caller, chat_body(caller)))
    assert text_of(caller, answer) == "[fable-5] You said: hello harbour"
    assert answer["model"] == "gw-model"
    if caller == "openai":
        assert answer["object"] == "chat.completion"
        assert answer["usage"]["completion_tokens"] == 5
    else:
        assert answer["type"] == "message" and answer["stop_reason"] == "end_turn"
        assert answer["usage"]["output_tokens"] == 5
    (received,) = standin.recorded()
    expected_path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    assert received["path"] == expected_path
    assert received["body"]["model"] == "fable-5"
    assert received["auth"] is False
    assert "stream" not in received["body"]


@pytest.mark.parametrize(("caller", "provider"), PAIRS)
def test_streaming_in_every_pairing(standin, caller: str, provider: str) -> None:  # type: ignore[no-untyped-def]
    events = run(route(standin, provider),
                 lambda up: collect(up, caller, chat_body(caller, stream=True)))
    assert streamed_text(caller, events) == "[fable-5] You said: hello harbour"
    if caller == "openai":
        assert all(e.event is None for e in events)
        assert {e.data["model"] for e in events} == {"gw-model"}
        assert events[-1].data["choices"][0]["finish_reason"] == "stop"
        assert all("usage" not in e.data for e in events)  # the caller did not ask for it
    else:
        assert events[0].event == "message_start"
        assert events[0].data["message"]["model"] == "gw-model"
        assert [e.event for e in events[-2:]] == ["message_delta", "message_stop"]
        assert events[-2].data["usage"]["output_tokens"] == 5


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_openai_callers_get_usage_when_they_ask_and_the_stream_reports_it(
        standin, provider: str) -> None:  # type: ignore[no-untyped-def]
    async def scenario(up: Any) -> tuple[list[StreamEvent], Usage]:
        stream = await up.open_stream("openai", chat_body(
            "openai", stream=True, stream_options={"include_usage": True}))
        events = [e async for e in stream]
        return events, stream.usage

    events, usage = run(route(standin, provider), scenario)
    assert events[-1].data["choices"] == []
    assert events[-1].data["usage"] == {"prompt_tokens": 2, "completion_tokens": 5,
                                        "total_tokens": 7}
    assert usage == Usage(input_tokens=2, output_tokens=5)


def test_a_route_key_is_sent_as_each_provider_expects(standin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HG_TEST_KEY", "sk-route")
    standin.clear()
    for provider in ("openai", "anthropic"):
        run(route(standin, provider, api_key_env="HG_TEST_KEY"),
            lambda up: up.chat("openai", chat_body("openai")))
    assert [r["auth"] for r in standin.recorded()] == [True, True]
    assert OpenAIUpstream(route(standin, "openai", api_key_env="HG_TEST_KEY"),
                          pool=ClientPool())._headers["Authorization"] == "Bearer sk-route"
    headers = AnthropicUpstream(route(standin, "anthropic", api_key_env="HG_TEST_KEY"),
                                pool=ClientPool())._headers
    assert headers["x-api-key"] == "sk-route"
    assert headers["anthropic-version"] == "2023-06-01"


def test_tool_calls_cross_from_an_anthropic_caller_to_an_openai_provider(standin) -> None:  # type: ignore[no-untyped-def]
    tools = [{"name": "weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}]
    body = chat_body("anthropic", "weather in Sha Tin", tools=tools,
                     tool_choice={"type": "any"})
    answer = run(route(standin, "openai"), lambda up: up.chat("anthropic", body))
    assert answer["stop_reason"] == "tool_use"
    (block,) = answer["content"]
    assert (block["type"], block["name"], block["input"]) == (
        "tool_use", "weather", {"city": "weather in Sha Tin"})

    events = run(route(standin, "openai"),
                 lambda up: collect(up, "anthropic", {**body, "stream": True}))
    partial = "".join(e.data["delta"]["partial_json"] for e in events
                      if e.event == "content_block_delta")
    assert orjson.loads(partial) == {"city": "weather in Sha Tin"}
    assert events[-2].data["delta"]["stop_reason"] == "tool_use"


def test_tool_results_cross_from_an_openai_caller_to_an_anthropic_provider(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    body = {"model": "gw-model", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "28C"}],
        "tools": [{"type": "function", "function": {"name": "weather"}}]}
    answer = run(route(standin, "anthropic"), lambda up: up.chat("openai", body))
    assert answer["choices"][0]["message"]["content"] == "[fable-5] You said: 28C"
    sent = standin.recorded()[0]["body"]
    assert sent["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "28C"}]}
    assert sent["max_tokens"] == 4096


def test_closing_a_stream_early_frees_the_connection(standin) -> None:  # type: ignore[no-untyped-def]
    async def scenario(up: Any) -> str:
        stream = await up.open_stream("openai", chat_body("openai", stream=True))
        await stream.__anext__()
        await stream.aclose()
        unread = await up.open_stream("anthropic", chat_body("anthropic", stream=True))
        await unread.aclose()  # never iterated: the response is released all the same
        answer = await up.chat("openai", chat_body("openai", "again"))
        return answer["choices"][0]["message"]["content"]

    assert run(route(standin, "openai"), scenario) == "[fable-5] You said: again"


def test_concurrent_requests_share_one_client(standin) -> None:  # type: ignore[no-untyped-def]
    async def scenario(up: Any) -> list[str]:
        answers = await asyncio.gather(*(up.chat("openai", chat_body("openai", f"n{i}"))
                                         for i in range(20)))
        return [a["choices"][0]["message"]["content"] for a in answers]

    assert run(route(standin, "anthropic"), scenario) == [
        f"[fable-5] You said: n{i}" for i in range(20)]


def test_the_pool_closes_its_client_when_the_last_adapter_closes(standin) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> tuple[bool, bool]:
        pool = ClientPool()
        a = OpenAIUpstream(route(standin, "openai", name="a"), pool=pool)
        b = AnthropicUpstream(route(standin, "anthropic", name="b"), pool=pool)
        await a.chat("openai", chat_body("openai"))
        await b.chat("openai", chat_body("openai"))
        client = pool.client()
        await a.aclose()
        await a.aclose()  # closing twice releases once
        still_open = not client.closed
        await b.aclose()
        return still_open, client.closed

    assert asyncio.run(scenario()) == (True, True)


# --------------------------------------------------------------------------- embeddings


def test_embeddings_on_an_openai_route(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    out = run(route(standin, "openai", model="embed-small", name="emb"),
              lambda up: up.embed({"model": "emb", "input": ["a", "b"], "dimensions": 3}))
    assert out["model"] == "emb"
    assert [len(d["embedding"]) for d in out["data"]] == [3, 3]
    assert standin.recorded()[0]["body"]["model"] == "embed-small"


def test_embeddings_on_an_anthropic_route_are_refused(standin) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UpstreamError) as info:
        run(route(standin, "anthropic"), lambda up: up.embed({"model": "gw-model",
                                                              "input": "x"}))
    assert (info.value.status, info.value.code, info.value.retryable) == (
        400, "invalid_request", False)
    assert info.value.message == "model 'gw-model' does not serve embeddings"


# --------------------------------------------------------------------------- failures


def raises(r: RouteConfig, scenario: Callable[[Any], Awaitable[Any]]) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        run(r, scenario)
    return info.value


def plain(caller: str = "openai", **kw: Any) -> Callable[[Any], Awaitable[Any]]:
    return lambda up: up.chat(caller, chat_body(caller, **kw))


def streamed(caller: str = "openai", **kw: Any) -> Callable[[Any], Awaitable[Any]]:
    return lambda up: collect(up, caller, chat_body(caller, stream=True, **kw))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("call", [plain, streamed])
def test_a_refused_connection_is_a_retryable_502(refused_port: int, provider: str,
                                                 call: Callable) -> None:
    r = RouteConfig(name="gone", provider=provider, base_url=f"http://127.0.0.1:{refused_port}")
    error = raises(r, call())
    assert (error.status, error.code, error.retryable) == (502, "upstream_error", True)
    assert error.message == "model 'gone': cannot connect to the upstream (connection refused)"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("call", [plain, streamed])
def test_a_hanging_upstream_is_a_retryable_504(standin, provider: str, call: Callable) -> None:  # type: ignore[no-untyped-def]
    error = raises(route(standin, provider, model="standin-hang", timeout_s=0.2), call())
    assert (error.status, error.code, error.retryable) == (504, "upstream_timeout", True)
    assert error.message == "model 'gw-model': the upstream did not answer in time"


@pytest.mark.parametrize(("provider", "call"), [
    ("openai", plain), ("openai", streamed), ("anthropic", plain), ("anthropic", streamed)])
def test_a_500_is_a_retryable_502(standin, provider: str, call: Callable) -> None:  # type: ignore[no-untyped-def]
    error = raises(route(standin, provider, model="standin-500"), call())
    assert (error.status, error.code, error.retryable) == (502, "upstream_error", True)
    assert error.message == ("model 'gw-model': the upstream failed "
                             "(HTTP 500: standin-500 always fails.)")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_garbage_body_is_a_retryable_502(standin, provider: str) -> None:  # type: ignore[no-untyped-def]
    error = raises(route(standin, provider, model="standin-garbage"), plain())
    assert (error.status, error.code, error.retryable) == (502, "upstream_error", True)
    assert error.message.startswith("model 'gw-model': the upstream answered with a body that "
                                    "is not JSON (b'<html>")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_garbage_event_mid_stream_is_not_retryable(standin, provider: str) -> None:  # type: ignore[no-untyped-def]
    error = raises(route(standin, provider, model="standin-garbage"), streamed())
    assert (error.status, error.code, error.retryable) == (502, "upstream_error", False)
    assert error.message.startswith("model 'gw-model': the upstream sent an event that is not "
                                    "JSON ('<html>")


@pytest.mark.parametrize(("caller", "provider"), PAIRS)
def test_a_stream_cut_short_fails_after_its_first_events(standin, caller: str,  # type: ignore[no-untyped-def]
                                                         provider: str) -> None:
    received: list[StreamEvent] = []

    async def scenario(up: Any) -> None:
        stream = await up.open_stream(caller, chat_body(caller, stream=True))
        async for event in stream:
            received.append(event)

    error = raises(route(standin, provider, model="standin-cut"), scenario)
    assert (error.status, error.code, error.retryable) == (502, "upstream_error", False)
    assert error.message == "model 'gw-model': the upstream's answer was cut off mid-stream"
    assert received  # the stream had begun: the gateway cannot fail over any more


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_plain_answer_cut_short_is_a_retryable_502(standin, provider: str) -> None:  # type: ignore[no-untyped-def]
    error = raises(route(standin, provider, model="standin-cut"), plain())
    assert (error.status, error.retryable) == (502, True)
    assert error.message == "model 'gw-model': the upstream's answer was cut off"


@pytest.mark.parametrize(("caller", "provider"), PAIRS)
def test_an_upstream_400_passes_its_message_on_and_is_not_retryable(  # type: ignore[no-untyped-def]
        standin, caller: str, provider: str) -> None:
    body = chat_body(caller)
    body["max_tokens"] = -1  # the stand-in refuses it, in its own shape
    error = raises(route(standin, provider), lambda up: up.chat(caller, body))
    assert (error.status, error.code, error.retryable) == (400, "invalid_request", False)
    why = ("a whole number, 0 or more" if provider == "openai" else "a positive integer")
    assert error.message == (f"model 'gw-model' refused the request: max_tokens: must be "
                             f"{why}, not -1")


def test_a_wrong_base_url_is_a_retryable_502_naming_the_fix(standin) -> None:  # type: ignore[no-untyped-def]
    error = raises(route(standin, "openai", base_url=standin.url + "/nope/v1"), plain())
    assert (error.status, error.retryable) == (502, True)
    assert error.message == (
        "model 'gw-model': the upstream does not know the endpoint or model (check the route's "
        "base_url and upstream_model) (HTTP 404: Unknown request URL: POST "
        "/nope/v1/chat/completions.)")


def test_a_request_the_provider_shape_cannot_express_is_refused_before_sending(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    error = raises(route(standin, "anthropic"), plain(n=3))
    assert (error.status, error.code, error.retryable) == (400, "invalid_request", False)
    assert error.message == ("model 'gw-model' is served through the Anthropic Messages API, "
                             "which cannot take this request: n: Anthropic Messages returns one "
                             "answer per request; ask with n=1")
    assert standin.recorded() == []


@pytest.mark.parametrize(("status", "code", "retryable", "fragment"), [
    (400, "invalid_request", False, "refused the request: bad field"),
    (422, "invalid_request", False, "refused the request: bad field"),
    (401, "upstream_error", True, "rejected the route's credentials (check its api_key_env)"),
    (403, "upstream_error", True, "rejected the route's credentials"),
    (404, "upstream_error", True, "does not know the endpoint or model"),
    (429, "upstream_rate_limited", True, "is rate limiting (HTTP 429: bad field)"),
    (503, "upstream_overloaded", True, "is overloaded (HTTP 503: bad field)"),
    (529, "upstream_overloaded", True, "is overloaded (HTTP 529: bad field)"),
    (500, "upstream_error", True, "failed (HTTP 500: bad field)"),
    (409, "upstream_error", True, "answered with an unexpected status (HTTP 409"),
])
def test_status_mapping(status: int, code: str, retryable: bool, fragment: str) -> None:
    error = status_error("r", status, b'{"error": {"message": "bad field"}}', "12")
    expected_status = {"invalid_request": 400, "upstream_rate_limited": 429,
                       "upstream_overloaded": 503}.get(code, 502)
    assert (error.status, error.code, error.retryable) == (expected_status, code, retryable)
    assert fragment in error.message
    assert error.retry_after == ("12" if code.startswith(("upstream_rate", "upstream_over"))
                                 else None)


@pytest.mark.parametrize(("body", "message"), [
    (b'{"type": "error", "error": {"type": "x", "message": "from anthropic"}}', "from anthropic"),
    (b'{"error": "plain string"}', "plain string"),
    (b'{"message": "top level"}', "top level"),
    (b"<html>oops</html>", "<html>oops</html>"),
    (b"", "no message"),
    (b"[1, 2]", "[1,2]"),
])
def test_upstream_message_reads_any_error_shape(body: bytes, message: str) -> None:
    assert upstream_message(body) == message


# --------------------------------------------------------------------------- misbehaving servers


class Scripted:
    """An upstream that answers every request with a fixed status, type and body chunks."""

    def __init__(self, status: int, content_type: bytes, *chunks: bytes) -> None:
        self.status, self.content_type, self.chunks = status, content_type, chunks

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", self.content_type)]})
        for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


SSE = b"text/event-stream"
JSON = b"application/json"


def scripted_route(serve_app: Callable, provider: str, app: Scripted) -> RouteConfig:
    served = serve_app(app)
    base = served.url + "/v1" if provider == "openai" else served.url
    return RouteConfig(name="odd", provider=provider, base_url=base, timeout_s=5)


def test_a_json_answer_to_a_stream_request_is_a_retryable_502(serve_app) -> None:  # type: ignore[no-untyped-def]
    r = scripted_route(serve_app, "openai", Scripted(200, JSON, b'{"choices": []}'))
    error = raises(r, streamed())
    assert (error.status, error.retryable) == (502, True)
    assert error.message == ("model 'odd': the upstream answered a stream request with "
                             "application/json content instead of an event stream")


@pytest.mark.parametrize(("provider", "body", "fragment"), [
    ("openai", b"[1]", "with JSON that is not an object"),
    ("openai", b'{"object": "chat.completion"}', "a body of unexpected shape"),
    ("anthropic", b'{"type": "error"}', "a body of unexpected shape"),
    ("anthropic", b'{"type": "message", "content": [{"type": "text"}]}',
     "a body of unexpected shape"),
])
def test_json_of_the_wrong_shape_is_a_retryable_502(serve_app, provider: str, body: bytes,  # type: ignore[no-untyped-def]
                                                    fragment: str) -> None:
    r = scripted_route(serve_app, provider, Scripted(200, JSON, body))
    for caller in ("openai", "anthropic"):
        if provider == "anthropic" and b'"content"' in body and caller == "anthropic":
            continue  # passed through untouched: the caller's SDK reads it as it would upstream
        error = raises(r, plain(caller))
        assert (error.status, error.retryable) == (502, True)
        assert fragment in error.message


def test_a_stream_that_ends_cleanly_without_done_is_not_a_complete_answer(serve_app) -> None:  # type: ignore[no-untyped-def]
    chunk = orjson.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]})
    r = scripted_route(serve_app, "openai", Scripted(200, SSE, b"data: " + chunk + b"\n\n"))
    error = raises(r, streamed())
    assert (error.status, error.retryable) == (502, False)
    assert error.message == "model 'odd': the upstream closed the stream before its end"


def test_an_error_event_mid_stream_is_passed_on(serve_app) -> None:  # type: ignore[no-untyped-def]
    start = orjson.dumps({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "x",
        "usage": {"input_tokens": 1, "output_tokens": 0}}})
    error_event = orjson.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                           "message": "Overloaded"}})
    r = scripted_route(serve_app, "anthropic", Scripted(
        200, SSE, b"event: message_start\ndata: " + start + b"\n\n",
        b"event: error\ndata: " + error_event + b"\n\n"))
    for caller in ("openai", "anthropic"):
        error = raises(r, streamed(caller))
        assert (error.status, error.retryable) == (502, False)
        assert error.message == "model 'odd': the upstream failed mid-stream: Overloaded"


@pytest.mark.parametrize("error_event", [
    b'data: {"error": {"message": "Overloaded"}}\n\n',
    b'event: error\ndata: {"message": "ignored", "error": {"message": "Overloaded"}}\n\n',
    b'data: {"type": "error", "error": {"message": "Overloaded"}}\n\n'])
def test_an_openai_error_event_mid_stream_is_passed_on(serve_app, error_event: bytes) -> None:  # type: ignore[no-untyped-def]
    """A bare error object, an event named error, an error type: passed through or
    translated, each ends the stream with the upstream's message."""
    chunk = orjson.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]})
    r = scripted_route(serve_app, "openai", Scripted(
        200, SSE, b"data: " + chunk + b"\n\n", error_event))
    for caller in ("openai", "anthropic"):
        error = raises(r, streamed(caller))
        assert (error.status, error.retryable) == (502, False)
        assert error.message == "model 'odd': the upstream failed mid-stream: Overloaded"


def test_a_responses_failure_mid_stream_is_passed_on(serve_app) -> None:  # type: ignore[no-untyped-def]
    failed = orjson.dumps({"type": "response.failed", "sequence_number": 1, "response": {
        "id": "r", "object": "response", "status": "failed", "output": [],
        "error": {"code": "server_error", "message": "Overloaded"}}})
    served = serve_app(Scripted(200, SSE, b"event: response.failed\ndata: " + failed + b"\n\n"))
    r = RouteConfig(name="odd", provider="openai", api="responses", base_url=served.url + "/v1",
                    timeout_s=5)
    body = {"model": "gw-model", "input": "hello", "stream": True}
    for caller, request in (("responses", body), ("openai", chat_body("openai", stream=True))):
        error = raises(r, lambda up, c=caller, b=request: collect(up, c, b))
        assert (error.status, error.retryable) == (502, False)
        assert error.message == "model 'odd': the upstream failed mid-stream: Overloaded"


def test_crlf_events_split_across_reads_are_understood(serve_app) -> None:  # type: ignore[no-untyped-def]
    chunk = orjson.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "whole"}, "finish_reason": "stop"}]})
    wire = (b": comment\r\ndata: " + chunk + b"\r\n\r\ndata: [DONE]\r\n\r")
    pieces = [wire[i:i + 7] for i in range(0, len(wire), 7)]
    r = scripted_route(serve_app, "openai", Scripted(200, SSE, *pieces))
    events = run(r, streamed("anthropic"))
    assert streamed_text("anthropic", events) == "whole"
    assert events[-1].event == "message_stop"


def test_an_unexpected_event_shape_mid_stream_is_not_retryable(serve_app) -> None:  # type: ignore[no-untyped-def]
    r = scripted_route(serve_app, "anthropic", Scripted(
        200, SSE, b'event: content_block_delta\ndata: {"type": "content_block_delta"}\n\n'))
    error = raises(r, streamed("openai"))
    assert (error.status, error.retryable) == (502, False)
    assert error.message.startswith("model 'odd': the upstream sent an event of unexpected shape")


# --------------------------------------------------------------------------- building


def test_build_upstreams_makes_one_adapter_per_route(standin) -> None:  # type: ignore[no-untyped-def]
    routes = [route(standin, "openai", name="a"), route(standin, "anthropic", name="b"),
              RouteConfig(name="c", provider="stand-in")]
    built = build_upstreams(routes)
    assert [type(u) for u in built.values()] == [OpenAIUpstream, AnthropicUpstream,
                                                 StandInUpstream]
    assert all(u.route is r for u, r in zip(built.values(), routes, strict=True))

    async def close() -> None:
        for upstream in built.values():
            await upstream.aclose()

    asyncio.run(close())


def test_build_upstreams_refuses_an_unknown_provider() -> None:
    with pytest.raises(ValueError, match="route 'x': unknown provider 'grpc'"):
        build_upstreams([RouteConfig(name="x", provider="grpc", base_url="http://h")])


def test_a_network_route_needs_a_base_url() -> None:
    with pytest.raises(ValueError, match="route 'x': a openai route needs base_url"):
        OpenAIUpstream(RouteConfig(name="x", provider="openai"), pool=ClientPool())


# --------------------------------------------------------------------------- size caps


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_plain_answer_over_the_cap_is_refused_naming_it(standin, provider: str) -> None:  # type: ignore[no-untyped-def]
    """The stand-in echoes the prompt, so a 5,000-character prompt makes a larger answer."""
    async def scenario() -> UpstreamError:
        upstream = OpenAIUpstream if provider == "openai" else AnthropicUpstream
        adapter_ = upstream(route(standin, provider), pool=ClientPool(max_response_bytes=2_000))
        try:
            with pytest.raises(UpstreamError) as caught:
                await adapter_.chat("openai", chat_body("openai", "x" * 5_000))
            small = await adapter_.chat("openai", chat_body("openai", "small"))
            assert "small" in small["choices"][0]["message"]["content"]
            return caught.value
        finally:
            await adapter_.aclose()

    error = asyncio.run(scenario())
    assert error.code == "upstream_error" and error.status == 502 and not error.retryable
    assert "over this gateway's cap of 2000 bytes" in error.message
    assert "limits.max_upstream_response_bytes" in error.message


def test_a_streamed_event_over_the_cap_ends_the_stream_with_an_error(serve_app) -> None:  # type: ignore[no-untyped-def]
    """An upstream that sends one endless line: cut off at the cap, not held whole."""
    async def endless(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "more_body": True,
                    "body": b'data: {"choices": [{"index": 0, "delta": {"content": "'})
        for _ in range(100):
            await send({"type": "http.response.body", "body": b"z" * 1_000, "more_body": True})
        await send({"type": "http.response.body", "body": b'"}}]}\n\n'})

    served = serve_app(endless)

    async def scenario() -> UpstreamError:
        r = RouteConfig(name="gw-model", provider="openai", base_url=served.url + "/v1",
                        timeout_s=10)
        adapter_ = OpenAIUpstream(r, pool=ClientPool(max_response_bytes=20_000))
        try:
            stream = await adapter_.open_stream("openai", chat_body("openai", stream=True))
            with pytest.raises(UpstreamError) as caught:
                async for _ in stream:
                    pass
            return caught.value
        finally:
            await adapter_.aclose()

    error = asyncio.run(scenario())
    assert "over this gateway's cap of 20000 bytes" in error.message
