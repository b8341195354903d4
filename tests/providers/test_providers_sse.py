"""SSE: encoding caller events, reading and replacing delta text, decoding upstream bytes."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.providers import DONE, StreamEvent, delta_text, encode_event, set_delta_text
from harbourgate.providers.sse import EventTooLarge, ServerSentEvent, SSEDecoder, aiter_events


def test_encode_event_without_a_name_is_one_data_line() -> None:
    assert encode_event(StreamEvent(None, {"a": "é"})) == b'data: {"a":"\xc3\xa9"}\n\n'


def test_encode_event_with_a_name_has_an_event_line_first() -> None:
    wire = encode_event(StreamEvent("message_stop", {"type": "message_stop"}))
    assert wire == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_done_is_openais_sentinel() -> None:
    assert DONE == b"data: [DONE]\n\n"


def openai_chunk(delta: dict) -> StreamEvent:
    return StreamEvent(None, {"object": "chat.completion.chunk",
                              "choices": [{"index": 0, "delta": delta}]})


def anthropic_delta(delta: dict) -> StreamEvent:
    return StreamEvent("content_block_delta",
                       {"type": "content_block_delta", "index": 0, "delta": delta})


def test_delta_text_reads_openai_content() -> None:
    assert delta_text("openai", openai_chunk({"content": "Hel"})) == "Hel"
    assert delta_text("openai", openai_chunk({"role": "assistant"})) is None
    assert delta_text("openai", StreamEvent(None, {"choices": [], "usage": {}})) is None
    tool = openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]})
    assert delta_text("openai", tool) is None


def test_delta_text_reads_anthropic_text_deltas_only() -> None:
    assert delta_text("anthropic", anthropic_delta({"type": "text_delta", "text": "lo"})) == "lo"
    json_delta = anthropic_delta({"type": "input_json_delta", "partial_json": "{"})
    assert delta_text("anthropic", json_delta) is None
    assert delta_text("anthropic", StreamEvent("ping", {"type": "ping"})) is None


def test_delta_text_reads_responses_output_text_deltas_only() -> None:
    ev = StreamEvent("response.output_text.delta", {
        "type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
        "content_index": 0, "delta": "Hel"})
    assert delta_text("responses", ev) == "Hel"
    set_delta_text("responses", ev, "Hello")
    assert ev.data["delta"] == "Hello"
    args = StreamEvent("response.function_call_arguments.delta", {
        "type": "response.function_call_arguments.delta", "delta": "{"})
    assert delta_text("responses", args) is None


def test_set_delta_text_replaces_in_place() -> None:
    ev = openai_chunk({"content": "<PHONE_1>"})
    set_delta_text("openai", ev, "+852 9123 4567")
    assert ev.data["choices"][0]["delta"]["content"] == "+852 9123 4567"
    ev = anthropic_delta({"type": "text_delta", "text": "<PHONE_1>"})
    set_delta_text("anthropic", ev, "+852 9123 4567")
    assert ev.data["delta"]["text"] == "+852 9123 4567"


def test_set_delta_text_refuses_an_event_without_text() -> None:
    with pytest.raises(ValueError, match="carries no content text"):
        set_delta_text("anthropic", StreamEvent("ping", {"type": "ping"}), "x")


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for c in chunks for e in decoder.feed(c)]
    return events + decoder.end()


def test_decoder_reads_named_and_unnamed_events() -> None:
    events = decode(b"event: ping\ndata: {}\n\ndata: [DONE]\n\n")
    assert events == [ServerSentEvent("ping", "{}"), ServerSentEvent(None, "[DONE]")]


def test_decoder_joins_events_split_across_chunks_anywhere() -> None:
    wire = b'event: message_start\ndata: {"type": "message_start"}\n\n'
    for cut in range(1, len(wire)):
        assert decode(wire[:cut], wire[cut:]) == [
            ServerSentEvent("message_start", '{"type": "message_start"}')], cut


def test_decoder_accepts_crlf_and_cr_line_endings() -> None:
    assert decode(b"event: a\r\ndata: 1\r\n\r\n") == [ServerSentEvent("a", "1")]
    assert decode(b"event: a\rdata: 1\r\r") == [ServerSentEvent("a", "1")]


def test_decoder_treats_a_crlf_split_between_chunks_as_one_line_end() -> None:
    assert decode(b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n") == [
        ServerSentEvent(None, "1"), ServerSentEvent(None, "2")]


def test_decoder_joins_multi_line_data_with_newlines() -> None:
    assert decode(b"data: first\ndata:second\ndata:  third\n\n") == [
        ServerSentEvent(None, "first\nsecond\n third")]


def test_decoder_skips_comments_and_blank_runs() -> None:
    assert decode(b": keep-alive\n\n\n: another\ndata: x\n\n") == [ServerSentEvent(None, "x")]


def test_decoder_reads_id_and_retry_and_ignores_unknown_fields() -> None:
    assert decode(b"id: 7\nretry: 1500\nfoo: bar\ndata\n\n") == [
        ServerSentEvent(None, "", "7", 1500)]


def test_decoder_drops_an_event_not_closed_by_a_blank_line() -> None:
    assert decode(b"data: complete\n\ndata: partial\n") == [ServerSentEvent(None, "complete")]


def test_decoder_decodes_utf8_split_inside_a_character() -> None:
    wire = "data: 港\n\n".encode()
    assert decode(wire[:7], wire[7:]) == [ServerSentEvent(None, "港")]


def test_decoder_keeps_an_unfinished_line_as_pieces_until_its_end() -> None:
    """A long line over many reads is joined once, when its end arrives (linear, not a
    re-join of the whole buffer per read)."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: ") == []
    for _ in range(1000):
        assert decoder.feed(b"x" * 100) == []
    assert len(decoder._pending) == 1001  # pieces, not one growing buffer
    assert decoder.feed(b"\n\n") == [ServerSentEvent(None, "x" * 100_000)]
    assert decoder._pending == []


def test_decoder_refuses_an_unfinished_line_over_the_maximum() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    decoder.feed(b"data: " + b"x" * 900)
    with pytest.raises(EventTooLarge, match="more than 1000 bytes"):
        decoder.feed(b"y" * 200)


def test_decoder_refuses_an_event_whose_data_lines_add_up_over_the_maximum() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"".join(b"data: " + b"z" * 100 + b"\n" for _ in range(11)))


def test_decoder_takes_events_up_to_the_maximum_one_after_another() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    for _ in range(50):  # the size is per event, not per stream
        assert decoder.feed(b"data: " + b"a" * 1000 + b"\n\n") == [
            ServerSentEvent(None, "a" * 1000)]


def test_server_sent_event_json() -> None:
    assert ServerSentEvent(None, '{"a": [1]}').json() == {"a": [1]}


def test_aiter_events_decodes_an_async_byte_stream() -> None:
    async def chunks():
        for piece in (b"data: {\"n\"", b": 1}\n", b"\ndata: [DONE]\n\n"):
            yield piece

    async def collect() -> list[ServerSentEvent]:
        return [e async for e in aiter_events(chunks())]

    assert asyncio.run(collect()) == [ServerSentEvent(None, '{"n": 1}'),
                                      ServerSentEvent(None, "[DONE]")]


payloads = st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3),
                    min_size=1, max_size=6)


@given(payloads, st.lists(st.integers(min_value=0, max_value=400), max_size=12),
       st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_decoding_encoded_events_in_any_chunking_gives_them_back(
        datas: list[dict], cuts: list[int], newline: bytes) -> None:
    events = [StreamEvent(f"e{i}" if i % 2 else None, d) for i, d in enumerate(datas)]
    wire = b"".join(encode_event(e) for e in events).replace(b"\n", newline)
    bounds = sorted({min(c, len(wire)) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *bounds], [*bounds, len(wire)], strict=True)]
    decoded = decode(*pieces)
    assert [(e.event, orjson.loads(e.data)) for e in decoded] == [
        (e.event, e.data) for e in events]


def reference_decode(wire: bytes) -> list[ServerSentEvent]:
    """The WHATWG rules read line by line over the whole stream at once: the oracle the
    decoder's block-at-a-time reading must agree with, however the bytes are split."""
    events: list[ServerSentEvent] = []
    name, data, has_data, id_, retry = None, [], False, None, None
    for line in wire.splitlines(keepends=True):
        line = line.rstrip(b"\r\n")
        if not line:
            if has_data or name is not None:
                events.append(ServerSentEvent(name, "\n".join(data), id_, retry))
            name, data, has_data, id_, retry = None, [], False, None, None
            continue
        if line.startswith(b":"):
            continue
        field, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        text = value.decode("utf-8", errors="replace")
        if field == b"data":
            data.append(text)
            has_data = True
        elif field == b"event":
            name = text or None
        elif field == b"id" and "\0" not in text:
            id_ = text
        elif field == b"retry" and text.isdigit():
            retry = int(text)
    return events


sse_lines = st.one_of(
    st.builds(lambda v: b"data: " + v, st.binary(max_size=12).filter(
        lambda b: b"\n" not in b and b"\r" not in b)),
    st.sampled_from([b"data:x", b"data", b"data: ", b"data:  two", b"event: ping",
                     b"event:", b"event: ", b"id: 7", b"id", b"retry: 10", b"retry: x",
                     b": comment", b":", b"foo: bar", b"", b"", b"data: \xe6\xb8", b"\xe6"]))


@given(st.lists(st.lists(sse_lines, max_size=4), max_size=8),
       st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=1, max_size=3),
       st.lists(st.integers(min_value=0, max_value=300), max_size=10), st.booleans())
def test_any_split_of_any_stream_decodes_as_the_line_by_line_reading(
        blocks: list[list[bytes]], newlines: list[bytes], cuts: list[int],
        unfinished: bool) -> None:
    """Blocks, blank lines, comments, multi-line data, named events, odd fields, mixed line
    ends and split characters: the same events for every chunking."""
    wire = b""
    for i, block in enumerate(blocks):
        for j, line in enumerate([*block, b""]):
            wire += line + newlines[(i + j) % len(newlines)]
    if unfinished:
        wire += b"data: open"
    bounds = sorted({min(c, len(wire)) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *bounds], [*bounds, len(wire)], strict=True)]
    assert decode(*pieces) == reference_decode(wire)


def test_decoder_reads_a_named_event_at_the_maximum_and_refuses_one_over_it() -> None:
    decoder = SSEDecoder(max_event_bytes=10)
    assert decoder.feed(b"event: e\ndata: " + b"a" * 10 + b"\n\n") == [
        ServerSentEvent("e", "a" * 10)]
    with pytest.raises(EventTooLarge):
        decoder.feed(b"event: e\ndata: " + b"a" * 11 + b"\n\n")
    with pytest.raises(EventTooLarge):
        SSEDecoder(max_event_bytes=10).feed(b"data: " + b"a" * 11 + b"\n\n")
