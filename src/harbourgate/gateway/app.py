"""The data plane: a small raw ASGI app, because it is on every request.

A request goes: identify (API key → caller, from the in-memory snapshot) → read and check
the body → pick the candidate routes → forward with failover → commit the audit record →
answer in the caller's API shape with the X-Harbourgate-* headers. Nothing here touches
the database; the only I/O is the upstream call and the audit queue.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Protocol
from urllib.parse import quote

import orjson

from harbourgate import policy
from harbourgate.config import RouteConfig
from harbourgate.enforce import Plan, plan
from harbourgate.gateway import metrics, validate
from harbourgate.gateway.content import map_strings, request_texts, with_texts
from harbourgate.gateway.errors import GatewayError
from harbourgate.identity.attestation import AttestationError, AttestationVerifier, EndUser
from harbourgate.privacy import Profile, Pseudonymiser, PseudonymSession, Scanner
from harbourgate.providers.base import StreamEvent, Upstream, UpstreamError
from harbourgate.providers.sse import DONE, delta_text, encode_event, set_delta_text
from harbourgate.runtime import Caller, Runtime, Snapshot

log = logging.getLogger("harbourgate.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"


class AuditSink(Protocol):
    """What the data plane needs of the audit log."""

    async def append(self, record: dict[str, Any], entry_id: str | None = None) -> str: ...


class ClientGone(Exception):
    """The client disconnected before its request was read."""


def _sub_digest(sub: str | None) -> str | None:
    return None if sub is None else "sha256:" + hashlib.sha256(sub.encode()).hexdigest()[:16]


def _end_user_facts(user: EndUser) -> policy.EndUserFacts:
    if not user.verified:
        return policy.UNKNOWN_END_USER
    return policy.EndUserFacts(verified=True, nationality=user.nationality,
                               residence=user.residence,
                               verification_level=user.verification_level,
                               issuer=user.issuer, sub=user.sub)


class _Call:
    """What is known about one request so far; becomes its audit record."""

    __slots__ = ("caller", "ctx", "decision", "endpoint", "failover", "model", "plan",
                 "profile", "served", "session", "shape", "snapshot", "started", "stream",
                 "upstream_s")

    def __init__(self, shape: str, endpoint: str, caller: Caller, snapshot: Snapshot) -> None:
        self.shape = shape
        self.endpoint = endpoint
        self.caller = caller
        self.snapshot = snapshot
        self.model: str | None = None
        self.served: str | None = None
        self.stream = False
        self.failover: list[dict[str, str]] = []
        self.started = perf_counter()
        self.upstream_s = 0.0
        self.ctx: policy.Context | None = None
        self.plan: Plan | None = None
        self.decision: policy.Decision | None = None  # of the served model, or the refusal
        self.profile: Profile | None = None
        self.session: PseudonymSession | None = None

    @property
    def effect(self) -> str:
        if self.served is None:
            return "deny"
        return "reroute" if self.served != self.model else "allow"

    def overhead_ms(self) -> float:
        return (perf_counter() - self.started - self.upstream_s) * 1000

    def record(self, status: int, code: str | None = None) -> dict[str, Any]:
        c, d = self.caller, self.decision
        record: dict[str, Any] = {
            "kind": "request",
            "api": self.shape,
            "endpoint": self.endpoint,
            "participant": c.participant.id,
            "application": c.application.id,
            "key": c.key.id,
            "model_requested": self.model,
            "model_served": self.served,
            "decision": self.effect,
            "status": status,
            "code": code,
            "policy": self.snapshot.policy_header,
            "directives": list(self.snapshot.policy.version.directives),
            "stream": self.stream,
            "failover": self.failover,
            "timing_ms": {"gateway": round(self.overhead_ms(), 3),
                          "upstream": round(self.upstream_s * 1000, 3)},
        }
        if d is not None:
            record.update(rule=d.rule, citation=d.citation, tier=d.tier,
                          reasons=[r.to_dict() for r in d.reasons],
                          obligations=d.obligations.to_dict())
        if self.profile is not None:
            record["data_profile"] = self.profile.counts
        if self.session is not None:
            record["pseudonymised"] = self.session.counts
        if self.ctx is not None:
            context = self.ctx.to_dict()
            context["end_user"]["sub"] = _sub_digest(self.ctx.end_user.sub)
            record["context"] = context
        return record

    def headers(self, audit_id: str) -> list[tuple[bytes, bytes]]:
        out = [(b"x-harbourgate-decision", self.effect.encode()),
               (b"x-harbourgate-audit", audit_id.encode()),
               (b"x-harbourgate-policy", self.snapshot.policy_header.encode()),
               (b"x-harbourgate-overhead-ms", f"{self.overhead_ms():.3f}".encode())]
        if self.served:
            out.append((b"x-harbourgate-model", self.served.encode()))
            if self.served != self.model and self.model:
                out.append((b"x-harbourgate-rerouted-from", self.model.encode()))
        if self.session is not None and self.session.counts:
            out.append((b"x-harbourgate-pseudonymised", self.session.header_value().encode()))
        obligations = self.decision.obligations if self.decision is not None else None
        if obligations is not None and self.served:
            if obligations.notice:
                out.append((b"x-harbourgate-notice",
                            quote(obligations.notice, safe=" ,.;:!?'()/-").encode()))
            if obligations.human_review:
                out.append((b"x-harbourgate-human-review", b"required"))
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
                 *, verifier: AttestationVerifier | None = None, scanner: Scanner | None = None,
                 ready: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]] | None = None
                 ) -> None:
        self.runtime = runtime
        self.upstreams = upstreams
        self.audit = audit
        self.verifier = verifier or AttestationVerifier(None)
        self.scanner = scanner or Scanner()
        self._pseudonymisers: dict[tuple[str, ...], Pseudonymiser] = {}
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
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await handler(scope, receive, tracked)
        except ClientGone:
            pass
        except Exception:  # a bug must cost one request an error, never the worker
            log.exception("unexpected error on %s", path)
            if not started:
                err = GatewayError(500, "internal_error", "the gateway failed to handle this "
                                   "request; it was logged, and nothing was sent upstream "
                                   "unless an audit record says so")
                await _respond(send, 500, err.body(shape))

    # -- identification and input -------------------------------------------------------

    def _authenticate(self, headers: dict[bytes, bytes], snapshot: Snapshot) -> Caller:
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
        caller = snapshot.callers.get(hashlib.sha256(key).hexdigest())
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

    def _end_user(self, headers: dict[bytes, bytes]) -> policy.EndUserFacts:
        raw = headers.get(b"x-harbourgate-attestation")
        if raw is None:
            return policy.UNKNOWN_END_USER
        try:
            return _end_user_facts(self.verifier.verify(raw.decode("latin-1").strip()))
        except AttestationError as exc:
            raise GatewayError(401, "invalid_attestation", str(exc),
                               param="X-Harbourgate-Attestation") from None

    @staticmethod
    def _data_origin(headers: dict[bytes, bytes]) -> tuple[str | None, str | None]:
        raw = headers.get(b"x-harbourgate-data-origin")
        if raw is None:
            return None, None
        value = raw.decode("latin-1").strip().upper()
        if not _ORIGIN.fullmatch(value):
            raise GatewayError(400, "invalid_request", "X-Harbourgate-Data-Origin must be an "
                               "ISO 3166-1 alpha-2 code such as HK or CN (or a region such as "
                               f"CN-GD-SZ), not {value!r}", param="X-Harbourgate-Data-Origin")
        return value[:2], (value if len(value) > 2 else None)

    @staticmethod
    def _fallback(headers: dict[bytes, bytes]) -> str:
        mode = headers.get(b"x-harbourgate-fallback", b"auto").strip().lower()
        if mode not in (b"auto", b"none"):
            raise GatewayError(400, "invalid_request", "X-Harbourgate-Fallback must be 'auto' "
                               f"or 'none', not {mode.decode(errors='replace')!r}",
                               param="X-Harbourgate-Fallback")
        return mode.decode()

    def _route_for(self, snapshot: Snapshot, model: str) -> RouteConfig:
        route = snapshot.routes.get(model)
        if route is None or route.status != "active":
            names = ", ".join(sorted(snapshot.routes))
            raise GatewayError(404, "model_not_found",
                               f"no model named {model!r}; this gateway serves: {names}",
                               param="model")
        return route

    # -- deciding -----------------------------------------------------------------------

    def _decide(self, call: _Call, headers: dict[bytes, bytes], texts: list[str]) -> None:
        """Identify the end user, profile the data, and plan under the policy in force."""
        assert call.model is not None
        snap, caller = call.snapshot, call.caller
        route = self._route_for(snap, call.model)
        fallback = self._fallback(headers)
        end_user = self._end_user(headers)
        origin, region = self._data_origin(headers)
        call.profile = self.scanner.scan_many(texts) if texts else None
        call.ctx = policy.Context(
            application=caller.app_facts,
            model=snap.facts[route.name],
            request=policy.RequestFacts(time=datetime.now(UTC), api=call.shape,
                                        endpoint=call.endpoint, fallback=fallback),
            participant=caller.participant_facts,
            end_user=end_user,
            data=policy.DataFacts(origin=origin, region=region,
                                  classes=call.profile.counts if call.profile else {}),
        )
        candidates = snap.candidates(route, caller.application, fallback=fallback == "auto")
        call.plan = plan(snap.policy, call.ctx, candidates,
                         [snap.facts[c.name] for c in candidates])
        if call.plan.refused:
            refusal = call.decision = call.plan.requested
            raise GatewayError(refusal.status or 403, refusal.code or "legal_restriction",
                               refusal.message or f"{call.model} is not permitted here",
                               rule=refusal.rule, citation=refusal.citation)

    def _pseudonymiser(self, classes: tuple[str, ...]) -> Pseudonymiser:
        found = self._pseudonymisers.get(classes)
        if found is None:
            found = self._pseudonymisers[classes] = Pseudonymiser(classes, scanner=self.scanner)
        return found

    async def _failover(self, call: _Call, body: dict[str, Any], texts: list[str],
                        attempt: Callable[[Upstream, dict[str, Any]], Awaitable[Any]]) -> Any:
        """Try each permitted model in order; the first that answers serves the request.

        Obligations are per model (a model hosted at home may need no pseudonymisation),
        so each attempt prepares its own body; the upstream never sees a raw value that
        its decision says to pseudonymise.
        """
        assert call.plan is not None
        failures: list[tuple[str, UpstreamError]] = []
        t0 = perf_counter()
        try:
            for route, decision in call.plan.permitted:
                outgoing, session = body, None
                classes = decision.obligations.pseudonymise
                if classes and call.profile and not call.profile.classes.isdisjoint(classes):
                    session = self._pseudonymiser(classes).session()
                    outgoing = with_texts(body, session.pseudonymise_many(texts, call.profile))
                try:
                    result = await attempt(self.upstreams[route.name],
                                           {**outgoing, "model": route.name})
                except UpstreamError as exc:
                    metrics.UPSTREAM_ERRORS.labels(route.name, exc.code).inc()
                    call.failover.append({"model": route.name, "code": exc.code})
                    if not exc.retryable:
                        call.decision = decision
                        raise GatewayError(exc.status, exc.code, str(exc)) from None
                    failures.append((route.name, exc))
                    continue
                call.served, call.decision, call.session = route.name, decision, session
                return result
        finally:
            call.upstream_s = perf_counter() - t0
        call.decision = call.plan.permitted[0][1]
        timeouts = all(exc.code == "upstream_timeout" for _, exc in failures)
        detail = "; ".join(f"{name}: {exc}" for name, exc in failures)
        raise GatewayError(504 if timeouts else 502,
                           "upstream_timeout" if timeouts else "upstream_error",
                           f"every permitted upstream failed ({detail})")

    # -- the endpoints ------------------------------------------------------------------

    async def _openai_chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._generate(scope, receive, send, "openai", validate.openai_chat)

    async def _anthropic_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._generate(scope, receive, send, "anthropic", validate.anthropic_messages)

    async def _generate(self, scope: Scope, receive: Receive, send: Send, shape: str,
                        check: Callable[[dict[str, Any]], tuple[str, bool]]) -> None:
        headers = _headers(scope)
        snapshot = self.runtime.snapshot  # one state for the whole request
        try:
            call = _Call(shape, "chat", self._authenticate(headers, snapshot), snapshot)
        except GatewayError as err:
            return await self._refuse(send, shape, "chat", err, snapshot)
        try:
            body = validate.parse_json(await self._read_body(receive, headers))
            call.model, call.stream = check(body)
            texts = request_texts(body)
            self._decide(call, headers, texts)
            if call.stream:
                result = await self._failover(call, body, texts,
                                              lambda up, b: up.open_stream(shape, b))
            else:
                result = await self._failover(call, body, texts, lambda up, b: up.chat(shape, b))
        except GatewayError as err:
            return await self._refuse(send, shape, "chat", err, snapshot, call)
        try:
            audit_id = await self._commit(call, result)
        except GatewayError as err:
            return await _respond(send, err.status, err.body(shape), [(b"retry-after", b"1")])
        self._observe(call)
        out = call.headers(audit_id)
        if call.stream:
            return await self._stream(send, receive, call, result, out)
        if call.session is not None:
            map_strings(result, call.session.restore)
        await _respond(send, 200, orjson.dumps(result), out)

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        snapshot = self.runtime.snapshot
        try:
            call = _Call("openai", "embeddings", self._authenticate(headers, snapshot), snapshot)
        except GatewayError as err:
            return await self._refuse(send, "openai", "embeddings", err, snapshot)
        try:
            body = validate.parse_json(await self._read_body(receive, headers))
            call.model = validate.openai_embeddings(body)
            texts = request_texts(body)
            self._decide(call, headers, texts)
            answer = await self._failover(call, body, texts, lambda up, b: up.embed(b))
        except GatewayError as err:
            return await self._refuse(send, "openai", "embeddings", err, snapshot, call)
        try:
            audit_id = await self._commit(call, answer)
        except GatewayError as err:
            return await _respond(send, err.status, err.body("openai"), [(b"retry-after", b"1")])
        self._observe(call)
        await _respond(send, 200, orjson.dumps(answer), call.headers(audit_id))

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The models this caller (and, with an attestation, this end user) may use now."""
        headers = _headers(scope)
        shape = "anthropic" if b"anthropic-version" in headers else "openai"
        snapshot = self.runtime.snapshot
        try:
            caller = self._authenticate(headers, snapshot)
            end_user = self._end_user(headers)
            origin, region = self._data_origin(headers)
        except GatewayError as err:
            return await self._refuse(send, shape, "models", err, snapshot)
        routes = [r for r in snapshot.routes.values() if r.status == "active"]
        ctx = policy.Context(
            application=caller.app_facts, model=snapshot.facts[routes[0].name] if routes
            else policy.ModelFacts(name=""),
            request=policy.RequestFacts(time=datetime.now(UTC), api=shape, endpoint="models"),
            participant=caller.participant_facts, end_user=end_user,
            data=policy.DataFacts(origin=origin, region=region))
        decisions = snapshot.policy.decide_each(ctx, [snapshot.facts[r.name] for r in routes])
        allowed = [r for r, d in zip(routes, decisions, strict=True) if d.allowed]
        if shape == "anthropic":
            data = [{"type": "model", "id": r.name, "display_name": r.name,
                     "created_at": "2026-01-01T00:00:00Z"} for r in allowed]
            body = {"data": data, "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None}
        else:
            body = {"object": "list", "data": [
                {"id": r.name, "object": "model", "created": 0, "owned_by": r.origin,
                 "harbourgate": {"class": r.capability_class, "origin": r.origin,
                                 "hosting": r.hosting}} for r in allowed]}
        await _respond(send, 200, orjson.dumps(body),
                       [(b"x-harbourgate-policy", snapshot.policy_header.encode())])

    # -- answering ----------------------------------------------------------------------

    async def _commit(self, call: _Call, result: Any) -> str:
        """Record the answer before it begins; without the record there is no answer."""
        try:
            return await self.audit.append(call.record(200))
        except Exception as exc:
            log.error("audit record not committed; refusing the answer: %s", exc)
            metrics.REQUESTS.labels(call.endpoint, "deny", call.served or "",
                                    "audit_unavailable").inc()
            if hasattr(result, "aclose"):  # an opened stream: let the upstream go
                await result.aclose()
            raise GatewayError(503, "audit_unavailable", "the decision could not be recorded "
                               "in the audit log, so the answer is withheld; retry later"
                               ) from None

    async def _stream(self, send: Send, receive: Receive, call: _Call, events: Any,
                      headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"), *headers]})
        restore = _StreamRestore(call.shape, call.session) if call.session else None
        gone = asyncio.ensure_future(receive())  # completes with http.disconnect
        try:
            async for event in events:
                if gone.done():  # the client left: stop paying for the upstream's tokens
                    break
                if restore is not None:
                    for ready in restore.before(event):
                        await self._send_event(send, ready)
                await self._send_event(send, event)
            if restore is not None:
                for ready in restore.finish():
                    await self._send_event(send, ready)
            if call.shape == "openai":
                await send({"type": "http.response.body", "body": DONE, "more_body": True})
        except UpstreamError as exc:
            if restore is not None:
                for ready in restore.finish():
                    await self._send_event(send, ready)
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
            gone.cancel()
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _send_event(send: Send, event: StreamEvent) -> None:
        await send({"type": "http.response.body", "body": encode_event(event),
                    "more_body": True})

    async def _refuse(self, send: Send, shape: str, endpoint: str, err: GatewayError,
                      snapshot: Snapshot, call: _Call | None = None) -> None:
        """Answer with an error; refusals of an identified caller are audited first."""
        headers = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
        if call is not None:
            audit_id = await self.audit.append(call.record(err.status, err.code))
            err.extra.setdefault("audit_id", audit_id)
            headers += call.headers(audit_id)
            self._observe(call, err.code)
        else:
            headers.append((b"x-harbourgate-decision", b"deny"))
            headers.append((b"x-harbourgate-policy", snapshot.policy_header.encode()))
            metrics.REQUESTS.labels(endpoint, "deny", "", err.code).inc()
        await _respond(send, err.status, err.body(shape), headers)

    def _observe(self, call: _Call, code: str | None = None) -> None:
        elapsed = perf_counter() - call.started
        metrics.REQUESTS.labels(call.endpoint, call.effect, call.served or call.model or "",
                                code or "ok").inc()
        metrics.LATENCY.labels(call.endpoint).observe(elapsed)
        metrics.OVERHEAD.observe(max(elapsed - call.upstream_s, 0.0))

    # -- operations ---------------------------------------------------------------------

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _respond(send, 200, b'{"status":"ok"}')

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        ok, detail = (True, {}) if self._ready is None else await self._ready()
        snap = self.runtime.snapshot
        detail = {"status": "ready" if ok else "not ready", "process": os.getpid(),
                  "state_version": snap.version,
                  "policy": snap.policy_header, "policy_error": self.runtime.bundle_error,
                  "verifiers": self.verifier.status, **detail}
        await _respond(send, 200 if ok else 503, orjson.dumps(detail, default=str))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.STATE_VERSION.set(self.runtime.snapshot.version)
        metrics.AUDIT_QUEUE.set(getattr(self.audit, "queue_depth", 0))
        body, content_type = await asyncio.to_thread(metrics.render)
        await _respond(send, 200, body, content_type=content_type.encode())


class _StreamRestore:
    """Puts pseudonymised values back into a stream, also when a token is split across
    events: one restorer per channel (OpenAI choice, Anthropic content block); what a
    restorer holds back is flushed just before its channel ends."""

    def __init__(self, shape: str, session: PseudonymSession) -> None:
        self.shape = shape
        self.session = session
        self.restorers: dict[int, Any] = {}
        self.templates: dict[int, StreamEvent] = {}

    def _channel(self, event: StreamEvent) -> tuple[int | None, bool]:
        """(channel, whether this event ends it)."""
        data = event.data
        if self.shape == "openai":
            choices = data.get("choices") or ()
            if not choices:
                return None, False
            return choices[0].get("index", 0), bool(choices[0].get("finish_reason"))
        if data.get("type") in ("content_block_delta", "content_block_stop"):
            return data.get("index", 0), data["type"] == "content_block_stop"
        return None, False

    def before(self, event: StreamEvent) -> list[StreamEvent]:
        """Restore `event` in place; return what must be sent before it."""
        channel, ends = self._channel(event)
        if channel is None:
            return []
        out = self._flush(channel) if ends else []
        text = delta_text(self.shape, event)  # type: ignore[arg-type]
        if text is not None:
            restorer = self.restorers.get(channel)
            if restorer is None:
                restorer = self.restorers[channel] = self.session.stream_restorer()
            self.templates[channel] = copy.deepcopy(event)
            set_delta_text(self.shape, event, restorer.feed(text))  # type: ignore[arg-type]
        return out

    def _flush(self, channel: int) -> list[StreamEvent]:
        restorer = self.restorers.pop(channel, None)
        template = self.templates.pop(channel, None)
        rest = restorer.flush() if restorer is not None else ""
        if not rest or template is None:
            return []
        if self.shape == "openai":
            template.data["choices"][0]["finish_reason"] = None
        set_delta_text(self.shape, template, rest)  # type: ignore[arg-type]
        return [template]

    def finish(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for channel in list(self.restorers):
            out += self._flush(channel)
        return out


_ORIGIN = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3}){0,2}")
