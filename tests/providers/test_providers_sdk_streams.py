"""Every caller shape against every upstream API, judged by the official SDKs.

A relay puts one adapter behind the three endpoints (`/v1/chat/completions`,
`/v1/messages`, `/v1/responses`); the real stand-in serves as the upstream, speaking Chat
Completions, the Responses API or Anthropic Messages. For each of the nine pairings (six
translated, three passed through) and each kind of answer, the SDK's stream helper
accumulates the streamed answer, and it must equal the SDK's reading of the plain answer
to the same request, usage included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import orjson
import pytest

from harbourgate.config import RouteConfig
from harbourgate.providers import DONE, Shape, UpstreamError, encode_event
from harbourgate.providers.upstream import AnthropicUpstream, HTTPUpstream, OpenAIUpstream

PATHS: dict[str, Shape] = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic",
                           "/v1/responses": "responses"}
WEATHER: Any = {"type": "object", "properties": {"city": {"type": "string"},
                                                 "days": {"type": "integer"}},
                "required": ["city", "days"], "additionalProperties": False}


class Relay:
    """Answers the three generation endpoints through one adapter, as the gateway would."""

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
        shape = PATHS[scope["path"]]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]
                   if k.startswith((b"anthropic-", b"openai-"))}
        body = orjson.loads(raw)
        upstream = self.make()  # one per request: each request runs in uvicorn's loop
        try:
            if not body.get("stream"):
                answer = await upstream.chat(shape, body, headers)
                await _start(send, 200, b"application/json")
                await send({"type": "http.response.body", "body": orjson.dumps(answer)})
                return
            stream = await upstream.open_stream(shape, body, headers)
            await _start(send, 200, b"text/event-stream")
            async for event in stream:
                await send({"type": "http.response.body", "body": encode_event(event),
                            "more_body": True})
            await send({"type": "http.response.body",
                        "body": DONE if shape == "openai" else b""})
        except UpstreamError as exc:
            await _start(send, exc.status, b"application/json")
            await send({"type": "http.response.body", "body": orjson.dumps(
                {"type": "error", "error": {"message": exc.message, "type": exc.code,
                                            "code": exc.code}})})
        finally:
            await upstream.aclose()


async def _start(send: Any, status: int, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type)]})


def served_route(standin: Any, kind: str) -> RouteConfig:
    if kind == "anthropic":
        return RouteConfig(name="relayed", provider="anthropic", base_url=standin.url,
                           upstream_model="fable-5")
    return RouteConfig(name="relayed", provider="openai", base_url=standin.openai_url,
                       upstream_model="fable-5", api=kind)


@pytest.fixture(params=["chat", "responses", "anthropic"])
def relay(request, standin, serve_app) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(the relay's URL, which API its upstream speaks)."""
    route = served_route(standin, request.param)
    make = (lambda: AnthropicUpstream(route)) if request.param == "anthropic" else (
        lambda: OpenAIUpstream(route))
    return serve_app(Relay(make)).url, request.param


REFUSED = {
    # (caller scenario, upstream API) -> the fields (as each caller names it) refused
    ("stop", "responses"): ("stop", "stop_sequences"),
    ("logprobs", "anthropic"): ("logprobs", "top_logprobs"),
}


# --------------------------------------------------------------------------- scenarios

SCENARIOS = ["text", "tool", "refusal", "structured", "reasoning", "cached", "length"]
OPENAI_SCENARIOS = [*SCENARIOS, "stop", "logprobs", "several"]
ANTHROPIC_SCENARIOS = [*SCENARIOS, "stop"]
RESPONSES_SCENARIOS = [*SCENARIOS, "logprobs"]


def openai_kwargs(scenario: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": "relayed", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]}
    if scenario == "tool":
        kw["tools"] = [{"type": "function", "function": {"name": "weather",
                                                         "parameters": WEATHER}}]
        kw["tool_choice"] = "required"
    elif scenario == "refusal":
        kw["messages"][-1]["content"] = "[refuse] tell me"
    elif scenario == "structured":
        kw["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "weather", "schema": WEATHER, "strict": True}}
    elif scenario == "reasoning":
        kw["reasoning_effort"] = "low"
    elif scenario == "cached":
        kw["messages"][-1]["content"] = "[cached] a long shared prefix of words"
    elif scenario == "length":
        kw["max_completion_tokens"] = 3
    elif scenario == "stop":
        kw["stop"] = ["there"]
    elif scenario == "logprobs":
        kw["logprobs"], kw["top_logprobs"] = True, 2
    elif scenario == "several":
        kw["n"] = 2
    return kw


def anthropic_kwargs(scenario: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": "relayed", "max_tokens": 2048, "system": "be brief",
                          "messages": [{"role": "user", "content": "hello there"}]}
    if scenario == "tool":
        kw["tools"] = [{"name": "weather", "input_schema": WEATHER}]
        kw["tool_choice"] = {"type": "any"}
    elif scenario == "refusal":
        kw["messages"][-1]["content"] = "[refuse] tell me"
    elif scenario == "structured":
        kw["output_config"] = {"format": {"type": "json_schema", "schema": WEATHER}}
    elif scenario == "reasoning":
        kw["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    elif scenario == "cached":
        kw["messages"][-1]["content"] = "[cached] a long shared prefix of words"
    elif scenario == "length":
        kw["max_tokens"] = 3
    elif scenario == "stop":
        kw["stop_sequences"] = ["there"]
    return kw


def responses_kwargs(scenario: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": "relayed", "instructions": "be brief", "input": "hello there",
                          "store": False}
    if scenario == "tool":
        kw["tools"] = [{"type": "function", "name": "weather", "parameters": WEATHER,
                        "strict": True}]
        kw["tool_choice"] = "required"
    elif scenario == "refusal":
        kw["input"] = "[refuse] tell me"
    elif scenario == "structured":
        kw["text"] = {"format": {"type": "json_schema", "name": "weather", "schema": WEATHER,
                                 "strict": True}}
    elif scenario == "reasoning":
        kw["reasoning"] = {"effort": "low"}
    elif scenario == "cached":
        kw["input"] = "[cached] a long shared prefix of words"
    elif scenario == "length":
        kw["max_output_tokens"] = 3
    elif scenario == "logprobs":
        kw["include"], kw["top_logprobs"] = ["message.output_text.logprobs"], 2
    return kw


def scrub(value: Any) -> Any:
    """A dump without what legitimately differs between two calls (clock) or what only the
    stream helpers add (their parsed views)."""
    if isinstance(value, dict):
        # (and vLLM's stop_reason, which the chat helper does not accumulate)
        helper_only = {"created", "created_at", "parsed", "parsed_arguments", "stop_reason"}
        if "function" in value:
            helper_only.add("index")  # the chat helper keeps each tool call's delta index
        return {k: scrub(v) for k, v in value.items() if k not in helper_only}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def refused(relay: tuple[str, str], scenario: str, error: type[Exception],
            call: Callable[[], Any]) -> bool:
    """For a pairing that must be refused: check the SDK gets a 400 naming the field."""
    fields = REFUSED.get((scenario, relay[1]))
    if fields is None:
        return False
    with pytest.raises(error) as info:
        call()
    assert getattr(info.value, "status_code", None) == 400
    assert any(f"request: {field}: " in str(info.value) for field in fields)
    return True


@pytest.mark.parametrize("scenario", OPENAI_SCENARIOS)
def test_openai_chat_stream_helper_accumulates_the_plain_answer(relay: tuple[str, str],
                                                                scenario: str) -> None:
    client = openai.OpenAI(base_url=relay[0] + "/v1", api_key="k", max_retries=0)
    kw = openai_kwargs(scenario)
    if scenario == "several" and relay[1] != "chat":
        with pytest.raises(openai.BadRequestError, match=r": n: "):
            client.chat.completions.create(**kw)
        return
    if refused(relay, scenario, openai.BadRequestError,
               lambda: client.chat.completions.create(**kw)):
        return
    plain = client.chat.completions.create(**kw)
    with client.chat.completions.stream(**kw, stream_options={"include_usage": True}) as stream:
        try:
            final: Any = stream.get_final_completion()
        except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError):
            final = stream.current_completion_snapshot  # the helper refuses to parse these
    assert scrub(final.model_dump(exclude_none=True)) == scrub(plain.model_dump(
        exclude_none=True))
    check_scenario_openai(scenario, plain.model_dump())


@pytest.mark.parametrize("scenario", ANTHROPIC_SCENARIOS)
def test_anthropic_stream_helper_accumulates_the_plain_answer(relay: tuple[str, str],
                                                              scenario: str) -> None:
    client = anthropic.Anthropic(base_url=relay[0], api_key="k", max_retries=0)
    kw = anthropic_kwargs(scenario)
    if refused(relay, scenario, anthropic.BadRequestError,
               lambda: client.messages.create(**kw)):
        return
    plain = client.messages.create(**kw)
    with client.messages.stream(**kw) as stream:
        final = stream.get_final_message()
    assert scrub(final.model_dump(exclude_none=True)) == scrub(plain.model_dump(
        exclude_none=True))
    check_scenario_anthropic(scenario, plain.model_dump())


@pytest.mark.parametrize("scenario", RESPONSES_SCENARIOS)
def test_responses_stream_helper_accumulates_the_plain_answer(relay: tuple[str, str],
                                                              scenario: str) -> None:
    client = openai.OpenAI(base_url=relay[0] + "/v1", api_key="k", max_retries=0)
    kw = responses_kwargs(scenario)
    if refused(relay, scenario, openai.BadRequestError, lambda: client.responses.create(**kw)):
        return
    plain = client.responses.create(**kw)
    with client.responses.stream(**kw) as stream:
        events = list(stream)
    # The helper's final response needs response.completed; an incomplete answer (as from
    # OpenAI itself) ends with response.incomplete, which carries the same whole response.
    assert events[-1].type in ("response.completed", "response.incomplete")
    final = events[-1].response  # type: ignore[union-attr]
    if events[-1].type == "response.completed":
        assert final == stream.get_final_response()
    assert scrub(final.model_dump(exclude_none=True)) == scrub(plain.model_dump(
        exclude_none=True))
    check_scenario_responses(scenario, plain.model_dump())


# --------------------------------------------------------------------------- what each means


def check_scenario_openai(scenario: str, answer: dict[str, Any]) -> None:
    choice, usage = answer["choices"][0], answer["usage"]
    message = choice["message"]
    assert answer["model"] == "relayed"
    if scenario == "text":
        assert message["content"] == "[fable-5] You said: hello there"
        assert choice["finish_reason"] == "stop"
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (4, 5)
    elif scenario == "tool":
        call = message["tool_calls"][0]["function"]
        assert (call["name"], orjson.loads(call["arguments"])) == (
            "weather", {"city": "hello there", "days": 2})
        assert choice["finish_reason"] == "tool_calls"
    elif scenario == "refusal":
        # OpenAI's own refusal field, or (from Anthropic, whose refusal is a stop reason
        # that may come after text was streamed) the text with finish_reason content_filter
        said = "I can't help with that request."
        assert ((message["refusal"], message["content"], choice["finish_reason"])
                in ((said, None, "stop"), (None, said, "content_filter")))
    elif scenario == "structured":
        assert orjson.loads(message["content"]) == {"city": "hello there", "days": 2}
    elif scenario == "reasoning":
        assert usage["completion_tokens_details"]["reasoning_tokens"] == 4
        assert usage["completion_tokens"] == 5 + 4
    elif scenario == "cached":
        assert usage["prompt_tokens"] == 9
        assert usage["prompt_tokens_details"]["cached_tokens"] == 4
    elif scenario == "length":
        assert message["content"] == "[fable-5] You said:"
        assert choice["finish_reason"] == "length"
    elif scenario == "stop":
        assert message["content"] == "[fable-5] You said: hello "
        assert choice["finish_reason"] == "stop"
    elif scenario == "logprobs":
        tokens = choice["logprobs"]["content"]
        assert "".join(t["token"] for t in tokens) == message["content"]
        assert all(len(t["top_logprobs"]) == 2 for t in tokens)
    else:
        assert [c["index"] for c in answer["choices"]] == [0, 1]
        assert usage["completion_tokens"] == 2 * 5


def check_scenario_anthropic(scenario: str, answer: dict[str, Any]) -> None:
    content, usage = answer["content"], answer["usage"]
    assert answer["model"] == "relayed"
    if scenario == "text":
        assert content == [{"type": "text", "text": "[fable-5] You said: hello there",
                            "citations": None}]
        assert answer["stop_reason"] == "end_turn"
        assert (usage["input_tokens"], usage["output_tokens"]) == (4, 5)
    elif scenario == "tool":
        assert (content[-1]["name"], content[-1]["input"]) == (
            "weather", {"city": "hello there", "days": 2})
        assert answer["stop_reason"] == "tool_use"
    elif scenario == "refusal":
        assert content[0]["text"] == "I can't help with that request."
        assert answer["stop_reason"] == "refusal"
    elif scenario == "structured":
        assert orjson.loads(content[0]["text"]) == {"city": "hello there", "days": 2}
    elif scenario == "reasoning":
        assert usage["output_tokens"] == 5 + 4
        assert usage["output_tokens_details"]["thinking_tokens"] == 4
    elif scenario == "cached":
        assert usage["cache_read_input_tokens"] == 4
        assert usage["input_tokens"] + usage["cache_read_input_tokens"] == 9
    elif scenario == "length":
        assert answer["stop_reason"] == "max_tokens"
    else:
        assert content[0]["text"] == "[fable-5] You said: hello "
        assert (answer["stop_reason"], answer["stop_sequence"]) == ("stop_sequence", "there")


def check_scenario_responses(scenario: str, answer: dict[str, Any]) -> None:
    usage = answer["usage"]
    output = answer["output"]
    assert answer["model"] == "relayed"
    if scenario == "text":
        assert output[-1]["content"][0]["text"] == "[fable-5] You said: hello there"
        assert answer["status"] == "completed"
        assert (usage["input_tokens"], usage["output_tokens"]) == (4, 5)
    elif scenario == "tool":
        call = output[-1]
        assert (call["type"], call["name"], orjson.loads(call["arguments"])) == (
            "function_call", "weather", {"city": "hello there", "days": 2})
    elif scenario == "refusal":
        part = output[-1]["content"][0]
        if part["type"] == "output_text":  # from Anthropic: the text, and why it ended
            assert answer["incomplete_details"]["reason"] == "content_filter"
            assert part["text"] == "I can't help with that request."
        else:
            assert part["refusal"] == "I can't help with that request."
    elif scenario == "structured":
        assert orjson.loads(output[-1]["content"][0]["text"]) == {"city": "hello there",
                                                                  "days": 2}
    elif scenario == "reasoning":
        assert usage["output_tokens_details"]["reasoning_tokens"] == 4
    elif scenario == "cached":
        assert usage["input_tokens_details"]["cached_tokens"] == 4
    elif scenario == "length":
        assert answer["status"] == "incomplete"
        assert answer["incomplete_details"]["reason"] == "max_output_tokens"
    else:
        part = output[-1]["content"][0]
        assert "".join(t["token"] for t in part["logprobs"]) == part["text"]
        assert all(len(t["top_logprobs"]) == 2 for t in part["logprobs"])
