"""Every direction of translation, as the official SDKs' stream helpers see it.

For each caller shape (Chat Completions, Responses, Messages) and each provider shape (an
OpenAI Chat Completions upstream, an OpenAI Responses upstream, an Anthropic upstream), the
message the SDK's stream helper accumulates (`chat.completions.stream`, `responses.stream`,
`messages.stream`) equals the non-streamed answer to the same request: text, tool calls,
finish reason and usage. The stand-in is deterministic, so both calls get one answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, Gateway, Process, start_gateway

pytestmark = pytest.mark.e2e

CALLERS = ("chat", "responses", "messages")
PROVIDERS = {"chat": "via-chat", "responses": "via-responses", "messages": "via-messages"}
PROMPT = "Tell me the weather in Kowloon please, in a few words"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}},
           "required": ["city"]}


@pytest.fixture(scope="module")
def translating(standin: Process, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("stream-helpers")

    def route(name: str, provider: str, base: str, **kw: object) -> dict[str, Any]:
        return {"name": name, "provider": provider, "base_url": base,
                "upstream_model": "fable-5", "origin": "HK", "hosting": "HK",
                "class": "frontier-chat", "timeout_s": 30, **kw}

    config = {
        "data_dir": str(workdir / "data"),
        "routes": [route("via-chat", "openai", standin.url + "/v1"),
                   route("via-responses", "openai", standin.url + "/v1", api="responses"),
                   route("via-messages", "anthropic", standin.url)],
        "sandbox": {
            "participants": [{"id": "acme", "name": "Acme", "jurisdiction": "HK"}],
            "applications": [{"id": "acme-research", "participant": "acme", "name": "Acme",
                              "use_cases": ["research.b2b"], "data_origin": "HK",
                              "model_preference": list(PROVIDERS.values())}]},
    }
    process = start_gateway(config, workdir)
    gw = Gateway(process, Path(process.extra["config"]), {})
    r = gw.admin("POST", "/applications/acme-research/keys")
    assert r.status_code in (200, 201), r.text
    gw.keys["acme-research"] = r.json()["key"]
    assert ADMIN_TOKEN
    yield gw
    process.stop()


def openai_client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.keys["acme-research"],
                         max_retries=0, timeout=60)


def anthropic_client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.keys["acme-research"],
                               max_retries=0, timeout=60)


def chat(gw: Gateway, model: str, tools: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    client = openai_client(gw)
    kw: dict[str, Any] = {"model": model, "max_tokens": 60,
                          "messages": [{"role": "user", "content": PROMPT}]}
    if tools:
        kw["tools"] = [{"type": "function", "function": {"name": "get_weather",
                                                         "parameters": WEATHER}}]
        kw["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
    plain = client.chat.completions.create(**kw)
    with client.chat.completions.stream(**kw, stream_options={"include_usage": True}) as s:
        for _ in s:
            pass
        final = s.get_final_completion()

    def essence(completion: Any) -> dict[str, Any]:
        choice = completion.choices[0]
        calls = [(c.function.name, json.loads(c.function.arguments))
                 for c in choice.message.tool_calls or []]
        return {"text": choice.message.content or "", "calls": calls,
                "finish": choice.finish_reason,
                "usage": (completion.usage.prompt_tokens, completion.usage.completion_tokens)}

    return essence(plain), essence(final)


def responses(gw: Gateway, model: str, tools: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    client = openai_client(gw)
    kw: dict[str, Any] = {"model": model, "input": PROMPT, "max_output_tokens": 60}
    if tools:
        kw["tools"] = [{"type": "function", "name": "get_weather", "parameters": WEATHER,
                        "strict": False}]
        kw["tool_choice"] = {"type": "function", "name": "get_weather"}
    plain = client.responses.create(**kw)
    with client.responses.stream(**kw) as s:
        for _ in s:
            pass
        final = s.get_final_response()

    def essence(response: Any) -> dict[str, Any]:
        calls = [(item.name, json.loads(item.arguments)) for item in response.output
                 if item.type == "function_call"]
        return {"text": response.output_text, "calls": calls, "finish": response.status,
                "usage": (response.usage.input_tokens, response.usage.output_tokens)}

    return essence(plain), essence(final)


def messages(gw: Gateway, model: str, tools: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    client = anthropic_client(gw)
    kw: dict[str, Any] = {"model": model, "max_tokens": 60,
                          "messages": [{"role": "user", "content": PROMPT}]}
    if tools:
        kw["tools"] = [{"name": "get_weather", "input_schema": WEATHER}]
        kw["tool_choice"] = {"type": "tool", "name": "get_weather"}
    plain = client.messages.create(**kw)
    with client.messages.stream(**kw) as s:
        for _ in s:
            pass
        final = s.get_final_message()

    def essence(message: Any) -> dict[str, Any]:
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = [(b.name, b.input) for b in message.content if b.type == "tool_use"]
        return {"text": text, "calls": calls, "finish": message.stop_reason,
                "usage": (message.usage.input_tokens, message.usage.output_tokens)}

    return essence(plain), essence(final)


CALL = {"chat": chat, "responses": responses, "messages": messages}


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool-call"])
@pytest.mark.parametrize("provider", CALLERS)
@pytest.mark.parametrize("caller", CALLERS)
def test_the_stream_helper_accumulates_the_plain_answer(
        translating: Gateway, caller: str, provider: str, tools: bool) -> None:
    plain, streamed = CALL[caller](translating, PROVIDERS[provider], tools)
    assert streamed == plain
    assert plain["usage"][0] > 0 and plain["usage"][1] > 0
    if tools:
        assert plain["calls"] and plain["calls"][0][0] == "get_weather"
    else:
        assert "Kowloon" in plain["text"]
