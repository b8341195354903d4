"""The HTTP server's own bounds: what an unauthenticated client can make a worker hold.

uvicorn's httptools protocol accepts header blocks of any size (the parser joins a long
header value in memory before the app sees it), waits forever for a slow client's headers
or body, and answers its connection cap with a plain-text 503. `BoundedProtocol` closes
those gaps where the bytes arrive, before any parsing by the app or any authentication:

- header bytes (request line + headers) over `limits.max_header_bytes`, or more than
  `limits.max_headers` headers: 431 `headers_too_large` (checked after each read and
  when the headers end, so one read is all a refused client can make the parser hold);
- headers not complete within `limits.read_timeout_s` of the request's first byte (the
  first request on a connection or a later one), or a body not complete within
  `read_timeout_s` after its headers: 408 `request_timeout`; a connection idle that long
  with nothing asked is closed quietly. One sweep per worker checks these deadlines, every
  `read_timeout_s / 10` (at most every second), so one passes up to that much late;
- more than `limits.max_connections` open connections in this worker: 503
  `server_busy` with `Retry-After`, the new connection closed at once.

Each refusal is a JSON error in the OpenAI shape (the Anthropic SDK reads its `message`
too), written straight to the socket and followed by closing the connection, because the
request never reached the app (nothing to audit: no caller was identified).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from itertools import chain
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from harbourgate.config import Limits

log = logging.getLogger("harbourgate.server")

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}


def error_response(status: int, code: str, message: str,
                   headers: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, in the OpenAI error shape."""
    error_type = "invalid_request_error" if status < 500 else "api_error"
    body = orjson.dumps({"error": {"type": error_type, "code": code, "message": message,
                                   "param": None}})
    head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join(head) + b"\r\n" + body


def limits_of(app: Any) -> Limits:
    """The `Limits` of the Harbourgate app uvicorn loaded (under any wrapping middleware)."""
    for _ in range(8):
        settings = getattr(app, "settings", None)
        if settings is not None:
            return settings.limits
        app = getattr(app, "app", None)
        if app is None:
            break
    return Limits()


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, time and connection bounds."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits_of(self.app)
        self._header_bytes = 0
        self._in_headers = False
        self._due = 0.0  # loop time when the current phase's deadline passes; 0: none
        self._phase = "headers"
        self._refused = False

    # -- connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("connection refused: %d open connections (limits.max_connections %d)",
                        len(self.connections), self.limits.max_connections)
            self._refuse(503, "server_busy", "this gateway worker has "
                         f"{self.limits.max_connections} open connections, its limit; "
                         "retry shortly", ((b"retry-after", b"1"),))
            return
        _Sweep.of(self).wake()
        self._arm("headers")

    # -- bytes as they arrive

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        counting = self._in_headers or self.cycle is None or self.cycle.response_complete
        if counting:
            self._header_bytes += len(data)
        super().data_received(data)
        # Still inside the headers after this read: every byte so far was header bytes.
        if counting and self._in_headers and not self._refused:
            if len(self.headers) > self.limits.max_headers:
                self._too_many()
            elif self._header_bytes > self.limits.max_header_bytes:
                self._too_large()

    def _too_large(self) -> None:
        self._refuse(431, "headers_too_large", "the request line and headers are over this "
                     f"gateway's limit of {self.limits.max_header_bytes} bytes")

    def _too_many(self) -> None:
        self._refuse(431, "headers_too_large", f"the request has more than "
                     f"{self.limits.max_headers} headers, this gateway's limit")

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # not when a callback stopped the parser for our own refusal
            super().send_400_response(msg)

    # -- parser callbacks (uvicorn's own `on_url`, `on_header`, `on_message_complete` run
    # unwrapped: the headers are counted and measured once, when they are complete)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._arm("headers")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        headers = self.headers
        if len(headers) > self.limits.max_headers:
            self._too_many()
            raise _Refused
        # the request line's target, and each header as `name: value\r\n`
        size = len(self.url) + sum(map(len, chain.from_iterable(headers))) + 4 * len(headers)
        if size > self.limits.max_header_bytes:
            self._too_large()
            raise _Refused
        super().on_headers_complete()
        self._arm("body")  # moot once the message is complete (`cycle.more_body` False)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._refused and not self.transport.is_closing():
            self._arm("headers")  # the next request on this kept-alive connection

    # -- deadlines

    def _arm(self, phase: str) -> None:
        """Start `phase`'s deadline: a stored time, which the worker's `_Sweep` checks."""
        self._due = self.loop.time() + self.limits.read_timeout_s
        self._phase = phase

    def _expired(self) -> None:
        self._due = 0.0
        phase = self._phase
        if self._refused or self.transport.is_closing():
            return
        if phase == "body" and self.cycle is not None and not self.cycle.more_body:
            return  # the whole body arrived: the app has it
        if phase == "headers" and not self._in_headers and self._header_bytes == 0 \
                and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()  # an idle kept-alive connection: nothing was asked
            return
        if self.cycle is not None and self.cycle.response_started \
                and not self.cycle.response_complete:
            return  # the app answers already; it sees the disconnect when it reads
        log.warning("request timed out reading its %s from %s", phase, self.client)
        self._refuse(408, "request_timeout", f"the request's {phase} did not arrive within "
                     f"{self.limits.read_timeout_s:g} s")

    def _refuse(self, status: int, code: str, message: str,
                headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Answer at once and close; the app (if it runs) sees a disconnect."""
        self._refused = True
        self._due = 0.0
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            if self.cycle.response_started:
                self.transport.close()
                return
        self.transport.write(error_response(status, code, message, headers))
        self.transport.close()


class _Sweep:
    """The deadlines of one server's connections, checked by one repeating timer.

    A timer per phase would cost a `call_later` and a cancel three times per request; a
    phase change here only stores a time. The sweep runs every `read_timeout_s / 10` (at
    most every second) while the server has connections, so a deadline passes at most that
    much late: 10 % of `read_timeout_s`, and never more than a second.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any],
                 every: float) -> None:
        self.loop = loop
        self.connections = connections  # uvicorn's: every open connection of the server
        self.every = every
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, protocol: BoundedProtocol) -> _Sweep:
        """The sweep of `protocol`'s server (made with its first connection)."""
        sweep = _sweeps.get(protocol.server_state)
        if sweep is None:
            sweep = _sweeps[protocol.server_state] = cls(
                protocol.loop, protocol.connections,
                min(protocol.limits.read_timeout_s / 10, 1.0))
        return sweep

    def wake(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.every, self._run)

    def _run(self) -> None:
        # The next sweep first (none once the server has no connections: the next one wakes
        # it), so that one connection's failure cannot end the deadlines of all the others.
        self._timer = self.loop.call_later(self.every, self._run) if self.connections else None
        now = self.loop.time()
        for connection in tuple(self.connections):
            if isinstance(connection, BoundedProtocol) and 0.0 < connection._due <= now:
                connection._expired()


_sweeps: weakref.WeakKeyDictionary[Any, _Sweep] = weakref.WeakKeyDictionary()  # by server


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request already refused (httptools
    re-raises it wrapped, and `send_400_response` then stays silent)."""
