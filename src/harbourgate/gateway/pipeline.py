"""The path of one request, as steps that each return a value.

    caller    = identify(snapshot, headers)                  # API key -> caller (401: unaudited)
    admission = admit(services, snapshot, endpoint, ...)     # validate, profile, context, plan
    served    = await forward(services, admission)           # failover; pseudonymise per attempt
    record    = audit_record(admission, served, status)      # what the log keeps
    answer    = respond(admission, served, audit_id)         # the caller's shape and headers

`admit` does no I/O: it reads the in-memory snapshot only. `forward` awaits the upstream
and nothing else. A refusal is a value too (`Admission.error`, `Served.error`), so every
outcome of an identified caller flows into one `audit_record`. The ASGI shell
(`gateway.app`) reads the request, calls these steps in this order, commits the record
before the first byte, and writes the answer.

Every data-plane endpoint takes this path, token counting and model lookup included: the
same identification, the same policy decision, the same audit record.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from time import perf_counter
from typing import Any
from urllib.parse import quote

import orjson

from harbourgate import geo, policy, quotas
from harbourgate.config import RouteConfig
from harbourgate.enforce import Plan, plan
from harbourgate.gateway import metrics, quota, validate
from harbourgate.gateway.content import map_strings, request_texts, with_texts
from harbourgate.gateway.errors import GatewayError
from harbourgate.identity.attestation import AttestationError, AttestationVerifier, EndUser
from harbourgate.observe.telemetry import NO_TRACE, RequestTrace
from harbourgate.privacy import Profile, Pseudonymiser, PseudonymSession, Scanner
from harbourgate.privacy.stream import StreamRestore
from harbourgate.providers.base import Shape, StreamEvent, Upstream, UpstreamError
from harbourgate.providers.sse import DONE, encode_event
from harbourgate.runtime import Caller, Snapshot
from harbourgate.shapes import Usage, estimate_input_tokens, usage_of

log = logging.getLogger("harbourgate.gateway")

# -- the endpoints --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One data-plane endpoint: its audit name (`chat`, `embeddings`, `count_tokens`,
    `models`, `model`), the caller's API shape, and the body check that returns the model
    asked for and whether to stream."""

    name: str
    shape: Shape
    method: str = "POST"
    check: Callable[[dict[str, Any]], tuple[str, bool]] | None = None


def _no_stream(check: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]],
                                                                  tuple[str, bool]]:
    return lambda body: (check(body), False)


ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint("chat", "openai", check=validate.openai_chat),
    "/v1/messages": Endpoint("chat", "anthropic", check=validate.anthropic_messages),
    "/v1/responses": Endpoint("chat", "responses", check=validate.responses),
    "/v1/embeddings": Endpoint("embeddings", "openai",
                               check=_no_stream(validate.openai_embeddings)),
    "/v1/messages/count_tokens": Endpoint(
        "count_tokens", "anthropic", check=_no_stream(validate.anthropic_count_tokens)),
    "/v1/responses/input_tokens": Endpoint(
        "count_tokens", "responses", check=_no_stream(validate.responses_input_tokens)),
    "/v1/models": Endpoint("models", "openai", "GET"),
}
MODEL_LOOKUP = Endpoint("model", "openai", "GET")  # GET /v1/models/{id}
MODELS_PREFIX = "/v1/models/"


def endpoint_for(path: str) -> tuple[Endpoint | None, str | None]:
    """The endpoint of `path`, and the model id of a lookup (`/v1/models/{id}`)."""
    path = path.rstrip("/") or path
    found = ENDPOINTS.get(path)
    if found is not None:
        return found, None
    if path.startswith(MODELS_PREFIX) and len(path) > len(MODELS_PREFIX):
        return MODEL_LOOKUP, path[len(MODELS_PREFIX):]
    return None, None


def caller_shape(endpoint: Endpoint, headers: Mapping[bytes, bytes]) -> Shape:
    """Model listing and lookup answer in the Anthropic shape when `anthropic-version` is
    sent (the Anthropic SDK always sends it); every other endpoint has one shape."""
    if endpoint.method == "GET" and b"anthropic-version" in headers:
        return "anthropic"
    return endpoint.shape


# -- what the steps share -------------------------------------------------------------------


@dataclass(slots=True)
class Services:
    """What a worker holds for the steps: adapters, scanner, verifier, pseudonymisers,
    and the quota gate `forward` reserves and settles through."""

    upstreams: Mapping[str, Upstream]
    scanner: Scanner
    verifier: AttestationVerifier
    pseudonymisers: dict[tuple[str, ...], Pseudonymiser] = field(default_factory=dict)
    quota_gate: quotas.QuotaGate = field(
        default_factory=lambda: quotas.QuotaGate(quotas.MemoryStore()))

    def pseudonymiser(self, classes: tuple[str, ...]) -> Pseudonymiser:
        found = self.pseudonymisers.get(classes)
        if found is None:
            found = self.pseudonymisers[classes] = Pseudonymiser(classes, scanner=self.scanner)
        return found


# -- 1. identify ----------------------------------------------------------------------------


def identify(snapshot: Snapshot, headers: Mapping[bytes, bytes]) -> Caller:
    """The caller of an API key (`Authorization: Bearer` or `x-api-key`); a 401 otherwise."""
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


# -- 2. admit -------------------------------------------------------------------------------


@dataclass(slots=True)
class Admission:
    """What the gateway knows of a request before anything leaves it. With `error` set,
    the request is refused; the other fields say how far admission got (for the record)."""

    endpoint: Endpoint
    shape: Shape
    snapshot: Snapshot
    caller: Caller
    started: float
    model: str | None = None
    stream: bool = False
    body: dict[str, Any] | None = None
    texts: list[str] = field(default_factory=list)
    profile: Profile | None = None
    ctx: policy.Context | None = None
    plan: Plan | None = None
    listed: tuple[RouteConfig, ...] = ()  # GET /v1/models: what this caller may use
    provider_headers: Mapping[str, str] = field(default_factory=dict)
    decision: policy.Decision | None = None  # of a refusal
    error: GatewayError | None = None
    request_id: str | None = None  # X-Request-Id: echoed, logged, in the audit record
    trace: RequestTrace = NO_TRACE  # OpenTelemetry: free when off


def admit(services: Services, snapshot: Snapshot, endpoint: Endpoint, shape: Shape,
          caller: Caller, headers: Mapping[bytes, bytes], body: bytes | GatewayError,
          *, started: float, model_id: str | None = None, request_id: str | None = None,
          trace: RequestTrace = NO_TRACE) -> Admission:
    """Validate the body, profile its data, build the policy context once, and plan.

    `body` is the raw request body, or the error reading it gave (too large). Pure: the
    snapshot, the scanner and the clock are all it reads.
    """
    known: dict[str, Any] = {"request_id": request_id, "trace": trace}
    try:
        if isinstance(body, GatewayError):
            raise body
        if endpoint.check is not None:
            parsed = known["body"] = validate.parse_json(body)
            known["model"], known["stream"] = endpoint.check(parsed)
            if not known["model"]:  # a Responses body may leave it out
                known["model"] = _default_model(caller)
            known["texts"] = request_texts(parsed)
            known["provider_headers"] = _provider_headers(headers)
        else:
            known["model"] = model_id
        fallback = _fallback(headers)
        end_user = _end_user(services.verifier, headers)
        origin, region = _data_origin(headers)
        texts = known.get("texts")
        with trace.span("scan"):
            profile = known["profile"] = services.scanner.scan_many(texts) if texts else None
        if endpoint.name == "models":
            routes = [r for r in snapshot.routes.values() if r.status == "active"]
            ctx = known["ctx"] = _context(snapshot, caller, endpoint, shape, routes[0] if routes
                                          else None, "auto", end_user, origin, region, None)
            with trace.span("decide"):
                decisions = snapshot.policy.decide_each(
                    ctx, [snapshot.facts[r.name] for r in routes])
            known["listed"] = tuple(r for r, d in zip(routes, decisions, strict=True)
                                    if d.allowed)
            return Admission(endpoint, shape, snapshot, caller, started, **known)
        route = _route_for(snapshot, known["model"])
        ctx = known["ctx"] = _context(snapshot, caller, endpoint, shape, route, fallback,
                                      end_user, origin, region, profile)
        lookup = endpoint.name == "model"  # a lookup names one model: no substitutes
        candidates = snapshot.candidates(route, caller.application,
                                         fallback=fallback == "auto" and not lookup)
        with trace.span("decide"):
            known["plan"] = found = plan(snapshot.policy, ctx, candidates,
                                         [snapshot.facts[c.name] for c in candidates])
        if found.refused:
            refusal = known["decision"] = found.requested
            if lookup:  # a model this caller may not use does not exist for it
                raise _no_such_model(snapshot, known["model"], caller, ctx)
            raise GatewayError(refusal.status or 403, refusal.code or "legal_restriction",
                               refusal.message or f"{known['model']} is not permitted here",
                               rule=refusal.rule, citation=refusal.citation)
    except GatewayError as err:
        return Admission(endpoint, shape, snapshot, caller, started, error=err, **known)
    return Admission(endpoint, shape, snapshot, caller, started, **known)


def _context(snapshot: Snapshot, caller: Caller, endpoint: Endpoint, shape: Shape,
             route: RouteConfig | None, fallback: str, end_user: policy.EndUserFacts,
             origin: str | None, region: str | None, profile: Profile | None
             ) -> policy.Context:
    """The one place a request's policy context is built."""
    classes = profile.counts if profile else None
    return policy.Context(
        caller.app_facts,
        snapshot.facts[route.name] if route is not None else policy.ModelFacts(name=""),
        policy.RequestFacts(datetime.now(UTC), shape, endpoint.name, fallback),
        caller.participant_facts,
        end_user,
        _NO_DATA if classes is None and origin is None and region is None
        else policy.DataFacts(origin, region, classes or {}),
    )


# the data facts of most requests: no declared origin, no personal data found
_NO_DATA = policy.DataFacts()


def _route_for(snapshot: Snapshot, model: str) -> RouteConfig:
    route = snapshot.routes.get(model)
    if route is None or route.status != "active":
        names = ", ".join(sorted(snapshot.routes))
        raise GatewayError(404, "model_not_found",
                           f"no model named {model!r}; this gateway serves: {names}",
                           param="model")
    return route


def _no_such_model(snapshot: Snapshot, model: str, caller: Caller,
                   ctx: policy.Context) -> GatewayError:
    routes = [r for r in snapshot.routes.values() if r.status == "active"]
    decisions = snapshot.policy.decide_each(ctx, [snapshot.facts[r.name] for r in routes])
    names = ", ".join(sorted(r.name for r, d in zip(routes, decisions, strict=True)
                             if d.allowed)) or "none"
    return GatewayError(404, "model_not_found", f"no model named {model!r} for this caller;"
                        f" it may use: {names}", param="model")


def _provider_headers(headers: Mapping[bytes, bytes]) -> dict[str, str]:
    """The caller's `anthropic-*` and `openai-*` headers, for the adapter to pass on."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()
            if k.startswith((b"anthropic-", b"openai-"))}


def _fallback(headers: Mapping[bytes, bytes]) -> str:
    mode = headers.get(b"x-harbourgate-fallback", b"auto").strip().lower()
    if mode not in (b"auto", b"none"):
        raise GatewayError(400, "invalid_request", "X-Harbourgate-Fallback must be 'auto' "
                           f"or 'none', not {mode.decode(errors='replace')!r}",
                           param="X-Harbourgate-Fallback")
    return mode.decode()


def _end_user(verifier: AttestationVerifier,
              headers: Mapping[bytes, bytes]) -> policy.EndUserFacts:
    raw = headers.get(b"x-harbourgate-attestation")
    if raw is None:
        return policy.UNKNOWN_END_USER
    try:
        user = verifier.verify(raw.decode("latin-1").strip())
    except AttestationError as exc:
        raise GatewayError(401, "invalid_attestation", str(exc),
                           param="X-Harbourgate-Attestation") from None
    return _end_user_facts(user)


# The policy facts of the end users seen lately, by the identity of the verifier's `EndUser`
# (its cache hands back the same object for the same attestation): most requests resend
# one, so its facts are built once. Holding the user keeps its id from being reused.
_END_USERS: dict[int, tuple[EndUser, policy.EndUserFacts]] = {}
_END_USERS_MAX = 4096


def _end_user_facts(user: EndUser) -> policy.EndUserFacts:
    hit = _END_USERS.get(id(user))
    if hit is not None and hit[0] is user:
        return hit[1]
    if not user.verified:
        return policy.UNKNOWN_END_USER
    facts = policy.EndUserFacts(verified=True, nationality=user.nationality,
                                residence=user.residence,
                                verification_level=user.verification_level,
                                issuer=user.issuer, sub=user.sub)
    if len(_END_USERS) >= _END_USERS_MAX:
        _END_USERS.clear()
    _END_USERS[id(user)] = (user, facts)
    return facts


@lru_cache(maxsize=4096)
def _subject_digest(sub: str) -> str:
    """The audit record's form of an end user's subject: never the subject itself."""
    return "sha256:" + hashlib.sha256(sub.encode()).hexdigest()[:16]


def _default_model(caller: Caller) -> str:
    """The model a Responses request that names none is served by: the application's first
    preference (the policy then decides as for any request)."""
    preference = caller.application.model_preference
    if not preference:
        raise GatewayError(400, "invalid_request", "missing required field 'model' (this "
                           "application has no model preference to default to)", param="model")
    return preference[0]


def _data_origin(headers: Mapping[bytes, bytes]) -> tuple[str | None, str | None]:
    raw = headers.get(b"x-harbourgate-data-origin")
    if raw is None:
        return None, None
    try:
        return geo.parse_origin(raw.decode("latin-1"))
    except ValueError as exc:
        raise GatewayError(400, "invalid_request", f"X-Harbourgate-Data-Origin {exc}",
                           param="X-Harbourgate-Data-Origin") from None


# -- 3. forward -----------------------------------------------------------------------------


@dataclass(slots=True)
class Served:
    """What forwarding gave: the answer and who served it, or the error that ends it.

    `result` is the caller-shape answer (a dict), an open event stream, an input token
    count, or the gateway's own answer (models); `route` is None when the gateway answered
    itself. `upstream_s` is the time spent awaiting upstreams, and nothing else. `quota`
    is the serving route's reservation (a stream's is settled by the shell when it ends);
    `reroute_reason` says why models tried first were passed over (`quota <id>`).
    """

    route: RouteConfig | None = None
    decision: policy.Decision | None = None
    session: PseudonymSession | None = None
    result: Any = None
    failover: tuple[dict[str, str], ...] = ()
    upstream_s: float = 0.0
    usage: Usage | None = None
    counted_by: str | None = None  # token counting: "upstream" | "estimate"
    error: GatewayError | None = None
    quota: quotas.Admission | None = None
    reroute_reason: str | None = None


async def forward(services: Services, adm: Admission) -> Served:
    """Try each permitted model in order; the first that answers serves the request.

    Obligations are per model (a model hosted at home may need no pseudonymisation), so
    each attempt prepares its own body; the upstream never sees a raw value that its
    decision says to pseudonymise. Rate limits and overloads fail over like other
    retryable failures; when none is left, the caller gets the upstreams' reason.

    Before each attempt the quotas covering it are reserved (`gateway.quota`): a refused
    request never reaches an upstream; a failed attempt's reservation is refunded.
    """
    if adm.endpoint.name in ("models", "model"):
        return Served(result=_model_listing(adm))
    assert adm.plan is not None and adm.body is not None
    failures: list[tuple[str, UpstreamError]] = []
    failover: list[dict[str, str]] = []
    upstream_s = 0.0
    meter = quota.Metering(services.quota_gate, adm.snapshot.quotas, adm.shape,
                           adm.endpoint.name, adm.caller, adm.body, adm.texts) \
        if quota.metered(adm.endpoint.name) else None
    permitted = adm.plan.permitted
    for attempt, (route, decision) in enumerate(permitted, start=1):
        held = None
        if meter is not None:
            try:
                held = await meter.reserve(route)
            except GatewayError as unavailable:  # the gate fails closed
                return Served(decision=decision, failover=tuple(failover),
                              upstream_s=upstream_s, error=unavailable)
            if isinstance(held, quotas.Refusal):
                failover.append({"model": route.name, "code": "quota_exceeded",
                                 "quota": held.quota.id})
                if held.reroute:
                    continue
                return Served(decision=decision, failover=tuple(failover),
                              upstream_s=upstream_s, error=meter.refused())
        body, session = _outgoing(services, adm, decision)
        body = {**body, "model": route.name}
        upstream = services.upstreams[route.name]
        with adm.trace.upstream(route.name, attempt=attempt, provider=route.provider) as span:
            t0 = perf_counter()
            failed: UpstreamError | None = None
            try:
                result = await _attempt(upstream, adm, body, span.traceparent)
            except UpstreamError as exc:
                span.failed(exc.code)
                failed = exc
        if failed is not None:
            exc = failed
            upstream_s += perf_counter() - t0
            if meter is not None:
                await meter.settle(held, None)
            metrics.observe_upstream_error(route.name, exc.code)
            failover.append({"model": route.name, "code": exc.code})
            last = attempt == len(permitted) or not exc.retryable
            # the reason without the message: an upstream's error body may quote the prompt
            log.warning("upstream %s failed: %s (status %s); %s", route.name, exc.code,
                        exc.status, "no failover" if last else "failing over to "
                        + permitted[attempt][0].name,
                        extra={"request_id": adm.request_id, "model": route.name,
                               "code": exc.code})
            if not exc.retryable:
                return Served(decision=decision, failover=tuple(failover),
                              upstream_s=upstream_s, error=GatewayError(
                                  exc.status, exc.code, str(exc)))
            failures.append((route.name, exc))
            continue
        upstream_s += perf_counter() - t0
        usage, counted_by = None, None
        if adm.endpoint.name == "count_tokens":  # a count, not usage: nothing was generated
            counted_by = "upstream" if result is not None else "estimate"
            if result is None:
                result = estimate_input_tokens(adm.shape, adm.body)
        elif isinstance(result, dict):
            usage = usage_of(adm.shape, result)
        if meter is not None and not adm.stream:
            await meter.settle(held, usage)
        return Served(route, decision, session, result, tuple(failover), upstream_s, usage,
                      counted_by, quota=held,
                      reroute_reason=meter.reroute_reason if meter is not None else None)
    first = adm.plan.permitted[0]
    if adm.endpoint.name == "count_tokens":  # an estimate beats no answer, and says so
        estimate = estimate_input_tokens(adm.shape, adm.body)
        return Served(first[0], first[1], None, estimate, tuple(failover), upstream_s,
                      None, "estimate")
    if meter is not None and meter.refusals and not failures:  # no model had room
        return Served(decision=first[1], failover=tuple(failover), upstream_s=upstream_s,
                      error=meter.refused())
    return Served(decision=first[1], failover=tuple(failover), upstream_s=upstream_s,
                  error=_exhausted(failures))


def _outgoing(services: Services, adm: Admission, decision: policy.Decision
              ) -> tuple[dict[str, Any], PseudonymSession | None]:
    """The body for one attempt: pseudonymised where this model's decision says so."""
    assert adm.body is not None
    classes = decision.obligations.pseudonymise
    if not classes or adm.profile is None or adm.profile.classes.isdisjoint(classes):
        return adm.body, None
    session = services.pseudonymiser(classes).session()
    return with_texts(adm.body, session.pseudonymise_many(adm.texts, adm.profile)), session


def _attempt(upstream: Upstream, adm: Admission, body: dict[str, Any],
             traceparent: str | None = None) -> Awaitable[Any]:
    """The upstream call this endpoint makes (the awaitable only: the caller times it);
    `traceparent` names the attempt's span (W3C Trace Context)."""
    name, headers = adm.endpoint.name, adm.provider_headers
    if traceparent is not None:
        headers = {**headers, "traceparent": traceparent}
    if name == "embeddings":
        return upstream.embed(body)
    if name == "count_tokens":
        return upstream.count_tokens(adm.shape, body, headers)
    if adm.stream:
        return upstream.open_stream(adm.shape, body, headers)
    return upstream.chat(adm.shape, body, headers)


def _exhausted(failures: list[tuple[str, UpstreamError]]) -> GatewayError:
    """The error when every permitted upstream failed: timeouts 504; rate limits 429 and
    overloads 503 with the soonest Retry-After an upstream gave; anything else 502."""
    detail = "; ".join(f"{name}: {exc}" for name, exc in failures)
    codes = {exc.code for _, exc in failures}
    if codes == {"upstream_timeout"}:
        return GatewayError(504, "upstream_timeout", f"every permitted upstream timed out "
                            f"({detail})")
    if codes <= {"upstream_rate_limited", "upstream_overloaded"}:
        limited = codes == {"upstream_rate_limited"}
        retry = _soonest([exc.retry_after for _, exc in failures])
        state = "rate limited" if limited else "overloaded"
        return GatewayError(429 if limited else 503,
                            "upstream_rate_limited" if limited else "upstream_overloaded",
                            f"every permitted upstream is {state}; retry later ({detail})",
                            headers={"Retry-After": retry} if retry else None)
    return GatewayError(502, "upstream_error", f"every permitted upstream failed ({detail})")


def _soonest(values: list[str | None]) -> str | None:
    """The soonest Retry-After among the upstreams' (seconds; else the first given)."""
    given = [v.strip() for v in values if v and v.strip()]
    seconds = [v for v in given if v.isdigit()]
    if seconds:
        return min(seconds, key=int)
    return given[0] if given else None


def _model_listing(adm: Admission) -> dict[str, Any]:
    """GET /v1/models (what the caller may use now) or /v1/models/{id}, in its shape."""
    if adm.endpoint.name == "model":
        assert adm.plan is not None
        return _model_entry(adm.shape, adm.plan.route)
    data = [_model_entry(adm.shape, r) for r in adm.listed]
    if adm.shape == "anthropic":
        return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}
    return {"object": "list", "data": data}


def _model_entry(shape: Shape, route: RouteConfig) -> dict[str, Any]:
    if shape == "anthropic":
        return {"type": "model", "id": route.name, "display_name": route.name,
                "created_at": "2026-01-01T00:00:00Z", "lifecycle": "active"}
    return {"id": route.name, "object": "model", "created": 0, "owned_by": route.origin,
            "harbourgate": {"class": route.capability_class, "origin": route.origin,
                            "hosting": route.hosting}}


# -- 4. record ------------------------------------------------------------------------------


def effect(adm: Admission, served: Served | None) -> str:
    """allow | reroute | deny, as the audit record and X-Harbourgate-Decision say it."""
    if adm.error is not None or served is None or served.error is not None:
        return "deny"
    return "allow" if served.route is None or served.route.name == adm.model else "reroute"


def overhead_s(adm: Admission, served: Served | None) -> float:
    """Time spent in the gateway so far: everything but the upstream awaits."""
    upstream = served.upstream_s if served is not None else 0.0
    return max(perf_counter() - adm.started - upstream, 0.0)


def audit_record(adm: Admission, served: Served | None, status: int,
                 code: str | None = None, *, kind: str = "request",
                 usage: Usage | None = None) -> dict[str, Any]:
    """The audit record of a request: the decision and its grounds, the data profile as
    class counts, the end user's subject as a digest; never a raw personal value."""
    decision = served.decision if served is not None and served.decision is not None \
        else adm.decision
    upstream_s = served.upstream_s if served is not None else 0.0
    record: dict[str, Any] = {
        "kind": kind,
        # not `request_id`: in the audit log that names the record a follow-up refers to
        # (`audit.decisions_index`), and a caller chooses this value
        "x_request_id": adm.request_id,
        "api": adm.shape,
        "endpoint": adm.endpoint.name,
        "participant": adm.caller.participant.id,
        "application": adm.caller.application.id,
        "key": adm.caller.key.id,
        "model_requested": adm.model,
        "model_served": served.route.name if served is not None and served.route else None,
        "decision": effect(adm, served),
        "status": status,
        "code": code,
        "policy": adm.snapshot.policy_header,
        "directives": list(adm.snapshot.policy.version.directives),
        "stream": adm.stream,
        "failover": list(served.failover) if served is not None else [],
        "timing_ms": {"gateway": round(overhead_s(adm, served) * 1000, 3),
                      "upstream": round(upstream_s * 1000, 3)},
    }
    if decision is not None:
        record.update(rule=decision.rule, citation=decision.citation, tier=decision.tier,
                      reasons=[r.to_dict() for r in decision.reasons],
                      obligations=decision.obligations.to_dict())
    if adm.profile is not None:
        record["data_profile"] = adm.profile.counts
    if served is not None and served.session is not None:
        record["pseudonymised"] = served.session.counts
    usage = usage or (served.usage if served is not None else None)
    counts = usage.to_dict() if usage is not None else None
    if usage is not None and counts is not None and any(counts.values()):
        record["usage"] = counts
        if served is not None and served.route is not None:
            record["cost"] = quota.cost(served.route, usage)
    if served is not None and served.counted_by is not None:
        record["token_count"] = served.counted_by
        record["input_tokens_counted"] = served.result
    refused_by = served.error.extra.get("quota") if served is not None and served.error \
        else None
    if refused_by is not None:
        record["quota"] = refused_by
    if adm.ctx is not None:
        context = adm.ctx.to_dict()
        sub = adm.ctx.end_user.sub
        context["end_user"]["sub"] = None if sub is None else _subject_digest(sub)
        record["context"] = context
    return record


# -- 5. respond -----------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """What the shell writes: status, headers, and a body or (streams) a `Relay`."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    relay: Relay | None = None
    audit_id: str = ""  # a stream's usage record refers to it


def respond(adm: Admission, served: Served, audit_id: str) -> Answer:
    """The answer in the caller's shape, pseudonyms restored, with the X-Harbourgate-*
    headers; a stream becomes a `Relay` that restores and encodes event by event."""
    headers = answer_headers(adm, served, audit_id)
    result = served.result
    if adm.stream:
        headers[:0] = [(b"content-type", b"text/event-stream; charset=utf-8"),
                       (b"cache-control", b"no-cache")]
        return Answer(200, headers, relay=Relay(adm.shape, served.session), audit_id=audit_id)
    if served.counted_by is not None:
        headers.append((b"x-harbourgate-token-count", served.counted_by.encode()))
        result = {"input_tokens": result} if adm.shape == "anthropic" else {
            "object": "response.input_tokens", "input_tokens": result}
    elif served.session is not None and adm.endpoint.name == "chat":  # not vectors
        map_strings(result, served.session.restore)
    return Answer(200, headers, orjson.dumps(result))


def answer_headers(adm: Admission, served: Served | None,
                   audit_id: str | None) -> list[tuple[bytes, bytes]]:
    out = [(b"x-harbourgate-decision", effect(adm, served).encode()),
           (b"x-harbourgate-policy", adm.snapshot.policy_header.encode()),
           (b"x-harbourgate-overhead-ms", f"{overhead_s(adm, served) * 1000:.3f}".encode())]
    if audit_id is not None:
        out.append((b"x-harbourgate-audit", audit_id.encode()))
    if adm.request_id is not None:
        out.append((b"x-request-id", adm.request_id.encode()))
    if served is None or served.error is not None or served.route is None:
        return out
    name = served.route.name
    out.append((b"x-harbourgate-model", name.encode()))
    if adm.model and name != adm.model:
        out.append((b"x-harbourgate-rerouted-from", adm.model.encode()))
    if served.reroute_reason is not None:
        out.append((b"x-harbourgate-reroute-reason", served.reroute_reason.encode()))
    if served.quota is not None:  # the caller's rate-limit headers
        out += [(k.encode(), v.encode()) for k, v in
                quotas.rate_limit_headers(adm.shape, served.quota, served.quota.now)]
    if served.session is not None and served.session.counts:
        out.append((b"x-harbourgate-pseudonymised", served.session.header_value().encode()))
    obligations = served.decision.obligations if served.decision is not None else None
    if obligations is not None:
        if obligations.notice:
            out.append((b"x-harbourgate-notice",
                        quote(obligations.notice, safe=" ,.;:!?'()/-").encode()))
        if obligations.human_review:
            out.append((b"x-harbourgate-human-review", b"required"))
    return out


class Relay:
    """Turns a stream's caller-shape events into bytes for the wire, restoring pseudonyms
    across event boundaries (`privacy.stream`). A session that issued no token has nothing
    to restore (nor any fragment of one to hold back): its stream is only encoded."""

    __slots__ = ("_restore", "shape")

    def __init__(self, shape: Shape, session: PseudonymSession | None) -> None:
        self.shape = shape
        self._restore = StreamRestore(shape, session) \
            if session is not None and session.tokens_issued else None

    def event(self, event: StreamEvent) -> bytes:
        if self._restore is not None and (extra := self._restore.before(event.data)):
            return b"".join([*(encode_event(self._wrap(e)) for e in extra),
                             encode_event(event)])
        return encode_event(event)

    def end(self) -> bytes:
        """What follows the last event: held-back text, and OpenAI's `[DONE]`."""
        held = b"".join(encode_event(self._wrap(e)) for e in self._restore.finish()) \
            if self._restore is not None else b""
        return held + DONE if self.shape == "openai" else held

    def cut(self, error: GatewayError) -> bytes:
        """The end of a stream broken off: held-back text, then the error event."""
        held = b"".join(encode_event(self._wrap(e)) for e in self._restore.finish()) \
            if self._restore is not None else b""
        return held + error.sse(self.shape)

    def _wrap(self, data: dict[str, Any]) -> StreamEvent:
        return StreamEvent(None if self.shape == "openai" else data.get("type"), data)
