"""The contract between the gateway and the provider adapters.

The gateway parses a request in the caller's API shape, picks a route, and hands the
request to that route's `Upstream`. Whatever the provider speaks, the adapter answers in
the caller's shape, so the gateway never translates anything itself. Failures surface as
one exception type, `UpstreamError`, whose `retryable` flag tells the gateway whether
failing over to the next permitted model can help.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from harbourgate.config import RouteConfig

Shape = Literal["openai", "anthropic"]
SHAPES: tuple[Shape, ...] = ("openai", "anthropic")


class UpstreamError(Exception):
    """An upstream failed. `retryable` = the gateway may fail over to the next model.

    Codes: `upstream_error` (502), `upstream_timeout` (504), `invalid_request` (400, not
    retryable: the caller's request itself was refused, another model would refuse it too).
    """

    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_error",
                 retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable

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
    """What `Upstream.open_stream` returns: caller-shape events, closable early."""

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    async def __anext__(self) -> StreamEvent: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Upstream(Protocol):
    """An adapter to one route's provider, answering in the caller's API shape."""

    route: RouteConfig

    async def chat(self, shape: Shape, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a chat request (caller shape, "model" = route name) in the caller's shape."""
        ...

    async def open_stream(self, shape: Shape, body: dict[str, Any]) -> EventStream:
        """Start a streamed answer; errors before the first event raise `UpstreamError` here.

        The events are in the caller's shape, without OpenAI's `data: [DONE]` sentinel
        (the gateway writes it). Call `aclose()` on the stream if you stop early.
        """
        ...

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer an OpenAI embeddings request in the OpenAI embeddings shape."""
        ...

    async def aclose(self) -> None:
        """Release what this adapter holds (its share of the pooled HTTP client)."""
        ...


def build_upstreams(routes: Iterable[RouteConfig]) -> dict[str, Upstream]:
    """One adapter per route, keyed by route name, all sharing one pooled HTTP client;
    a route with `endpoints` gets a `Pool` of adapters, one per server."""
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
        if route.endpoints:  # a pool: one adapter per server, balanced
            from harbourgate.providers.pool import Pool

            upstreams[route.name] = Pool.build(route, kind)
        else:
            upstreams[route.name] = kind(route)
    return upstreams
