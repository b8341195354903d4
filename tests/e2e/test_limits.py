"""Bounds an unauthenticated client meets before any parsing or authentication
(`limits:`): header bytes and count, read timeouts, the connection cap, the admin body.

Each test talks raw HTTP over a socket, checks the exact error a client sees, and checks
that the worker kept serving everyone else meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Gateway, Process, gateway_config, start_gateway

pytestmark = pytest.mark.e2e

LIMITS = {"max_body_bytes": 100_000, "max_header_bytes": 8_192, "max_headers": 40,
          "read_timeout_s": 3, "max_connections": 12}
WAIT = 60.0  # generous: how long a socket read may wait for the gateway's answer


@pytest.fixture(scope="module")
def bounded(standin: Process, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("limits")
    config = gateway_config(standin.url, workdir / "data", limits=LIMITS)
    process = start_gateway(config, workdir)
    gw = Gateway(process, Path(process.extra["config"]), {})
    yield gw
    process.stop()


def connect(gw: Gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.process.port), timeout=WAIT)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response that ends with the connection closing (as every refusal does)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, {k.lower(): v for k, v in headers.items()}, body


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes; a server that refuses early may close first."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def still_serving(gw: Gateway) -> None:
    r = httpx.get(gw.url + "/healthz", timeout=WAIT)
    assert r.status_code == 200, r.text


def error_of(body: bytes) -> dict[str, str]:
    return json.loads(body)["error"]


def test_a_header_block_over_the_limit_is_431(bounded: Gateway) -> None:
    with connect(bounded) as sock:
        send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000
                 + b"\r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 431
    assert headers["content-type"] == "application/json"
    error = error_of(body)
    assert error["code"] == "headers_too_large"
    assert "8192 bytes" in error["message"]
    still_serving(bounded)


def test_an_endless_header_is_cut_off_without_reading_it_all(bounded: Gateway) -> None:
    """16 MB of one header value, sent in pieces: refused after the first few kilobytes."""
    with connect(bounded) as sock:
        send_all(sock, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            for _ in range(256):
                sock.sendall(b"b" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body = read_response(sock)
    assert status in (431, 0)  # 0: the reset raced the answer; either way it was cut off
    if status:
        assert error_of(body)["code"] == "headers_too_large"
    assert sent < 16 * 1024 * 1024
    still_serving(bounded)


def test_too_many_headers_is_431(bounded: Gateway) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    with connect(bounded) as sock:
        send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        status, _, body = read_response(sock)
    assert status == 431
    assert "more than 40 headers" in error_of(body)["message"]
    still_serving(bounded)


def test_headers_that_never_finish_are_408(bounded: Gateway) -> None:
    with connect(bounded) as sock:
        send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line, ever
        still_serving(bounded)  # others are served while this client dawdles
        status, _, body = read_response(sock)
    assert status == 408
    error = error_of(body)
    assert error["code"] == "request_timeout"
    assert "headers did not arrive within 3 s" in error["message"]


def test_a_body_that_never_finishes_is_408(bounded: Gateway) -> None:
    with connect(bounded) as sock:
        send_all(sock, b"POST /admin/v1/participants HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"na")
        still_serving(bounded)
        status, _, body = read_response(sock)
    assert status == 408
    assert "body did not arrive within 3 s" in error_of(body)["message"]


def test_a_silent_connection_is_closed(bounded: Gateway) -> None:
    with connect(bounded) as sock:
        assert sock.recv(1) == b""  # closed by the gateway, nothing written


def test_connections_over_the_cap_get_a_clear_503(bounded: Gateway) -> None:
    idle = [connect(bounded) for _ in range(LIMITS["max_connections"])]
    try:
        with connect(bounded) as extra:
            status, headers, body = read_response(extra)
        assert status == 503
        assert headers["retry-after"] == "1"
        error = error_of(body)
        assert error["code"] == "server_busy"
        assert "12 open connections" in error["message"]
    finally:
        for sock in idle:
            sock.close()
    for _ in range(100):  # the idle sockets' close reaches the server soon after
        try:
            still_serving(bounded)
            break
        except (AssertionError, httpx.HTTPError):
            continue
    still_serving(bounded)


def test_admin_body_over_the_limit_is_413_before_authentication(bounded: Gateway) -> None:
    """No token, a declared 10 MB body: refused from the header alone, nothing read."""
    with connect(bounded) as sock:
        send_all(sock, b"POST /admin/v1/participants HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 413
    detail = json.loads(body)
    assert detail["code"] == "request_too_large"
    assert "limit of 100000 bytes" in detail["detail"]
    still_serving(bounded)


def test_admin_chunked_body_over_the_limit_is_413(bounded: Gateway) -> None:
    chunk = b"a" * 50_000
    with connect(bounded) as sock:
        send_all(sock, b"POST /admin/v1/participants HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            send_all(sock, b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        status, _, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["code"] == "request_too_large"


def test_admin_body_within_the_limit_still_needs_a_token(bounded: Gateway) -> None:
    r = httpx.post(bounded.url + "/admin/v1/participants", json={"name": "x"}, timeout=WAIT)
    assert r.status_code == 401


def test_bad_limits_exit_2_naming_the_key(tmp_path: Path) -> None:
    from harbourgate.config import ConfigError, load

    path = tmp_path / "c.yaml"
    path.write_text("limits: {read_timeout_s: 0}\n")
    with pytest.raises(ConfigError, match=r"limits\.read_timeout_s: must be a positive number"):
        load(path, environ={})
