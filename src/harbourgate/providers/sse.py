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


class SSEDecoder:
    """Incremental decoder: feed it bytes as they arrive, get complete events back."""

    __slots__ = ("_buffer", "_data", "_event", "_has_data", "_id", "_retry")

    def __init__(self) -> None:
        self._buffer = b""
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._has_data = False
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode `chunk` together with any incomplete line left over from earlier chunks."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if not buffer:
            return []
        # A trailing "\r" may be the first half of "\r\n": wait for the next chunk.
        hold = buffer.endswith(b"\r")
        lines = (buffer[:-1] if hold else buffer).splitlines(keepends=True)
        rest = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        self._buffer = rest + b"\r" if hold else rest
        events: list[ServerSentEvent] = []
        for raw in lines:
            event = self._line(raw.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        return events

    def end(self) -> list[ServerSentEvent]:
        """The stream ended: a held-back final `\r` ends its line; an event not closed by a
        blank line is dropped, per the spec."""
        buffer, self._buffer = self._buffer, b""
        event = self._line(buffer[:-1]) if buffer.endswith(b"\r") else None
        self._reset()
        return [event] if event is not None else []

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
