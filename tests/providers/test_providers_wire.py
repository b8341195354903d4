"""The upstream HTTP client against scripted servers: reuse, bodies, and every failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.providers import wire

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
      b'{"ok": true}')


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (Content-Length bodies only, as the client sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def scripted(handler: Handler, scenario: Callable[[str, wire.Client, dict[str, Any]],
                                                  Awaitable[Any]]) -> Any:
    """Run `scenario(url, client, seen)` against a server answering with `handler`;
    `seen["connections"]` counts the connections it accepted."""
    seen: dict[str, Any] = {"connections": 0, "requests": []}

    async def main() -> Any:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen["connections"] += 1
            try:
                await handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = wire.Client()
        try:
            return await scenario(f"http://127.0.0.1:{port}/v1/chat?x=1", client, seen)
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    return asyncio.run(asyncio.wait_for(main(), 60))


def keep_answering(answer: bytes, seen_requests: list[bytes] | None = None) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            if seen_requests is not None:
                seen_requests.append(head + body)
            writer.write(answer)
            await writer.drain()
    return handler


async def body_of(response: wire.Response, idle: float | None = None) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.chunks(idle)])
    finally:
        response.release()


def test_a_request_goes_out_whole_and_keep_alive_connections_are_reused() -> None:
    requests: list[bytes] = []

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> list[bytes]:
        bodies = []
        for i in range(3):
            response = await client.request("POST", url, {"Authorization": "Bearer k"},
                                            b'{"n": %d}' % i)
            assert (response.status, response.headers["content-type"]) == (
                200, "application/json")
            bodies.append(await body_of(response))
        assert seen["connections"] == 1
        return bodies

    assert scripted(keep_answering(OK, requests), scenario) == [b'{"ok": true}'] * 3
    head = requests[0].split(b"\r\n")
    assert head[0] == b"POST /v1/chat?x=1 HTTP/1.1"
    assert b"Accept-Encoding: identity" in head and b"Authorization: Bearer k" in head
    assert b"Content-Length: 8" in head and requests[0].endswith(b'{"n": 0}')


def test_a_chunked_body_arrives_whole() -> None:
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> bytes:
        first = await body_of(await client.request("POST", url, {}, b"{}"))
        assert await body_of(await client.request("POST", url, {}, b"{}")) == first
        assert seen["connections"] == 1
        return first

    assert scripted(keep_answering(answer), scenario) == b"hello world"


def test_a_body_that_ends_with_the_connection_is_whole_and_the_connection_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        await writer.drain()

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> list[bytes]:
        out = [await body_of(await client.request("POST", url, {}, b"{}")) for _ in range(2)]
        assert seen["connections"] == 2
        return out

    assert scripted(handler, scenario) == [b"until the end"] * 2


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()  # then close, as a server's keep-alive timeout does

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> int:
        await body_of(await client.request("POST", url, {}, b"{}"))
        await asyncio.sleep(0.2)  # the close reaches the client
        await body_of(await client.request("POST", url, {}, b"{}"))
        return int(seen["connections"])

    assert scripted(handler, scenario) == 2


def test_an_answer_left_unread_closes_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK[:-5])
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.write(OK[-5:])
            await writer.drain()

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> int:
        response = await client.request("POST", url, {}, b"{}")
        response.release()  # the body is still on its way: its rest must not be read as
        assert await body_of(await client.request("POST", url, {}, b"{}")) == b'{"ok": true}'
        return int(seen["connections"])  # the next answer, so the connection is closed

    assert scripted(handler, scenario) == 2


@pytest.mark.parametrize(("answer", "error", "message"), [
    (b"", wire.ServerDisconnected, "the upstream closed the connection"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"cut", wire.PayloadError,
     "the upstream's answer was cut off"),
    (b"SMTP ready\r\n\r\n", wire.ProtocolError, "the upstream's answer is not valid HTTP/1.1"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n\x1f\x8b",
     wire.ProtocolError, "the upstream answered in content coding 'gzip', though only "
                         "'identity' was accepted"),
])
def test_what_a_broken_upstream_does_is_named(answer: bytes, error: type[Exception],
                                              message: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> None:
        await body_of(await client.request("POST", url, {}, b"{}"))

    with pytest.raises(error) as info:
        scripted(handler, scenario)
    assert str(info.value).startswith(message)


def test_a_refused_connection_says_so(refused_port: int) -> None:
    async def scenario() -> None:
        await wire.Client().request("POST", f"http://127.0.0.1:{refused_port}/", {}, b"")

    with pytest.raises(wire.ConnectError) as info:
        asyncio.run(scenario())
    assert info.value.reason == "connection refused"


def test_silence_mid_body_is_a_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(30)

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> list[bytes]:
        response = await client.request("POST", url, {}, b"{}")
        got: list[bytes] = []
        with pytest.raises(TimeoutError):
            async for chunk in response.chunks(0.3):
                got.append(chunk)
        response.release()
        return got

    assert scripted(handler, scenario) == [b"abc"]


def test_a_deadline_bounds_the_wait_for_the_head_and_the_connection_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if len(seen_requests) == 0:
            seen_requests.append(1)
            await asyncio.sleep(30)  # the first request never gets its head
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    seen_requests: list[int] = []

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> tuple[bytes, int]:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await client.request("POST", url, {}, b"{}", deadline=loop.time() + 0.3)
        response = await client.request("POST", url, {}, b"{}", deadline=loop.time() + 30)
        body = b"".join([chunk async for chunk in response.chunks(deadline=loop.time() + 30)])
        response.release()
        return body, int(seen["connections"])

    assert scripted(handler, scenario) == (b"ok", 2)  # the timed-out connection was closed


def test_a_deadline_bounds_the_whole_body_however_often_bytes_trickle_in() -> None:
    """An idle timeout alone would never fire on a body sent a byte at a time; the
    deadline (the route's timeout for a plain answer) does."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.02)

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> int:
        loop = asyncio.get_running_loop()
        response = await client.request("POST", url, {}, b"{}", deadline=loop.time() + 30)
        got = 0
        with pytest.raises(TimeoutError):
            async for chunk in response.chunks(5.0, deadline=loop.time() + 0.3):
                got += len(chunk)
        response.release()
        return got

    assert 0 < scripted(handler, scenario) < 1000


def test_a_line_break_in_a_header_is_refused_before_anything_is_sent() -> None:
    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> int:
        with pytest.raises(ValueError, match="header 'x-a': a line break is not allowed"):
            await client.request("POST", url, {"x-a": "1\r\nX-Injected: yes"}, b"{}")
        return int(seen["connections"])

    assert scripted(keep_answering(OK), scenario) == 0


def test_a_large_answer_is_read_with_bounded_buffering() -> None:
    size = 8 * wire.HIGH_WATER

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
        await writer.drain()

    async def scenario(url: str, client: wire.Client, seen: dict[str, Any]) -> int:
        response = await client.request("POST", url, {}, b"{}")
        conn = response._conn
        assert conn is not None
        await asyncio.sleep(0.5)  # the server writes everything it can; we read nothing
        most = conn.buffered
        return most, len(await body_of(response))  # type: ignore[return-value]

    most, total = scripted(handler, scenario)
    assert total == size
    assert most < size  # reading paused well before the whole answer was buffered


def test_urls_are_split_into_origin_and_target() -> None:
    origin, path = wire.target("https://api.example.com/v1/messages")
    assert (origin.scheme, origin.host, origin.port, origin.host_header, path) == (
        "https", "api.example.com", 443, "api.example.com", "/v1/messages")
    origin, path = wire.target("http://[::1]:8080")
    assert (origin.host, origin.port, origin.host_header, path) == ("::1", 8080, "[::1]:8080",
                                                                    "/")
    with pytest.raises(ValueError, match="not an http"):
        wire.target("ftp://example.com/")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 400), max_size=40),
       st.booleans())
def test_any_split_of_an_answer_reads_the_same_body(body: bytes, cuts: list[int],
                                                    chunked: bool) -> None:
    if chunked:
        raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
            b"%x\r\n%s\r\n" % (len(body[i:i + 700]), body[i:i + 700])
            for i in range(0, len(body), 700)) + b"0\r\n\r\n"
    else:
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    conn = wire._Connection(wire.target("http://h/")[0])
    pos = 0
    for cut in cuts:
        conn.data_received(raw[pos:pos + cut])
        pos += cut
    conn.data_received(raw[pos:])
    assert conn.complete and conn.error is None and conn.status == 200
    assert (conn.take() if conn.chunks else b"") == body
