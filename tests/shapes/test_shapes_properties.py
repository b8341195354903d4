"""Properties of the translators, drawn with hypothesis from the three request schemas.

- No input makes a translator raise anything but `TranslationError` (valid requests, the
  same with any node replaced by a value of the wrong type, unknown part types, deep
  nesting, arbitrary JSON), and the refusal names a field.
- The token estimate never raises and grows with the text.
- What survives a round trip: an Anthropic request through the OpenAI shape and back.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.shapes import (
    SHAPES,
    StreamTranslator,
    TranslationError,
    estimate_input_tokens,
    translate_answer,
    translate_request,
)

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    max_size=8)
json_values = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=12)
texts = st.text(max_size=20)
names = st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}

# --------------------------------------------------------------------------- valid requests


@st.composite
def chat_requests(draw: st.DrawFn) -> dict[str, Any]:
    part = st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, texts),
        st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}},
                  st.sampled_from(["https://x.org/a.png", "data:image/png;base64,AAAA"])))
    message = st.one_of(
        st.builds(lambda t: {"role": "system", "content": t}, texts),
        st.builds(lambda c: {"role": "user", "content": c}, texts | st.lists(part, max_size=3)),
        st.builds(lambda t: {"role": "assistant", "content": t}, texts),
        st.builds(lambda i, n: {"role": "assistant", "content": None, "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": "{}"}}]},
            names, names),
        st.builds(lambda i, t: {"role": "tool", "tool_call_id": i, "content": t}, names, texts))
    body: dict[str, Any] = {"model": "m", "messages": draw(st.lists(message, min_size=1,
                                                                    max_size=5))}
    optional = {
        "max_tokens": st.integers(1, 5000), "max_completion_tokens": st.integers(1, 5000),
        "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "n": st.integers(1, 3),
        "stop": texts | st.lists(texts, max_size=3), "seed": st.integers(),
        "logprobs": st.booleans(), "top_logprobs": st.integers(0, 5), "user": texts,
        "reasoning_effort": st.sampled_from(["low", "medium", "high", "none", "odd"]),
        "response_format": st.sampled_from([
            {"type": "text"}, {"type": "json_object"},
            {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}]),
        "tools": st.lists(st.builds(lambda n: {"type": "function", "function": {
            "name": n, "parameters": SCHEMA}}, names), max_size=2),
        "tool_choice": st.sampled_from(["auto", "none", "required",
                                        {"type": "function", "function": {"name": "f"}}]),
        "parallel_tool_calls": st.booleans(), "stream": st.booleans(),
        "functions": st.lists(st.builds(lambda n: {"name": n}, names), max_size=2),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    block = st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, texts),
        st.builds(lambda d: {"type": "image", "source": {"type": "base64",
                                                         "media_type": "image/png", "data": d}},
                  texts),
        st.builds(lambda i, t: {"type": "tool_result", "tool_use_id": i, "content": t},
                  names, texts),
        st.builds(lambda i, n: {"type": "tool_use", "id": i, "name": n, "input": {}},
                  names, names),
        st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s},
                  texts, texts),
        st.builds(lambda d: {"type": "document", "source": {
            "type": "base64", "media_type": "application/pdf", "data": d}}, texts))
    message = st.builds(lambda r, c: {"role": r, "content": c},
                        st.sampled_from(["user", "assistant"]),
                        texts | st.lists(block, max_size=3))
    body: dict[str, Any] = {"model": "m", "max_tokens": draw(st.integers(1, 5000)),
                            "messages": draw(st.lists(message, min_size=1, max_size=4))}
    optional = {
        "system": texts | st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts),
                                   max_size=2),
        "temperature": st.floats(0, 1), "top_p": st.floats(0, 1), "top_k": st.integers(1, 50),
        "stop_sequences": st.lists(texts, max_size=3),
        "metadata": st.builds(lambda u: {"user_id": u}, texts),
        "thinking": st.sampled_from([{"type": "enabled", "budget_tokens": 1024},
                                     {"type": "disabled"}, {"type": "adaptive"}]),
        "output_config": st.sampled_from([{"effort": "low"}, {"format": {
            "type": "json_schema", "schema": SCHEMA}}]),
        "tools": st.lists(st.builds(lambda n: {"name": n, "input_schema": SCHEMA}, names),
                          max_size=2),
        "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"},
                                        {"type": "tool", "name": "f",
                                         "disable_parallel_tool_use": True}]),
        "stream": st.booleans(),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


@st.composite
def responses_requests(draw: st.DrawFn) -> dict[str, Any]:
    content = st.one_of(
        st.builds(lambda t: {"type": "input_text", "text": t}, texts),
        st.builds(lambda u: {"type": "input_image", "image_url": u, "detail": "auto"},
                  st.sampled_from(["https://x.org/a.png", "data:image/png;base64,AAAA"])),
        st.builds(lambda d: {"type": "input_file", "file_data": f"data:application/pdf;"
                             f"base64,{d}", "filename": "a.pdf"}, names))
    item = st.one_of(
        st.builds(lambda r, c: {"role": r, "content": c},
                  st.sampled_from(["user", "system", "developer"]),
                  texts | st.lists(content, max_size=3)),
        st.builds(lambda t: {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": t}]}, texts),
        st.builds(lambda i, n: {"type": "function_call", "call_id": i, "name": n,
                                "arguments": "{}"}, names, names),
        st.builds(lambda i, t: {"type": "function_call_output", "call_id": i, "output": t},
                  names, texts))
    body: dict[str, Any] = {"model": "m", "input": draw(texts | st.lists(item, min_size=1,
                                                                        max_size=4))}
    optional = {
        "instructions": texts, "max_output_tokens": st.integers(1, 5000),
        "temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
        "reasoning": st.sampled_from([{"effort": "low"}, {"effort": "high",
                                                          "summary": "auto"}]),
        "text": st.sampled_from([{"format": {"type": "text"}}, {"format": {
            "type": "json_schema", "name": "x", "schema": SCHEMA}}]),
        "tools": st.lists(st.builds(lambda n: {"type": "function", "name": n,
                                               "parameters": SCHEMA}, names), max_size=2),
        "tool_choice": st.sampled_from(["auto", "required", {"type": "function",
                                                              "name": "f"}]),
        "store": st.booleans(), "previous_response_id": st.none() | names,
        "include": st.just(["message.output_text.logprobs"]), "top_logprobs": st.integers(0, 5),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


REQUESTS = {"openai": chat_requests(), "anthropic": anthropic_requests(),
            "responses": responses_requests()}


def mutate(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """`value` with one node (at any depth) replaced by a value of another type, an unknown
    part, or a deeply nested structure."""
    if (depth > 0 and draw(st.integers(0, 3)) == 0) or not isinstance(value, dict | list) or (
            not value):
        return draw(st.one_of(
            json_values, st.just({"type": "no_such_part", "x": 1}),
            st.integers(1, 60).map(lambda n: _nested(n))))
    if isinstance(value, dict):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: mutate(draw, value[key], depth + 1)}
    index = draw(st.integers(0, len(value) - 1))
    return [*value[:index], mutate(draw, value[index], depth + 1), *value[index + 1:]]


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"content": value}
    return value


@st.composite
def broken(draw: st.DrawFn, shape: str) -> dict[str, Any]:
    return mutate(draw, draw(REQUESTS[shape]))


def translate_everywhere(source: str, body: Any) -> None:
    for target in SHAPES:
        if target == source:
            continue
        try:
            out = translate_request(source, target, body, model="up",  # type: ignore[arg-type]
                                    max_completion_tokens=True, top_k=True)
        except TranslationError as exc:
            message = str(exc)
            assert ": " in message and message.split(": ")[0], message  # names a field
        else:
            assert isinstance(out, dict) and out["model"] == "up"
    assert isinstance(estimate_input_tokens(source, body), int)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SHAPES).flatmap(lambda s: st.tuples(st.just(s), REQUESTS[s])))
def test_valid_requests_translate_or_are_refused_by_name(case: tuple[str, Any]) -> None:
    translate_everywhere(*case)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(SHAPES).flatmap(lambda s: st.tuples(st.just(s), broken(s))))
def test_broken_requests_translate_or_are_refused_by_name(case: tuple[str, Any]) -> None:
    translate_everywhere(*case)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SHAPES), json_values)
def test_arbitrary_json_is_refused_by_name(source: str, body: Any) -> None:
    translate_everywhere(source, body)


@given(st.text(max_size=200), st.text(min_size=1, max_size=50))
def test_the_estimate_grows_with_the_text(text: str, more: str) -> None:
    short = estimate_input_tokens("openai", {"messages": [{"role": "user", "content": text}]})
    longer = estimate_input_tokens("openai", {"messages": [{"role": "user",
                                                             "content": text + " " + more}]})
    assert longer >= short > 0


TEXT_BLOCKS = st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts.filter(bool)),
                       max_size=2)
TOOL_BLOCKS = st.lists(st.builds(lambda i, n: {"type": "tool_use", "id": i, "name": n,
                                               "input": {"q": "x"}}, names, names), max_size=2)
# An assistant turn in Chat Completions is its text, then its tool calls: that order.
ASSISTANT = st.builds(lambda a, b: a + b, TEXT_BLOCKS, TOOL_BLOCKS).filter(lambda c: len(c) > 1)


@st.composite
def plain_anthropic(draw: st.DrawFn) -> dict[str, Any]:
    """Anthropic requests made only of what both shapes express the same way."""
    turns = draw(st.lists(st.tuples(texts.filter(bool), ASSISTANT), min_size=1, max_size=3))
    messages: list[dict[str, Any]] = []
    for question, answer in turns:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    body: dict[str, Any] = {"model": "m", "max_tokens": draw(st.integers(1, 9999)),
                            "messages": messages}
    if draw(st.booleans()):
        body["system"] = draw(texts.filter(bool))
    if draw(st.booleans()):
        body["stop_sequences"] = draw(st.lists(texts.filter(bool), min_size=1, max_size=3))
    if draw(st.booleans()):
        body["temperature"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        body["tools"] = [{"name": "f", "input_schema": SCHEMA}]
        body["tool_choice"] = {"type": "tool", "name": "f"}
    return body


@settings(max_examples=200, deadline=None)
@given(plain_anthropic())
def test_an_anthropic_request_survives_the_trip_through_openai(body: dict[str, Any]) -> None:
    there = translate_request("anthropic", "openai", body, model="m")
    back = translate_request("openai", "anthropic", there, model="m")
    assert back == body


UPSTREAM_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)
"""What reading an upstream answer of the wrong shape may raise (TranslationError is a
ValueError): the adapters turn each into a 502 naming the problem."""
PAIRS = [(s, t) for s in SHAPES for t in SHAPES if s != t]
EVENT_TYPES = ["message_start", "content_block_start", "content_block_delta",
               "content_block_stop", "message_delta", "message_stop", "response.created",
               "response.output_item.added", "response.content_part.added",
               "response.output_text.delta", "response.function_call_arguments.delta",
               "response.output_item.done", "response.completed", "chat.completion.chunk"]
events = st.dictionaries(st.sampled_from(["type", "index", "delta", "content_block", "message",
                                          "choices", "usage", "item", "output_index",
                                          "content_index", "part", "response"]),
                         json_values | st.sampled_from(EVENT_TYPES), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PAIRS), json_values)
def test_answers_of_the_wrong_shape_raise_only_what_the_adapters_catch(
        pair: tuple[str, str], data: Any) -> None:
    try:
        answer = translate_answer(pair[0], pair[1], data, model="gw")  # type: ignore[arg-type]
    except UPSTREAM_ERRORS:
        return
    assert isinstance(answer, dict) and answer["model"] == "gw"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PAIRS), st.lists(events, max_size=8))
def test_streams_of_the_wrong_shape_raise_only_what_the_adapters_catch(
        pair: tuple[str, str], sequence: list[dict[str, Any]]) -> None:
    translator = StreamTranslator(pair[0], pair[1], model="gw")  # type: ignore[arg-type]
    out = []
    try:
        for data in sequence:
            out += translator.feed(data)
        if pair[0] == "openai":
            out += translator.finish()
    except UPSTREAM_ERRORS:
        return
    assert all(isinstance(event.data, dict) for event in out)
