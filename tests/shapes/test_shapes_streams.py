"""Streams across shapes, event by event, in all six directions.

The stand-in engine renders one answer both ways in the upstream's shape; the stream,
translated event by event and accumulated by the official SDK's own accumulator for the
caller's shape, must equal the translated plain answer, usage included. hypothesis draws
the answers: text of any characters, tool calls, refusals, thinking, stop sequences,
truncation, cached and reasoning usage.
"""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response
from pydantic import TypeAdapter

from harbourgate.providers.standin import engine
from harbourgate.shapes import StreamTranslator, TranslationError, translate_answer, usage_of

DIRECTIONS = [(s, t) for s in ("openai", "anthropic", "responses")
              for t in ("openai", "anthropic", "responses") if s != t]
_EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def translate_stream(source: str, target: str, answer: engine.Reply,
                     request: dict[str, Any]) -> tuple[list[Any], Any]:
    events = engine.render_stream(source, answer, "up", 1000, include_usage=True)  # type: ignore[arg-type]
    translator = StreamTranslator(source, target, model="gw", request=request)  # type: ignore[arg-type]
    out = []
    for event in events:
        out += translator.feed(event.data)
        if translator.done:
            break
    if source == "openai":
        assert not translator.done
        out += translator.finish()
    assert translator.done
    return out, translator.usage


def accumulate(target: str, events: list[Any]) -> dict[str, Any]:
    """The caller's SDK's view of the whole streamed answer."""
    if target == "openai":
        state = ChatCompletionStreamState()
        for event in events:
            state.handle_chunk(ChatCompletionChunk.model_validate(event.data))
        return state.current_completion_snapshot.model_dump(exclude_none=True)
    if target == "anthropic":
        snapshot = None
        buffers: dict[int, bytes] = {}
        for event in events:
            snapshot = accumulate_event(event=_EVENTS.validate_python(event.data),
                                        current_snapshot=snapshot, json_bufs=buffers)
        assert snapshot is not None
        return snapshot.model_dump(exclude_none=True)
    assert events[-1].event in ("response.completed", "response.incomplete")
    numbers = [e.data["sequence_number"] for e in events]
    assert numbers == list(range(len(events)))
    return Response.model_validate(events[-1].data["response"]).model_dump(exclude_none=True)


def read_plain(target: str, data: dict[str, Any]) -> dict[str, Any]:
    model = {"openai": ChatCompletion, "anthropic": Message, "responses": Response}[target]
    return model.model_validate(data).model_dump(exclude_none=True)  # type: ignore[attr-defined]


def scrub(value: Any) -> Any:
    if isinstance(value, dict):
        drop = {"created", "created_at", "parsed", "parsed_arguments"}
        if "function" in value:
            drop.add("index")
        return {k: scrub(v) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def request_for(target: str) -> dict[str, Any]:
    if target == "openai":
        return {"model": "gw", "messages": [], "stream_options": {"include_usage": True}}
    return {"model": "gw"}


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@st.composite
def replies(draw: st.DrawFn) -> engine.Reply:
    kind = draw(st.sampled_from(["end", "length", "stop", "tool", "refusal"]))
    text = draw(texts)
    if kind in ("refusal", "end", "length", "stop") and not text.strip():
        text = "x " + text
    prompt = draw(st.integers(0, 50))
    reply = engine.Reply(key=draw(st.from_regex(r"[0-9a-f]{24}", fullmatch=True)),
                         text="" if kind == "tool" else text, finish=kind,
                         prompt_tokens=prompt, completion_tokens=draw(st.integers(0, 50)),
                         stop_sequence=draw(texts.filter(bool)) if kind == "stop" else None,
                         thinking=draw(st.none() | texts.filter(str.strip)),
                         cache_read=draw(st.integers(0, prompt // 2)),
                         cache_write=draw(st.integers(0, prompt // 2)))
    if kind == "tool":
        reply.tool_calls = [engine.ToolCall(draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True)),
                                            draw(st.dictionaries(st.text(max_size=5), texts,
                                                                 max_size=3)))
                            for _ in range(draw(st.integers(1, 3)))]
    return reply


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
@settings(max_examples=60, deadline=None)
@given(answer=replies())
def test_the_accumulated_stream_equals_the_plain_answer(source: str, target: str,
                                                        answer: engine.Reply) -> None:
    if source == "openai":
        answer.thinking = None  # OpenAI chat reports reasoning tokens only, never the text
    request = request_for(target)
    plain_upstream = engine.render(source, answer, "up", 1000)  # type: ignore[arg-type]
    plain = translate_answer(source, target, plain_upstream, model="gw", request=request)  # type: ignore[arg-type]
    events, usage = translate_stream(source, target, answer, request)
    assert scrub(accumulate(target, events)) == scrub(read_plain(target, plain))
    assert usage == usage_of(source, plain_upstream) == usage_of(target, plain)  # type: ignore[arg-type]


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_a_refusal_stays_a_refusal(source: str, target: str) -> None:
    answer = engine.Reply("ab" * 12, engine.REFUSAL, "refusal", 3, 6)
    plain = translate_answer(source, target, engine.render(source, answer, "up", 1),  # type: ignore[arg-type]
                             model="gw")
    if target == "anthropic":
        assert plain["stop_reason"] == "refusal"
        assert plain["content"] == [{"type": "text", "text": engine.REFUSAL}]
    elif target == "openai":
        message, finish = plain["choices"][0]["message"], plain["choices"][0]["finish_reason"]
        if source == "responses":  # a refusal part: OpenAI's own refusal
            assert (message["refusal"], message["content"], finish) == (
                engine.REFUSAL, None, "stop")
        else:  # Anthropic's refusal is a stop reason: the text, filtered
            assert (message["refusal"], message["content"], finish) == (
                None, engine.REFUSAL, "content_filter")
    else:
        part = plain["output"][-1]["content"][0]
        if source == "openai":
            assert part == {"type": "refusal", "refusal": engine.REFUSAL}
        else:
            assert (part["text"], plain["incomplete_details"]) == (
                engine.REFUSAL, {"reason": "content_filter"})


def test_the_stop_sequence_crosses_from_a_chat_upstream_to_an_anthropic_caller() -> None:
    answer = engine.Reply("cd" * 12, "[m] You said: ", "stop", 3, 3, stop_sequence="hi")
    plain = translate_answer("openai", "anthropic", engine.render("openai", answer, "up", 1),
                             model="gw")
    assert (plain["stop_reason"], plain["stop_sequence"]) == ("stop_sequence", "hi")
    events, _ = translate_stream("openai", "anthropic", answer, {})
    delta = next(e for e in events if e.event == "message_delta")
    assert delta.data["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "hi"}


def test_logprobs_cross_between_chat_and_responses() -> None:
    answer = engine.Reply("ef" * 12, "one two", "end", 1, 2, logprobs=2)
    plain = translate_answer("openai", "responses", engine.render("openai", answer, "up", 1),
                             model="gw")
    logprobs = plain["output"][0]["content"][0]["logprobs"]
    assert [t["token"] for t in logprobs] == ["one", " two"]
    assert all(len(t["top_logprobs"]) == 2 for t in logprobs)
    back = translate_answer("responses", "openai", engine.render("responses", answer, "up", 1),
                            model="gw")
    assert back["choices"][0]["logprobs"]["content"] == logprobs


def test_logprobs_cannot_be_given_to_an_anthropic_caller() -> None:
    answer = engine.Reply("ef" * 12, "one two", "end", 1, 2, logprobs=0)
    with pytest.raises(TranslationError, match="logprobs"):
        translate_answer("openai", "anthropic", engine.render("openai", answer, "up", 1),
                         model="gw")


def test_cache_writes_survive_a_round_trip_through_openai_usage() -> None:
    usage = {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 5,
             "cache_creation_input_tokens": 6}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
               "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
               "stop_sequence": None, "usage": usage}
    chat = translate_answer("anthropic", "openai", message, model="gw")
    assert chat["usage"] == {"prompt_tokens": 14, "completion_tokens": 4, "total_tokens": 18,
                             "prompt_tokens_details": {"cached_tokens": 5,
                                                       "cache_write_tokens": 6}}
    again = translate_answer("openai", "anthropic", chat, model="gw")
    assert again["usage"] == usage
    assert usage_of("openai", chat) == usage_of("anthropic", message)


def test_a_legacy_functions_caller_gets_function_call_back() -> None:
    answer = engine.Reply("ab" * 12, "", "tool", 1, 2,
                          tool_calls=[engine.ToolCall("weather", {"city": "HK"})])
    request = {"model": "gw", "messages": [], "functions": [{"name": "weather"}]}
    plain = translate_answer("anthropic", "openai", engine.render("anthropic", answer, "up", 1),
                             model="gw", request=request)
    choice = plain["choices"][0]
    assert choice["message"]["function_call"] == {"name": "weather",
                                                  "arguments": '{"city":"HK"}'}
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "function_call"
    events, _ = translate_stream("anthropic", "openai", answer, request)
    assert accumulate("openai", events)["choices"][0]["message"]["function_call"] == (
        choice["message"]["function_call"])


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_thinking_from_a_compatible_chat_server_reaches_an_anthropic_caller(key: str) -> None:
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                  "choices": [{"index": 0, "finish_reason": "stop", "message": {
                      "role": "assistant", "content": "42", key: "think first"}}],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}}
    message = translate_answer("openai", "anthropic", completion, model="gw")
    assert message["content"] == [{"type": "thinking", "thinking": "think first",
                                   "signature": ""}, {"type": "text", "text": "42"}]
    translator = StreamTranslator("openai", "anthropic", model="gw")
    events = []
    for delta in ({"role": "assistant", key: "think "}, {key: "first"}, {"content": "42"}):
        events += translator.feed({"id": "chatcmpl-1", "choices": [{"index": 0,
                                                                      "delta": delta}]})
    events += translator.finish()
    assert accumulate("anthropic", events)["content"] == [
        {"type": "thinking", "thinking": "think first", "signature": ""},
        {"type": "text", "text": "42"}]
