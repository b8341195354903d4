"""The stand-in as an in-process upstream: the engine called directly, no network.

It behaves as the HTTP stand-in does, test behaviours included (`standin-hang` times out
after the route's `timeout_s`, `standin-500` and `standin-garbage` fail, `standin-cut`
breaks off mid-stream), so the gateway's failover can be exercised without a server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator
from typing import Any

from harbourgate.config import RouteConfig
from harbourgate.providers.base import Shape, StreamEvent, UpstreamError
from harbourgate.providers.http import garbage_error, timeout_error
from harbourgate.providers.standin import engine
from harbourgate.providers.upstream import UpstreamStream

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

    def __repr__(self) -> str:
        return f"StandInUpstream({self.route.name!r})"

    async def chat(self, shape: Shape, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self._answer(shape, body)
        return engine.render(shape, answer, self.route.name, int(time.time()))

    async def open_stream(self, shape: Shape, body: dict[str, Any]) -> UpstreamStream:
        answer = await self._answer(shape, body)
        events = engine.render_stream(shape, answer, self.route.name, int(time.time()),
                                      include_usage=engine.include_usage(body))
        usage = {"input_tokens": answer.prompt_tokens, "output_tokens": answer.completion_tokens}
        cut = engine.behaviour(self.route.model_id) == "cut"
        return UpstreamStream(self._events(events, cut), usage=usage)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        await self._behave()
        try:
            return engine.embed(body, self.route.name)
        except engine.StandInError as exc:
            raise self._refused(exc) from None

    async def aclose(self) -> None:
        return None

    async def _answer(self, shape: Shape, body: dict[str, Any]) -> engine.Reply:
        await self._behave()
        try:
            return engine.reply(shape, body, self.route.model_id)
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

    def _refused(self, exc: engine.StandInError) -> UpstreamError:
        return UpstreamError(f"model {self.route.name!r} refused the request: {exc.message}",
                             status=400, code="invalid_request", retryable=False)

    async def _events(self, events: list[StreamEvent],
                      cut: bool) -> AsyncGenerator[StreamEvent, None]:
        for i, event in enumerate(events):
            if cut and i == CUT_AFTER:
                raise UpstreamError(f"model {self.route.name!r}: the upstream closed the stream "
                                    "before its end", retryable=False)
            yield event
