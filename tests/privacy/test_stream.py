"""Restoring pseudonyms in streamed answers of the three API shapes (privacy.stream)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.privacy import Pseudonymiser
from harbourgate.privacy.stream import StreamRestore

HKID = "A123456(3)"
PHONE = "+852 9123 4567"


def session() -> Any:
    s = Pseudonymiser(["hk_id", "phone"]).session()
    assert s.pseudonymise(f"{HKID} {PHONE}") == "[HK_ID_1] [PHONE_1]"
    return s


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def run(restore: StreamRestore, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in events:
        out += restore.before(event)
        out.append(event)
    return out + restore.finish()


def openai_text(events: list[dict[str, Any]]) -> tuple[str, str]:
    text = args = ""
    for e in events:
        for choice in e.get("choices", ()):
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                args += call["function"].get("arguments") or ""
    return text, args


MODEL_TEXT = "Call [PHONE_1] about [HK_ID_1]; not [PHONE_9] or [PHO"
EXPECTED = f"Call {PHONE} about {HKID}; not [PHONE_9] or [PHO"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12),
       st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_openai_text_and_tool_arguments_in_any_split(text_cuts: list[int],
                                                     arg_cuts: list[int]) -> None:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    events = [{**head, "choices": [{"index": 0, "delta": {"content": piece},
                                    "finish_reason": None}]}
              for piece in split(MODEL_TEXT, text_cuts)]
    events += [{**head, "choices": [{"index": 0, "finish_reason": None, "delta": {
        "tool_calls": [{"index": 0, "function": {"arguments": piece}}]}}]}
        for piece in split(MODEL_TEXT, arg_cuts)]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out = run(StreamRestore("openai", session()), events)
    assert openai_text(out) == (EXPECTED, EXPECTED)
    assert out[-1]["choices"][0]["finish_reason"] == "stop"  # nothing after the end
    assert all(e["model"] == "m" for e in out)


def test_openai_text_in_the_finishing_chunk_stays_in_order() -> None:
    events = [{"choices": [{"index": 0, "delta": {"content": "a [PHONE_1] b [PHO"},
                            "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {"content": "NE_1] c"},
                            "finish_reason": "stop"}]}]
    out = run(StreamRestore("openai", session()), events)
    assert openai_text(out)[0] == f"a {PHONE} b {PHONE} c"
    assert len(out) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_anthropic_text_thinking_and_input_json(cuts: list[int]) -> None:
    events: list[dict[str, Any]] = []
    for index, (kind, field) in enumerate((("text_delta", "text"),
                                           ("thinking_delta", "thinking"),
                                           ("input_json_delta", "partial_json"))):
        events.append({"type": "content_block_start", "index": index,
                       "content_block": {"type": "text", "text": ""}})
        events += [{"type": "content_block_delta", "index": index,
                    "delta": {"type": kind, field: piece}} for piece in split(MODEL_TEXT, cuts)]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "content_block_delta", "index": 3,
                   "delta": {"type": "signature_delta", "signature": "[PHONE_1]"}})
    out = run(StreamRestore("anthropic", session()), events)
    for index, field in enumerate(("text", "thinking", "partial_json")):
        got = "".join(e["delta"].get(field, "") for e in out
                      if e["type"] == "content_block_delta" and e["index"] == index)
        assert got == EXPECTED
        stop = next(i for i, e in enumerate(out) if e["type"] == "content_block_stop"
                    and e["index"] == index)
        assert all(e["index"] != index for e in out[stop + 1:] if "index" in e)
    assert out[-1]["delta"]["signature"] == "[PHONE_1]"  # signatures are not prose


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_responses_deltas_and_items(cuts: list[int]) -> None:
    events: list[dict[str, Any]] = []
    events += [{"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                "item_id": "m1", "delta": piece, "sequence_number": 1}
               for piece in split(MODEL_TEXT, cuts)]
    events.append({"type": "response.output_text.done", "output_index": 0,
                   "content_index": 0, "item_id": "m1", "text": MODEL_TEXT})
    events += [{"type": "response.function_call_arguments.delta", "output_index": 1,
                "item_id": "f1", "delta": piece} for piece in split(MODEL_TEXT, cuts)]
    events.append({"type": "response.function_call_arguments.done", "output_index": 1,
                   "item_id": "f1", "arguments": MODEL_TEXT})
    events.append({"type": "response.output_item.done", "output_index": 1, "item": {
        "type": "function_call", "call_id": "[PHONE_1]", "name": "f",
        "arguments": MODEL_TEXT}})
    events.append({"type": "response.completed", "response": {"id": "r", "output": [
        {"type": "message", "content": [{"type": "output_text", "text": MODEL_TEXT}]}]}})
    out = run(StreamRestore("responses", session()), events)
    for kind in ("response.output_text", "response.function_call_arguments"):
        deltas = [e for e in out if e["type"] == kind + ".delta"]
        assert "".join(e["delta"] for e in deltas) == EXPECTED
        done = next(i for i, e in enumerate(out) if e["type"] == kind + ".done")
        assert all(e["type"] != kind + ".delta" for e in out[done:])
    assert next(e for e in out if e["type"] == "response.output_text.done")["text"] == EXPECTED
    item = next(e for e in out if e["type"] == "response.output_item.done")["item"]
    assert item["arguments"] == EXPECTED and item["call_id"] == "[PHONE_1]"
    completed = out[-1]["response"]["output"][0]["content"][0]["text"]
    assert completed == EXPECTED


def test_events_are_restored_in_place_not_copied() -> None:
    event = {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "hi [PHONE_1]"}}
    restore = StreamRestore("anthropic", session())
    assert restore.before(event) == []
    assert event["delta"]["text"] == f"hi {PHONE}"


def test_a_stream_cut_short_gives_back_what_was_held() -> None:
    restore = StreamRestore("anthropic", session())
    event = {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "call [PHONE_"}}
    restore.before(event)
    assert event["delta"]["text"] == "call "
    assert restore.finish() == [{"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "[PHONE_"}}]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12),
       st.lists(st.integers(min_value=0, max_value=200), max_size=12),
       st.lists(st.booleans(), min_size=1, max_size=30))
def test_interleaved_channels_are_restored_apart(cuts_a: list[int], cuts_b: list[int],
                                                 order: list[bool]) -> None:
    """Two choices take turns: text without `[` passes by untouched only while no channel
    holds a fragment back, and a held fragment is never lent to the other channel."""
    plain = "no brackets here at all, just words and more words"
    queues = {0: split(MODEL_TEXT, cuts_a), 1: split(plain + MODEL_TEXT, cuts_b)}
    events: list[dict[str, Any]] = []
    turn = 0
    while queues[0] or queues[1]:
        index = int(order[turn % len(order)]) if queues[0] and queues[1] else \
            (0 if queues[0] else 1)
        turn += 1
        events.append({"choices": [{"index": index, "delta": {"content": queues[index].pop(0)},
                                    "finish_reason": None}]})
    events.append({"choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]})
    out = run(StreamRestore("openai", session()), events)
    texts = {0: "", 1: ""}
    for e in out:
        for choice in e["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: EXPECTED, 1: plain + EXPECTED}
