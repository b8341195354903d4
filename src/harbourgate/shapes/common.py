"""What the three shape mappings share: data URLs, effort levels, and a stream collector."""

from __future__ import annotations

import orjson

from harbourgate.shapes.model import (
    Answer,
    Choice,
    Delta,
    End,
    Event,
    Part,
    PartEnd,
    PartStart,
    Refusal,
    Signature,
    Start,
    Text,
    Thinking,
    ToolCall,
    TranslationError,
    Usage,
)

EFFORT_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384,
                  "xhigh": 32768}
"""OpenAI reasoning effort -> Anthropic thinking budget (the documented equivalence)."""


def effort_of_budget(budget: int) -> str:
    """Anthropic thinking budget -> OpenAI reasoning effort (the nearest level at or above)."""
    if budget <= EFFORT_BUDGETS["low"]:
        return "low"
    if budget <= EFFORT_BUDGETS["medium"]:
        return "medium"
    return "high"


def data_url(media_type: str | None, data: str) -> str:
    return f"data:{media_type or 'application/octet-stream'};base64,{data}"


def split_data_url(url: str, where: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:` URL; None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise TranslationError(f"{where}: a data URL must look like data:image/png;base64,...")
    return media_type, data


def json_text(value: object) -> str:
    return orjson.dumps(value).decode()


def parse_arguments(arguments: str, where: str) -> dict[str, object]:
    """Tool-call arguments (JSON text) as the object Anthropic wants."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise TranslationError(f"{where}: must be a JSON object, got {arguments!r:.80}") from None
    if not isinstance(value, dict):
        raise TranslationError(f"{where}: must be a JSON object, got {arguments!r:.80}")
    return value


class Collector:
    """Canonical stream events in, the `Answer` they add up to out (one choice)."""

    def __init__(self) -> None:
        self.answer = Answer(id="", model="", choices=[Choice(parts=[])])
        self._index: dict[int, int] = {}  # event part index -> position in parts
        self.ended = False

    @property
    def parts(self) -> list[Part]:
        return self.answer.choices[0].parts

    def part(self, index: int) -> Part:
        return self.parts[self._index[index]]

    def feed(self, event: Event) -> None:
        if isinstance(event, Start):
            self.answer.id, self.answer.model = event.id, event.model
            self.answer.created = event.created
            if event.usage is not None:
                self.answer.usage = event.usage
        elif isinstance(event, PartStart):
            part: Part
            if event.kind == "text":
                part = Text("")
            elif event.kind == "refusal":
                part = Refusal("")
            elif event.kind == "thinking":
                part = Thinking("")
            elif event.kind == "redacted_thinking":
                part = Thinking(redacted=event.data or "")
            else:
                part = ToolCall(event.id or "", event.name or "", "")
            self._index[event.index] = len(self.parts)
            self.parts.append(part)
        elif isinstance(event, Delta):
            self._delta(event)
        elif isinstance(event, Signature):
            part = self.part(event.index)
            if isinstance(part, Thinking):
                part.signature = (part.signature or "") + event.signature
        elif isinstance(event, End):
            choice = self.answer.choices[0]
            choice.finish, choice.stop_sequence = event.finish, event.stop_sequence
            self.answer.usage = event.usage
            self.ended = True
        elif not isinstance(event, PartEnd):
            raise TypeError(f"not a stream event: {event!r}")

    def _delta(self, event: Delta) -> None:
        part = self.part(event.index)
        if isinstance(part, Text):
            part.text += event.text
            if event.logprobs is not None:
                part.logprobs = (part.logprobs or []) + event.logprobs
        elif isinstance(part, Refusal | Thinking):
            part.text += event.text
        elif isinstance(part, ToolCall):
            part.arguments += event.text


def usage_total(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens
