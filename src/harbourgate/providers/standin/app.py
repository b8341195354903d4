"""The stand-in provider as an HTTP server: the real OpenAI and Anthropic wire formats.

A raw ASGI app (no framework, orjson) because benchmarks measure the gateway through it:
whatever time it takes is charged to the gateway's figures.

Endpoints: `POST /v1/chat/completions`, `POST /v1/responses` (stored responses can be
continued with `previous_response_id`), `POST /v1/embeddings`, `GET /v1/models`
(Anthropic's list shape when the request carries `anthropic-version`), `POST /v1/messages`,
`POST /v1/messages/count_tokens`, `POST /v1/responses/input_tokens`, and for tests
`GET /_standin/requests` (the last 1000 requests received, oldest first:
method, path, whether an auth header was present, its anthropic-/openai- headers and
traceparent, and the JSON body) and
`DELETE /_standin/requests` (forget them).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from harbourgate.providers.base import Shape, StreamEvent
from harbourgate.providers.sse import DONE, encode_event
from harbourgate.providers.standin import engine

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RECORD_LIMIT = 1000
CUT_AFTER = 3

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_GARBAGE = b"<html><body>502 Bad Gateway (stand-in garbage)</body></html>"


class StandInApp:
    """The ASGI callable; `requests` is the record of what it received."""

    def __init__(self, *, latency_ms: float = 0, fail_rate: float = 0, seed: int = 0) -> None:
        if not 0 <= fail_rate <= 1:
            raise ValueError(f"fail_rate must be between 0 and 1, not {fail_rate}")
        if latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, not {latency_ms}")
        self.latency_s = latency_ms / 1000
        self.fail_rate = fail_rate
        self.requests: deque[dict[str, Any]] = deque(maxlen=RECORD_LIMIT)
        self.history: OrderedDict[str, str] = OrderedDict()  # stored Responses answers
        self._rng = random.Random(seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        route = _ROUTES.get(path)
        if path == "/v1/models":
            if method == "GET":
                await self._models(scope, send)
            else:
                await _json(send, 405, engine.error_body(_shape_of(scope), 405,
                                                         "Use GET for /v1/models."))
            return
        if path == "/_standin/requests":
            await self._recorded(method, send)
            return
        if route is None:
            await _json(send, 404, engine.error_body(
                _shape_of(scope), 404, f"Unknown request URL: {method} {path}."))
            return
        shape, action = route
        if method != "POST":
            await _json(send, 405, engine.error_body(shape, 405, f"Use POST for {path}."))
            return
        raw = await _read_body(receive)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.requests.append({"method": method, "path": path, "auth": _has_auth(scope),
                              "headers": _provider_headers(scope),
                              "body": body if body is not None else raw.decode("utf-8", "replace")})
        if body is None:
            await _json(send, 400, engine.error_body(
                shape, 400, "We could not parse the JSON body of your request."))
            return
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.fail_rate and self._rng.random() < self.fail_rate:
            await _json(send, 500, engine.error_body(
                shape, 500, "The stand-in failed this request on purpose (fail_rate)."))
            return
        model = body.get("model") if isinstance(body, dict) else None
        kind = engine.behaviour(model) if isinstance(model, str) else None
        if kind == "hang":
            await _until_disconnect(receive)
            return
        if kind == "fail":
            await _json(send, 500, engine.error_body(shape, 500, f"{model} always fails."))
            return
        refused = engine.refusal_of(kind, str(model))
        if refused is not None:
            status, message = refused
            await _send(send, status, [*_JSON, (b"retry-after", engine.RETRY_AFTER.encode())],
                        orjson.dumps(engine.error_body(shape, status, message)))
            return
        stream = isinstance(body, dict) and body.get("stream") is True
        if kind == "garbage":
            await _garbage(send, stream)
            return
        try:
            if action == "count":
                count = engine.count_tokens(shape, body, self.history)
                answer: dict[str, Any] = {"input_tokens": count}
                if shape == "responses":
                    answer = {"object": "response.input_tokens", **answer}
                await _send(send, 200, _JSON, orjson.dumps(answer))
            elif action == "embed":
                await self._embed(body, send)
            else:
                await self._chat(shape, body, send, stream=stream, cut=kind == "cut")
        except engine.StandInError as exc:
            await _json(send, exc.status, engine.error_body(shape, exc.status, exc.message,
                                                            exc.param))

    async def _chat(self, shape: Shape, body: Any, send: Send, *, stream: bool,
                    cut: bool) -> None:
        model = body.get("model") if isinstance(body, dict) else ""
        answer = engine.reply(shape, body, model, self.history)
        created = int(time.time())
        if not stream:
            payload = orjson.dumps(engine.render(shape, answer, model, created))
            if cut:
                await _start(send, 200, _JSON, len(payload))
                await send({"type": "http.response.body", "body": payload[:len(payload) // 2],
                            "more_body": True})
                return  # uvicorn closes the connection: the body is cut short
            await _send(send, 200, _JSON, payload)
            return
        events = engine.render_stream(shape, answer, model, created,
                                      include_usage=engine.include_usage(body))
        await _stream(send, shape, events, cut=cut)

    async def _embed(self, body: Any, send: Send) -> None:
        model = body.get("model") if isinstance(body, dict) else None
        await _send(send, 200, _JSON, orjson.dumps(engine.embed(body, model)))

    async def _models(self, scope: Scope, send: Send) -> None:
        await _send(send, 200, _JSON, orjson.dumps(engine.models(_shape_of(scope))))

    async def _recorded(self, method: str, send: Send) -> None:
        if method == "GET":
            await _send(send, 200, _JSON, orjson.dumps(list(self.requests)))
        elif method == "DELETE":
            self.requests.clear()
            await _send(send, 200, _JSON, b'{"cleared":true}')
        else:
            await _json(send, 405, engine.error_body("openai", 405, "Use GET or DELETE."))


_ROUTES: dict[str, tuple[Shape, str]] = {
    "/v1/chat/completions": ("openai", "chat"),
    "/v1/messages": ("anthropic", "chat"),
    "/v1/responses": ("responses", "chat"),
    "/v1/embeddings": ("openai", "embed"),
    "/v1/messages/count_tokens": ("anthropic", "count"),
    "/v1/responses/input_tokens": ("responses", "count"),
}
"""POST endpoints: the API shape each speaks and what it does."""


def create_app(*, latency_ms: float = 0, fail_rate: float = 0, seed: int = 0) -> StandInApp:
    """The stand-in provider as an ASGI app (`latency_ms` before each answer, `fail_rate`
    of requests answered 500, the random draws seeded by `seed`)."""
    return StandInApp(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)


def run(host: str, port: int, *, latency_ms: float = 0, fail_rate: float = 0,
        seed: int = 0) -> None:
    """Serve the stand-in with uvicorn (uvloop, httptools, no access log) until stopped."""
    import uvicorn

    app = create_app(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
    uvicorn.run(app, host=host, port=port,
                loop="uvloop", http="httptools", access_log=False, log_level="warning",
                lifespan="on")


# --------------------------------------------------------------------------- ASGI plumbing


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _until_disconnect(receive: Receive) -> None:
    """Accept the request and never answer: wait until the client gives up."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                 length: int | None = None) -> None:
    if length is not None:
        headers = [*headers, (b"content-length", str(length).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                payload: bytes) -> None:
    await _start(send, status, headers, len(payload))
    await send({"type": "http.response.body", "body": payload})


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    await _send(send, status, _JSON, orjson.dumps(body))


async def _stream(send: Send, shape: Shape, events: list[StreamEvent], *, cut: bool) -> None:
    await _start(send, 200, _SSE)
    for i, event in enumerate(events):
        if cut and i == CUT_AFTER:
            return  # uvicorn closes the connection without the terminating chunk
        await send({"type": "http.response.body", "body": encode_event(event),
                    "more_body": True})
    await send({"type": "http.response.body", "body": DONE if shape == "openai" else b""})


async def _garbage(send: Send, stream: bool) -> None:
    if not stream:
        await _send(send, 200, _JSON, _GARBAGE)
        return
    await _start(send, 200, _SSE)
    await send({"type": "http.response.body", "body": b"data: " + _GARBAGE + b"\n\n",
                "more_body": True})
    await send({"type": "http.response.body", "body": DONE})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _has_auth(scope: Scope) -> bool:
    return any(name in (b"authorization", b"x-api-key") for name, _ in scope["headers"])


def _provider_headers(scope: Scope) -> dict[str, str]:
    """The request's `anthropic-*`, `openai-*` and `traceparent` headers, for tests to see
    what arrived."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
            if name.startswith((b"anthropic-", b"openai-")) or name == b"traceparent"}


def _shape_of(scope: Scope) -> Shape:
    """Anthropic clients send `anthropic-version`; everyone else is answered OpenAI-style."""
    if scope["path"].startswith("/v1/messages"):
        return "anthropic"
    if any(name == b"anthropic-version" for name, _ in scope["headers"]):
        return "anthropic"
    return "openai"
