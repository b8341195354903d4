"""Server-sent events: encoding caller-shape events, and decoding upstream bytes.

The decoder follows the WHATWG event-stream rules the SDKs follow: lines end in `\\n`,
`\\r\\n` or `\\r` (even when a `\\r\\n` pair is split across network reads), lines starting
with `:` are comments, several `data:` lines join with `\\n`, and an event is dispatched
at a blank line. A partial event at the end of the stream is dropped, as the spec says.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from harbourgate.providers.base import Shape, StreamEvent

DONE = b"data: [DONE]\n\n"


def encode_event(ev: StreamEvent) -> bytes:
    """The wire form of `ev`: an `event:` line only when it is named, then one `data:` line."""
    data = orjson.dumps(ev.data)
    if ev.event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + ev.event.encode() + b"\ndata: " + data + b"\n\n"


def delta_text(shape: Shape, ev: StreamEvent) -> str | None:
    """The answer text carried by a content delta event, or None if `ev` carries none."""
    data = ev.data
    if shape == "openai":
        choices = data.get("choices")
        if not choices:
            return None
        delta = choices[0].get("delta")
        if not isinstance(delta, dict):
            return None
        text = delta.get("content")
        return text if isinstance(text, str) else None
    if shape == "responses":
        if data.get("type") != "response.output_text.delta":
            return None
        text = data.get("delta")
        return text if isinstance(text, str) else None
    if data.get("type") != "content_block_delta":
        return None
    delta = data.get("delta")
    if not isinstance(delta, dict) or delta.get("type") != "text_delta":
        return None
    text = delta.get("text")
    return text if isinstance(text, str) else None


def set_delta_text(shape: Shape, ev: StreamEvent, text: str) -> None:
    """Replace the text of a content delta event (one that `delta_text` reads text from)."""
    if delta_text(shape, ev) is None:
        raise ValueError("the event carries no content text to replace")
    if shape == "openai":
        ev.data["choices"][0]["delta"]["content"] = text
    elif shape == "responses":
        ev.data["delta"] = text
    else:
        ev.data["delta"]["text"] = text


@dataclass(slots=True)
class ServerSentEvent:
    """A decoded event as it came over the wire (`data` still text)."""

    event: str | None = None
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


MAX_EVENT_BYTES = 8_000_000
"""The largest event an upstream may send (its data lines together, or one unfinished line)."""


class EventTooLarge(ValueError):
    """An upstream event (or a line still without its end) over the decoder's maximum."""


class SSEDecoder:
    """Incremental decoder: feed it bytes as they arrive, get complete events back.

    Linear in its input: an unfinished line is kept as a list of pieces and joined once,
    when its end arrives (re-joining a growing buffer on every read made a long line cost
    quadratic time), and no event may grow past `max_event_bytes`.
    """

    __slots__ = ("_data", "_event", "_has_data", "_held_cr", "_id", "_max", "_pending",
                 "_pending_size", "_retry", "_size")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._held_cr = False
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._has_data = False
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode `chunk` together with any unfinished line left over from earlier chunks."""
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):  # maybe the first half of "\r\n": wait for the next chunk
            chunk = chunk[:-1]
            self._held_cr = True
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if cut < 0:
            if chunk:
                self._pending.append(chunk)
                self._pending_size += len(chunk)
                self._check(self._pending_size)
            return []
        head, tail = chunk[:cut + 1], chunk[cut + 1:]
        if self._pending:
            self._pending.append(head)
            head = b"".join(self._pending)
        self._pending = [tail] if tail else []
        self._pending_size = len(tail)
        if b"\r" in head:  # every line end as "\n" (a "\r\n" split across reads was held)
            head = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # `head` is whole lines; split it at once into blocks, each the lines of an event
        # that a blank line closes, and `rest` (lines of an event still open, or nothing).
        blocks = head.split(b"\n\n")
        rest = blocks.pop()
        events: list[ServerSentEvent] = []
        line = self._line
        clean = not (self._has_data or self._event is not None or self._id is not None
                     or self._retry is not None)  # no event left open by an earlier read
        for block in blocks:
            if clean:  # the common blocks: one data line, perhaps after one event line
                name: str | None = None
                start = 0
                if block[:7] == b"event: ":
                    start = block.find(b"\n") + 1
                    if start:
                        name = block[7:start - 1].decode("utf-8", errors="replace") or None
                if block[start:start + 6] == b"data: " and block.find(b"\n", start) < 0:
                    if len(block) - start - 6 > self._max:
                        raise EventTooLarge(f"an event of more than {self._max} bytes")
                    events.append(ServerSentEvent(
                        name, block[start + 6:].decode("utf-8", errors="replace")))
                    continue
            for raw in block.split(b"\n"):  # any other block, or one continuing an event
                event = line(raw)
                if event is not None:
                    events.append(event)
            event = line(b"")
            clean = True  # a blank line resets the state
            if event is not None:
                events.append(event)
        if rest:
            for raw in rest[:-1].split(b"\n"):
                event = line(raw)
                if event is not None:
                    events.append(event)
        self._check(self._pending_size)
        return events

    def end(self) -> list[ServerSentEvent]:
        """The stream ended: a held-back final `\r` ends its line; an event not closed by a
        blank line is dropped, per the spec."""
        line = b"".join(self._pending) if self._held_cr else None
        self._pending, self._pending_size, self._held_cr = [], 0, False
        event = self._line(line) if line is not None else None
        self._reset()
        return [event] if event is not None else []

    def _check(self, extra: int) -> None:
        if self._size + extra > self._max:
            raise EventTooLarge(f"an event of more than {self._max} bytes")

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            if not self._has_data and self._event is None:
                self._reset()
                return None
            event = ServerSentEvent(self._event, "\n".join(self._data), self._id, self._retry)
            self._reset()
            return event
        if line[0] == 0x3A:  # ":" comment
            return None
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        text = value.decode("utf-8", errors="replace")
        if name == b"data":
            self._data.append(text)
            self._has_data = True
            self._size += len(value)
            self._check(0)
        elif name == b"event":
            self._event = text or None
        elif name == b"id":
            if "\0" not in text:
                self._id = text
        elif name == b"retry" and text.isdigit():
            self._retry = int(text)
        return None


async def aiter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Decode an async stream of byte chunks (as they come off the socket) into events."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.end():
        yield event
