"""One adapter per route, by the route's provider."""

from __future__ import annotations

from collections.abc import Iterable

from harbourgate.config import RouteConfig
from harbourgate.providers.base import Upstream
from harbourgate.providers.pool import Pool
from harbourgate.providers.standin.upstream import StandInUpstream
from harbourgate.providers.upstream import AnthropicUpstream, OpenAIUpstream

KINDS: dict[str, type] = {
    "openai": OpenAIUpstream,
    "anthropic": AnthropicUpstream,
    "stand-in": StandInUpstream,
}


def build_upstreams(routes: Iterable[RouteConfig]) -> dict[str, Upstream]:
    """One adapter per route, keyed by route name, the network ones sharing one HTTP pool;
    a route with `endpoints` gets a `Pool` of adapters, one per server."""
    upstreams: dict[str, Upstream] = {}
    for route in routes:
        try:
            kind = KINDS[route.provider]
        except KeyError:
            raise ValueError(f"route {route.name!r}: unknown provider {route.provider!r}; "
                             f"expected one of {', '.join(KINDS)}") from None
        upstreams[route.name] = Pool.build(route, kind) if route.endpoints else kind(route)
    return upstreams
