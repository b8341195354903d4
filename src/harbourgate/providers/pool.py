"""A route served by a pool of servers of one model (PRODUCT.md §3 Pool, §4.4 `endpoints:`).

A `Pool` is an `Upstream`: the gateway calls it like any adapter and never knows how many
servers stand behind the name. It wraps one ordinary adapter per server (an
`OpenAIUpstream` built on a copy of the route with that server's `base_url`) and decides,
per request, which server answers:

- **Balancing**: `least_outstanding` (the default) sends the request to the server with
  the fewest requests this process has outstanding there, plus, where `health.metrics_path`
  is set, the queue the server itself reported at the last scrape (vLLM's
  `vllm:num_requests_running` + `vllm:num_requests_waiting`, less this process's own
  share, so that other workers' and replicas' load counts too); ties go round the pool.
  `round_robin` takes the servers in turn.
- **Concurrency**: a server at its `max_concurrency` is skipped; when every server in
  rotation is full, the request waits up to `queue_wait_s` for a slot, then the pool fails
  with a retryable `upstream_overloaded` and the gateway fails over to the next model.
- **Passive ejection**: a server that fails (connection refused, timeout, a dropped
  connection, garbage, 404 for the model id, rejected credentials: at once; 5xx: after
  `CONSECUTIVE_5XX` in a row) is taken out for a back-off that doubles on each failed
  retry (`EJECT_BASE_S` .. `EJECT_MAX_S`); when it ends, one request is let through as a
  half-open probe, and its success puts the server back. A failed request is retried on
  another server of the pool (at most `MAX_TRIES` servers), so one dead server costs the
  caller nothing but time.
- **Active health check** (`run_health_checks`, a background task of the app's lifespan):
  GET `health.path` on each server's host every `health.interval_s`; a server failing it
  gets no request at all, not even a probe, until it passes again. A server ejected for a
  liveness failure (connect, timeout, disconnect) that passes the check is back at once.
- **No healthy server**: a retryable `UpstreamError`, so the route counts as failed and
  the usual failover applies.

State is per process: with `--workers N` each worker balances and ejects on its own view.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import urlsplit

from harbourgate.config import RouteConfig
from harbourgate.providers import pool_metrics as metrics
from harbourgate.providers.base import EventStream, Shape, StreamEvent, Upstream, UpstreamError
from harbourgate.providers.http import POOL, read_capped

log = logging.getLogger("harbourgate.pool")

EJECT_BASE_S = 1.0
EJECT_MAX_S = 30.0
CONSECUTIVE_5XX = 3
MAX_TRIES = 3
QUEUE_WAIT_S = 1.0
HEALTH_TIMEOUT_S = 5.0
_HEALTH_BODY_BYTES = 1 << 20
"""The most a health check or metrics scrape reads of an answer."""

# Why a server failed, from the adapter's error (the vocabulary of providers/http.py).
LIVENESS = frozenset({"connect", "timeout", "disconnected"})
_HTTP_STATUS = re.compile(r"\(HTTP (\d{3})")
_GARBAGE = ("is not JSON", "unexpected shape", "instead of an event stream",
            "JSON that is not an object", "without a data list")


def failure_reason(exc: UpstreamError) -> str:
    """The metric/log reason of a retryable adapter error."""
    message = exc.message
    if exc.code == "upstream_timeout" or "stopped sending" in message:
        return "timeout"
    if exc.code == "upstream_rate_limited":
        return "rate_limited"
    found = _HTTP_STATUS.search(message)
    if found:
        status = int(found.group(1))
        if status == 429:
            return "rate_limited"
        if status == 404:
            return "wrong_model"
        if status in (401, 403):
            return "auth"
        return "http_5xx" if status >= 500 else "http_error"
    if exc.code == "upstream_overloaded":
        return "http_5xx"
    if "cannot connect" in message:
        return "connect"
    if "closed the connection" in message or "cut off" in message or "before its end" in message:
        return "disconnected"
    if any(marker in message for marker in _GARBAGE):
        return "garbage"
    return "error"


class Endpoint:
    """One server of a pool and what this process knows about it."""

    __slots__ = ("backoff_s", "base_url", "ejected_until", "errors", "failures", "foreign",
                 "health_ok", "health_url", "inner", "last_error", "limit",
                 "m_in_flight", "m_latency", "m_up", "max_concurrency", "metrics_url",
                 "outstanding", "probing", "reason", "requests")

    def __init__(self, route: RouteConfig, base_url: str, max_concurrency: int | None,
                 inner: Upstream) -> None:
        self.base_url = base_url
        self.max_concurrency = max_concurrency
        self.limit = max_concurrency if max_concurrency else 1 << 62
        self.inner = inner
        parts = urlsplit(base_url)
        root = f"{parts.scheme}://{parts.netloc}"
        self.health_url = root + route.health.path
        self.metrics_url = root + route.health.metrics_path if route.health.metrics_path \
            else None
        self.outstanding = 0
        self.foreign = 0  # requests the server reported beyond this process's own
        self.health_ok = True  # until a health check says otherwise
        self.ejected_until = 0.0  # monotonic; 0 = in rotation
        self.backoff_s = 0.0
        self.probing = False
        self.failures = 0  # consecutive
        self.reason: str | None = None
        self.last_error: str | None = None
        self.requests = 0
        self.errors = 0
        labels = (route.name, base_url)
        self.m_in_flight = metrics.IN_FLIGHT.labels(*labels)
        self.m_latency = metrics.LATENCY.labels(*labels)
        self.m_up = metrics.UP.labels(*labels)
        self.m_up.set(1)

    @property
    def state(self) -> str:
        if not self.health_ok:
            return "down"
        if self.probing:
            return "probing"
        if self.ejected_until:
            return "ejected" if time.monotonic() < self.ejected_until else "half_open"
        return "healthy"

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "base_url": self.base_url,
            "state": self.state,
            "in_flight": self.outstanding,
            "max_concurrency": self.max_concurrency,
            "server_queue": self.foreign,
            "reason": self.reason,
            "last_error": self.last_error,
            "retry_in_s": round(max(0.0, self.ejected_until - now), 3)
            if self.ejected_until else None,
            "requests": self.requests,
            "errors": self.errors,
        }


class Pool:
    """An `Upstream` over several servers of one model; see the module's docstring."""

    def __init__(self, route: RouteConfig, inners: list[Upstream], *,
                 queue_wait_s: float = QUEUE_WAIT_S) -> None:
        if len(inners) != len(route.endpoints) or not inners:
            raise ValueError(f"route {route.name!r}: one adapter per endpoint is needed")
        self.route = route
        self.endpoints = [Endpoint(route, ep.base_url, ep.max_concurrency, inner)
                          for ep, inner in zip(route.endpoints, inners, strict=True)]
        self.queue_wait_s = queue_wait_s
        self._round_robin = route.balance == "round_robin"
        self._next = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @classmethod
    def build(cls, route: RouteConfig, kind: Callable[[RouteConfig], Upstream]) -> Pool:
        """A pool whose servers are each served by `kind(route with that base_url)`."""
        inners = [kind(dataclasses.replace(route, base_url=ep.base_url, endpoints=()))
                  for ep in route.endpoints]
        return cls(route, inners)

    def __repr__(self) -> str:
        return f"Pool({self.route.name!r}, {[e.base_url for e in self.endpoints]})"

    # -- the Upstream protocol

    async def chat(self, shape: Shape, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        kw = _headers(headers)
        _, answer = await self._call(lambda up: up.chat(shape, body, **kw))
        return answer  # type: ignore[no-any-return]

    async def open_stream(self, shape: Shape, body: dict[str, Any],
                          headers: Mapping[str, str] | None = None) -> EventStream:
        kw = _headers(headers)
        endpoint, stream = await self._call(lambda up: up.open_stream(shape, body, **kw),
                                            hold=True)
        return PoolStream(self, endpoint, stream)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        _, answer = await self._call(lambda up: up.embed(body))
        return answer  # type: ignore[no-any-return]

    async def count_tokens(self, shape: Shape, body: dict[str, Any],
                           headers: Mapping[str, str] | None = None) -> int | None:
        kw = _headers(headers)
        _, count = await self._call(
            lambda up: up.count_tokens(shape, body, **kw))  # type: ignore[attr-defined]
        return count  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.inner.aclose()

    # -- choosing a server

    def _pick(self, now: float, tried: list[Endpoint]) -> Endpoint | None:
        """The server for the next request, or None when none is free to take it."""
        endpoints = self.endpoints
        n = len(endpoints)
        start = self._next
        best: Endpoint | None = None
        best_load = 1 << 62
        for i in range(n):
            ep = endpoints[(start + i) % n]
            if (not ep.health_ok or ep.outstanding >= ep.limit
                    or (ep.ejected_until and (ep.probing or now < ep.ejected_until))
                    or ep in tried):
                continue
            if self._round_robin:
                self._next = (start + i + 1) % n
                return ep
            load = ep.outstanding + ep.foreign
            if load < best_load:
                best, best_load = ep, load
        self._next = (start + 1) % n
        return best

    def _full(self, now: float, tried: list[Endpoint]) -> bool:
        """Whether some untried server in rotation is only waiting for a free slot."""
        return any(ep.health_ok and ep.outstanding >= ep.limit and ep not in tried
                   and not (ep.ejected_until and (ep.probing or now < ep.ejected_until))
                   for ep in self.endpoints)

    async def _wait_for_slot(self, timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass  # the caller looks once more, then gives up
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken, then cancelled: the slot goes to the next in line
            raise
        finally:
            if not waiter.done():
                waiter.cancel()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- one request

    async def _call(self, op: Callable[[Upstream], Awaitable[Any]], *,
                    hold: bool = False) -> tuple[Endpoint, Any]:
        """Run `op` on a chosen server, retrying on others; `hold` keeps the slot taken
        (a stream releases it when it ends)."""
        tried: list[Endpoint] = []
        failed: list[tuple[Endpoint, str, UpstreamError]] = []
        waited = 0.0
        while len(tried) < MAX_TRIES:
            now = time.monotonic()
            ep = self._pick(now, tried)
            if ep is None:
                if not self._full(now, tried):
                    break
                if waited >= self.queue_wait_s:
                    raise UpstreamError(
                        f"model {self.route.name!r}: every pool server is at its "
                        f"max_concurrency (waited {waited:.1f} s for a free slot)",
                        status=503, code="upstream_overloaded")
                await self._wait_for_slot(self.queue_wait_s - waited)
                waited += time.monotonic() - now
                continue
            ep.outstanding += 1
            ep.m_in_flight.inc()
            if ep.ejected_until:
                ep.probing = True  # the half-open probe
            started = time.perf_counter()
            try:
                result = await op(ep.inner)
            except UpstreamError as exc:
                if not exc.retryable:  # the request's fault, not the server's
                    self._release(ep, started)
                    raise
                reason = failure_reason(exc)
                self._release(ep, started, reason, exc)
                tried.append(ep)
                failed.append((ep, reason, exc))
                continue
            except BaseException:  # cancelled, or a bug: free the slot, judge nothing
                ep.probing = False
                self._free(ep)
                raise
            if hold:
                ep.m_latency.observe(time.perf_counter() - started)
                self._succeeded(ep)
            else:
                self._release(ep, started)
            return ep, result
        raise self._exhausted(failed)

    def _free(self, ep: Endpoint) -> None:
        ep.outstanding -= 1
        ep.m_in_flight.dec()
        if self._waiters:
            self._wake()

    def _release(self, ep: Endpoint, started: float, reason: str | None = None,
                 exc: UpstreamError | None = None) -> None:
        """Free `ep`'s slot and judge the outcome: `reason` None = it answered."""
        self._free(ep)
        ep.m_latency.observe(time.perf_counter() - started)
        if reason is None:
            self._succeeded(ep)
        else:
            self._failed(ep, reason, str(exc) if exc is not None else reason)

    def _succeeded(self, ep: Endpoint) -> None:
        ep.requests += 1
        ep.failures = 0
        if ep.ejected_until:
            self._readmit(ep, "answered the half-open probe")

    def _failed(self, ep: Endpoint, reason: str, message: str) -> None:
        ep.requests += 1
        ep.errors += 1
        metrics.ERRORS.labels(self.route.name, ep.base_url, reason).inc()
        ep.last_error = message
        if reason in ("rate_limited", "http_error"):
            ep.probing = False
            return  # busy, or a status nobody can act on: try elsewhere, keep it in rotation
        if ep.ejected_until > time.monotonic():
            return  # sent before the server was ejected: its back-off has already begun
        ep.failures += 1
        if reason != "http_5xx" or ep.failures >= CONSECUTIVE_5XX or ep.probing:
            self._eject(ep, reason, message)

    def _eject(self, ep: Endpoint, reason: str, message: str) -> None:
        ep.backoff_s = EJECT_BASE_S if not ep.backoff_s else min(ep.backoff_s * 2, EJECT_MAX_S)
        ep.ejected_until = time.monotonic() + ep.backoff_s
        ep.probing = False
        ep.reason = reason
        ep.m_up.set(0)
        metrics.EJECTIONS.labels(self.route.name, ep.base_url, reason).inc()
        log.warning("pool %s: server %s ejected for %.0f s (%s): %s", self.route.name,
                    ep.base_url, ep.backoff_s, reason, message)

    def _readmit(self, ep: Endpoint, why: str) -> None:
        ep.ejected_until = 0.0
        ep.backoff_s = 0.0
        ep.probing = False
        ep.failures = 0
        ep.reason = None
        ep.m_up.set(1 if ep.health_ok else 0)
        log.info("pool %s: server %s back in rotation (%s)", self.route.name, ep.base_url, why)

    def _exhausted(self, failed: list[tuple[Endpoint, str, UpstreamError]]) -> UpstreamError:
        name = self.route.name
        if failed:
            detail = "; ".join(f"{ep.base_url}: {reason}" for ep, reason, _ in failed)
            timeouts = all(reason == "timeout" for _, reason, _ in failed)
            return UpstreamError(
                f"model {name!r}: every pool server tried failed ({detail})",
                status=504 if timeouts else 502,
                code="upstream_timeout" if timeouts else "upstream_error")
        detail = "; ".join(f"{ep.base_url}: {ep.state}" + (f" ({ep.reason})" if ep.reason
                                                            else "")
                           for ep in self.endpoints)
        return UpstreamError(f"model {name!r}: no pool server is healthy ({detail})")

    # -- the active health check

    async def run_health_checks(self) -> None:
        """Check every server now and then every `health.interval_s`, until cancelled."""
        interval = self.route.health.interval_s
        if not interval:
            return
        timeout = min(HEALTH_TIMEOUT_S, self.route.timeout_s, max(interval, 0.5))
        POOL.acquire()
        try:
            while True:
                await asyncio.gather(*(self._check(ep, timeout) for ep in self.endpoints))
                await asyncio.sleep(interval)
        finally:
            await POOL.release()

    async def _check(self, ep: Endpoint, timeout: float) -> None:
        try:
            status, _ = await _get(ep.health_url, timeout)
            problem = None if 200 <= status < 300 else f"HTTP {status}"
        except (OSError, UpstreamError) as exc:  # wire's errors are OSErrors
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if problem is not None:
            if ep.health_ok:
                ep.health_ok = False
                ep.m_up.set(0)
                ep.last_error = f"health check {ep.health_url}: {problem}"
                metrics.ERRORS.labels(self.route.name, ep.base_url, "health").inc()
                metrics.EJECTIONS.labels(self.route.name, ep.base_url, "health").inc()
                log.warning("pool %s: server %s failed its health check (%s); out of rotation",
                            self.route.name, ep.base_url, problem)
            return
        if not ep.health_ok:
            ep.health_ok = True
            ep.m_up.set(0 if ep.ejected_until else 1)
            log.info("pool %s: server %s passed its health check again", self.route.name,
                     ep.base_url)
        if ep.ejected_until and ep.reason in LIVENESS:
            self._readmit(ep, "passed its health check")
        if ep.metrics_url is not None:
            await self._scrape(ep, ep.metrics_url, timeout)

    async def _scrape(self, ep: Endpoint, url: str, timeout: float) -> None:
        try:
            status, body = await _get(url, timeout)
            text = body.decode() if status == 200 else ""
        except (OSError, UpstreamError, UnicodeDecodeError):
            text = ""
        queued = server_queue(text)
        ep.foreign = max(0, queued - ep.outstanding) if queued is not None else 0

    # -- what operators see

    def status(self) -> dict[str, Any]:
        servers = [ep.status() for ep in self.endpoints]
        return {"balance": self.route.balance,
                "health": {"path": self.route.health.path,
                           "interval_s": self.route.health.interval_s,
                           "metrics_path": self.route.health.metrics_path},
                "healthy": sum(s["state"] == "healthy" for s in servers),
                "servers": servers}


class PoolStream:
    """A server's stream; its slot is held until the stream ends, fails or is closed."""

    def __init__(self, pool: Pool, endpoint: Endpoint, stream: EventStream) -> None:
        self._pool = pool
        self._endpoint: Endpoint | None = endpoint
        self._stream = stream

    @property
    def usage(self) -> Any:
        return self._stream.usage  # type: ignore[attr-defined]

    def __aiter__(self) -> PoolStream:
        return self

    async def __anext__(self) -> StreamEvent:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            self._done(None)
            raise
        except UpstreamError as exc:
            self._done(exc)
            raise

    def ready(self) -> list[StreamEvent]:
        """The events the server's stream already holds (see `UpstreamStream.ready`)."""
        ready = getattr(self._stream, "ready", None)
        return ready() if ready is not None else []

    def _done(self, exc: UpstreamError | None) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            return
        self._pool._free(endpoint)
        if exc is not None:
            self._pool._failed(endpoint, failure_reason(exc), str(exc))

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            endpoint, self._endpoint = self._endpoint, None
            if endpoint is not None:
                self._pool._free(endpoint)


async def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET `url` through the shared client: (status, body of at most 1 MiB)."""
    response = None
    try:
        async with asyncio.timeout(timeout):
            response = await POOL.client().request("GET", url, {})
            return response.status, await read_capped(response, url, _HEALTH_BODY_BYTES)
    finally:
        if response is not None:
            response.release()


def _headers(headers: Mapping[str, str] | None) -> dict[str, Any]:
    """The adapters' `headers` argument, passed on only when there is one."""
    return {} if headers is None else {"headers": headers}


_QUEUE_GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting")


def server_queue(text: str) -> int | None:
    """Running + waiting requests from a vLLM-style Prometheus exposition (summed over
    label sets: one per served model), or None if the text has neither gauge."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(_QUEUE_GAUGES):
            try:
                total += float(line.rsplit(None, 1)[-1])
                found = True
            except ValueError:
                continue
    return round(total) if found else None


def pools(upstreams: Mapping[str, Upstream]) -> dict[str, Pool]:
    return {name: up for name, up in upstreams.items() if isinstance(up, Pool)}


def pool_status(upstreams: Mapping[str, Upstream]) -> dict[str, Any]:
    """Every pool's servers and their state, by route name (JSON-able; for /readyz and
    the admin API)."""
    return {name: pool.status() for name, pool in pools(upstreams).items()}


def health_checks(upstreams: Mapping[str, Upstream]) -> list[Coroutine[Any, Any, None]]:
    """The background jobs the app's lifespan runs: one health checker per pool."""
    return [pool.run_health_checks() for pool in pools(upstreams).values()
            if pool.route.health.interval_s]
