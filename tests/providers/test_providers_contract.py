"""The adapters' side of the gateway contract, against the real stand-in over HTTP:
token counting, upstream refusals with Retry-After, provider headers, what a route
declares it accepts, and Responses state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from harbourgate.config import Accepts, RouteConfig
from harbourgate.providers import UpstreamError
from harbourgate.providers.registry import build_upstreams
from harbourgate.providers.standin import StandInUpstream
from harbourgate.shapes import Usage

KINDS = ("chat", "responses", "anthropic")


def route(standin: Any, kind: str, *, model: str = "fable-5", **kw: Any) -> RouteConfig:
    if kind == "anthropic":
        return RouteConfig(name="gw", provider="anthropic", base_url=standin.url,
                           upstream_model=model, timeout_s=10, **kw)
    return RouteConfig(name="gw", provider="openai", base_url=standin.openai_url,
                       upstream_model=model, timeout_s=10, api=kind, **kw)


def run(r: RouteConfig, scenario: Callable[[Any], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        upstream = build_upstreams([r])["gw"]
        try:
            return await scenario(upstream)
        finally:
            await upstream.aclose()

    return asyncio.run(main())


def body(shape: str, text: str = "count these words", **kw: Any) -> dict[str, Any]:
    if shape == "responses":
        return {"model": "gw", "input": text, **kw}
    out: dict[str, Any] = {"model": "gw", "messages": [{"role": "user", "content": text}], **kw}
    if shape == "anthropic":
        out["max_tokens"] = 50
    return out


def raises(r: RouteConfig, scenario: Callable[[Any], Awaitable[Any]]) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        run(r, scenario)
    return info.value


# --------------------------------------------------------------------------- token counting


@pytest.mark.parametrize(("kind", "caller", "path"), [
    ("anthropic", "anthropic", "/v1/messages/count_tokens"),
    ("anthropic", "responses", "/v1/messages/count_tokens"),
    ("responses", "responses", "/v1/responses/input_tokens"),
    ("responses", "anthropic", "/v1/responses/input_tokens"),
])
def test_an_upstream_that_counts_is_asked(standin, kind: str, caller: str,  # type: ignore[no-untyped-def]
                                          path: str) -> None:
    standin.clear()
    request = body(caller)
    request.pop("max_tokens", None)  # a counting request carries none
    count = run(route(standin, kind), lambda up: up.count_tokens(caller, request))
    assert count == 3
    [recorded] = standin.recorded()
    assert recorded["path"] == path
    assert recorded["body"]["model"] == "fable-5"
    assert "max_tokens" not in recorded["body"] and "stream" not in recorded["body"]


def test_a_chat_upstream_cannot_count(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    assert run(route(standin, "chat"), lambda up: up.count_tokens("anthropic", body(
        "anthropic"))) is None
    assert standin.recorded() == []


def test_the_in_process_stand_in_counts() -> None:
    up = StandInUpstream(RouteConfig(name="gw"))
    assert asyncio.run(up.count_tokens("responses", body("responses", "one two"))) == 2


def test_a_counting_request_the_upstream_cannot_express_is_refused(standin) -> None:  # type: ignore[no-untyped-def]
    error = raises(route(standin, "anthropic"), lambda up: up.count_tokens(
        "responses", body("responses", tools=[{"type": "web_search"}])))
    assert (error.status, error.code, error.retryable) == (400, "invalid_request", False)
    assert error.message == (
        "model 'gw' is served through the Anthropic Messages API, which cannot take this "
        "request: tools[0].type: a 'web_search' tool has no equivalent")


# --------------------------------------------------------------------------- upstream refusals


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("model", "status", "code", "fragment"), [
    ("standin-429", 429, "upstream_rate_limited", "is rate limiting (HTTP 429"),
    ("standin-503", 503, "upstream_overloaded", "is overloaded (HTTP 503"),
    ("standin-529", 503, "upstream_overloaded", "is overloaded (HTTP 529"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_rate_limits_and_overloads_are_retryable_with_the_upstream_retry_after(
        standin, kind: str, model: str, status: int, code: str, fragment: str,  # type: ignore[no-untyped-def]
        stream: bool) -> None:
    r = route(standin, kind, model=model)

    async def call(up: Any) -> Any:
        if stream:
            return await up.open_stream("openai", body("openai", stream=True))
        return await up.chat("openai", body("openai"))

    error = raises(r, call)
    assert (error.status, error.code, error.retryable, error.retry_after) == (
        status, code, True, "7")
    assert fragment in error.message


@pytest.mark.parametrize(("model", "code"), [("standin-429", "upstream_rate_limited"),
                                             ("standin-529", "upstream_overloaded")])
def test_the_in_process_stand_in_refuses_the_same_way(model: str, code: str) -> None:
    up = StandInUpstream(RouteConfig(name="gw", upstream_model=model))
    with pytest.raises(UpstreamError) as info:
        asyncio.run(up.chat("anthropic", body("anthropic")))
    assert (info.value.code, info.value.retry_after, info.value.retryable) == (code, "7", True)


# --------------------------------------------------------------------------- provider headers


def test_provider_headers_pass_untouched_on_the_same_shape_path(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    headers = {"anthropic-beta": "structured-outputs-2025-11-13",
               "anthropic-version": "2024-01-01"}
    run(route(standin, "anthropic"), lambda up: up.chat("anthropic", body("anthropic"), headers))
    [recorded] = standin.recorded()
    assert recorded["headers"] == headers


def test_a_translated_request_sends_only_the_providers_own_headers(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    run(route(standin, "chat"), lambda up: up.chat(
        "anthropic", body("anthropic"), {"anthropic-version": "2023-06-01",
                                         "openai-organization": "org-1"}))
    [recorded] = standin.recorded()
    assert recorded["headers"] == {"openai-organization": "org-1"}
    standin.clear()
    run(route(standin, "anthropic"), lambda up: up.chat(
        "openai", body("openai"), {"anthropic-beta": "b1"}))
    assert standin.recorded()[0]["headers"] == {"anthropic-beta": "b1",
                                                "anthropic-version": "2023-06-01"}


def test_a_provider_header_the_served_api_cannot_take_is_refused(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    error = raises(route(standin, "chat"), lambda up: up.chat(
        "anthropic", body("anthropic"), {"anthropic-beta": "files-api-2025-04-14"}))
    assert (error.status, error.code) == (400, "invalid_request")
    assert error.message == (
        "model 'gw' is served through the OpenAI Chat Completions API, which cannot take this "
        "request: header anthropic-beta: has no equivalent")
    assert standin.recorded() == []


# --------------------------------------------------------------------------- what a route accepts


def test_n_passes_where_the_route_accepts_it_and_is_refused_where_not(standin) -> None:  # type: ignore[no-untyped-def]
    answer = run(route(standin, "chat"), lambda up: up.chat("openai", body("openai", n=2)))
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    error = raises(route(standin, "chat", accepts=Accepts(n=False)),
                   lambda up: up.chat("openai", body("openai", n=2)))
    assert error.message.startswith(
        "model 'gw' is served through the OpenAI Chat Completions API, which cannot take this "
        "request: n: this route's upstream returns one choice per request")


def test_max_completion_tokens_where_the_route_declares_it(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    run(route(standin, "chat", accepts=Accepts(max_completion_tokens=True)),
        lambda up: up.chat("anthropic", body("anthropic")))
    sent = standin.recorded()[0]["body"]
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent


def test_streams_ask_for_usage_without_changing_what_the_caller_gets(standin) -> None:  # type: ignore[no-untyped-def]
    standin.clear()

    async def scenario(up: Any) -> tuple[list[Any], Usage]:
        stream = await up.open_stream("openai", body("openai", stream=True))
        return [e async for e in stream], stream.usage

    events, usage = run(route(standin, "chat"), scenario)
    assert standin.recorded()[0]["body"]["stream_options"] == {"include_usage": True}
    assert all("usage" not in e.data for e in events)
    assert usage == Usage(input_tokens=3, output_tokens=6)


# --------------------------------------------------------------------------- Responses state


def test_a_native_responses_route_passes_state_through(standin) -> None:  # type: ignore[no-untyped-def]
    r = route(standin, "responses")
    first = run(r, lambda up: up.chat("responses", body("responses", "remember harbour")))
    assert first["model"] == "gw" and first["object"] == "response"

    async def follow(up: Mapping[str, Any] | Any) -> Any:
        return await up.chat("responses", body("responses", "what did I say",
                                               previous_response_id=first["id"]))

    second = run(r, follow)
    # the earlier exchange (2 + 5 words) counts as input of the continued one
    assert second["usage"]["input_tokens"] == 4 + 2 + 5
    unknown = raises(r, lambda up: up.chat("responses", body(
        "responses", previous_response_id="resp_nope")))
    assert (unknown.status, unknown.code) == (400, "invalid_request")
    assert "Previous response with id 'resp_nope' not found." in unknown.message


@pytest.mark.parametrize("kind", ["chat", "anthropic"])
@pytest.mark.parametrize(("extra", "field"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"store": True}, "store"),
])
def test_stateful_responses_requests_are_refused_by_a_non_native_route(
        standin, kind: str, extra: dict[str, Any], field: str) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    error = raises(route(standin, kind), lambda up: up.chat("responses", body("responses",
                                                                              **extra)))
    assert (error.status, error.code, error.retryable) == (400, "invalid_request", False)
    assert f"holds no Responses state: {field!r} needs a route whose upstream speaks the " \
           "Responses API natively (api: responses)" in error.message
    assert standin.recorded() == []
