"""The data plane's ASGI shell: a small raw ASGI app, because it is on every request.

It reads the request, calls the steps of `gateway.pipeline` in order (identify, admit,
forward, record, respond), commits the audit record before the first byte, and writes the
answer. Nothing here touches the database; the only I/O is the upstream call (inside
`forward`, or the stream this shell relays) and the audit queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any, Protocol

import orjson

from harbourgate.gateway import metrics, pipeline, quota
from harbourgate.gateway.errors import GatewayError
from harbourgate.gateway.pipeline import Admission, Answer, Endpoint, Relay, Served
from harbourgate.identity.attestation import AttestationVerifier
from harbourgate.observe import logs, telemetry
from harbourgate.observe.telemetry import RequestTrace, Telemetry
from harbourgate.privacy import Scanner
from harbourgate.providers.base import EventStream, Upstream, UpstreamError
from harbourgate.quotas import MemoryStore, QuotaGate
from harbourgate.runtime import Runtime, Snapshot
from harbourgate.shapes import Usage

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


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


async def _respond(send: Send, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
                   content_type: bytes = JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _error_headers(err: GatewayError) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-Id when well formed, else a fresh one (`logs.request_id`)."""
    for name, value in scope["headers"]:
        if name.lower() == logs.REQUEST_ID_HEADER:
            return logs.request_id(value)
    return logs.new_request_id()


# the access log and spans name an endpoint by its path; a lookup's id is the caller's text
_PATHS = {e: p for p, e in pipeline.ENDPOINTS.items()}
_LOOKUP_PATH = pipeline.MODELS_PREFIX + ":id"


class Gateway:
    """The OpenAI- and Anthropic-compatible endpoints plus health and metrics."""

    def __init__(self, runtime: Runtime, upstreams: dict[str, Upstream], audit: AuditSink,
                 *, verifier: AttestationVerifier | None = None, scanner: Scanner | None = None,
                 ready: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]] | None = None,
                 quota_gate: QuotaGate | None = None,
                 telemetry: Telemetry = telemetry.OFF) -> None:
        self.runtime = runtime
        self.audit = audit
        self.verifier = verifier or AttestationVerifier(None)
        self.services = pipeline.Services(upstreams, scanner or Scanner(),
                                          self.verifier,
                                          quota_gate=quota_gate or QuotaGate(MemoryStore()))
        self.max_body = runtime.settings.limits.max_body_bytes
        self.max_stream_s = runtime.settings.limits.max_stream_s
        self._ready = ready
        self.telemetry = telemetry
        self._operations: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            "/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        endpoint, model_id = pipeline.endpoint_for(path)
        shape = "anthropic" if path.startswith("/v1/messages") else "openai"
        method = endpoint.method if endpoint is not None else "GET"
        operation = self._operations.get(path) if endpoint is None else None
        rid = _request_id(scope) if operation is None else ""
        echo = [(b"x-request-id", rid.encode())] if operation is None else []
        if endpoint is None and operation is None and path.startswith("/v1/responses/"):
            err = GatewayError(400, "invalid_request", "Harbourgate keeps no responses, so it "
                               f"cannot retrieve, cancel or delete one ({path}); keep the "
                               "output on the client and send it back as input")
            return await _respond(send, 400, err.body("responses"), echo)
        if endpoint is None and operation is None:
            err = GatewayError(404, "not_found", f"no endpoint {path}; see /v1/chat/completions,"
                               " /v1/responses, /v1/messages, /v1/embeddings, /v1/models")
            return await _respond(send, 404, err.body(shape), echo)
        if scope["method"] != method and not (method == "GET" and scope["method"] == "HEAD"):
            err = GatewayError(405, "method_not_allowed", f"{path} takes {method}")
            return await _respond(send, 405, err.body(shape),
                                  [(b"allow", method.encode()), *echo])
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if operation is not None:
                await operation(scope, receive, tracked)
            else:
                assert endpoint is not None
                await self._serve(endpoint, model_id, scope, receive, tracked, rid)
        except ClientGone:
            pass
        except Exception:  # a bug must cost one request an error, never the worker
            log.exception("unexpected error on %s", path,
                          extra={"request_id": rid} if rid else None)
            if not started:
                err = GatewayError(500, "internal_error", "the gateway failed to handle this "
                                   "request; it was logged, and nothing was sent upstream "
                                   "unless an audit record says so")
                await _respond(send, 500, err.body(shape), echo)

    # -- one request, step by step -----------------------------------------------------

    async def _serve(self, endpoint: Endpoint, model_id: str | None, scope: Scope,
                     receive: Receive, send: Send, rid: str) -> None:
        started = perf_counter()
        headers = _headers(scope)
        shape = pipeline.caller_shape(endpoint, headers)
        snapshot = self.runtime.snapshot  # one state for the whole request
        trace = self.telemetry.request(_PATHS.get(endpoint, _LOOKUP_PATH), endpoint.name,
                                       traceparent=headers.get(b"traceparent"),
                                       request_id=rid)
        try:
            with trace.span("identify"):
                caller = pipeline.identify(snapshot, headers)
        except GatewayError as err:
            return await self._refuse_unidentified(send, shape, endpoint, snapshot, err,
                                                   started, rid, trace)
        trace.identified(application=caller.application.id)
        body = await self._read_body(receive, headers) if endpoint.method == "POST" else b""
        admission = pipeline.admit(self.services, snapshot, endpoint, shape, caller, headers,
                                   body, started=started, model_id=model_id, request_id=rid,
                                   trace=trace)
        if admission.error is not None:
            return await self._refuse(send, admission, None, admission.error)
        served = await pipeline.forward(self.services, admission)
        if served.error is not None:
            return await self._refuse(send, admission, served, served.error)
        try:
            audit_id = await self._commit(pipeline.audit_record(admission, served, 200),
                                          trace)
        except GatewayError as unavailable:  # without the record there is no answer
            if isinstance(served.result, EventStream):
                await served.result.aclose()
                await quota.settle(self.services.quota_gate, served.quota,
                                   served.result.usage)
            return await self._unrecorded(send, admission, served, unavailable)
        answer = pipeline.respond(admission, served, audit_id)
        overhead = self._observe(admission, served)
        if answer.relay is None:
            await _respond(send, answer.status, answer.body, answer.headers)
            if served.counted_by is None:  # a token count is no use of the model
                self._usage(admission, served, served.usage)
            return self._finish(admission, served, 200, None, audit_id, overhead)
        await self._stream(send, receive, admission, served, answer, audit_id, overhead)

    async def _read_body(self, receive: Receive,
                         headers: dict[bytes, bytes]) -> bytes | GatewayError:
        """The body, or the 413 it earns (an identified caller's refusal is audited)."""
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return self._too_large(int(length))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, size: int) -> GatewayError:
        return GatewayError(413, "request_too_large", f"the request body ({size} bytes or more)"
                            f" is over this gateway's limit of {self.max_body} bytes")

    # -- the audit record, and what happens without it ---------------------------------

    async def _commit(self, record: dict[str, Any],
                      trace: RequestTrace = telemetry.NO_TRACE) -> str:
        """The one place an audit failure becomes 503 `audit_unavailable` (with
        Retry-After), on every path: answers, refusals and broken-off streams."""
        try:
            with trace.span("audit.commit"):
                started = perf_counter()
                entry_id = await self.audit.append(record)
                metrics.AUDIT_COMMIT_WAIT.observe(perf_counter() - started)
                return entry_id
        except Exception as exc:
            log.error("audit record not committed; withholding the outcome: %s", exc,
                      extra={"request_id": record.get("x_request_id"),
                             "code": "audit_unavailable"})
            raise GatewayError(503, "audit_unavailable", "the decision could not be recorded "
                               "in the audit log, so the answer is withheld; retry later",
                               headers={"Retry-After": "1"}) from None

    async def _unrecorded(self, send: Send, adm: Admission, served: Served | None,
                          unavailable: GatewayError) -> None:
        overhead = self._observe(adm, served, unavailable.code, decision="deny")
        headers = [*_error_headers(unavailable), (b"x-harbourgate-decision", b"deny"),
                   (b"x-harbourgate-policy", adm.snapshot.policy_header.encode())]
        if adm.request_id is not None:
            headers.append((b"x-request-id", adm.request_id.encode()))
        await _respond(send, unavailable.status, unavailable.body(adm.shape), headers)
        self._finish(adm, served, unavailable.status, unavailable.code, None, overhead,
                     decision="deny")

    async def _refuse(self, send: Send, adm: Admission, served: Served | None,
                      err: GatewayError) -> None:
        """An identified caller's refusal: audited first, then answered in its shape."""
        try:
            audit_id = await self._commit(
                pipeline.audit_record(adm, served, err.status, err.code), adm.trace)
        except GatewayError as unavailable:
            return await self._unrecorded(send, adm, served, unavailable)
        err.extra.setdefault("audit_id", audit_id)
        overhead = self._observe(adm, served, err.code)
        await _respond(send, err.status, err.body(adm.shape),
                       _error_headers(err) + pipeline.answer_headers(adm, served, audit_id))
        self._finish(adm, served, err.status, err.code, audit_id, overhead)

    async def _refuse_unidentified(self, send: Send, shape: str, endpoint: Endpoint,
                                   snapshot: Snapshot, err: GatewayError, started: float,
                                   rid: str, trace: RequestTrace) -> None:
        """No caller, no audit record: an unknown key is not a decision about anyone."""
        elapsed = perf_counter() - started
        metrics.observe_request(endpoint=endpoint.name, decision="deny", model=None,
                                code=err.code, seconds=elapsed)
        await _respond(send, err.status, err.body(shape), [
            *_error_headers(err), (b"x-harbourgate-decision", b"deny"),
            (b"x-harbourgate-policy", snapshot.policy_header.encode()),
            (b"x-request-id", rid.encode())])
        trace.decided(decision="deny")
        trace.end(status=err.status, code=err.code)
        logs.access(request_id=rid, audit_id=None, application=None,
                    endpoint=_PATHS.get(endpoint, _LOOKUP_PATH), model=None, served=None,
                    decision="deny", status=err.status, code=err.code,
                    overhead_ms=elapsed * 1000, upstream_ms=None)

    def _observe(self, adm: Admission, served: Served | None, code: str | None = None,
                 decision: str | None = None) -> float:
        """Count the request and its latency to the first byte (per model); returns the
        gateway's overhead so far, which the access log reports."""
        elapsed = perf_counter() - adm.started
        upstream_s = served.upstream_s if served is not None else 0.0
        model = served.route.name if served is not None and served.route else adm.model
        metrics.observe_request(endpoint=adm.endpoint.name,
                                decision=decision or pipeline.effect(adm, served),
                                model=model, code=code, seconds=elapsed,
                                upstream_seconds=upstream_s)
        return max(elapsed - upstream_s, 0.0)

    @staticmethod
    def _usage(adm: Admission, served: Served, usage: Usage | None,
               first_token_s: float | None = None) -> None:
        """Tokens and their cost at the route's price (metrics, and the trace)."""
        if usage is None or served.route is None:
            return
        route = served.route
        metrics.observe_usage(route.name, usage.input_tokens, usage.output_tokens,
                              route.price.cost(usage.input_tokens, usage.output_tokens))
        adm.trace.usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                        first_token_s=first_token_s)

    @staticmethod
    def _finish(adm: Admission, served: Served | None, status: int, code: str | None,
                audit_id: str | None, overhead_s: float, decision: str | None = None) -> None:
        """After the answer went out: end the trace and write the access line. Upstream
        time is everything but the gateway's overhead (a stream's whole relay included)."""
        name = served.route.name if served is not None and served.route else None
        decision = decision or pipeline.effect(adm, served)
        grounds = served.decision if served is not None and served.decision is not None \
            else adm.decision
        trace = adm.trace
        trace.decided(decision=decision, rule=grounds.rule if grounds is not None else None,
                      model=adm.model, served=name)
        trace.end(status=status, audit_id=audit_id, code=code)
        if not logs.access_enabled():
            return
        elapsed = perf_counter() - adm.started
        logs.access(request_id=adm.request_id or "", audit_id=audit_id,
                    application=adm.caller.application.id,
                    endpoint=_PATHS.get(adm.endpoint, _LOOKUP_PATH), model=adm.model,
                    served=name, decision=decision, status=status, code=code,
                    overhead_ms=overhead_s * 1000,
                    upstream_ms=None if served is None or served.route is None
                    else max(elapsed - overhead_s, 0.0) * 1000)

    # -- streams -----------------------------------------------------------------------

    async def _stream(self, send: Send, receive: Receive, adm: Admission, served: Served,
                      answer: Answer, audit_id: str | None = None,
                      overhead: float = 0.0) -> None:
        """Relay the upstream's events. A client's departure is noticed at once (the relay
        races the ASGI disconnect) and closes the upstream stream. An idle deadline (the
        route's timeout_s between events) and an overall one (limits.max_stream_s) end the
        stream with an error event and an audit record, as an upstream failure does. The
        relay runs in this task; a disconnect or the one watchdog timer that keeps both
        deadlines cancels it at its await, so an event costs a clock read, no task or timer."""
        assert answer.relay is not None and served.route is not None
        events: EventStream = served.result
        await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
        loop = asyncio.get_running_loop()
        idle, clock = served.route.timeout_s, _Clock(loop.time())
        deadline = clock.last + self.max_stream_s
        task = asyncio.current_task()
        assert task is not None
        stopped: list[str] = []  # why the relay was stopped: "gone", "idle" or "overall"

        def stop(why: str) -> None:
            if clock.live and not stopped:
                stopped.append(why)
                task.cancel()  # lands at the relay's current await: the upstream read

        def watch() -> None:
            now, due = loop.time(), min(clock.last + idle, deadline)
            if now < due:
                clock.timer = loop.call_at(due, watch)
            else:
                stop("overall" if now >= deadline else "idle")

        def left(_: object) -> None:
            stop("gone")

        gone = asyncio.ensure_future(_disconnected(receive))
        gone.add_done_callback(left)
        clock.timer = loop.call_at(min(clock.last + idle, deadline), watch)
        try:
            outcome = await self._pump(send, answer.relay, events, served, clock)
        except asyncio.CancelledError:
            if not stopped:
                raise  # cancelled from outside: not ours to absorb
            task.uncancel()
            outcome = False if stopped[0] == "gone" else None
        finally:  # a callback already scheduled must not cancel what follows
            clock.live = False
            clock.timer.cancel()
            gone.remove_done_callback(left)
            gone.cancel()
        first_token_s = None if clock.first is None else clock.first - adm.started
        if first_token_s is not None:
            metrics.observe_first_token(served.route.name, first_token_s)
        self._usage(adm, served, getattr(events, "usage", None), first_token_s)
        if outcome is False:  # the client left; the upstream stream is closed
            await self._metered(served, answer, "gone")
            return self._finish(adm, served, 200, None, audit_id, overhead)
        failure = outcome or None
        if stopped:
            metrics.observe_upstream_error(served.route.name, "upstream_timeout")
            log.warning("upstream %s stream stopped: upstream_timeout (%s)", served.route.name,
                        "limits.max_stream_s" if stopped[0] == "overall" else "idle",
                        extra={"request_id": adm.request_id, "model": served.route.name,
                               "code": "upstream_timeout"})
            failure = GatewayError(504, "upstream_timeout", (
                f"the stream from {served.route.name} ran past this gateway's limit of "
                f"{self.max_stream_s:g} s (limits.max_stream_s)") if stopped[0] == "overall"
                else (f"the upstream {served.route.name} sent nothing for {idle:g} s "
                      "(the route's timeout_s) mid-stream"))
        if failure is not None:
            record = pipeline.audit_record(adm, served, failure.status, failure.code,
                                           kind="stream_interrupted",
                                           usage=getattr(events, "usage", None))
            try:
                failure.extra["audit_id"] = await self._commit(record, adm.trace)
            except GatewayError as unavailable:
                failure = unavailable
            await send({"type": "http.response.body", "body": answer.relay.cut(failure),
                        "more_body": True})
        await self._metered(served, answer, "completed" if failure is None else "cut")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._finish(adm, served, 200, failure.code if failure is not None else None,
                     audit_id, overhead)

    async def _metered(self, served: Served, answer: Answer, ended: str) -> None:
        """A stream's usage, known once it has ended however it ended: settle its quota
        reservation, and append the follow-up record that the decisions index merges into
        the request's row (the request's own record was committed before the first byte)."""
        assert served.route is not None
        usage = served.result.usage
        await quota.settle(self.services.quota_gate, served.quota, usage)
        try:
            await self.audit.append(quota.usage_record(answer.audit_id, served.route, usage,
                                                       ended))
        except Exception as exc:  # the answer is out; the request's record stands
            log.error("the usage record of %s was not committed: %s", answer.audit_id, exc)

    @staticmethod
    async def _pump(send: Send, relay: Relay, events: EventStream, served: Served,
                    clock: _Clock) -> GatewayError | bool | None:
        """Copy events to the client until the end (None), an upstream failure (its error)
        or the client's socket closing (False). Always closes the upstream stream."""
        loop = asyncio.get_running_loop()
        ready = getattr(events, "ready", None)  # the events that arrived with this one
        try:
            async for event in events:
                clock.last = loop.time()
                if clock.first is None:
                    clock.first = perf_counter()
                body = relay.event(event)
                if ready is not None and (more := ready()):
                    body = b"".join([body, *map(relay.event, more)])
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": relay.end(), "more_body": True})
            return None
        except UpstreamError as exc:
            name = served.route.name if served.route is not None else ""
            metrics.observe_upstream_error(name, exc.code)
            log.warning("upstream %s failed mid-stream: %s (status %s)", name, exc.code,
                        exc.status, extra={"model": name, "code": exc.code})
            return GatewayError(502, "upstream_error",
                                f"the upstream {name} failed mid-stream: {exc}")
        except OSError:
            return False
        finally:
            await events.aclose()

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
        # the gauges are current through `metrics.track` (started with the app)
        body, content_type = await asyncio.to_thread(metrics.render)
        await _respond(send, 200, body, content_type=content_type.encode())


class _Clock:
    """When a stream first and last moved, the watchdog timer that reads it, and whether
    the relay is still running (only then may a disconnect or a deadline stop it)."""

    __slots__ = ("first", "last", "live", "timer")

    def __init__(self, now: float) -> None:
        self.first: float | None = None  # perf_counter() at the first event
        self.last = now
        self.live = True
        self.timer: asyncio.TimerHandle | None = None


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the request body was read before)."""
    while (await receive())["type"] != "http.disconnect":
        pass
