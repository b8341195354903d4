"""Requests, answers and streams from one API shape to another, through the canonical model.

    body = translate_request("anthropic", "openai", caller_body, model="gpt-5")
    answer = translate_answer("openai", "anthropic", upstream_answer, model="fable-5")
    stream = StreamTranslator("openai", "anthropic", model="fable-5", request=caller_body)
    for data in upstream_events: caller_events = stream.feed(data)

A same-shape call never comes here: the provider adapters pass such bodies through
untouched. Everything a target cannot express raises `TranslationError`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harbourgate.shapes import anthropic, openai_chat, responses
from harbourgate.shapes.model import (
    Answer,
    End,
    Event,
    Request,
    Shape,
    StreamEvent,
    TranslationError,
    Usage,
)
from harbourgate.shapes.tokens import estimate_input_tokens, estimate_text

_PARSE_REQUEST = {"openai": openai_chat.parse_request, "anthropic": anthropic.parse_request,
                  "responses": responses.parse_request}
_PARSE_ANSWER = {"openai": openai_chat.parse_answer, "anthropic": anthropic.parse_answer,
                 "responses": responses.parse_answer}
_USAGE_IN = {"openai": openai_chat.usage_in, "anthropic": anthropic.usage_in,
             "responses": responses.usage_in}


def parse_request(shape: Shape, body: Any) -> Request:
    """A caller's request in `shape` as a canonical request."""
    return _PARSE_REQUEST[shape](body)


def render_request(shape: Shape, req: Request, *, model: str, max_completion_tokens: bool = False,
                   top_k: bool = False) -> dict[str, Any]:
    """A canonical request in `shape`, for the upstream model id `model`."""
    if shape == "openai":
        return openai_chat.render_request(req, model=model, top_k=top_k,
                                          max_completion_tokens=max_completion_tokens)
    if shape == "anthropic":
        return anthropic.render_request(req, model=model)
    return responses.render_request(req, model=model)


def translate_request(source: Shape, target: Shape, body: Any, *, model: str,
                      max_completion_tokens: bool = False, top_k: bool = False
                      ) -> dict[str, Any]:
    return render_request(target, parse_request(source, body), model=model, top_k=top_k,
                          max_completion_tokens=max_completion_tokens)


def parse_answer(shape: Shape, data: dict[str, Any]) -> Answer:
    """An upstream's plain answer as a canonical answer; an unexpected shape raises one of
    KeyError, TypeError, IndexError, AttributeError or TranslationError."""
    return _PARSE_ANSWER[shape](data)


def render_answer(shape: Shape, answer: Answer, *, model: str,
                  request: dict[str, Any] | None = None) -> dict[str, Any]:
    """A canonical answer in `shape` (`model` = the route name; `request` = the caller's
    body, for the settings a shape echoes or that change the answer's form)."""
    if shape == "openai":
        return openai_chat.render_answer(answer, model=model,
                                         legacy_functions=_legacy(request))
    if shape == "anthropic":
        return anthropic.render_answer(answer, model=model)
    return responses.render_answer(answer, model=model, request=request)


def translate_answer(source: Shape, target: Shape, data: dict[str, Any], *, model: str,
                     request: dict[str, Any] | None = None) -> dict[str, Any]:
    return render_answer(target, parse_answer(source, data), model=model, request=request)


def usage_of(shape: Shape, answer: Any) -> Usage:
    """The usage reported in a plain answer in `shape` (zeros where it reports none)."""
    return _USAGE_IN[shape](answer.get("usage") if isinstance(answer, dict) else None)


def _legacy(request: dict[str, Any] | None) -> bool:
    return isinstance(request, dict) and request.get("functions") is not None


class UsageMeter:
    """The usage reported by a stream in `shape`, read event by event (for a stream passed
    through untouched).

    An upstream reports usage at the end (OpenAI's last chunk, Anthropic's `message_delta`,
    Responses' `response.completed`), so a stream cut short has reported little or none:
    the meter also estimates what was delivered (text, tool arguments, thinking), and a
    stream is metered for at least that, and for the request's estimated input when the
    upstream reported none."""

    def __init__(self, shape: Shape, request: dict[str, Any] | None = None) -> None:
        self.shape = shape
        self.reported = Usage()
        self.final = False  # the upstream's own final count arrived: it is authoritative
        self._request = request
        self._delivered = 0  # estimated tokens of the text folded so far
        self._pieces: list[str] = []  # delivered text not yet estimated
        self._unfolded = 0
        self._anthropic: dict[str, Any] = {}

    def _fold(self) -> None:
        """Estimate the text kept so far: once per stream, or per 64 KiB of text (so a long
        stream neither pays a regex per event nor keeps its whole answer in memory)."""
        if self._pieces:
            self._delivered += estimate_text("".join(self._pieces))
            self._pieces.clear()
            self._unfolded = 0

    @property
    def usage(self) -> Usage:
        reported = self.reported
        if self.final:
            return reported
        self._fold()
        if not self._delivered:
            return reported
        input_tokens = reported.input_tokens
        if not input_tokens and self._request is not None:
            input_tokens = estimate_input_tokens(self.shape, self._request)
        return replace(reported, input_tokens=input_tokens,
                       output_tokens=max(reported.output_tokens, self._delivered))

    def feed(self, data: dict[str, Any]) -> None:
        shape = self.shape
        kind = None
        if shape == "openai":
            choices = data.get("choices")
            text = _chat_text(choices) if choices else ""
        elif shape == "responses":  # text, arguments and reasoning come in `*.delta` events
            kind = data.get("type")
            text = data.get("delta") if isinstance(kind, str) and kind.endswith(".delta") else ""
        else:
            kind = data.get("type")
            text = _anthropic_text(kind, data)
        if text and isinstance(text, str):
            self._pieces.append(text)
            self._unfolded += len(text)
            if self._unfolded > 65_536:
                self._fold()
        if shape == "openai":
            if data.get("usage"):
                self.reported = openai_chat.usage_in(data["usage"])
                self.final = True
            return
        if shape == "responses":
            if kind in ("response.completed", "response.incomplete"):
                response = data.get("response")
                if isinstance(response, dict):
                    self.reported = responses.usage_in(response.get("usage"))
                    self.final = True
            return
        if kind == "message_start" and isinstance(data.get("message"), dict):
            usage = data["message"].get("usage")
        elif kind == "message_delta":
            usage = data.get("usage")
        else:
            return
        if isinstance(usage, dict):
            self._anthropic.update({k: v for k, v in usage.items() if v is not None})
            self.reported = anthropic.usage_in(self._anthropic)
            self.final = kind == "message_delta"


_PLAIN_DELTA = frozenset({"role", "content"})
"""The keys of a chat delta that carries at most text (`content`)."""


def _chat_text(choices: Any) -> str:
    """The text, refusal, reasoning and tool arguments a chat chunk's choices deliver."""
    pieces: list[str] = []
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        if delta.keys() <= _PLAIN_DELTA:  # nearly every chunk: one look-up
            text = delta.get("content")
            if isinstance(text, str):
                pieces.append(text)
            continue
        for key in ("content", "refusal", "reasoning_content"):
            if isinstance(delta.get(key), str):
                pieces.append(delta[key])
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                pieces.append(fn["arguments"])
    return pieces[0] if len(pieces) == 1 else "".join(pieces)


def _anthropic_text(kind: Any, data: dict[str, Any]) -> Any:
    """The text, tool input or thinking of an Anthropic `content_block_delta`."""
    if kind == "content_block_delta" and isinstance(data.get("delta"), dict):
        delta = data["delta"]
        for key in ("text", "partial_json", "thinking"):
            if isinstance(delta.get(key), str):
                return delta[key]
    return ""


class StreamTranslator:
    """Upstream events in `source` in, caller events in `target` out, one at a time.

    `feed(data)` takes one upstream event payload (OpenAI's `[DONE]` is `finish()`);
    `done` turns true after the upstream's last event, and `usage` holds what was seen.
    """

    def __init__(self, source: Shape, target: Shape, *, model: str,
                 request: dict[str, Any] | None = None) -> None:
        self.source, self.target = source, target
        self.done = False
        self.usage = Usage()
        self._reader: Any = {"openai": openai_chat.Reader, "anthropic": anthropic.Reader,
                             "responses": responses.Reader}[source]()
        include_usage = False
        if isinstance(request, dict):
            options = request.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self._writer: Any
        if target == "openai":
            self._writer = openai_chat.Writer(model=model, include_usage=include_usage,
                                              legacy_functions=_legacy(request))
        elif target == "anthropic":
            self._writer = anthropic.Writer(model=model)
        else:
            self._writer = responses.Writer(model=model, request=request)

    def feed(self, data: dict[str, Any]) -> list[StreamEvent]:
        return self._write(self._reader.feed(data))

    def finish(self) -> list[StreamEvent]:
        """The upstream's stream ended with OpenAI's `[DONE]`."""
        if self.source != "openai":
            raise TranslationError("the stream ended without its last event")
        return self._write(self._reader.done())

    def _write(self, events: list[Event]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for event in events:
            if isinstance(event, End):
                self.usage = event.usage
                self.done = True
            elif getattr(event, "usage", None) is not None:
                self.usage = event.usage  # type: ignore[union-attr]
            out += self._writer.write(event)
        return out
