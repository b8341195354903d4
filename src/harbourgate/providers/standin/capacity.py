"""The stand-in as one server of a local GPU pool: a concurrency limit, vLLM's operational
endpoints, and the ways such a server goes wrong.

`ServerApp` wraps the stand-in's ASGI app (`StandInApp`) with what a vLLM / SGLang /
llama.cpp server adds around the model, so that pools can be tested against real
processes:

- `GET /health`: 200 with an empty body while the server is up (vLLM's answer);
- `GET /metrics`: Prometheus text with vLLM's queue gauges
  `vllm:num_requests_running` and `vllm:num_requests_waiting` (this server rejects
  instead of queueing, so waiting is always 0), plus the count of requests it refused;
- `max_concurrency`: generation requests beyond N at once are answered 429 with
  `Retry-After: 1`, as an overloaded inference server does;
- `model_id`: the server serves that one model; a request naming another is answered
  404 `The model ... does not exist.` as vLLM answers it (a pool member started with the
  wrong weights).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

from harbourgate.providers.standin import engine
from harbourgate.providers.standin.app import (
    Message,
    Receive,
    Scope,
    Send,
    StandInApp,
    create_app,
)

_GENERATE = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/embeddings"})
_JSON = [(b"content-type", b"application/json")]


class ServerApp:
    """The stand-in with a pool server's limits and endpoints around it."""

    def __init__(self, app: StandInApp, *, max_concurrency: int | None = None,
                 model_id: str | None = None) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.app = app
        self.max_concurrency = max_concurrency
        self.model_id = model_id
        self.running = 0
        self.served = 0
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/health" and method == "GET":
            await _send(send, 200, [], b"")
            return
        if path == "/metrics" and method == "GET":
            await _send(send, 200, [(b"content-type", b"text/plain; version=0.0.4")],
                        self._metrics())
            return
        if path == "/v1/models" and method == "GET" and self.model_id:
            await _send(send, 200, _JSON, orjson.dumps({"object": "list", "data": [
                {"id": self.model_id, "object": "model", "created": 0,
                 "owned_by": "harbourgate-stand-in"}]}))
            return
        if path not in _GENERATE or method != "POST":
            await self.app(scope, receive, send)
            return
        if self.max_concurrency is not None and self.running >= self.max_concurrency:
            self.refused += 1
            await _send(send, 429, [*_JSON, (b"retry-after", b"1")], orjson.dumps(
                engine.error_body("openai", 429, f"The server is at its max concurrency "
                                  f"({self.max_concurrency} requests); retry later.")))
            return
        self.running += 1
        try:
            if self.model_id is not None:
                raw = await _read(receive)
                asked = _model(raw)
                if asked is not None and asked != self.model_id:
                    await _send(send, 404, _JSON, orjson.dumps({"error": {
                        "message": f"The model `{asked}` does not exist.",
                        "type": "NotFoundError", "param": None, "code": 404}}))
                    return
                receive = _replay(raw, receive)
            await self.app(scope, receive, send)
            self.served += 1
        finally:
            self.running -= 1

    def _metrics(self) -> bytes:
        model = (self.model_id or "stand-in").replace('"', "")
        return (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="{model}"}} {float(self.running)}\n'
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="{model}"}} 0.0\n'
            "# HELP standin_requests_refused_total Requests refused at max concurrency.\n"
            "# TYPE standin_requests_refused_total counter\n"
            f"standin_requests_refused_total {float(self.refused)}\n"
        ).encode()


def create_server(*, latency_ms: float = 0, fail_rate: float = 0, seed: int = 0,
                  max_concurrency: int | None = None,
                  model_id: str | None = None) -> ServerApp:
    """The stand-in as a pool server (see the module's docstring)."""
    return ServerApp(create_app(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed),
                     max_concurrency=max_concurrency, model_id=model_id)


def run(host: str, port: int, *, latency_ms: float = 0, fail_rate: float = 0, seed: int = 0,
        max_concurrency: int | None = None, model_id: str | None = None) -> None:
    """Serve the stand-in as a pool server with uvicorn until stopped."""
    import uvicorn

    app = create_server(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed,
                        max_concurrency=max_concurrency, model_id=model_id)
    uvicorn.run(app, host=host, port=port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning", lifespan="on")


async def _read(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over once, then the real one."""
    pending: list[Message] = [{"type": "http.request", "body": raw, "more_body": False}]

    async def again() -> Message:
        return pending.pop() if pending else await receive()

    return again


def _model(raw: bytes) -> str | None:
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                body: bytes) -> None:
    start: MutableMapping[str, Any] = {
        "type": "http.response.start", "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    await send(start)
    await send({"type": "http.response.body", "body": body})
