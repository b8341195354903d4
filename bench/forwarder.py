"""The yardstick of issue 17: a bare forwarder, nothing else.

    python bench/forwarder.py --port 8080 [--workers 4] [--client aiohttp|wire]
        UPSTREAM_BASE [UPSTREAM_BASE ...]

POST /v1/<path> is sent on to the next upstream (round robin) with the same body, as JSON,
and its status, content type and body come back, a stream's chunks as they arrive; any
other request gets an empty model list (readiness). No key, policy, scan or audit: what
Python and these libraries cost a proxy at the least, so bench/run can set Harbourgate's
cost beside that floor and bench/cores.py how far its workers scale against it.

The server is uvicorn with httptools on uvloop, as `harbourgate serve` runs. The client is
aiohttp (the issue's yardstick), or with `--client wire` Harbourgate's own HTTP client
(`harbourgate.providers.wire`): then the forwarder is Harbourgate's transport alone, and
what Harbourgate costs above it is the governance on the request path.
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import uvicorn

from harbourgate.providers import wire

UPSTREAMS = "BENCH_FORWARDER_UPSTREAMS"
CLIENT = "BENCH_FORWARDER_CLIENT"
JSON = {"content-type": "application/json"}


class Forwarder:
    """The ASGI app: one client per worker, opened at startup."""

    def __init__(self) -> None:
        self.bases: Iterator[str] = iter(())
        self.session: aiohttp.ClientSession | None = None
        self.wire: wire.Client | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # startup
            self.bases = itertools.cycle(os.environ[UPSTREAMS].split())
            if os.environ.get(CLIENT) == "wire":
                self.wire = wire.Client()
            else:
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            if self.session is not None:
                await self.session.close()
            if self.wire is not None:
                await self.wire.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] != "POST":
            await answer(send, 200, b"application/json", b'{"object":"list","data":[]}')
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        url = next(self.bases) + scope["path"].removeprefix("/v1")
        if self.wire is not None:
            await self._wire(url, body, send)
            return
        assert self.session is not None
        async with self.session.post(url, data=body, headers=JSON) as r:
            kind = r.headers.get("content-type", "").encode()
            if kind.startswith(b"text/event-stream"):
                await relay(send, r.status, kind, r.content.iter_any())
            else:
                await answer(send, r.status, kind, await r.read())

    async def _wire(self, url: str, body: bytes, send: Any) -> None:
        assert self.wire is not None
        response = await self.wire.request("POST", url, JSON, body)
        try:
            kind = response.headers.get("content-type", "").encode()
            if kind.startswith(b"text/event-stream"):
                await relay(send, response.status, kind, response.chunks())
            else:
                await answer(send, response.status, kind,
                             b"".join([chunk async for chunk in response.chunks()]))
        finally:
            response.release()


async def relay(send: Any, status: int, kind: bytes, chunks: AsyncIterator[bytes]) -> None:
    """A stream passed on chunk by chunk, as each arrives."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind)]})
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def answer(send: Any, status: int, kind: bytes, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


app = Forwarder()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--client", choices=("aiohttp", "wire"), default="aiohttp")
    parser.add_argument("upstreams", nargs="+")
    args = parser.parse_args()
    os.environ[UPSTREAMS] = " ".join(args.upstreams)
    os.environ[CLIENT] = args.client
    uvicorn.run("forwarder:app", host="127.0.0.1", port=args.port, workers=args.workers,
                loop="uvloop", http="httptools", access_log=False, log_level="warning",
                app_dir=os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    main()
