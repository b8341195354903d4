"""Provider adapters: the gateway's way out to model providers, in the caller's API shape.

    from harbourgate.providers.registry import build_upstreams
    upstreams = build_upstreams(settings.routes)
    answer = await upstreams["fable-5"].chat("anthropic", body)
"""

from harbourgate.providers.base import (
    SHAPES,
    EventStream,
    Shape,
    StreamEvent,
    Upstream,
    UpstreamError,
)
from harbourgate.providers.sse import DONE, delta_text, encode_event, set_delta_text

__all__ = [
    "DONE",
    "SHAPES",
    "EventStream",
    "Shape",
    "StreamEvent",
    "Upstream",
    "UpstreamError",
    "delta_text",
    "encode_event",
    "set_delta_text",
]
