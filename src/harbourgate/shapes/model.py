"""The canonical model: one request, one answer, one stream event vocabulary for every shape.

Each API shape maps into these types and out of them (`openai_chat`, `anthropic`,
`responses`), so a new shape is two mappings, not one per other shape. The types carry
only what has a meaning in more than one shape; a field of one shape with no place here is
refused by name when a request crosses shapes (`TranslationError`), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Shape = Literal["openai", "anthropic", "responses"]
SHAPES: tuple[Shape, ...] = ("openai", "anthropic", "responses")
API_NAMES: dict[str, str] = {"openai": "OpenAI Chat Completions",
                             "anthropic": "Anthropic Messages",
                             "responses": "OpenAI Responses"}


class TranslationError(ValueError):
    """A request or answer another API shape cannot express; the message names the field."""


@dataclass(slots=True)
class StreamEvent:
    """One server-sent event: its name (None for OpenAI chat chunks) and its JSON payload."""

    event: str | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts. `input_tokens` counts every input token, cache reads and writes
    included; `output_tokens` counts every output token, reasoning included."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
                "reasoning_tokens": self.reasoning_tokens}


# --------------------------------------------------------------------------- parts


@dataclass(slots=True)
class Text:
    text: str
    logprobs: list[dict[str, Any]] | None = None  # OpenAI token logprobs (answers only)


@dataclass(slots=True)
class Refusal:
    text: str


@dataclass(slots=True)
class Image:
    """An image by URL or inline base64 (`data` + `media_type`); `detail` is OpenAI's hint."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class Document:
    """A file: inline base64 (`data` + `media_type`), a URL, or plain text."""

    data: str | None = None
    media_type: str | None = None
    url: str | None = None
    text: str | None = None
    filename: str | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it


@dataclass(slots=True)
class ToolResult:
    call_id: str
    parts: list[Part]
    is_error: bool = False


@dataclass(slots=True)
class Thinking:
    """The model's reasoning. `signature` is Anthropic's proof of origin (Responses carries
    it as `encrypted_content`); `redacted` holds an encrypted block's data instead of text."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None


Part = Text | Refusal | Image | Document | ToolCall | ToolResult | Thinking

Role = Literal["system", "developer", "user", "assistant"]


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part]


# --------------------------------------------------------------------------- request


@dataclass(slots=True)
class Tool:
    name: str
    parameters: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None


@dataclass(slots=True)
class OutputFormat:
    """Structured output: `json_schema` (with a schema), `json_object`, or plain `text`."""

    kind: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(slots=True)
class Reasoning:
    """Reasoning asked for: an effort level (OpenAI, Anthropic `output_config.effort`), a
    token budget (Anthropic `thinking.budget_tokens`), or explicitly off (`enabled=False`)."""

    effort: str | None = None
    budget_tokens: int | None = None
    enabled: bool = True
    summary: str | None = None


@dataclass(slots=True)
class Request:
    """A generation request. `names` maps a setting to the caller's own field name, so a
    refusal names what the caller wrote."""

    model: str
    messages: list[Message]
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    output_format: OutputFormat | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    service_tier: str | None = None
    stream: bool = False
    include_usage: bool = False
    names: dict[str, str] = field(default_factory=dict)

    def name(self, setting: str) -> str:
        return self.names.get(setting, setting)


# --------------------------------------------------------------------------- answer

Finish = Literal["end", "stop_sequence", "length", "tool_calls", "refusal", "content_filter",
                 "pause", "context_window"]


@dataclass(slots=True)
class Choice:
    parts: list[Part]
    finish: Finish = "end"
    stop_sequence: str | None = None
    index: int = 0


@dataclass(slots=True)
class Answer:
    id: str
    model: str
    choices: list[Choice]
    usage: Usage = field(default_factory=Usage)
    created: int | None = None


# --------------------------------------------------------------------------- stream events


@dataclass(slots=True)
class Start:
    """The answer begins (input usage, if the upstream reports it this early)."""

    id: str
    model: str
    usage: Usage | None = None
    created: int | None = None


PartKind = Literal["text", "refusal", "thinking", "redacted_thinking", "tool_call"]


@dataclass(slots=True)
class PartStart:
    index: int
    kind: PartKind
    id: str | None = None  # tool call id
    name: str | None = None  # tool name
    data: str | None = None  # a redacted thinking block's data


@dataclass(slots=True)
class Delta:
    """More of part `index`: text, refusal, thinking text or tool-call arguments."""

    index: int
    text: str
    logprobs: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Signature:
    index: int
    signature: str


@dataclass(slots=True)
class PartEnd:
    index: int


@dataclass(slots=True)
class End:
    """The answer ends: why, and the usage of the whole exchange."""

    finish: Finish
    usage: Usage
    stop_sequence: str | None = None


Event = Start | PartStart | Delta | Signature | PartEnd | End
