"""The upstream call's HTTP/1.1 client: keep-alive connections per origin on asyncio
protocols, parsed by httptools (the parser the server side already uses).

Why not aiohttp: the upstream call is on every request's path, and one POST of a 2 KB
prompt with its JSON answer cost ~135 µs of CPU through aiohttp's `ClientSession` against
~35 µs on a bare protocol (`bench/wire.py`, one run on one machine). This client does what an
upstream call needs and nothing more: one request at a time per connection, keep-alive
reuse, TLS, content-length, chunked and close-delimited bodies, read back-pressure, and
errors the adapters name. No redirects, cookies, proxies or compression: it asks for
`identity` and refuses an answer in any other content coding (so no decompression bomb).

The number of connections is bounded by the callers: each gateway request makes one
upstream call at a time, and the server admits at most `limits.max_connections` requests,
so no pool-wide limit is kept here; idle connections are capped per origin and expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

import httptools

KEEPALIVE_S = 30.0
"""How long an idle connection is kept for reuse."""
MAX_IDLE = 256
"""Idle connections kept per origin; more are closed when released."""
HIGH_WATER = 1 << 18
"""Bytes of one answer buffered unread before the socket stops being read."""


class ConnectError(ConnectionError):
    """No connection to the upstream (refused, unreachable, DNS, TLS handshake)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause

    @property
    def reason(self) -> str:
        """What went wrong, in words: 'connection refused', 'certificate verify failed'."""
        if self.cause.errno and self.cause.errno in errno.errorcode:
            return os.strerror(self.cause.errno).lower()
        return (getattr(self.cause, "strerror", None) or str(self.cause)
                or type(self.cause).__name__).lower()


class ServerDisconnected(ConnectionError):
    """The upstream closed the connection before its answer began."""


class PayloadError(ConnectionError):
    """The upstream's answer began and was cut off."""


class ProtocolError(ConnectionError):
    """What came back is not an HTTP/1.1 answer this client accepts."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    host_header: str


@lru_cache(maxsize=4096)
def target(url: str) -> tuple[Origin, str]:
    """(origin, request target) of an http(s) URL; `ValueError` for anything else."""
    parts = httptools.parse_url(url.encode())
    scheme = (parts.schema or b"").decode().lower()
    if scheme not in ("http", "https") or not parts.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.host.decode()
    port = parts.port or (443 if scheme == "https" else 80)
    host_header = host if parts.port is None else f"{host}:{port}"
    if ":" in host:  # an IPv6 literal: the parser drops its brackets
        host_header = f"[{host}]" if parts.port is None else f"[{host}]:{port}"
    path = (parts.path or b"/").decode()
    if parts.query:
        path += "?" + parts.query.decode()
    return Origin(scheme, host, port, host_header), path


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the answer it is reading."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self.start()

    def start(self) -> None:
        """Ready for the next answer."""
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.head = False
        self.complete = False
        self.keep_alive = False
        self.delimited = True  # a length or chunks say where the body ends
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"the upstream's answer is not valid HTTP/1.1 ({exc})"))
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool:
        return False  # close; connection_lost says what that means for the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.complete or self.error is not None:
            return
        if self.head and not self.delimited:
            self.complete = True  # the body ran until the close, as HTTP/1.0 allows
            self._wake()
        elif self.head:
            self._fail(PayloadError("the upstream's answer was cut off"))
        else:
            self._fail(ServerDisconnected("the upstream closed the connection"))

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        names = {name for name, _ in self.headers}
        self.delimited = "content-length" in names or "transfer-encoding" in names \
            or self.status in (204, 304)
        self.keep_alive = self.parser.should_keep_alive()  # known once the head is read
        self.head = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # -- the reader's side

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, deadline: float | None) -> None:
        """Until the parser or the socket says something new (`TimeoutError` once the
        loop's clock reaches `deadline`)."""
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        timer = loop.call_at(deadline, _expire, waiter) if deadline is not None else None
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    def take(self) -> bytes:
        """Everything buffered, as one piece (reading resumes if it was paused)."""
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    @property
    def reusable(self) -> bool:
        return (self.complete and not self.lost and self.error is None
                and self.transport is not None and not self.transport.is_closing()
                and self.keep_alive)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """An answer whose head has arrived; read its body, then `release()` it (always)."""

    __slots__ = ("_client", "_conn", "headers", "status")

    def __init__(self, client: Client, conn: _Connection) -> None:
        self._client = client
        self._conn: _Connection | None = conn
        self.status = conn.status
        self.headers: dict[str, str] = dict(conn.headers)  # lower-case names, last one wins

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length", "")
        return int(value) if value.isdigit() else None

    async def chunks(self, idle_timeout: float | None = None, *,
                     deadline: float | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives: all bytes received since the last piece, together.
        `TimeoutError` when nothing arrives for `idle_timeout` seconds, or once the loop's
        clock reaches `deadline`."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("the response was released")
        loop = asyncio.get_running_loop()
        while True:
            if conn.chunks:
                yield conn.take()
            elif conn.complete:
                return
            elif conn.error is not None:
                raise conn.error
            elif idle_timeout is None:
                await conn.wait(deadline)
            else:
                idle = loop.time() + idle_timeout
                await conn.wait(idle if deadline is None else min(idle, deadline))

    def release(self) -> None:
        """Hand the connection back for reuse if the answer was read to its end, else
        close it (an answer left unread must not leak into the next request)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._put_back(conn)


class Client:
    """Keep-alive connections per origin; one per event loop (a gateway worker has one)."""

    def __init__(self) -> None:
        self.closed = False
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      body: bytes = b"", *, deadline: float | None = None) -> Response:
        """Send one request and wait for the head of its answer. Raises `ConnectError`,
        `ServerDisconnected`, `PayloadError`, `ProtocolError` (all `ConnectionError`), and
        `TimeoutError` once the loop's clock reaches `deadline` (one timer per wait: no
        `asyncio.timeout` scope, which cost a request ~10 µs)."""
        if self.closed:
            raise RuntimeError("the HTTP client is closed")
        origin, path = target(url)
        head = _head(method, path, origin.host_header, headers, body)
        conn = self._reuse(origin)
        if conn is None:
            if deadline is None:
                conn = await self._connect(origin)
            else:
                async with asyncio.timeout_at(deadline):
                    conn = await self._connect(origin)
        conn.start()
        assert conn.transport is not None
        conn.transport.write(head + body)
        try:
            while not conn.head:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(deadline)
        except BaseException:
            conn.close()
            raise
        response = Response(self, conn)
        coding = response.headers.get("content-encoding", "identity").lower()
        if coding != "identity":
            conn.close()
            raise ProtocolError(f"the upstream answered in content coding {coding!r}, "
                                "though only 'identity' was accepted")
        return response

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        deadline = asyncio.get_running_loop().time() - KEEPALIVE_S
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be stale
            if conn.lost or conn.transport is None or conn.transport.is_closing() \
                    or conn.idle_since < deadline:
                conn.close()
                continue
            return conn
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._context() if origin.scheme == "https" else None
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(origin), origin.host, origin.port, ssl=tls,
                server_hostname=origin.host if tls is not None else None)
        except OSError as exc:  # refused, unreachable, name unknown, TLS handshake
            raise ConnectError(exc) from None
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _put_back(self, conn: _Connection) -> None:
        if self.closed or not conn.reusable:
            conn.close()
            return
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= MAX_IDLE:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle.append(conn)

    async def close(self) -> None:
        """Close every idle connection; those in use close when released."""
        self.closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                with contextlib.suppress(RuntimeError):  # its loop is gone
                    conn.close()


def _head(method: str, path: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request line and headers. A header value with a line break is refused: it
    would smuggle a second header (or request) to the upstream."""
    lines = [f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n"]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"header {name!r}: a line break is not allowed in a header")
        lines.append(f"{name}: {value}\r\n")
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")
