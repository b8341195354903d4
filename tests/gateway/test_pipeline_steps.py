"""The steps of the request path, called directly against an in-memory snapshot: no
database, no server, no ASGI."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from time import perf_counter
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.gateway import pipeline
from harbourgate.gateway.errors import GatewayError
from harbourgate.identity.attestation import UNKNOWN, EndUser
from harbourgate.policy import UNKNOWN_END_USER, DataFacts, EndUserFacts
from harbourgate.privacy import Pseudonymiser, Scanner
from harbourgate.providers.base import StreamEvent, UpstreamError
from harbourgate.providers.sse import DONE, encode_event
from tests.gateway.doubles import HKID, KEY, PHONE, SUSPENDED_KEY, rig, snapshot

HEADERS = {b"authorization": f"Bearer {KEY}".encode(), b"x-harbourgate-data-origin": b"HK"}
CHAT = pipeline.ENDPOINTS["/v1/chat/completions"]


def admit(body: Any, *, endpoint: pipeline.Endpoint = CHAT, headers: dict[bytes, bytes] = HEADERS,
          model_id: str | None = None, services: pipeline.Services | None = None
          ) -> pipeline.Admission:
    snap = snapshot()
    services = services or rig().gateway.services
    caller = pipeline.identify(snap, headers)
    raw = body if isinstance(body, bytes | GatewayError) else orjson.dumps(body)
    return pipeline.admit(services, snap, endpoint, endpoint.shape, caller, headers, raw,
                          started=perf_counter(), model_id=model_id)


def chat(text: str = "hello", model: str = "fable-5", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


def test_identify_takes_either_header_and_refuses_unknown_keys() -> None:
    snap = snapshot()
    assert pipeline.identify(snap, {b"x-api-key": KEY.encode()}).application.id == \
        "acme-research"
    for headers in ({}, {b"authorization": b"Basic abc"}, {b"x-api-key": b"sk-nope"}):
        with pytest.raises(GatewayError) as exc:
            pipeline.identify(snap, headers)
        assert exc.value.status == 401 and exc.value.code == "invalid_api_key"


def test_admit_profiles_builds_the_context_once_and_plans() -> None:
    adm = admit(chat(f"HKID {HKID}"))
    assert adm.error is None and adm.model == "fable-5" and not adm.stream
    assert adm.profile is not None and adm.profile.counts == {"hk_id": 1}
    assert adm.ctx is not None and adm.ctx.data.origin == "HK"
    assert adm.ctx.data.classes == {"hk_id": 1}
    assert adm.plan is not None
    assert [r.name for r, _ in adm.plan.permitted] == ["fable-5", "mythos-5"]


@pytest.mark.parametrize(("body", "status", "code", "param"), [
    (b"{", 400, "invalid_request", None),
    ({"model": "fable-5"}, 400, "invalid_request", "messages"),
    (chat(model="no-such-model"), 404, "model_not_found", "model"),
    (GatewayError(413, "request_too_large", "too big"), 413, "request_too_large", None),
])
def test_admit_returns_refusals_as_values(body: Any, status: int, code: str,
                                          param: str | None) -> None:
    adm = admit(body)
    assert adm.error is not None
    assert (adm.error.status, adm.error.code, adm.error.param) == (status, code, param)
    record = pipeline.audit_record(adm, None, adm.error.status, adm.error.code)
    assert record["decision"] == "deny" and record["application"] == "acme-research"


def test_a_policy_refusal_carries_the_decision_for_its_record() -> None:
    headers = {b"authorization": f"Bearer {SUSPENDED_KEY}".encode()}
    adm = admit(chat(), headers=headers)
    assert adm.error is not None and adm.error.code == "participant_suspended"
    assert adm.decision is not None and not adm.decision.allowed
    record = pipeline.audit_record(adm, None, adm.error.status, adm.error.code)
    assert record["rule"] == adm.decision.rule and record["participant"] == "shady"


def test_forward_pseudonymises_per_attempt_and_fails_over_on_rate_limits() -> None:
    r = rig()
    r.upstreams["fable-5"].failures.append(
        UpstreamError("slow down", status=429, code="upstream_rate_limited", retry_after="7"))
    adm = admit(chat(f"HKID {HKID}, call {PHONE}"), services=r.gateway.services)
    served = asyncio.run(pipeline.forward(r.gateway.services, adm))
    assert served.error is None and served.route is not None
    assert served.route.name == "mythos-5"
    assert served.failover == ({"model": "fable-5", "code": "upstream_rate_limited"},)
    for upstream in ("fable-5", "mythos-5"):  # each attempt had its own pseudonymised body
        sent = r.upstreams[upstream].seen[0][2]["messages"][0]["content"]
        assert HKID not in sent and "[HK_ID_1]" in sent and PHONE not in sent
    assert served.session is not None and served.session.counts == {"hk_id": 1, "phone": 1}
    assert served.usage is not None and served.usage.cache_read_tokens == 2
    assert pipeline.effect(adm, served) == "reroute"
    assert adm.body is not None and adm.body["messages"][0]["content"].startswith("HKID A12")


@pytest.mark.parametrize(("codes", "status", "code", "retry"), [
    (["upstream_rate_limited", "upstream_rate_limited"], 429, "upstream_rate_limited", "3"),
    (["upstream_overloaded", "upstream_overloaded"], 503, "upstream_overloaded", "3"),
    (["upstream_rate_limited", "upstream_overloaded"], 503, "upstream_overloaded", "3"),
    (["upstream_timeout", "upstream_timeout"], 504, "upstream_timeout", None),
    (["upstream_error", "upstream_rate_limited"], 502, "upstream_error", None),
])
def test_when_every_upstream_refuses_the_caller_gets_their_reason(
        codes: list[str], status: int, code: str, retry: str | None) -> None:
    r = rig()
    statuses = {"upstream_rate_limited": 429, "upstream_overloaded": 503,
                "upstream_timeout": 504, "upstream_error": 502}
    for (name, c), after in zip(zip(("fable-5", "mythos-5"), codes, strict=True), ("9", "3"),
                                strict=True):
        r.upstreams[name].failures.append(
            UpstreamError(f"{name} said no", status=statuses[c], code=c, retry_after=after))
    adm = admit(chat(), services=r.gateway.services)
    served = asyncio.run(pipeline.forward(r.gateway.services, adm))
    assert served.error is not None
    assert (served.error.status, served.error.code) == (status, code)
    assert served.error.headers.get("Retry-After") == retry
    assert "fable-5 said no" in served.error.message and "mythos-5 said no" in served.error.message
    record = pipeline.audit_record(adm, served, served.error.status, served.error.code)
    assert [f["code"] for f in record["failover"]] == codes and record["decision"] == "deny"


def test_a_request_the_upstream_refuses_is_not_retried_elsewhere() -> None:
    r = rig()
    r.upstreams["fable-5"].failures.append(
        UpstreamError("'logprobs' is not supported", status=400, code="invalid_request",
                      retryable=False))
    adm = admit(chat(), services=r.gateway.services)
    served = asyncio.run(pipeline.forward(r.gateway.services, adm))
    assert served.error is not None and served.error.status == 400
    assert "logprobs" in served.error.message and not r.upstreams["mythos-5"].seen


def test_the_record_keeps_no_raw_personal_data() -> None:
    r = rig()
    adm = admit(chat(f"HKID {HKID}, call {PHONE}"), services=r.gateway.services)
    served = asyncio.run(pipeline.forward(r.gateway.services, adm))
    record = pipeline.audit_record(adm, served, 200)
    text = orjson.dumps(record).decode()
    assert HKID not in text and "9123" not in text
    assert record["data_profile"] == {"hk_id": 1, "phone": 1}
    assert record["pseudonymised"] == {"hk_id": 1, "phone": 1}
    assert record["usage"] == {"input_tokens": 7, "output_tokens": 5, "cache_read_tokens": 2,
                               "cache_write_tokens": 0, "reasoning_tokens": 0}
    assert record["timing_ms"]["upstream"] >= 0


def test_respond_restores_the_answer_and_sets_the_headers() -> None:
    r = rig()
    adm = admit(chat(f"HKID {HKID}"), services=r.gateway.services)
    served = asyncio.run(pipeline.forward(r.gateway.services, adm))
    answer = pipeline.respond(adm, served, "entry-1")
    body = orjson.loads(answer.body)
    message = body["choices"][0]["message"]
    assert HKID in message["content"] and HKID in message["tool_calls"][0]["function"][
        "arguments"]
    headers = dict(answer.headers)
    assert headers[b"x-harbourgate-decision"] == b"allow"
    assert headers[b"x-harbourgate-audit"] == b"entry-1"
    assert headers[b"x-harbourgate-pseudonymised"] == b"hk_id=1"
    assert float(headers[b"x-harbourgate-overhead-ms"]) >= 0


def test_overhead_excludes_only_the_upstream_await() -> None:
    r = rig()
    r.upstreams["fable-5"].delay = 0.3
    adm = admit(chat(f"HKID {HKID}"), services=r.gateway.services)
    served = asyncio.run(pipeline.forward(r.gateway.services, adm))
    assert served.upstream_s >= 0.3  # the await, measured as upstream time ...
    before = perf_counter() - adm.started - served.upstream_s
    overhead = pipeline.overhead_s(adm, served)
    after = perf_counter() - adm.started - served.upstream_s
    assert before <= overhead <= after  # ... and everything else (pseudonymising) as ours


def test_model_lookup_and_listing_are_decided() -> None:
    lookup = pipeline.MODEL_LOOKUP
    adm = admit(b"", endpoint=lookup, model_id="mythos-5")
    served = asyncio.run(pipeline.forward(rig().gateway.services, adm))
    assert served.result["id"] == "mythos-5" and adm.plan is not None
    suspended = {b"authorization": f"Bearer {SUSPENDED_KEY}".encode()}
    adm = admit(b"", endpoint=lookup, model_id="mythos-5", headers=suspended)
    assert adm.error is not None and adm.error.code == "model_not_found"
    assert "it may use: none" in adm.error.message
    listing = admit(b"", endpoint=pipeline.ENDPOINTS["/v1/models"])
    assert {r.name for r in listing.listed} == {"fable-5", "mythos-5", "lantau-7",
                                                "embed-small"}


def test_services_share_one_pseudonymiser_per_class_set() -> None:
    services = pipeline.Services({}, Scanner(), rig().gateway.verifier)
    assert services.pseudonymiser(("phone",)) is services.pseudonymiser(("phone",))


def relay_chunk(text: str) -> StreamEvent:
    return StreamEvent(None, {"id": "c", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def test_relay_restores_a_token_split_across_chunks() -> None:
    session = Pseudonymiser(["phone"]).session()
    assert session.pseudonymise(PHONE) == "[PHONE_1]"
    relay = pipeline.Relay("openai", session)
    wire = b"".join(relay.event(relay_chunk(p)) for p in ("call [PH", "ONE_1] or [P")) \
        + relay.end()
    texts = [orjson.loads(line[6:])["choices"][0]["delta"]["content"]
             for line in wire.split(b"\n\n") if line.startswith(b"data: {")]
    assert texts == ["call ", f"{PHONE} or ", "[P"]  # the unfinished token as written
    assert wire.endswith(DONE)


def test_relay_of_a_session_that_issued_no_token_only_encodes() -> None:
    pieces = ("call [PH", "ONE_1] or [P")
    relay = pipeline.Relay("openai", Pseudonymiser(["phone"]).session())
    assert b"".join(relay.event(relay_chunk(p)) for p in pieces) + relay.end() == \
        b"".join(encode_event(relay_chunk(p)) for p in pieces) + DONE


def test_end_user_facts_are_built_once_per_verified_user_and_equal_a_fresh_build() -> None:
    user = EndUser(sub="user-1", nationality=("HK",), residence="HK",
                   verification_level="document", issuer="https://id.example")
    twin = dataclasses.replace(user)  # equal, but another object: built anew
    facts = pipeline._end_user_facts(user)
    assert facts == EndUserFacts(verified=True, nationality=("HK",), residence="HK",
                                 verification_level="document",
                                 issuer="https://id.example", sub="user-1")
    assert pipeline._end_user_facts(user) is facts
    assert pipeline._end_user_facts(twin) == facts
    assert pipeline._end_user_facts(UNKNOWN) is UNKNOWN_END_USER
    other = dataclasses.replace(user, sub="user-2", residence="CN")
    assert pipeline._end_user_facts(other).sub == "user-2"
    assert pipeline._end_user_facts(other).residence == "CN"


@given(st.text(max_size=40))
def test_the_record_names_an_end_user_by_a_digest_of_the_subject(sub: str) -> None:
    expected = "sha256:" + hashlib.sha256(sub.encode()).hexdigest()[:16]
    assert pipeline._subject_digest(sub) == expected


@pytest.mark.parametrize("origin,region", [(None, None), ("CN", None), ("CN", "CN-GD-SZ")])
@pytest.mark.parametrize("text", ["hello", f"HKID {HKID}, call {PHONE}"])
def test_the_context_holds_the_data_facts_of_the_request(origin: str | None,
                                                         region: str | None,
                                                         text: str) -> None:
    """Requests without origin or personal data share one `DataFacts`; it equals (and
    records as) the facts built for the request."""
    adm = admit(chat(text))
    assert adm.ctx is not None and adm.profile is not None
    snap = snapshot()
    ctx = pipeline._context(snap, adm.caller, CHAT, "openai", snap.routes["fable-5"], "auto",
                            UNKNOWN_END_USER, origin, region, adm.profile)
    expected = DataFacts(origin=origin, region=region,
                         classes=adm.profile.counts if adm.profile else {})
    assert ctx.data == expected
    assert ctx.to_dict()["data"] == {"origin": origin, "region": region,
                                     "classes": dict(expected.classes)}
    assert ctx.request.api == "openai" and ctx.request.endpoint == "chat"
    assert ctx.model == snap.facts["fable-5"] and ctx.end_user is UNKNOWN_END_USER
