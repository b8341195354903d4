"""The offline token estimate, and usage read from a plain answer in each shape."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.shapes import Usage, estimate_input_tokens, usage_of
from harbourgate.shapes.tokens import IMAGE_TOKENS, PER_MESSAGE, PER_REQUEST, estimate_text


@pytest.mark.parametrize(("text", "tokens"), [
    ("", 0),
    ("hello", 2),  # 5 letters: ceil(5 / 4)
    ("hello world", 4),  # the space joins the next word
    ("a, b.", 4),  # a , b .
    ("1234567", 3),  # digits in groups of 3
    ("你好世界", 4),  # one per ideograph
    ("こんにちは", 5),
    ("안녕하세요", 5),
    ("hello 世界!", 5),
    ("😀😀", 2),
    ("snake_case_name", 6),  # snake(2) _ case _ name
])
def test_the_regex_estimate(text: str, tokens: int) -> None:
    assert estimate_text(text) == tokens


def test_each_shape_counts_its_system_prompt_messages_and_tools() -> None:
    text = "hello world"
    base = PER_REQUEST + PER_MESSAGE + estimate_text(text)
    assert estimate_input_tokens("openai", {"messages": [{"role": "user", "content": text}]}
                                 ) == base
    assert estimate_input_tokens("anthropic", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": text}]}]}) == base
    assert estimate_input_tokens("responses", {"input": text}) == base
    assert estimate_input_tokens("anthropic", {"system": "be brief", "messages": [
        {"role": "user", "content": text}]}) == base + estimate_text("be brief")
    assert estimate_input_tokens("responses", {"instructions": "be brief", "input": [
        {"role": "user", "content": text}]}) == base + estimate_text("be brief")
    with_tools = estimate_input_tokens("openai", {"messages": [
        {"role": "user", "content": text}], "tools": [{"type": "function", "function": {
            "name": "weather"}}]})
    assert with_tools > base
    image = estimate_input_tokens("openai", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x.org/a.png"}}]}]})
    assert image == PER_REQUEST + PER_MESSAGE + IMAGE_TOKENS


@pytest.mark.parametrize("body", [None, [], "text", {"messages": "x"}, {"messages": [1, None]},
                                  {"input": {"deep": [[[["x"]]]]}}])
def test_the_estimate_never_raises(body: object) -> None:
    for shape in ("openai", "anthropic", "responses"):
        assert estimate_input_tokens(shape, body) >= 0  # type: ignore[arg-type]


def test_usage_of_each_shape() -> None:
    expected = Usage(input_tokens=10, output_tokens=7, cache_read_tokens=4,
                     cache_write_tokens=2, reasoning_tokens=3)
    assert usage_of("openai", {"usage": {
        "prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 3}}}) == expected
    assert usage_of("anthropic", {"usage": {
        "input_tokens": 4, "output_tokens": 7, "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 2,
        "output_tokens_details": {"thinking_tokens": 3}}}) == expected
    assert usage_of("responses", {"usage": {
        "input_tokens": 10, "output_tokens": 7, "total_tokens": 17,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
        "output_tokens_details": {"reasoning_tokens": 3}}}) == expected
    assert usage_of("openai", {}) == Usage()
    assert usage_of("anthropic", "junk") == Usage()  # type: ignore[arg-type]
    assert expected.to_dict() == {"input_tokens": 10, "output_tokens": 7,
                                  "cache_read_tokens": 4, "cache_write_tokens": 2,
                                  "reasoning_tokens": 3}


def _by_pieces(text: str) -> int:
    """The estimate's definition, piece by piece: letters by 4, digits by 3, the rest 1."""
    cjk = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
    total = 0
    for piece in re.findall(rf"[{cjk}]|[^\W\d_{cjk}]+|\d+|[^\s\w]|_+", text):
        per = 3 if re.match(r"\d", piece) else 4
        total += math.ceil(len(piece) / per)
    return total


@given(st.text(alphabet="abcXYZ  \n\t0123456789_-.,!?你好世界한국カナéü€😀\u0660²", max_size=60))
def test_the_single_pattern_counts_piece_by_piece(text: str) -> None:
    assert estimate_text(text) == _by_pieces(text)


def test_a_completed_stream_is_metered_as_reported() -> None:
    from harbourgate.shapes.translate import UsageMeter

    meter = UsageMeter("openai", {"messages": [{"role": "user", "content": "hello there"}]})
    meter.feed({"choices": [{"index": 0, "delta": {"content": "Hello back to you"}}]})
    meter.feed({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}})
    assert meter.usage == Usage(input_tokens=9, output_tokens=4)


@pytest.mark.parametrize(("shape", "events"), [
    ("openai", [{"choices": [{"index": 0, "delta": {"content": "Hello back to you all"}}]},
                {"choices": [{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "function": {"arguments": '{"city": "Kowloon"}'}}]}}]}]),
    ("responses", [{"type": "response.output_text.delta", "delta": "Hello back to you all"},
                   {"type": "response.function_call_arguments.delta",
                    "delta": '{"city": "Kowloon"}'}]),
    ("anthropic", [{"type": "message_start", "message": {"usage": {"input_tokens": 21}}},
                   {"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": "Hello back to you all"}},
                   {"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city": "Kowloon"}'}}]),
])
def test_a_stream_cut_short_is_metered_for_what_was_delivered(shape: str,
                                                              events: list[dict]) -> None:
    """No final usage arrived: the output is what was delivered, the input as reported
    (Anthropic's message_start) or else estimated from the request."""
    from harbourgate.shapes.translate import UsageMeter

    request = {"messages": [{"role": "user", "content": "What is the weather in Kowloon?"}],
               "input": "What is the weather in Kowloon?"}
    meter = UsageMeter(shape, request)  # type: ignore[arg-type]
    for event in events:
        meter.feed(event)
    delivered = estimate_text("Hello back to you all") + estimate_text('{"city": "Kowloon"}')
    assert meter.usage.output_tokens == delivered
    expected_input = 21 if shape == "anthropic" else estimate_input_tokens(shape, request)
    assert meter.usage.input_tokens == expected_input > 0


def test_a_chat_stream_is_metered_for_every_kind_of_delivered_text() -> None:
    """Plain text chunks (with or without the role), and chunks carrying refusals,
    reasoning, tool arguments or several choices: all of it counts, in order."""
    from harbourgate.shapes.translate import UsageMeter

    meter = UsageMeter("openai", {"messages": [{"role": "user", "content": "hi"}]})
    for event in (
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello "}}]},
        {"choices": [{"index": 0, "delta": {"content": "there, "}}]},
        {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "thinking ", "content": "x "}}]},
        {"choices": [{"index": 0, "delta": {"refusal": "no "}},
                     {"index": 1, "delta": {"content": "yes "}}, "junk", {"delta": None}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '{"a": 1}'}}, {"index": 1}]}}]},
        {"choices": []},
    ):
        meter.feed(event)
    delivered = "Hello there, x thinking no yes " + '{"a": 1}'
    assert meter.usage.output_tokens == estimate_text(delivered)
