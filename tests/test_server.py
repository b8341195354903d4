"""`BoundedProtocol` in process, on a fake clock: the deadlines one sweep per server checks
(a phase change only stores a time), and the header bounds measured once the headers are
complete. tests/e2e/test_limits.py checks the same bounds over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState

from harbourgate.config import Limits
from harbourgate.server import BoundedProtocol, _sweeps

LIMITS = Limits(read_timeout_s=0.5, max_headers=6, max_header_bytes=300)
REQUEST = b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"


class Transport(asyncio.Transport):
    """What the protocol writes; closing tells the protocol soon after, as a socket does."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.protocol: BoundedProtocol | None = None
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        if not self.closed and self.protocol is not None:
            self.loop.call_soon(self.protocol.connection_lost, None)
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class App:
    """Answers ``/fast`` at once; ``/slow`` once `release` is set; ``/early`` starts its
    answer before reading the body."""

    def __init__(self, limits: Limits) -> None:
        self.settings = SimpleNamespace(limits=limits)
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        start = {"type": "http.response.start", "status": 200,
                 "headers": [(b"content-length", b"2")]}
        if scope["path"] == "/early":
            await send(start)
            await self.release.wait()
            await send({"type": "http.response.body", "body": b"ok"})
            return
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/slow":
            await self.release.wait()
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})


class Rig:
    """A server's state on an event loop whose clock the test moves."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: Limits = LIMITS) -> None:
        self.loop = loop
        self.now = 1000.0
        loop.time = lambda: self.now  # type: ignore[method-assign]
        self.app = App(limits)
        self.config = uvicorn.Config(self.app, lifespan="off", access_log=False,
                                     proxy_headers=False, http=BoundedProtocol)
        self.config.load()
        self.state = ServerState()

    def connect(self) -> tuple[BoundedProtocol, Transport]:
        protocol = BoundedProtocol(self.config, self.state, {}, self.loop)
        transport = Transport(self.loop)
        transport.protocol = protocol
        protocol.connection_made(transport)
        return protocol, transport

    async def advance(self, seconds: float) -> None:
        """Move the clock, run the sweep as its timer would, and let callbacks run."""
        self.now += seconds
        _sweeps[self.state]._run()
        await settle()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def run(test: Callable[[Rig], Awaitable[None]], limits: Limits = LIMITS) -> None:
    async def main() -> None:
        await test(Rig(asyncio.get_running_loop(), limits))
    asyncio.run(main())


def error_of(written: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = written.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


@pytest.fixture(autouse=True)
def _no_sweeps_left() -> Iterator[None]:
    yield
    _sweeps.clear()


def test_a_slow_client_on_a_kept_alive_connection_still_meets_the_deadline() -> None:
    async def test(rig: Rig) -> None:
        protocol, transport = rig.connect()
        protocol.data_received(REQUEST)
        await settle()
        assert transport.written.endswith(b"ok") and not transport.closed
        transport.written = b""
        await rig.advance(0.1)
        protocol.data_received(b"GET /fast HTTP/1.1\r\nHost: x\r\n")  # never finished
        await rig.advance(0.45)  # 0.45 s into its headers: not yet due
        assert not transport.closed
        await rig.advance(0.1)
        status, error = error_of(transport.written)
        assert (status, error["code"]) == (408, "request_timeout")
        assert error["message"] == "the request's headers did not arrive within 0.5 s"
        assert transport.closed
    run(test)


def test_the_sweep_closes_only_what_is_due() -> None:
    async def test(rig: Rig) -> None:
        idle, idle_transport = rig.connect()
        await rig.advance(0.3)
        body, body_transport = rig.connect()
        body.data_received(b"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        await rig.advance(0.25)  # the idle one is due, the body not for 0.25 s more
        assert idle_transport.closed and idle_transport.written == b""  # closed quietly
        assert not body_transport.closed
        assert body in rig.state.connections and idle not in rig.state.connections
        await rig.advance(0.3)
        status, error = error_of(body_transport.written)
        assert status == 408 and "body did not arrive within 0.5 s" in error["message"]
        assert not rig.state.connections
        assert _sweeps[rig.state]._timer is None  # no connections: the sweep sleeps
        rig.connect()
        assert _sweeps[rig.state]._timer is not None  # and the next one wakes it
    run(test)


def test_a_complete_request_the_app_still_works_on_is_not_timed_out() -> None:
    async def test(rig: Rig) -> None:
        protocol, transport = rig.connect()
        protocol.data_received(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
        await rig.advance(5.0)  # ten read timeouts while the app works
        assert not transport.closed and transport.written == b""
        rig.app.release.set()
        await settle()
        assert transport.written.startswith(b"HTTP/1.1 200") and not transport.closed
        await rig.advance(0.6)  # then idle past the deadline: closed quietly
        assert transport.closed and transport.written.endswith(b"ok")
    run(test)


def test_a_request_whose_answer_started_is_not_refused() -> None:
    async def test(rig: Rig) -> None:
        protocol, transport = rig.connect()
        protocol.data_received(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n")
        await settle()
        assert transport.written.startswith(b"HTTP/1.1 200")
        await rig.advance(0.6)  # the body never came, but the answer had started
        assert b"request_timeout" not in transport.written and not transport.closed
        rig.app.release.set()
        await settle()
        assert transport.written.endswith(b"ok")
    run(test)


def test_too_many_headers_trickling_in_are_refused_before_the_headers_end() -> None:
    async def test(rig: Rig) -> None:
        protocol, transport = rig.connect()
        protocol.data_received(b"GET /fast HTTP/1.1\r\n")
        for i in range(LIMITS.max_headers + 2):  # a header is whole when the next begins
            protocol.data_received(b"X-H%d: v\r\n" % i)
        status, error = error_of(transport.written)
        assert status == 431 and error["message"] == (
            "the request has more than 6 headers, this gateway's limit")
        assert transport.closed
    run(test)


def plain_431(url: bytes, headers: list[tuple[bytes, bytes]]) -> str | None:
    """What the per-header accounting (a Python call per header) refused, and why."""
    if len(headers) > LIMITS.max_headers:
        return "count"
    size = len(url) + sum(len(name) + len(value) + 4 for name, value in headers)
    return "bytes" if size > LIMITS.max_header_bytes else None


TOKEN = st.text("abcdefghij-", min_size=1, max_size=12).map(str.encode)


@settings(max_examples=150, deadline=None)
@given(url=st.text("abc/", min_size=0, max_size=120).map(lambda u: ("/" + u).encode()),
       headers=st.lists(st.tuples(TOKEN, st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                 max_size=80).map(lambda v: v.strip().encode())),
                        max_size=9),
       space=st.booleans())
def test_a_header_block_in_one_read_is_refused_exactly_as_counted_per_header(
        url: bytes, headers: list[tuple[bytes, bytes]], space: bool) -> None:
    headers = [(b"x-" + name, value) for name, value in headers]
    block = b"GET " + url + b" HTTP/1.1\r\n" + b"".join(
        name + (b": " if space else b":") + value + b"\r\n" for name, value in headers) + b"\r\n"

    async def test(rig: Rig) -> None:
        protocol, transport = rig.connect()
        protocol.data_received(block)
        await settle()
        expected = plain_431(url, headers)
        if expected is None:
            assert transport.written.startswith(b"HTTP/1.1 200"), transport.written
        else:
            status, error = error_of(transport.written)
            assert (status, error["code"]) == (431, "headers_too_large")
            assert ("headers, this" in error["message"]) == (expected == "count")
        transport.close()
        await settle()
    run(test)
