"""The stand-in as an in-process upstream: the engine called directly, no network.

It speaks all three API shapes natively (so nothing is translated) and behaves as the HTTP
stand-in does, test behaviours included (`standin-hang` times out after the route's
`timeout_s`, `standin-500` and `standin-garbage` fail, `standin-cut` breaks off
mid-stream, `standin-429`/`-503`/`-529` refuse with a Retry-After), so the gateway's
failover can be exercised without a server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from harbourgate.config import RouteConfig
from harbourgate.providers.base import Shape, StreamEvent, UpstreamError
from harbourgate.providers.http import garbage_error, status_error, timeout_error
from harbourgate.providers.standin import engine
from harbourgate.providers.upstream import UpstreamStream, check_request
from harbourgate.shapes.translate import UsageMeter

CUT_AFTER = 3
"""How many events `standin-cut` sends before breaking off."""


class StandInUpstream:
    """Answers as the stand-in model `route.model_id`, in the caller's shape."""

    def __init__(self, route: RouteConfig, *, latency_ms: float = 0, fail_rate: float = 0,
                 seed: int = 0) -> None:
        self.route = route
        self.latency_s = latency_ms / 1000
        self.fail_rate = fail_rate
        self._rng = random.Random(seed)
        self._history: OrderedDict[str, str] = OrderedDict()

    def __repr__(self) -> str:
        return f"StandInUpstream({self.route.name!r})"

    async def chat(self, shape: Shape, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        answer = await self._answer(shape, body, headers)
        return engine.render(shape, answer, self.route.name, int(time.time()))

    async def open_stream(self, shape: Shape, body: dict[str, Any],
                          headers: Mapping[str, str] | None = None) -> UpstreamStream:
        answer = await self._answer(shape, body, headers)
        events = engine.render_stream(shape, answer, self.route.name, int(time.time()),
                                      include_usage=True)
        cut = engine.behaviour(self.route.model_id) == "cut"
        meter = UsageMeter(shape, body)
        stream = self._events(events, cut, meter, shape != "openai"
                              or engine.include_usage(body))
        return UpstreamStream(stream, usage=lambda: meter.usage)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        await self._behave()
        try:
            return engine.embed(body, self.route.name)
        except engine.StandInError as exc:
            raise self._refused(exc) from None

    async def count_tokens(self, shape: Shape, body: dict[str, Any],
                           headers: Mapping[str, str] | None = None) -> int | None:
        await self._behave()
        try:
            return engine.count_tokens(shape, {**body, "model": self.route.model_id},
                                       self._history)
        except engine.StandInError as exc:
            raise self._refused(exc) from None

    async def aclose(self) -> None:
        return None

    async def _answer(self, shape: Shape, body: dict[str, Any],
                      headers: Mapping[str, str] | None) -> engine.Reply:
        check_request(self.route, shape, shape, body, headers)
        await self._behave()
        try:
            return engine.reply(shape, {**body, "model": self.route.model_id},
                                self.route.model_id, self._history)
        except engine.StandInError as exc:
            raise self._refused(exc) from None

    async def _behave(self) -> None:
        """Latency, random failures and the test behaviour of the model id, as over HTTP."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        name = self.route.name
        if self.fail_rate and self._rng.random() < self.fail_rate:
            raise UpstreamError(f"model {name!r}: the upstream failed (HTTP 500: "
                                "the stand-in failed this request on purpose (fail_rate))")
        kind = engine.behaviour(self.route.model_id)
        if kind == "hang":
            await asyncio.sleep(self.route.timeout_s)
            raise timeout_error(name)
        if kind == "fail":
            raise UpstreamError(f"model {name!r}: the upstream failed (HTTP 500: "
                                f"{self.route.model_id} always fails)")
        if kind == "garbage":
            raise garbage_error(name, "with a body that is not JSON")
        refused = engine.refusal_of(kind, self.route.model_id)
        if refused is not None:
            status, message = refused
            raise status_error(name, status, message.encode(), engine.RETRY_AFTER)

    def _refused(self, exc: engine.StandInError) -> UpstreamError:
        return UpstreamError(f"model {self.route.name!r} refused the request: {exc.message}",
                             status=400, code="invalid_request", retryable=False)

    async def _events(self, events: list[StreamEvent], cut: bool, meter: UsageMeter,
                      include_usage: bool) -> AsyncGenerator[list[StreamEvent], None]:
        for i, event in enumerate(events):
            if cut and i == CUT_AFTER:
                raise UpstreamError(f"model {self.route.name!r}: the upstream closed the stream "
                                    "before its end", retryable=False)
            meter.feed(event.data)
            if not include_usage:
                if not event.data.get("choices") and event.data.get("usage"):
                    continue
                event.data.pop("usage", None)
            yield [event]  # one event per batch: no socket reads to group them
