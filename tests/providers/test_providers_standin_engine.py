"""The stand-in model itself: echoes, limits, stop sequences, tools, embeddings, errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.providers.standin import engine
from harbourgate.providers.standin.engine import StandInError

CITY = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                         "metric": {"type": "boolean"},
                                         "unit": {"type": "string", "enum": ["C", "F"]},
                                         "extra": {"type": "array"}}}


def openai(text: str, **kw: object) -> dict:
    return {"model": "fable-5", "messages": [{"role": "user", "content": text}], **kw}


def anthropic(text: str, max_tokens: int = 100, **kw: object) -> dict:
    return {"model": "fable-5", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}], **kw}


def test_the_answer_echoes_the_last_user_message_with_word_counts() -> None:
    body = {"model": "fable-5", "messages": [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "my HKID is A123456(7)"}]}]}
    answer = engine.reply("openai", body, "fable-5")
    assert answer.text == "[fable-5] You said: my HKID is A123456(7)"
    assert answer.finish == "end"
    assert answer.prompt_tokens == 2 + 2 + 2 + 4
    assert answer.completion_tokens == 7


def test_anthropic_requests_count_the_system_prompt_and_echo_text_blocks() -> None:
    body = anthropic("ignored", system=[{"type": "text", "text": "be kind"}])
    body["messages"].append({"role": "assistant", "content": "ok"})
    body["messages"].append({"role": "user", "content": [
        {"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}]})
    answer = engine.reply("anthropic", body, "glm-5.2")
    assert answer.text == "[glm-5.2] You said: line one\nline two"
    assert answer.prompt_tokens == 2 + 1 + 1 + 4


def test_the_same_request_gets_the_same_answer_and_id() -> None:
    a = engine.render("openai", engine.reply("openai", openai("hi"), "m"), "m", 1)
    b = engine.render("openai", engine.reply("openai", openai("hi"), "m"), "m", 1)
    c = engine.render("openai", engine.reply("openai", openai("ho"), "m"), "m", 1)
    assert a == b
    assert a["id"] != c["id"]


def test_max_tokens_cuts_the_answer_after_that_many_words() -> None:
    answer = engine.reply("anthropic", anthropic("one two three four", max_tokens=5), "m")
    assert answer.text == "[m] You said: one two"
    assert (answer.finish, answer.completion_tokens) == ("length", 5)
    rendered = engine.render("anthropic", answer, "m", 1)
    assert rendered["stop_reason"] == "max_tokens"
    completion = engine.render("openai", engine.reply(
        "openai", openai("one two three", max_completion_tokens=4), "m"), "m", 1)
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["choices"][0]["message"]["content"] == "[m] You said: one"


def test_a_limit_the_answer_fits_in_ends_normally() -> None:
    answer = engine.reply("openai", openai("one", max_tokens=4), "m")
    assert (answer.text, answer.finish) == ("[m] You said: one", "end")


def test_the_earliest_stop_sequence_ends_the_answer_and_is_reported() -> None:
    answer = engine.reply("anthropic", anthropic("alpha beta gamma",
                                                 stop_sequences=["gamma", "beta"]), "m")
    assert answer.text == "[m] You said: alpha "
    assert answer.stop_sequence == "beta"
    message = engine.render("anthropic", answer, "m", 1)
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "beta")
    completion = engine.render("openai", engine.reply("openai", openai("a b", stop="b"), "m"),
                               "m", 1)
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["choices"][0]["message"]["content"] == "[m] You said: a "


def test_a_stop_sequence_beyond_the_token_limit_does_not_fire() -> None:
    answer = engine.reply("anthropic", anthropic("a b c d", max_tokens=4,
                                                 stop_sequences=["c"]), "m")
    assert (answer.text, answer.finish) == ("[m] You said: a", "length")


def test_a_forced_tool_is_called_with_arguments_from_its_schema() -> None:
    body = openai("Weather in Hong Kong", tool_choice="required", tools=[
        {"type": "function", "function": {"name": "weather", "parameters": CITY}}])
    completion = engine.render("openai", engine.reply("openai", body, "m"), "m", 1)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments":
                                '{"city":"Weather in Hong Kong","days":4,"metric":true,"unit":"C"}'}
    assert call["id"].startswith("call_")


def test_a_tool_named_in_the_message_is_called_and_tool_choice_none_prevents_it() -> None:
    tools = [{"name": "lookup", "input_schema": CITY}, {"name": "weather", "input_schema": {}}]
    answer = engine.reply("anthropic", anthropic("use weather please", tools=tools), "m")
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("weather", {})]
    message = engine.render("anthropic", answer, "m", 1)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0]["type"] == "tool_use"
    none = engine.reply("anthropic", anthropic("use weather", tools=tools,
                                               tool_choice={"type": "none"}), "m")
    assert none.tool_calls == [] and none.finish == "end"
    named = engine.reply("anthropic", anthropic("x", tools=tools,
                                                tool_choice={"type": "tool", "name": "lookup"}),
                         "m")
    assert named.tool_calls[0].name == "lookup"


def test_after_a_tool_result_the_model_answers_with_text() -> None:
    body = anthropic("weather?", tools=[{"name": "weather", "input_schema": {}}],
                     tool_choice={"type": "any"})
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "weather",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "28C and sunny"}]}]
    answer = engine.reply("anthropic", body, "m")
    assert (answer.text, answer.finish) == ("[m] You said: 28C and sunny", "end")
    openai_body = openai("weather?", tool_choice="required",
                         tools=[{"type": "function", "function": {"name": "weather"}}])
    openai_body["messages"].append({"role": "tool", "tool_call_id": "c", "content": "28C"})
    assert engine.reply("openai", openai_body, "m").text == "[m] You said: 28C"


def test_streams_are_cut_into_eight_character_chunks() -> None:
    answer = engine.reply("openai", openai("a fairly long sentence"), "m")
    chunks = engine.render_stream("openai", answer, "m", 1)
    texts = [c.data["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert all(len(t) == engine.CHUNK_CHARS for t in texts[:-1])
    assert "".join(texts) == answer.text
    assert chunks[0].data["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1].data["choices"][0]["finish_reason"] == "stop"


def test_anthropic_streams_have_the_full_event_sequence() -> None:
    answer = engine.reply("anthropic", anthropic("hello"), "m")
    events = engine.render_stream("anthropic", answer, "m", 1)
    assert [e.event for e in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
        "message_stop"]
    assert all(e.event == e.data["type"] for e in events)
    assert events[-2].data["usage"] == {"output_tokens": 4}


@pytest.mark.parametrize(("shape", "body", "message"), [
    ("openai", [], "the request body must be a JSON object"),
    ("openai", {"messages": []}, "model: a model id (string) is required"),
    ("openai", {"model": "m", "messages": []}, "messages: a non-empty list"),
    ("openai", {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
     "messages[0].role must be one of"),
    ("openai", {"model": "m", "messages": [{"role": "user", "content": 5}]},
     "messages[0].content: must be a string or a list"),
    ("openai", openai("x", max_tokens=-1), "max_tokens: must be a whole number, 0 or more, not -1"),
    ("openai", openai("x", max_tokens=True), "max_tokens: must be a whole number"),
    ("openai", openai("x", stop=[1]), "stop: must be a string or a list of strings"),
    ("anthropic", {"model": "m", "messages": [{"role": "user", "content": "x"}]},
     "max_tokens: Field required"),
    ("anthropic", anthropic("x") | {"messages": [{"role": "system", "content": "x"}]},
     "messages.0.role: Input should be 'user' or 'assistant'"),
    ("anthropic", anthropic("x") | {"messages": [{"role": "user", "content": 3}]},
     "messages.0.content: Input should be a valid string"),
    ("anthropic", anthropic("x") | {"messages": [{"role": "user", "content": [3]}]},
     "each content block must be an object"),
])
def test_malformed_requests_are_refused_naming_the_field(shape: str, body: object,
                                                         message: str) -> None:
    with pytest.raises(StandInError) as info:
        engine.reply(shape, body, "m")  # type: ignore[arg-type]
    assert message in info.value.message
    assert info.value.status == 400


def test_embeddings_are_deterministic_unit_vectors() -> None:
    out = engine.embed({"model": "e", "input": ["hello world", "hello world", "bye"]}, "route")
    vectors = [d["embedding"] for d in out["data"]]
    assert [d["index"] for d in out["data"]] == [0, 1, 2]
    assert len(vectors[0]) == engine.DEFAULT_DIMENSIONS
    assert vectors[0] == vectors[1] != vectors[2]
    assert math.isclose(math.fsum(x * x for x in vectors[2]), 1.0, rel_tol=1e-9)
    assert out["model"] == "route"
    assert out["usage"] == {"prompt_tokens": 5, "total_tokens": 5}


def test_embeddings_take_token_lists_and_dimensions() -> None:
    one = engine.embed({"model": "e", "input": [1, 2, 3], "dimensions": 8})
    many = engine.embed({"model": "e", "input": [[1, 2, 3], [4]], "dimensions": 8})
    assert one["data"][0]["embedding"] == many["data"][0]["embedding"]
    assert len(many["data"][1]["embedding"]) == 8
    assert many["usage"]["prompt_tokens"] == 4


@pytest.mark.parametrize(("body", "message"), [
    ({"input": []}, "input must be a string"),
    ({"input": [1, "a"]}, "input must be a string"),
    ({"input": [[]]}, "input must be a string"),
    ({"input": "x", "dimensions": 0}, "dimensions must be an integer from 1 to 3072"),
    ({"input": "x", "dimensions": "8"}, "dimensions must be an integer"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format must be 'float' or 'base64'"),
    ("text", "the request body must be a JSON object"),
])
def test_malformed_embedding_requests_are_refused(body: object, message: str) -> None:
    with pytest.raises(StandInError, match=message):
        engine.embed(body)


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=300))
def test_unit_vector_always_has_length_one(seed: bytes, dims: int) -> None:
    vector = engine.unit_vector(seed, dims)
    assert len(vector) == dims
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-9)


def test_error_bodies_have_each_apis_shape() -> None:
    assert engine.error_body("openai", 400, "bad", "messages") == {"error": {
        "message": "bad", "type": "invalid_request_error", "param": "messages",
        "code": "invalid_request"}}
    assert engine.error_body("openai", 500, "boom") == {"error": {
        "message": "boom", "type": "server_error", "param": None, "code": None}}
    assert engine.error_body("anthropic", 404, "nope") == {
        "type": "error", "error": {"type": "not_found_error", "message": "nope"}}
    assert engine.error_body("anthropic", 500, "boom")["error"]["type"] == "api_error"


def test_behaviours_are_selected_by_model_id() -> None:
    assert engine.behaviour("standin-hang") == "hang"
    assert engine.behaviour("standin-500") == "fail"
    assert engine.behaviour("standin-garbage") == "garbage"
    assert engine.behaviour("standin-cut") == "cut"
    assert engine.behaviour("fable-5") is None


def test_a_responses_conversation_keeps_its_items_across_requests() -> None:
    """An id not seen before starts an empty conversation (as a newly created one would);
    each answer is appended, so the next request in it sees what came before."""
    history: dict[str, str] = {}
    first = engine.reply("responses", {"model": "m", "input": "harbour one",
                                       "conversation": "conv_a", "store": False}, "m", history)
    assert "harbour one" in first.text
    second = engine.reply("responses", {"model": "m", "input": "harbour two",
                                        "conversation": {"id": "conv_a"}}, "m", history)
    assert second.prompt_tokens > first.prompt_tokens
    with pytest.raises(StandInError, match="conversation: a conversation id"):
        engine.reply("responses", {"model": "m", "input": "x", "conversation": 5}, "m", {})


def test_a_responses_request_may_leave_out_input() -> None:
    """A stored prompt (or the conversation) supplies it upstream."""
    answer = engine.reply("responses", {"model": "m", "prompt": {"id": "pmpt_1"}}, "m", {})
    assert answer.text.startswith("[m]")
