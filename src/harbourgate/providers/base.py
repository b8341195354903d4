"""The contract between the gateway and the provider adapters.

The gateway parses a request in the caller's API shape, picks a route, and hands the
request to that route's `Upstream`. Whatever the provider speaks, the adapter answers in
the caller's shape, so the gateway never translates anything itself. Failures surface as
one exception type, `UpstreamError`, whose `retryable` flag tells the gateway whether
failing over to the next permitted model can help.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from harbourgate.config import RouteConfig

Shape = Literal["openai", "anthropic", "responses"]
"""openai: Chat Completions; anthropic: Messages; responses: OpenAI Responses."""
SHAPES: tuple[Shape, ...] = ("openai", "anthropic", "responses")


class UpstreamError(Exception):
    """An upstream failed. `retryable` = the gateway may fail over to the next model.

    Codes: `upstream_error` (502), `upstream_timeout` (504), `invalid_request` (400, not
    retryable: the caller's request itself was refused, another model would refuse it too),
    `upstream_rate_limited` (429) and `upstream_overloaded` (503: OpenAI 503, Anthropic 529),
    both retryable; `retry_after` keeps the upstream's Retry-After header for the caller.
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
                f"retryable={self.retryable})")


@dataclass(slots=True)
class StreamEvent:
    """One server-sent event: its name (Anthropic shape; None in OpenAI shape) and payload."""

    event: str | None
    data: dict[str, Any]


@runtime_checkable
class EventStream(Protocol):
    """What `Upstream.open_stream` returns: caller-shape events, closable early.

    `usage` (a `harbourgate.shapes.Usage`) holds the usage seen so far: complete after the
    last event, partial for a stream cut short.
    """

    usage: Any

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    async def __anext__(self) -> StreamEvent: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Upstream(Protocol):
    """An adapter to one route's provider, answering in the caller's API shape."""

    route: RouteConfig

    async def chat(self, shape: Shape, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Answer a chat request (caller shape, "model" = route name) in the caller's shape.

        `headers`: the caller's `anthropic-*` / `openai-*` request headers (lower-case
        names), passed through when the provider speaks the caller's shape.
        """
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
        """The request's input tokens as the upstream counts them; None when it cannot."""
        ...

    async def aclose(self) -> None:
        """Release what this adapter holds (its share of the pooled HTTP client)."""
        ...


def build_upstreams(routes: Iterable[RouteConfig]) -> dict[str, Upstream]:
    """One adapter per route, keyed by route name, all sharing one pooled HTTP client."""
    from harbourgate.providers.standin.upstream import StandInUpstream
    from harbourgate.providers.upstream import AnthropicUpstream, OpenAIUpstream

    kinds: dict[str, type] = {
        "openai": OpenAIUpstream,
        "anthropic": AnthropicUpstream,
        "stand-in": StandInUpstream,
    }
    upstreams: dict[str, Upstream] = {}
    for route in routes:
        try:
            kind = kinds[route.provider]
        except KeyError:
            raise ValueError(f"route {route.name!r}: unknown provider {route.provider!r}; "
                             f"expected one of {', '.join(kinds)}") from None
        upstreams[route.name] = kind(route)
    return upstreams
