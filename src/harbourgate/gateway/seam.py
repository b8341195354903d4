"""A temporary seam to the canonical model (`harbourgate.shapes`, built on its own branch).

The gateway needs three names from it (CONTRACT.md): `Usage`, `usage_of` and
`estimate_input_tokens`, and needs every `Upstream` to follow the contract (a `headers`
parameter, `count_tokens`, a stream whose `usage` is a `Usage`). Until that branch is
merged, this module provides them, and `conform` wraps an adapter written before the
contract. At merge: import the three names from `harbourgate.shapes`, drop `conform`, and
delete this file.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from harbourgate.gateway.content import request_texts
from harbourgate.providers.base import Shape, StreamEvent, Upstream


@dataclass(frozen=True, slots=True)
class Usage:
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


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _sub(usage: dict[str, Any], key: str, inner: str) -> int:
    detail = usage.get(key)
    return _int(detail.get(inner)) if isinstance(detail, dict) else 0


def usage_of(shape: Shape, answer: dict[str, Any]) -> Usage:
    """The usage a caller-shape plain answer reports (zeros where it reports none)."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    if shape == "anthropic":
        return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
                     _int(usage.get("cache_read_input_tokens")),
                     _int(usage.get("cache_creation_input_tokens")))
    if shape == "responses":
        return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
                     _sub(usage, "input_tokens_details", "cached_tokens"), 0,
                     _sub(usage, "output_tokens_details", "reasoning_tokens"))
    return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")),
                 _sub(usage, "prompt_tokens_details", "cached_tokens"), 0,
                 _sub(usage, "completion_tokens_details", "reasoning_tokens"))


def estimate_input_tokens(shape: Shape, body: dict[str, Any]) -> int:
    """An offline estimate: about four characters a token, plus a few per message."""
    texts = request_texts(body)
    for key in ("instructions", "tools"):
        if key in body:
            texts.append(str(body[key]))
    messages = body.get("messages") or body.get("input")
    turns = len(messages) if isinstance(messages, list) else 1
    return sum(math.ceil(len(t) / 4) for t in texts) + 3 * turns + 3


class _Stream:
    """A pre-contract stream whose `usage` is a dict, seen as a contract `EventStream`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __aiter__(self) -> _Stream:
        return self

    def __anext__(self) -> Awaitable[StreamEvent]:
        return self._inner.__anext__()  # no coroutine of its own: one per event is enough

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def usage(self) -> Usage:
        raw = getattr(self._inner, "usage", None) or {}
        return raw if isinstance(raw, Usage) else Usage(_int(raw.get("input_tokens")),
                                                        _int(raw.get("output_tokens")))


class _Conformed:
    """A pre-contract adapter (no `headers`, no `count_tokens`) behind the contract."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.route = inner.route

    def chat(self, shape: Shape, body: dict[str, Any],
             headers: Mapping[str, str] | None = None) -> Awaitable[dict[str, Any]]:
        return self._inner.chat(shape, body)

    async def open_stream(self, shape: Shape, body: dict[str, Any],
                          headers: Mapping[str, str] | None = None) -> _Stream:
        return _Stream(await self._inner.open_stream(shape, body))

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._inner.embed(body)

    async def count_tokens(self, shape: Shape, body: dict[str, Any],
                           headers: Mapping[str, str] | None = None) -> int | None:
        return None

    async def aclose(self) -> None:
        await self._inner.aclose()


def conform(upstreams: dict[str, Upstream]) -> dict[str, Upstream]:
    """The adapters, each seen through the contract (checked once, at start)."""
    out: dict[str, Upstream] = {}
    for name, up in upstreams.items():
        modern = "headers" in inspect.signature(up.chat).parameters and hasattr(
            up, "count_tokens")
        out[name] = up if modern else _Conformed(up)  # type: ignore[assignment]
    return out
