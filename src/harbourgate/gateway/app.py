"""The data plane: a small raw ASGI app, because it is on every request.

A request goes: identify (API key → caller, from the in-memory snapshot) → read and check
the body → pick the candidate routes → forward with failover → commit the audit record →
answer in the caller's API shape with the X-Harbourgate-* headers. Nothing here touches
the database; the only I/O is the upstream call and the audit queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any, Protocol

import orjson

from harbourgate.gateway import metrics, validate
from harbourgate.gateway.errors import GatewayError
from harbourgate.providers.base import Upstream, UpstreamError
from harbourgate.providers.sse import DONE, encode_event
from harbourgate.runtime import Caller, Runtime

log = logging.getLogger("harbourgate.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"


class AuditSink(Protocol):
    """What the data plane needs of the audit log."""

    def new_id(self) -> str: ...

    async def append(self, record: dict[str, Any], entry_id: str | None = None) -> str: ...


class ClientGone(Exception):
    """The client disconnected before its request was read."""


class _Call:
    """What is known about one request so far; becomes its audit record."""

    __slots__ = ("caller", "endpoint", "failover", "model", "served", "shape", "started",
                 "stream", "upstream_s")

    def __init__(self, shape: str, endpoint: str, caller: Caller) -> None:
        self.shape = shape
        self.endpoint = endpoint
        self.caller = caller
        self.model: str | None = None
        self.served: str | None = None
        self.stream = False
        self.failover: list[dict[str, str]] = []
        self.started = perf_counter()
        self.upstream_s = 0.0

    @property
    def decision(self) -> str:
        if self.served is None:
            return "deny"
        return "reroute" if self.served != self.model else "allow"

    def record(self, status: int, code: str | None = None) -> dict[str, Any]:
        c = self.caller
        return {
            "kind": "request",
            "api": self.shape,
            "endpoint": self.endpoint,
            "participant": c.participant.id,
            "application": c.application.id,
            "key": c.key.id,
            "model_requested": self.model,
            "model_served": self.served,
            "decision": self.decision,
            "status": status,
            "code": code,
            "stream": self.stream,
            "failover": self.failover,
            "upstream_ms": round(self.upstream_s * 1000, 3),
        }

    def headers(self, audit_id: str) -> list[tuple[bytes, bytes]]:
        out = [(b"x-harbourgate-decision", self.decision.encode()),
               (b"x-harbourgate-audit", audit_id.encode())]
        if self.served:
            out.append((b"x-harbourgate-model", self.served.encode()))
            if self.served != self.model and self.model:
                out.append((b"x-harbourgate-rerouted-from", self.model.encode()))
        return out


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


async def _respond(send: Send, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
                   content_type: bytes = JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class Gateway:
    """The OpenAI- and Anthropic-compatible endpoints plus health and metrics."""

    def __init__(self, runtime: Runtime, upstreams: dict[str, Upstream], audit: AuditSink,
                 *, ready: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]] | None = None
                 ) -> None:
        self.runtime = runtime
        self.upstreams = upstreams
        self.audit = audit
        self.max_body = runtime.settings.limits.max_body_bytes
        self._ready = ready
        self._routes: dict[str, tuple[str, Callable[[Scope, Receive, Send], Awaitable[None]]]] = {
            "/v1/chat/completions": ("POST", self._openai_chat),
            "/v1/messages": ("POST", self._anthropic_messages),
            "/v1/embeddings": ("POST", self._embeddings),
            "/v1/models": ("GET", self._models),
            "/healthz": ("GET", self._healthz),
            "/readyz": ("GET", self._readyz),
            "/metrics": ("GET", self._metrics),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        entry = self._routes.get(path.rstrip("/") or path)
        shape = "anthropic" if path.startswith("/v1/messages") else "openai"
        if entry is None:
            err = GatewayError(404, "not_found", f"no endpoint {path}; see /v1/chat/completions,"
                               " /v1/messages, /v1/embeddings, /v1/models")
            return await _respond(send, 404, err.body(shape))
        method, handler = entry
        if scope["method"] != method and not (method == "GET" and scope["method"] == "HEAD"):
            err = GatewayError(405, "method_not_allowed", f"{path} takes {method}")
            return await _respond(send, 405, err.body(shape), [(b"allow", method.encode())])
        with contextlib.suppress(ClientGone):
            await handler(scope, receive, send)

    # -- identification and input -------------------------------------------------------

    def _authenticate(self, headers: dict[bytes, bytes]) -> Caller:
        raw = headers.get(b"authorization")
        key: bytes | None = None
        if raw is not None:
            scheme, _, value = raw.partition(b" ")
            if scheme.lower() == b"bearer":
                key = value.strip()
        if not key:
            key = headers.get(b"x-api-key", b"").strip() or None
        if not key:
            raise GatewayError(401, "invalid_api_key", "no API key: send 'Authorization: "
                               "Bearer KEY' or 'x-api-key: KEY'")
        caller = self.runtime.snapshot.callers.get(hashlib.sha256(key).hexdigest())
        if caller is None:
            raise GatewayError(401, "invalid_api_key", "the API key is unknown or revoked")
        return caller

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise self._too_large(int(length))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, size: int) -> GatewayError:
        return GatewayError(413, "request_too_large", f"the request body ({size} bytes or more)"
                            f" is over this gateway's limit of {self.max_body} bytes")

    def _route_for(self, model: str) -> Any:
        route = self.runtime.snapshot.routes.get(model)
        if route is None or route.status != "active":
            names = ", ".join(sorted(self.runtime.snapshot.routes))
            raise GatewayError(404, "model_not_found",
                               f"no model named {model!r}; this gateway serves: {names}",
                               param="model")
        return route

    # -- the endpoints ------------------------------------------------------------------

    async def _openai_chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._generate(scope, receive, send, "openai", validate.openai_chat)

    async def _anthropic_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._generate(scope, receive, send, "anthropic", validate.anthropic_messages)

    async def _generate(self, scope: Scope, receive: Receive, send: Send, shape: str,
                        check: Callable[[dict[str, Any]], tuple[str, bool]]) -> None:
        headers = _headers(scope)
        try:
            call = _Call(shape, "chat", self._authenticate(headers))
        except GatewayError as err:
            return await self._refuse(send, shape, "chat", err)
        try:
            body = validate.parse_json(await self._read_body(receive, headers))
            call.model, call.stream = check(body)
            candidates = self._candidates(call, headers)
            t0 = perf_counter()
            if call.stream:
                _, events = await self._failover(
                    call, candidates,
                    lambda up, b: up.open_stream(shape, b), body)
            else:
                _, answer = await self._failover(
                    call, candidates, lambda up, b: up.chat(shape, b), body)
            call.upstream_s = perf_counter() - t0
        except GatewayError as err:
            return await self._refuse(send, shape, "chat", err, call)
        audit_id = await self.audit.append(call.record(200))
        self._observe(call, 200)
        out = call.headers(audit_id)
        if not call.stream:
            return await _respond(send, 200, orjson.dumps(answer), out)
        await self._stream(send, call, events, out)

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        try:
            call = _Call("openai", "embeddings", self._authenticate(headers))
        except GatewayError as err:
            return await self._refuse(send, "openai", "embeddings", err)
        try:
            body = validate.parse_json(await self._read_body(receive, headers))
            call.model = validate.openai_embeddings(body)
            t0 = perf_counter()
            _, answer = await self._failover(call, self._candidates(call, headers),
                                             lambda up, b: up.embed(b), body)
            call.upstream_s = perf_counter() - t0
        except GatewayError as err:
            return await self._refuse(send, "openai", "embeddings", err, call)
        audit_id = await self.audit.append(call.record(200))
        self._observe(call, 200)
        await _respond(send, 200, orjson.dumps(answer), call.headers(audit_id))

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        shape = "anthropic" if b"anthropic-version" in headers else "openai"
        try:
            self._authenticate(headers)
        except GatewayError as err:
            return await self._refuse(send, shape, "models", err)
        routes = [r for r in self.runtime.snapshot.routes.values() if r.status == "active"]
        if shape == "anthropic":
            data = [{"type": "model", "id": r.name, "display_name": r.name,
                     "created_at": "2026-01-01T00:00:00Z"} for r in routes]
            body = {"data": data, "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None}
        else:
            body = {"object": "list", "data": [
                {"id": r.name, "object": "model", "created": 0, "owned_by": r.origin,
                 "harbourgate": {"class": r.capability_class, "origin": r.origin,
                                 "hosting": r.hosting}} for r in routes]}
        await _respond(send, 200, orjson.dumps(body))

    # -- routing and failover -----------------------------------------------------------

    def _candidates(self, call: _Call, headers: dict[bytes, bytes]) -> list[Any]:
        assert call.model is not None
        route = self._route_for(call.model)
        mode = headers.get(b"x-harbourgate-fallback", b"auto").strip().lower()
        if mode not in (b"auto", b"none"):
            raise GatewayError(400, "invalid_request", "X-Harbourgate-Fallback must be 'auto' "
                               f"or 'none', not {mode.decode(errors='replace')!r}",
                               param="X-Harbourgate-Fallback")
        return self.runtime.snapshot.candidates(route, call.caller.application,
                                                fallback=mode == b"auto")

    async def _failover(self, call: _Call, candidates: list[Any],
                        attempt: Callable[[Upstream, dict[str, Any]], Awaitable[Any]],
                        body: dict[str, Any]) -> tuple[Any, Any]:
        """Try each candidate in order; the first that answers serves the request."""
        failures: list[tuple[str, UpstreamError]] = []
        for route in candidates:
            upstream = self.upstreams[route.name]
            try:
                result = await attempt(upstream, {**body, "model": route.name})
            except UpstreamError as exc:
                metrics.UPSTREAM_ERRORS.labels(route.name, exc.code).inc()
                call.failover.append({"model": route.name, "code": exc.code})
                if not exc.retryable:
                    raise GatewayError(exc.status, exc.code, str(exc)) from None
                failures.append((route.name, exc))
                continue
            call.served = route.name
            return route, result
        timeouts = all(exc.code == "upstream_timeout" for _, exc in failures)
        detail = "; ".join(f"{name}: {exc}" for name, exc in failures)
        raise GatewayError(504 if timeouts else 502,
                           "upstream_timeout" if timeouts else "upstream_error",
                           f"every permitted upstream failed ({detail})")

    # -- answering ----------------------------------------------------------------------

    async def _stream(self, send: Send, call: _Call, events: Any,
                      headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"), *headers]})
        try:
            async for event in events:
                await send({"type": "http.response.body", "body": encode_event(event),
                            "more_body": True})
            if call.shape == "openai":
                await send({"type": "http.response.body", "body": DONE, "more_body": True})
        except UpstreamError as exc:
            metrics.UPSTREAM_ERRORS.labels(call.served or "", exc.code).inc()
            err = GatewayError(502, "upstream_error",
                               f"the upstream {call.served} failed mid-stream: {exc}")
            await send({"type": "http.response.body", "body": err.sse(call.shape),
                        "more_body": True})
            record = call.record(502, "upstream_error")
            record["kind"] = "stream_interrupted"
            await self.audit.append(record)
        except OSError:  # the client went away; stop reading the upstream
            pass
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _refuse(self, send: Send, shape: str, endpoint: str, err: GatewayError,
                      call: _Call | None = None) -> None:
        """Answer with an error; refusals of an identified caller are audited first."""
        headers = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
        if call is not None:
            audit_id = await self.audit.append(call.record(err.status, err.code))
            err.extra.setdefault("audit_id", audit_id)
            headers += call.headers(audit_id)
            self._observe(call, err.status, err.code)
        else:
            metrics.REQUESTS.labels(endpoint, "deny", "", err.code).inc()
        await _respond(send, err.status, err.body(shape), headers)

    def _observe(self, call: _Call, status: int, code: str | None = None) -> None:
        elapsed = perf_counter() - call.started
        metrics.REQUESTS.labels(call.endpoint, call.decision, call.served or call.model or "",
                                code or "ok").inc()
        metrics.LATENCY.labels(call.endpoint).observe(elapsed)
        metrics.OVERHEAD.observe(max(elapsed - call.upstream_s, 0.0))

    # -- operations ---------------------------------------------------------------------

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _respond(send, 200, b'{"status":"ok"}')

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        ok, detail = (True, {}) if self._ready is None else await self._ready()
        detail = {"status": "ready" if ok else "not ready",
                  "state_version": self.runtime.snapshot.version, **detail}
        await _respond(send, 200 if ok else 503, orjson.dumps(detail))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.STATE_VERSION.set(self.runtime.snapshot.version)
        body, content_type = await asyncio.to_thread(metrics.render)
        await _respond(send, 200, body, content_type=content_type.encode())

