"""The contract between the gateway and the provider adapters.

The gateway parses a request in the caller's API shape, picks a route, and hands the
request to that route's `Upstream`. Whatever the provider speaks, the adapter answers in
the caller's shape (translating through `harbourgate.shapes`), so the gateway never
translates anything itself. Failures surface as one exception type, `UpstreamError`, whose
`retryable` flag tells the gateway whether failing over to the next permitted model can help.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

from harbourgate.config import RouteConfig
from harbourgate.shapes.model import SHAPES, Shape, StreamEvent, Usage

__all__ = ["SHAPES", "EventStream", "Shape", "StreamEvent", "Upstream", "UpstreamError"]


class UpstreamError(Exception):
    """An upstream failed. `retryable` = the gateway may fail over to the next model.

    Codes: `upstream_error` (502), `upstream_timeout` (504), `invalid_request` (400, not
    retryable: the request itself was refused, or a field cannot be translated to the
    served model's API), `upstream_rate_limited` (429) and `upstream_overloaded` (503, from
    OpenAI 503 or Anthropic 529), both retryable, with the upstream's `Retry-After` value
    in `retry_after`.
    """

    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_error",
                 retryable: bool = True, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (f"UpstreamError({self.message!r}, status={self.status}, code={self.code!r}, "
                f"retryable={self.retryable}, retry_after={self.retry_after!r})")


@runtime_checkable
class EventStream(Protocol):
    """What `Upstream.open_stream` returns: caller-shape events, closable early.

    `usage` holds the usage seen so far: complete after the last event, partial for a
    stream cut short. A stream may also offer `ready()`: the events that arrived with the
    last one returned, taken without waiting, so the relay writes them in one go.
    """

    usage: Usage

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    async def __anext__(self) -> StreamEvent: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Upstream(Protocol):
    """An adapter to one route's provider, answering in the caller's API shape.

    `headers` are the caller's request headers named `anthropic-*` or `openai-*`: passed
    through untouched when the caller's shape is the provider's, otherwise translated or
    refused (400 naming the header).
    """

    route: RouteConfig

    async def chat(self, shape: Shape, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Answer a request (caller shape, "model" = route name) in the caller's shape."""
        ...

    async def open_stream(self, shape: Shape, body: dict[str, Any],
                          headers: Mapping[str, str] | None = None) -> EventStream:
        """Start a streamed answer; errors before the first event raise `UpstreamError` here.

        The events are in the caller's shape, without OpenAI's `data: [DONE]` sentinel
        (the gateway writes it). Call `aclose()` on the stream if you stop early.
        """
        ...

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer an OpenAI embeddings request in the OpenAI embeddings shape."""
        ...

    async def count_tokens(self, shape: Shape, body: dict[str, Any],
                           headers: Mapping[str, str] | None = None) -> int | None:
        """The request's input tokens as the upstream counts them; None if it cannot count."""
        ...

    async def aclose(self) -> None:
        """Release what this adapter holds (its share of the pooled HTTP client)."""
        ...
