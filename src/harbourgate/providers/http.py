"""The pooled HTTP client every network adapter shares, and its error vocabulary.

One `wire.Client` per process keeps connections to each upstream alive across requests;
it is created lazily inside the running event loop (connections belong to their loop, so
a new loop, as in tests, gets a new client; use one loop at a time per process, as each
gateway worker does). Adapters `acquire()` the pool when built and `release()` it in
`aclose()`; the last release closes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from harbourgate.providers import wire
from harbourgate.providers.base import UpstreamError

MAX_RESPONSE_BYTES = 64_000_000
"""The default of `limits.max_upstream_response_bytes`."""


class ClientPool:
    """A lazily created, shared `wire.Client`, reference-counted by its users."""

    def __init__(self, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._client: wire.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._users = 0
        self.max_response_bytes = max_response_bytes
        """The most an upstream answer (or one streamed event) may hold; the app sets it
        from `limits.max_upstream_response_bytes`."""

    def acquire(self) -> None:
        self._users += 1

    def client(self) -> wire.Client:
        client = self._client
        if client is None or client.closed or self._loop is not asyncio.get_running_loop():
            client = wire.Client()
            self._client, self._loop = client, asyncio.get_running_loop()
        return client

    async def release(self) -> None:
        """One user is done; the last one closes the client."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.close()

    async def close(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None and not client.closed:
            await client.close()


POOL = ClientPool()
"""The process-wide pool every network adapter shares unless given its own."""


async def read_capped(response: wire.Response, route: str, limit: int,
                      deadline: float | None = None) -> bytes:
    """The whole body of a plain upstream answer, refused once it passes `limit` bytes (an
    upstream must not make the gateway hold an answer of any size in memory);
    `TimeoutError` once the loop's clock reaches `deadline`."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise too_large_error(route, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.chunks(deadline=deadline):
        size += len(chunk)
        if size > limit:
            raise too_large_error(route, limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large_error(route: str, limit: int) -> UpstreamError:
    return UpstreamError(f"model {route!r}: the upstream's answer is over this gateway's cap "
                         f"of {limit} bytes (limits.max_upstream_response_bytes)",
                         retryable=False)


def connection_error(route: str, exc: BaseException, *, streaming: bool = False) -> UpstreamError:
    """A transport failure as the gateway should see it (retryable unless mid-stream)."""
    if isinstance(exc, TimeoutError):
        return timeout_error(route, streaming=streaming)
    if isinstance(exc, wire.ConnectError):
        what = f"cannot connect to the upstream ({exc.reason})"
    elif isinstance(exc, wire.ServerDisconnected | wire.PayloadError | wire.ProtocolError):
        what = str(exc)
    else:
        what = f"the connection to the upstream failed ({type(exc).__name__}: {exc})"
    if streaming:
        return UpstreamError(f"model {route!r}: {what} mid-stream", retryable=False)
    return UpstreamError(f"model {route!r}: {what}")


def timeout_error(route: str, *, streaming: bool = False) -> UpstreamError:
    if streaming:
        return UpstreamError(f"model {route!r}: the upstream stopped sending mid-stream",
                             status=504, code="upstream_timeout", retryable=False)
    return UpstreamError(f"model {route!r}: the upstream did not answer in time",
                         status=504, code="upstream_timeout")


def status_error(route: str, status: int, body: bytes,
                 retry_after: str | None = None) -> UpstreamError:
    """An upstream HTTP error status, mapped to what the gateway does about it.

    400/422 mean the request itself is at fault: not retryable, the upstream's message is
    passed on. 429 is `upstream_rate_limited` and 503 (OpenAI) or 529 (Anthropic)
    `upstream_overloaded`, both with the upstream's `Retry-After`. Everything else
    (401/403/404: the route is misconfigured; 5xx) is the upstream's problem, and another
    model may serve the request.
    """
    message = upstream_message(body)
    if status in (400, 422):
        return UpstreamError(f"model {route!r} refused the request: {message}", status=400,
                             code="invalid_request", retryable=False)
    if status == 429:
        return UpstreamError(f"model {route!r}: the upstream is rate limiting (HTTP 429: "
                             f"{message})", status=429, code="upstream_rate_limited",
                             retry_after=retry_after)
    if status in (503, 529):
        return UpstreamError(f"model {route!r}: the upstream is overloaded (HTTP {status}: "
                             f"{message})", status=503, code="upstream_overloaded",
                             retry_after=retry_after)
    if status in (401, 403):
        why = "rejected the route's credentials (check its api_key_env)"
    elif status == 404:
        why = "does not know the endpoint or model (check the route's base_url and upstream_model)"
    elif status >= 500:
        why = "failed"
    else:
        why = "answered with an unexpected status"
    return UpstreamError(f"model {route!r}: the upstream {why} (HTTP {status}: {message})")


def upstream_message(body: bytes) -> str:
    """The human message inside an upstream error body, whatever its shape."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return text[:200] or "no message"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if data.get("message"):
            return str(data["message"])
    return orjson.dumps(data).decode()[:200]


def garbage_error(route: str, what: str) -> UpstreamError:
    return UpstreamError(f"model {route!r}: the upstream answered {what}")
