"""Translated answers, as the official SDKs read them.

A minimal relay (the adapters behind a few lines of ASGI, as the gateway uses them) puts
an OpenAI-shaped stand-in behind an Anthropic endpoint and vice versa, so the SDKs' own
parsers and streaming helpers judge what the translators produce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import orjson
import pytest

from harbourgate.config import RouteConfig
from harbourgate.providers import DONE, UpstreamError, encode_event
from harbourgate.providers.upstream import AnthropicUpstream, HTTPUpstream, OpenAIUpstream


class Relay:
    """Answers `/v1/chat/completions` and `/v1/messages` through one adapter."""

    def __init__(self, make: Callable[[], HTTPUpstream]) -> None:
        self.make = make

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        shape = "anthropic" if scope["path"] == "/v1/messages" else "openai"
        body = orjson.loads(raw)
        upstream = self.make()  # one per request: each request runs in uvicorn's loop
        try:
            if not body.get("stream"):
                answer = await upstream.chat(shape, body)
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": orjson.dumps(answer)})
                return
            stream = await upstream.open_stream(shape, body)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            async for event in stream:
                await send({"type": "http.response.body", "body": encode_event(event),
                            "more_body": True})
            await send({"type": "http.response.body",
                        "body": DONE if shape == "openai" else b""})
        except UpstreamError as exc:
            await send({"type": "http.response.start", "status": exc.status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": orjson.dumps(
                {"error": {"message": exc.message, "type": exc.code, "code": exc.code}})})
        finally:
            await upstream.aclose()


@pytest.fixture
def anthropic_via_openai(standin, serve_app) -> anthropic.Anthropic:  # type: ignore[no-untyped-def]
    """An Anthropic client whose requests are served by an OpenAI-shaped upstream."""
    route = RouteConfig(name="relayed", provider="openai", base_url=standin.openai_url,
                        upstream_model="fable-5")
    served = serve_app(Relay(lambda: OpenAIUpstream(route)))
    return anthropic.Anthropic(base_url=served.url, api_key="k", max_retries=0)


@pytest.fixture
def openai_via_anthropic(standin, serve_app) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    """An OpenAI client whose requests are served by an Anthropic-shaped upstream."""
    route = RouteConfig(name="relayed", provider="anthropic", base_url=standin.url,
                        upstream_model="fable-5")
    served = serve_app(Relay(lambda: AnthropicUpstream(route)))
    return openai.OpenAI(base_url=served.url + "/v1", api_key="k", max_retries=0)


WEATHER: Any = {"type": "object", "properties": {"city": {"type": "string"}}}


def test_anthropic_sdk_reads_a_translated_message(anthropic_via_openai: anthropic.Anthropic
                                                   ) -> None:
    message = anthropic_via_openai.messages.create(
        model="relayed", max_tokens=4, system="be brief",
        messages=[{"role": "user", "content": "one two three"}])
    assert message.content[0].text == "[fable-5] You said: one"  # type: ignore[union-attr]
    assert (message.stop_reason, message.model) == ("max_tokens", "relayed")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 4)


def test_anthropic_stream_helper_reads_a_translated_stream(
        anthropic_via_openai: anthropic.Anthropic) -> None:
    with anthropic_via_openai.messages.stream(
            model="relayed", max_tokens=100,
            messages=[{"role": "user", "content": "a stream, translated"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "[fable-5] You said: a stream, translated"
    assert final.content[0].text == "[fable-5] You said: a stream, translated"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 6)


def test_anthropic_stream_helper_reads_a_translated_tool_call(
        anthropic_via_openai: anthropic.Anthropic) -> None:
    with anthropic_via_openai.messages.stream(
            model="relayed", max_tokens=100, tools=[{"name": "weather", "input_schema": WEATHER}],
            tool_choice={"type": "tool", "name": "weather"},
            messages=[{"role": "user", "content": "Tsuen Wan"}]) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("weather", {"city": "Tsuen Wan"})
    assert final.stop_reason == "tool_use"


def test_openai_sdk_reads_a_translated_completion(openai_via_anthropic: openai.OpenAI) -> None:
    completion = openai_via_anthropic.chat.completions.create(
        model="relayed", messages=[{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": "hello"}], stop=["hel"])
    choice = completion.choices[0]
    assert choice.message.content == "[fable-5] You said: "
    assert choice.finish_reason == "stop"
    assert completion.model == "relayed"
    assert completion.usage is not None and completion.usage.prompt_tokens == 3


def test_openai_streaming_reads_translated_chunks_with_usage(
        openai_via_anthropic: openai.OpenAI) -> None:
    chunks = list(openai_via_anthropic.chat.completions.create(
        model="relayed", messages=[{"role": "user", "content": "stream me"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "[fable-5] You said: stream me")
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 5)


def test_openai_stream_helper_reads_a_translated_tool_call(
        openai_via_anthropic: openai.OpenAI) -> None:
    with openai_via_anthropic.chat.completions.stream(
            model="relayed", messages=[{"role": "user", "content": "Mong Kok"}],
            tools=[{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}],
            tool_choice="required") as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather"  # type: ignore[union-attr]
    assert orjson.loads(call.function.arguments) == {"city": "Mong Kok"}  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"
