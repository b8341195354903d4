"""The pooled HTTP client every network adapter shares, and its error vocabulary.

One aiohttp `ClientSession` per process keeps connections to each upstream alive across
requests; it is created lazily inside the running event loop (a session belongs to its
loop, so a new loop, as in tests, gets a new session; use one loop at a time per process,
as each gateway worker does). Adapters `acquire()` it when
built and `release()` it in `aclose()`; the last release closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import aiohttp
import orjson

from harbourgate.providers.base import UpstreamError

MAX_CONNECTIONS = 1024
KEEPALIVE_S = 30.0
MAX_RESPONSE_BYTES = 64_000_000
"""The default of `limits.max_upstream_response_bytes`."""


class ClientPool:
    """A lazily created, shared `aiohttp.ClientSession`, reference-counted by its users."""

    def __init__(self, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._users = 0
        self.max_response_bytes = max_response_bytes
        """The most an upstream answer (or one streamed event) may hold; the app sets it
        from `limits.max_upstream_response_bytes`."""

    def acquire(self) -> None:
        self._users += 1

    async def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S,
                                             ttl_dns_cache=300)
            session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda value: orjson.dumps(value).decode(),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "harbourgate"},
            )
            self._session, self._loop = session, loop
        return session

    async def release(self) -> None:
        """One user is done; the last one closes the session."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.close()

    async def close(self) -> None:
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            with contextlib.suppress(RuntimeError):  # its loop is gone: nothing left to close
                await session.close()


POOL = ClientPool()
"""The process-wide pool every network adapter shares unless given its own."""


async def read_capped(response: aiohttp.ClientResponse, route: str, limit: int) -> bytes:
    """The whole body of a plain upstream answer, refused once it passes `limit` bytes (an
    upstream must not make the gateway hold an answer of any size in memory)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise too_large_error(route, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large_error(route, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large_error(route: str, limit: int) -> UpstreamError:
    return UpstreamError(f"model {route!r}: the upstream's answer is over this gateway's cap "
                         f"of {limit} bytes (limits.max_upstream_response_bytes)",
                         retryable=False)


def connection_error(route: str, exc: BaseException, *, streaming: bool = False) -> UpstreamError:
    """A transport failure as the gateway should see it (retryable unless mid-stream)."""
    if isinstance(exc, TimeoutError):
        return timeout_error(route, streaming=streaming)
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        reason = os.strerror(error.errno) if error.errno else (error.strerror or str(error))
        what = f"cannot connect to the upstream ({reason.lower()})"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        what = "the upstream closed the connection"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        what = "the upstream's answer was cut off"
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
