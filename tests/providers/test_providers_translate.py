"""OpenAI <-> Anthropic translation: requests, responses and streams, both ways."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.providers import StreamEvent
from harbourgate.providers.standin import engine
from harbourgate.providers.translate import (
    DEFAULT_MAX_TOKENS,
    StreamToAnthropic,
    StreamToOpenAI,
    TranslationError,
    request_to_anthropic,
    request_to_openai,
    response_to_anthropic,
    response_to_openai,
)

PNG = "iVBORw0KGgo="
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


# --------------------------------------------------------------------------- OpenAI -> Anthropic


def test_openai_request_becomes_anthropic_with_system_tools_and_merged_turns() -> None:
    body = {
        "model": "fable-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Weather in Hong Kong?"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.org/a.jpg"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Hong Kong"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "weather", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "28C"},
            {"role": "tool", "tool_call_id": "call_2",
             "content": [{"type": "text", "text": "n/a"}]},
        ],
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "Current weather", "parameters": WEATHER}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_completion_tokens": 300,
        "max_tokens": 999,
        "temperature": 1.7,
        "top_p": 0.9,
        "stop": "END",
        "stream": True,
        "user": "u-42",
        "seed": 7,
        "frequency_penalty": 0.5,
    }
    assert request_to_anthropic(body, model="claude-x") == {
        "model": "claude-x",
        "system": "Be brief.\n\nAnswer in English.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Hong Kong?"},
                {"type": "text", "text": "And this picture?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.org/a.jpg"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather",
                 "input": {"city": "Hong Kong"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "28C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "n/a"},
            ]},
        ],
        "tools": [{"name": "weather", "description": "Current weather",
                   "input_schema": WEATHER}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "max_tokens": 300,
        "temperature": 1.0,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "u-42"},
    }


def test_openai_request_defaults_max_tokens_and_keeps_the_model_when_not_given() -> None:
    out = request_to_anthropic({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert out == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "max_tokens": DEFAULT_MAX_TOKENS}


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "weather"}}, {"type": "tool", "name": "weather"}),
])
def test_openai_tool_choice(choice: Any, expected: dict) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
            "tools": [{"type": "function", "function": {"name": "weather"}}]}
    out = request_to_anthropic(body)
    assert out["tool_choice"] == expected
    assert out["tools"] == [{"name": "weather",
                             "input_schema": {"type": "object", "properties": {}}}]


def test_openai_stop_list_and_max_tokens() -> None:
    out = request_to_anthropic({"messages": [{"role": "user", "content": "x"}],
                                "stop": ["a", "b"], "max_tokens": 12})
    assert out["stop_sequences"] == ["a", "b"]
    assert out["max_tokens"] == 12


@pytest.mark.parametrize(("body", "message"), [
    ({"messages": "hi"}, "messages: must be a list"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 2},
     "n: an Anthropic model returns one choice"),
    ({"messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "json_object"}},
     "response_format: 'json_object' is not available"),
    ({"messages": [{"role": "function", "content": "x"}]},
     "messages[0].role: 'function' cannot be sent"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0]: a 'input_audio' part cannot be sent"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]},
     "messages[0].content[0].image_url.url: a data URL must look like"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
     "must be an http"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}]},
     "messages[0].tool_calls[0].function.arguments: must be a JSON object"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]},
     "must be a JSON object"),
    ({"messages": [{"role": "tool", "content": "x"}]},
     "messages[0].tool_call_id: required"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]},
     "tools[0]: only function tools"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"},
     "tool_choice: 'sometimes' is not a known tool choice"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url"}]}]},
     "messages[0].content[0]: only text parts"),
])
def test_openai_requests_anthropic_cannot_express_are_refused(body: dict, message: str) -> None:
    with pytest.raises(TranslationError, match=re.escape(message)):
        request_to_anthropic(body)


# --------------------------------------------------------------------------- Anthropic -> OpenAI


def test_anthropic_request_becomes_openai_with_tool_results_first() -> None:
    body = {
        "model": "fable-5",
        "system": [{"type": "text", "text": "Be brief."}],
        "max_tokens": 256,
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather",
                 "input": {"city": "HK"}},
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "Also this:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}},
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [{"type": "text", "text": "28C"}]},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2"}]},
        ],
        "tools": [{"name": "weather", "description": "Weather", "input_schema": WEATHER}],
        "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
        "temperature": 0.2,
        "top_p": 0.5,
        "top_k": 40,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "u-42"},
    }
    assert request_to_openai(body, model="gpt-x") == {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city":"HK"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "28C"},
            {"role": "user", "content": [
                {"type": "text", "text": "Also this:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_2", "content": ""},
        ],
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.5,
        "stop": ["END"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-42",
        "tools": [{"type": "function", "function": {
            "name": "weather", "parameters": WEATHER, "description": "Weather"}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False,
    }


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")])
def test_anthropic_tool_choice(choice: dict, expected: str) -> None:
    out = request_to_openai({"messages": [{"role": "user", "content": "x"}],
                             "tools": [{"name": "t", "input_schema": WEATHER}],
                             "tool_choice": choice})
    assert out["tool_choice"] == expected


def test_anthropic_url_image_becomes_an_image_url_part() -> None:
    out = request_to_openai({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.org/a.jpg"}}]}]})
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.org/a.jpg"}}]}]


@pytest.mark.parametrize(("body", "message"), [
    ({"messages": [{"role": "system", "content": "x"}]},
     "messages[0].role: must be user or assistant, not 'system'"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "messages[0].content[0]: a 'document' block cannot be sent"),
    ({"messages": [{"role": "assistant", "content": [{"type": "server_tool_use"}]}]},
     "messages[0].content[0]: a 'server_tool_use' block cannot be sent"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
     "messages[0].content[0].source: must be a base64 or url image source"),
    ({"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "tools[0]: only client tools"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "some"}},
     "tool_choice.type: 'some' is not a known tool choice"),
    ({"system": [{"type": "image"}], "messages": []},
     "system[0]: only text blocks are allowed here"),
    ({"messages": None}, "messages: must be a list"),
])
def test_anthropic_requests_openai_cannot_express_are_refused(body: dict, message: str) -> None:
    with pytest.raises(TranslationError, match=re.escape(message)):
        request_to_openai(body)


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict]:
    turns = draw(st.lists(text, min_size=1, max_size=8))
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t}
                for i, t in enumerate(turns)]
    if draw(st.booleans()):
        messages.insert(0, {"role": "system", "content": draw(text)})
    return messages


@given(conversations())
def test_openai_to_anthropic_and_back_keeps_every_role_and_text(messages: list[dict]) -> None:
    body = {"model": "m", "messages": messages, "max_tokens": 10}
    back = request_to_openai(request_to_anthropic(body))
    assert back["messages"] == messages
    assert back["max_tokens"] == 10


@given(st.lists(text, min_size=1, max_size=8), st.none() | text)
def test_anthropic_to_openai_and_back_keeps_every_role_and_text(
        turns: list[str], system: str | None) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t}
        for i, t in enumerate(turns)]}
    if system:
        body["system"] = system
    assert request_to_anthropic(request_to_openai(body)) == body


# --------------------------------------------------------------------------- responses

ANTHROPIC_MESSAGE = {
    "id": "msg_01abc", "type": "message", "role": "assistant", "model": "claude-x",
    "content": [
        {"type": "text", "text": "Let me check. "},
        {"type": "text", "text": "One moment."},
        {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "HK"}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 5,
              "cache_creation_input_tokens": 2},
}


def test_anthropic_response_becomes_openai() -> None:
    assert response_to_openai(ANTHROPIC_MESSAGE, model="fable-5", created=1700000000) == {
        "id": "chatcmpl-01abc", "object": "chat.completion", "created": 1700000000,
        "model": "fable-5",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check. One moment.", "refusal": None,
            "tool_calls": [{"id": "toolu_9", "type": "function", "function": {
                "name": "weather", "arguments": '{"city":"HK"}'}}]}}],
        "usage": {"prompt_tokens": 17, "completion_tokens": 7, "total_tokens": 24,
                  "prompt_tokens_details": {"cached_tokens": 5}},
    }


def test_openai_response_becomes_anthropic() -> None:
    completion = {
        "id": "chatcmpl-xyz", "object": "chat.completion", "created": 1, "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "weather", "arguments": '{"city": "HK"}'}}]}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
    }
    assert response_to_anthropic(completion, model="fable-5") == {
        "id": "msg_xyz", "type": "message", "role": "assistant", "model": "fable-5",
        "content": [{"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "weather",
                     "input": {"city": "HK"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 4},
    }


@pytest.mark.parametrize(("anthropic", "openai"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), (None, "stop")])
def test_stop_reason_to_finish_reason(anthropic: str | None, openai: str) -> None:
    message = {**ANTHROPIC_MESSAGE, "stop_reason": anthropic}
    assert response_to_openai(message, model="m")["choices"][0]["finish_reason"] == openai


@pytest.mark.parametrize(("openai", "anthropic"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
    ("content_filter", "refusal"), (None, "end_turn")])
def test_finish_reason_to_stop_reason(openai: str | None, anthropic: str) -> None:
    completion = {"id": "c", "choices": [{"message": {"content": "x"}, "finish_reason": openai}]}
    assert response_to_anthropic(completion, model="m")["stop_reason"] == anthropic


def test_openai_response_with_bad_tool_arguments_is_an_error() -> None:
    completion = {"choices": [{"message": {"tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}}]}
    with pytest.raises(TranslationError, match="must be a JSON object"):
        response_to_anthropic(completion, model="m")


def test_openai_refusal_becomes_text() -> None:
    completion = {"choices": [{"message": {"content": None, "refusal": "I cannot."},
                               "finish_reason": "stop"}]}
    assert response_to_anthropic(completion, model="m")["content"] == [
        {"type": "text", "text": "I cannot."}]


# --------------------------------------------------------------------------- streams


def assemble_openai(events: list[StreamEvent]) -> dict[str, Any]:
    """What a client reassembles from OpenAI chunks."""
    content = ""
    calls: dict[int, dict] = {}
    finish = usage = None
    for ev in events:
        assert ev.event is None
        assert ev.data["object"] == "chat.completion.chunk"
        if ev.data.get("usage"):
            usage = ev.data["usage"]
        for choice in ev.data["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"arguments": ""})
                if "id" in call:
                    slot["id"], slot["name"] = call["id"], call["function"]["name"]
                slot["arguments"] += call["function"].get("arguments", "")
            finish = choice["finish_reason"] or finish
    return {"content": content,
            "tool_calls": [{**c, "arguments": orjson.loads(c["arguments"] or "{}")}
                           for _, c in sorted(calls.items())],
            "finish": finish, "usage": usage}


def assemble_anthropic(events: list[StreamEvent]) -> dict[str, Any]:
    """What a client reassembles from Anthropic events (checking their order)."""
    assert events[0].event == "message_start"
    assert events[-1].event == "message_stop"
    message = dict(events[0].data["message"])
    blocks: list[dict] = []
    buffers: dict[int, str] = {}
    open_block = None
    for ev in events[1:-1]:
        assert ev.event == ev.data["type"]
        if ev.event == "content_block_start":
            assert open_block is None and ev.data["index"] == len(blocks)
            open_block = ev.data["index"]
            blocks.append(dict(ev.data["content_block"]))
        elif ev.event == "content_block_delta":
            assert ev.data["index"] == open_block
            delta = ev.data["delta"]
            if delta["type"] == "text_delta":
                blocks[open_block]["text"] += delta["text"]
            else:
                buffers[open_block] = buffers.get(open_block, "") + delta["partial_json"]
        elif ev.event == "content_block_stop":
            assert ev.data["index"] == open_block
            open_block = None
        elif ev.event == "message_delta":
            assert open_block is None
            message["stop_reason"] = ev.data["delta"]["stop_reason"]
            message["usage"] = {**message["usage"], **ev.data["usage"]}
    for index, raw in buffers.items():
        blocks[index]["input"] = orjson.loads(raw)
    message["content"] = blocks
    return message


def plain_openai(completion: dict[str, Any]) -> dict[str, Any]:
    choice = completion["choices"][0]
    return {"content": choice["message"]["content"] or "",
            "tool_calls": [{"id": c["id"], "name": c["function"]["name"],
                            "arguments": orjson.loads(c["function"]["arguments"])}
                           for c in choice["message"].get("tool_calls") or []],
            "finish": choice["finish_reason"], "usage": completion["usage"]}


TOOLS = [{"name": "weather", "input_schema": WEATHER}]


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    words = draw(st.lists(st.text(alphabet="abcxyz港 ", min_size=1, max_size=9), min_size=1,
                          max_size=6))
    body: dict[str, Any] = {"model": "fable-5", "max_tokens": draw(st.integers(1, 12)),
                            "messages": [{"role": "user", "content": " ".join(words)}]}
    if draw(st.booleans()):
        body["stop_sequences"] = [draw(st.sampled_from(["a", "You", "zz", "港"]))]
    if draw(st.booleans()):
        body["tools"] = TOOLS
        body["tool_choice"] = {"type": draw(st.sampled_from(["auto", "any"]))}
    return body


@settings(max_examples=60, deadline=None)
@given(anthropic_requests(), st.booleans())
def test_anthropic_stream_translated_reassembles_to_the_plain_answer_translated(
        body: dict[str, Any], include_usage: bool) -> None:
    answer = engine.reply("anthropic", body, "fable-5")
    plain = response_to_openai(engine.render("anthropic", answer, "fable-5", 1), model="r")
    translator = StreamToOpenAI(model="r", include_usage=include_usage, created=1)
    chunks = [c for ev in engine.render_stream("anthropic", answer, "fable-5", 1)
              for c in translator.feed(ev.data)]
    assert translator.done
    assembled = assemble_openai(chunks)
    expected = plain_openai(plain)
    if not include_usage:
        expected["usage"] = None
    assert assembled == expected
    assert {c.data["id"] for c in chunks} == {plain["id"]}
    assert {c.data["model"] for c in chunks} == {"r"}


@settings(max_examples=60, deadline=None)
@given(anthropic_requests())
def test_openai_stream_translated_reassembles_to_the_plain_answer_translated(
        anthropic_body: dict[str, Any]) -> None:
    body = request_to_openai(anthropic_body)
    answer = engine.reply("openai", body, "fable-5")
    plain = response_to_anthropic(engine.render("openai", answer, "fable-5", 1), model="r")
    translator = StreamToAnthropic(model="r")
    events = [e for ev in engine.render_stream("openai", answer, "fable-5", 1,
                                               include_usage=True)
              for e in translator.feed(ev.data)]
    events += translator.finish()
    assembled = assemble_anthropic(events)
    assert assembled["content"] == plain["content"]
    assert assembled["stop_reason"] == plain["stop_reason"]
    assert assembled["usage"] == plain["usage"]
    assert assembled["id"] == plain["id"]
    assert assembled["model"] == "r"


def test_stream_to_openai_passes_a_mid_stream_error_on() -> None:
    translator = StreamToOpenAI(model="r")
    translator.feed({"type": "message_start", "message": {"id": "msg_1", "usage": {}}})
    with pytest.raises(TranslationError, match="mid-stream: Overloaded"):
        translator.feed({"type": "error", "error": {"type": "overloaded_error",
                                                    "message": "Overloaded"}})


def test_stream_to_openai_ignores_ping_and_unknown_events() -> None:
    translator = StreamToOpenAI(model="r")
    assert translator.feed({"type": "ping"}) == []
    assert translator.feed({"type": "something_new"}) == []
    assert not translator.done


def test_stream_to_anthropic_closes_an_empty_stream_properly() -> None:
    events = StreamToAnthropic(model="r").finish()
    assert [e.event for e in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1].data["delta"]["stop_reason"] == "end_turn"


def test_stream_to_anthropic_switches_blocks_between_text_and_tools() -> None:
    translator = StreamToAnthropic(model="r")
    events = translator.feed({"id": "chatcmpl-1", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]})
    events += translator.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": '{"x":'}}]}}]})
    events += translator.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "1}"}}]}}]})
    events += translator.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}]},
        "finish_reason": "tool_calls"}]})
    events += translator.feed({"choices": [], "usage": {"prompt_tokens": 3,
                                                        "completion_tokens": 2}})
    events += translator.finish()
    message = assemble_anthropic(events)
    assert message["id"] == "msg_1"
    assert message["content"] == [
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "call_b", "name": "g", "input": {}}]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 3, "output_tokens": 2}
