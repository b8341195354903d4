"""Fixtures: the stand-in served by a real uvicorn on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from harbourgate.providers.standin import create_app


@dataclass
class Served:
    """A running stand-in: its root URL and the app (for its request record)."""

    url: str
    app: Any

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def recorded(self) -> list[dict]:
        return httpx.get(self.url + "/_standin/requests").json()

    def clear(self) -> None:
        httpx.delete(self.url + "/_standin/requests").raise_for_status()


@contextlib.contextmanager
def serve(app: Any, port: int = 0) -> Iterator[Served]:
    """Serve any ASGI app with uvicorn in a thread on 127.0.0.1:`port` (0: an ephemeral
    port; a given port may be one a stopped server just left, as a restart reuses it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan="off", loop="asyncio",
                            http="httptools", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stand-in server did not start")
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="session")
def standin() -> Iterator[Served]:
    """One stand-in server for the whole session; tests clear its record when they read it."""
    with serve(create_app()) as served:
        yield served


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], Served]]:
    """Start any ASGI app for one test: `served = serve_app(app)`."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(serve(app))


@pytest.fixture
def refused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
