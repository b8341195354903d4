"""Putting pseudonymised values back into a streamed answer, in any of the three API shapes.

A model writes a pseudonym (``[PHONE_1]``) wherever it writes text: message text, tool-call
arguments (OpenAI ``tool_calls`` argument deltas, Anthropic ``input_json_delta``), thinking,
refusals, and the Responses API's output items. A streamed token may be split across
events anywhere, so each channel (an OpenAI choice's text or one of its tool calls, an
Anthropic content block, a Responses output part) that holds back a trailing fragment that
could still become a token has its own `StreamRestorer`. What a channel holds back is sent
in one extra delta just before the event that ends the channel.

Most deltas hold no `[` and follow a delta that left nothing held back: nothing in them can
change, so they are passed by without a restorer (one substring test each).

Events are the payload dicts of the caller's shape (``"openai"`` Chat Completions chunks,
``"anthropic"`` Messages events, ``"responses"`` Responses events); they are restored in
place. Nothing is copied per event: an extra delta is built from a few identifying fields
(of the channel's key and its last event).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harbourgate.privacy.pseudonymise import PseudonymSession, StreamRestorer

Event = dict[str, Any]
Channel = tuple[Any, ...]
Build = Callable[[Event, Channel, str], Event]
"""How to build a delta carrying held-back text: (the channel's last event, its key, text)."""

# Anthropic delta types that carry model-written text, and the field that holds it.
_ANTHROPIC_DELTAS = {"text_delta": "text", "input_json_delta": "partial_json",
                     "thinking_delta": "thinking"}
_PLAIN = frozenset({"role", "content"})  # a chat delta that carries at most text
# Keys whose strings are identifiers, not model-written text (signatures stay untouched).
_STRUCTURAL = frozenset({"id", "type", "role", "model", "object", "item_id", "call_id",
                         "name", "status", "signature", "encrypted_content", "stop_reason",
                         "finish_reason", "media_type", "data", "url", "image_url"})


def restore_strings(value: Any, restore: Callable[[str], str]) -> Any:
    """Restore every model-written string in `value`, in place where it is a container.
    A string without `[` holds no token: it is left as it is, without a call."""
    if isinstance(value, str):
        return restore(value) if "[" in value else value
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                if "[" in item:
                    value[i] = restore(item)
            elif isinstance(item, list | dict):
                restore_strings(item, restore)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in _STRUCTURAL:
                continue
            if isinstance(item, str):
                if "[" in item:
                    value[key] = restore(item)
            elif isinstance(item, list | dict):
                restore_strings(item, restore)
    return value


class StreamRestore:
    """Restores one streamed answer. For each event, `before(event)` restores it in place
    and returns the events to send before it; `finish()` returns what is still held back
    when the stream ends without closing its channels."""

    __slots__ = ("_restorers", "_session", "_templates", "before")

    def __init__(self, shape: str, session: PseudonymSession) -> None:
        self._session = session
        self._restorers: dict[Channel, StreamRestorer] = {}  # only those holding text back
        # channel -> (event the held-back text belongs to, how to build a delta from it)
        self._templates: dict[Channel, tuple[Event, Build]] = {}
        self.before: Callable[[Event], list[Event]] = {
            "openai": self._openai, "anthropic": self._anthropic,
            "responses": self._responses}[shape]

    def finish(self) -> list[Event]:
        out: list[Event] = []
        for channel in list(self._restorers):
            out += self._flush(channel)
        return out

    # -- channels -------------------------------------------------------------------------

    def _feed(self, channel: Channel, event: Event, build: Build, text: str, *,
              last: bool = False) -> str:
        """The restored part of `text` that is safe to send now (all of it when `last`:
        this event ends the channel, so nothing may stay held back). A channel keeps a
        restorer only while it holds text back: a fresh one holds nothing, as one emptied."""
        if last:
            self._templates.pop(channel, None)
            restorer = self._restorers.pop(channel, None)
            if restorer is None:
                return self._session.restore(text)
            return restorer.feed(text) + restorer.flush()
        restorer = self._restorers.get(channel)
        if restorer is None:
            restorer = self._session.stream_restorer()
        out = restorer.feed(text)
        if restorer.pending:
            self._restorers[channel] = restorer
            self._templates[channel] = (event, build)
        else:
            self._restorers.pop(channel, None)
            self._templates.pop(channel, None)
        return out

    def _flush(self, channel: Channel) -> list[Event]:
        restorer = self._restorers.pop(channel, None)
        template = self._templates.pop(channel, None)
        rest = restorer.flush() if restorer is not None else ""
        if not rest or template is None:
            return []
        event, build = template
        return [build(event, channel, rest)]

    def _flush_where(self, match: Callable[[Channel], bool]) -> list[Event]:
        out: list[Event] = []
        for channel in [c for c in self._restorers if match(c)]:
            out += self._flush(channel)
        return out

    # -- OpenAI Chat Completions ------------------------------------------------------------

    def _openai(self, event: Event) -> list[Event]:
        choices = event.get("choices")
        if not isinstance(choices, list):
            return []
        out: list[Event] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            ends = bool(choice.get("finish_reason"))
            delta = choice.get("delta")
            if not self._restorers and isinstance(delta, dict) and delta.keys() <= _PLAIN:
                text = delta.get("content")  # the common chunk: at most text, nothing held
                if not isinstance(text, str) or "[" not in text:
                    continue
            index = choice.get("index", 0)
            if isinstance(delta, dict):
                for field in ("content", "refusal"):
                    text = delta.get(field)
                    if isinstance(text, str) and text and ("[" in text or self._restorers):
                        delta[field] = self._feed(("c", index, field), event, _openai_text,
                                                  text, last=ends)
                calls = delta.get("tool_calls")
                if isinstance(calls, list):
                    for call in calls:
                        fn = call.get("function") if isinstance(call, dict) else None
                        args = fn.get("arguments") if isinstance(fn, dict) else None
                        if isinstance(args, str) and args and ("[" in args or self._restorers):
                            j = call.get("index", 0)
                            fn["arguments"] = self._feed(("t", index, j), event,  # type: ignore[index]
                                                         _openai_args, args, last=ends)
            if ends and self._restorers:  # the choice's other channels end too: what they
                out += self._flush_where(lambda c, i=index: c[1] == i)  # hold goes first
        return out

    # -- Anthropic Messages -----------------------------------------------------------------

    def _anthropic(self, event: Event) -> list[Event]:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict):
                field = _ANTHROPIC_DELTAS.get(delta.get("type"))  # type: ignore[arg-type]
                text = delta.get(field) if field is not None else None
                if field is not None and isinstance(text, str) and text \
                        and ("[" in text or self._restorers):
                    delta[field] = self._feed(("b", event.get("index", 0)), event,
                                              _anthropic_delta, text)
            return []
        if kind == "content_block_stop":
            return self._flush(("b", event.get("index", 0)))
        if kind == "content_block_start":
            restore_strings(event.get("content_block"), self._session.restore)
        elif kind == "message_start":
            restore_strings(event.get("message"), self._session.restore)
        return []

    # -- OpenAI Responses -------------------------------------------------------------------

    def _responses(self, event: Event) -> list[Event]:
        kind = event.get("type")
        if not isinstance(kind, str):
            return []
        if kind.endswith(".delta") and isinstance(event.get("delta"), str):
            text = event["delta"]
            if "[" in text or self._restorers:
                channel = (kind[:-6], event.get("output_index", 0), event.get("content_index"),
                           event.get("summary_index"))
                event["delta"] = self._feed(channel, event, _responses_delta, text)
            return []
        out: list[Event] = []
        if kind.endswith(".done"):
            key = (kind[:-5], event.get("output_index", 0), event.get("content_index"),
                   event.get("summary_index"))
            out = self._flush(key)
            for field in ("text", "arguments", "refusal", "delta"):
                if isinstance(event.get(field), str):
                    event[field] = self._session.restore(event[field])
        for field in ("item", "part"):
            if field in event:
                restore_strings(event[field], self._session.restore)
        response = event.get("response")
        if isinstance(response, dict) and "output" in response:
            restore_strings(response["output"], self._session.restore)
        return out


def _openai_text(chunk: Event, channel: Channel, text: str) -> Event:
    _, index, field = channel
    return {**_chunk_head(chunk), "choices": [
        {"index": index, "delta": {field: text}, "finish_reason": None}]}


def _openai_args(chunk: Event, channel: Channel, text: str) -> Event:
    _, index, call = channel
    return {**_chunk_head(chunk), "choices": [
        {"index": index, "delta": {"tool_calls": [
            {"index": call, "function": {"arguments": text}}]}, "finish_reason": None}]}


def _chunk_head(chunk: Event) -> Event:
    return {k: v for k, v in chunk.items() if k not in ("choices", "usage")}


def _anthropic_delta(event: Event, channel: Channel, text: str) -> Event:
    kind = event["delta"]["type"]  # the block's last delta: one that carried text
    return {"type": "content_block_delta", "index": channel[1],
            "delta": {"type": kind, _ANTHROPIC_DELTAS[kind]: text}}


def _responses_delta(event: Event, channel: Channel, text: str) -> Event:
    out = {k: v for k, v in event.items() if k not in ("delta", "logprobs", "obfuscation")}
    out["delta"] = text
    return out
