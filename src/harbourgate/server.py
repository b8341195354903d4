"""The HTTP server's own bounds: what an unauthenticated client can make a worker hold.

uvicorn's httptools protocol accepts header blocks of any size (the parser joins a long
header value in memory before the app sees it), waits forever for a slow client's headers
or body, and answers its connection cap with a plain-text 503. `BoundedProtocol` closes
those gaps where the bytes arrive, before any parsing by the app or any authentication:

- header bytes (request line + headers) over `limits.max_header_bytes`, or more than
  `limits.max_headers` headers: 431 `headers_too_large`;
- headers not complete within `limits.read_timeout_s` of the request's first byte, or a
  body not complete within `read_timeout_s` after its headers: 408 `request_timeout`;
- more than `limits.max_connections` open connections in this worker: 503
  `server_busy` with `Retry-After`, the new connection closed at once.

Each refusal is a JSON error in the OpenAI shape (the Anthropic SDK reads its `message`
too), written straight to the socket and followed by closing the connection, because the
request never reached the app (nothing to audit: no caller was identified).
"""

from __future__ import annotations

import asyncio
import logging
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
        self._header_count = 0
        self._header_size = 0
        self._in_headers = False
        self._deadline: asyncio.TimerHandle | None = None
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
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # -- bytes as they arrive

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        counting = self._in_headers or self.cycle is None or self.cycle.response_complete
        if counting:
            self._header_bytes += len(data)
        super().data_received(data)
        # Still inside the headers after this read: every byte so far was header bytes.
        if counting and self._in_headers and not self._refused \
                and self._header_bytes > self.limits.max_header_bytes:
            self._too_large()

    def _too_large(self) -> None:
        self._refuse(431, "headers_too_large", "the request line and headers are over this "
                     f"gateway's limit of {self.limits.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # not when a callback stopped the parser for our own refusal
            super().send_400_response(msg)

    # -- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_count = 0
        self._header_size = 0
        self._arm("headers")

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_size += len(name) + len(value) + 4
        if self._header_count > self.limits.max_headers:
            self._refuse(431, "headers_too_large", f"the request has more than "
                         f"{self.limits.max_headers} headers, this gateway's limit")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        if self._header_size > self.limits.max_header_bytes:
            self._too_large()
            raise _Refused
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._arm("body")
        else:
            self._disarm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._refused and not self.transport.is_closing():
            self._arm("headers")  # the next request on this kept-alive connection

    # -- deadlines

    def _arm(self, phase: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.read_timeout_s, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self._refused or self.transport.is_closing():
            return
        if phase == "headers" and not self._in_headers and self._header_bytes == 0 \
                and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()  # an idle kept-alive connection: nothing was asked
            return
        if self.cycle is not None and self.cycle.response_started:
            return  # the app answers already; it sees the disconnect when it reads
        log.warning("request timed out reading its %s from %s", phase, self.client)
        self._refuse(408, "request_timeout", f"the request's {phase} did not arrive within "
                     f"{self.limits.read_timeout_s:g} s")

    def _refuse(self, status: int, code: str, message: str,
                headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Answer at once and close; the app (if it runs) sees a disconnect."""
        self._refused = True
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            if self.cycle.response_started:
                self.transport.close()
                return
        self.transport.write(error_response(status, code, message, headers))
        self.transport.close()


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request already refused (httptools
    re-raises it wrapped, and `send_400_response` then stays silent)."""
