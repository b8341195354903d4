"""Quotas on the request path, in process: reserve before the upstream, settle after,
refund on failure, reroute on exhaustion, 429 `quota_exceeded` in the caller's shape with
the rate-limit headers, and the usage of every answer in the audit log. The clock is
injected, so windows and periods turn over when the test says."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from harbourgate.providers.base import UpstreamError
from harbourgate.quotas import MemoryStore, Price, QuotaGate, QuotaSet, RedisStore, parse_quota
from harbourgate.shapes import estimate_input_tokens
from tests.gateway.doubles import ROUTES, Reply, Rig, request, rig, route

HELLO = [{"role": "user", "content": "hello there"}]
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/v1/chat/completions", {"model": "fable-5", "messages": HELLO}),
    "anthropic": ("/v1/messages", {"model": "fable-5", "max_tokens": 50, "messages": HELLO}),
    "responses": ("/v1/responses", {"model": "fable-5", "input": "hello there"}),
}
NOON = datetime(2026, 11, 26, 12, 0, 10, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def quotas(*items: dict[str, Any]) -> QuotaSet:
    return QuotaSet(parse_quota(item) for item in items)


def metered(*items: dict[str, Any], clock: Clock | None = None, **kw: Any) -> tuple[Rig, Clock]:
    clock = clock or Clock()
    gate = QuotaGate(MemoryStore(clock), clock=clock)
    return rig(quotas=quotas(*items), quota_gate=gate, **kw), clock


def send(r: Rig, shape: str = "openai", headers: dict[str, str] | None = None,
         **changes: Any) -> Reply:
    path, body = BODIES[shape]
    return asyncio.run(request(r.gateway, "POST", path, {**body, **changes}, headers=headers))


def error_of(reply: Reply) -> dict[str, Any]:
    return reply.json()["error"]


KEY_RPM_1 = {"id": "key-minute", "scope": {"key": "key-0"}, "requests_per_minute": 1}


# -- refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["openai", "anthropic", "responses"])
def test_a_key_over_its_per_minute_limit_gets_429_quota_exceeded(shape: str) -> None:
    r, clock = metered(KEY_RPM_1)
    assert send(r, shape).status == 200
    reply = send(r, shape)
    assert reply.status == 429, reply.body
    error = error_of(reply)
    assert error["code"] == "quota_exceeded" and error["quota"] == "key-minute"
    assert error["type"] == "rate_limit_error"
    assert "'key-minute' is exhausted: 1 requests per minute" in error["message"]
    assert reply.json().get("type") == ("error" if shape == "anthropic" else None)
    assert reply.headers["retry-after"] == "50"  # 12:00:10 -> the minute ends at 12:01:00
    if shape == "anthropic":
        assert reply.headers["anthropic-ratelimit-requests-limit"] == "1"
        assert reply.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert reply.headers["anthropic-ratelimit-requests-reset"] == "2026-11-26T12:01:00Z"
        assert "x-ratelimit-limit-requests" not in reply.headers
    else:  # Responses callers use the OpenAI SDK: the OpenAI names
        assert reply.headers["x-ratelimit-limit-requests"] == "1"
        assert reply.headers["x-ratelimit-remaining-requests"] == "0"
        assert reply.headers["x-ratelimit-reset-requests"] == "50s"
    assert len(r.upstreams["fable-5"].seen) == 1  # the refused request never left
    record = r.audit.records[-1]
    assert (record["status"], record["code"], record["quota"]) == (429, "quota_exceeded",
                                                                   "key-minute")
    assert record["decision"] == "deny" and error["audit_id"] == "entry-2"
    assert record["failover"] == [{"model": "fable-5", "code": "quota_exceeded",
                                   "quota": "key-minute"}]
    clock.now += 50  # the next minute
    assert send(r, shape).status == 200


def test_every_quota_covering_a_request_must_pass() -> None:
    r, _ = metered({"id": "whole-acme", "scope": {"participant": "acme"},
                    "requests_per_minute": 100},
                   {"id": "app-2", "scope": {"application": "acme-research"},
                    "requests_per_minute": 2},
                   {"id": "elsewhere", "scope": {"participant": "other"},
                    "requests_per_minute": 1})
    assert [send(r).status for _ in range(2)] == [200, 200]
    reply = send(r)
    assert reply.status == 429 and error_of(reply)["quota"] == "app-2"
    # the headers report the tightest limit
    assert reply.headers["x-ratelimit-limit-requests"] == "2"


def test_a_declared_maximum_over_a_limit_is_refused_up_front() -> None:
    r, _ = metered({"id": "small", "scope": {"key": "key-0"}, "tokens_per_minute": 500})
    reply = send(r, "anthropic", max_tokens=1000)
    assert reply.status == 429
    error = error_of(reply)
    assert error["quota"] == "small" and "alone exceeds quota 'small'" in error["message"]
    assert "lower max_tokens" in error["message"] and not r.upstreams["fable-5"].seen


def test_a_quota_store_that_fails_closed_refuses_with_503_quota_unavailable() -> None:
    gate = QuotaGate(RedisStore("redis://127.0.0.1:1/0", timeout_s=0.2), fail_open=False)
    r = rig(quotas=quotas(KEY_RPM_1), quota_gate=gate)
    for shape in ("openai", "anthropic"):
        reply = send(r, shape)
        assert reply.status == 503 and reply.headers["retry-after"] == "1"
        error = error_of(reply)
        assert error["code"] == "quota_unavailable"
        assert error["type"] == ("overloaded_error" if shape == "anthropic" else "api_error")
        assert "quota store is unreachable" in error["message"]
        assert r.audit.records[-1]["code"] == "quota_unavailable"
    assert not r.upstreams["fable-5"].seen
    assert gate.health()[0] is False


def test_a_quota_store_that_fails_open_counts_in_the_process() -> None:
    gate = QuotaGate(RedisStore("redis://127.0.0.1:1/0", timeout_s=0.2), fail_open=True)
    r = rig(quotas=quotas(KEY_RPM_1), quota_gate=gate)
    assert send(r).status == 200
    assert error_of(send(r))["code"] == "quota_exceeded"  # the per-process counters hold
    assert gate.health()[0] is True and "failing open" in gate.health()[1]


# -- reroute ---------------------------------------------------------------------------------

ALLOCATION = {"id": "acme-fable", "scope": {"participant": "acme", "route": "fable-5"},
              "requests_per_minute": 1, "on_exhausted": "reroute"}


def test_an_exhausted_allocation_reroutes_to_the_next_permitted_model() -> None:
    r, _ = metered(ALLOCATION)
    first = send(r)
    assert first.status == 200 and first.headers["x-harbourgate-model"] == "fable-5"
    assert "x-harbourgate-reroute-reason" not in first.headers
    reply = send(r)
    assert reply.status == 200, reply.body
    assert reply.headers["x-harbourgate-model"] == "mythos-5"
    assert reply.headers["x-harbourgate-decision"] == "reroute"
    assert reply.headers["x-harbourgate-rerouted-from"] == "fable-5"
    assert reply.headers["x-harbourgate-reroute-reason"] == "quota acme-fable"
    assert "x-ratelimit-limit-requests" not in reply.headers  # no quota covers mythos-5
    record = r.audit.records[-1]
    assert record["decision"] == "reroute" and record["model_served"] == "mythos-5"
    assert record["failover"] == [{"model": "fable-5", "code": "quota_exceeded",
                                   "quota": "acme-fable"}]
    assert len(r.upstreams["fable-5"].seen) == 1 and len(r.upstreams["mythos-5"].seen) == 1


def test_no_reroute_when_the_caller_says_fallback_none() -> None:
    r, _ = metered(ALLOCATION)
    assert send(r).status == 200
    reply = send(r, headers={"X-Harbourgate-Fallback": "none"})
    assert reply.status == 429 and error_of(reply)["quota"] == "acme-fable"
    assert not r.upstreams["mythos-5"].seen


def test_429_when_no_permitted_model_has_room_left() -> None:
    r, _ = metered(ALLOCATION, {**ALLOCATION, "id": "acme-mythos",
                                "scope": {"participant": "acme", "route": "mythos-5"},
                                "requests_per_minute": 2})
    assert [send(r).headers["x-harbourgate-model"] for _ in range(3)] == \
        ["fable-5", "mythos-5", "mythos-5"]
    reply = send(r, "anthropic")
    assert reply.status == 429
    error = error_of(reply)
    assert error["quota"] == "acme-fable" and error["type"] == "rate_limit_error"
    assert "no other permitted model has room (mythos-5: quota 'acme-mythos')" in \
        error["message"]
    assert [f["model"] for f in r.audit.records[-1]["failover"]] == ["fable-5", "mythos-5"]


def test_a_refusing_quota_does_not_reroute() -> None:
    r, _ = metered({**ALLOCATION, "on_exhausted": "refuse"})
    assert send(r).status == 200
    assert error_of(send(r))["quota"] == "acme-fable"
    assert not r.upstreams["mythos-5"].seen


# -- settle and refund -----------------------------------------------------------------------

def test_a_failed_attempt_is_refunded_before_the_next_is_reserved() -> None:
    r, _ = metered(KEY_RPM_1)  # one request a minute: a second reservation needs the refund
    r.upstreams["fable-5"].failures.append(UpstreamError("boom"))
    reply = send(r)
    assert reply.status == 200 and reply.headers["x-harbourgate-model"] == "mythos-5"
    assert reply.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-harbourgate-reroute-reason" not in reply.headers  # failover, not a quota
    assert error_of(send(r))["code"] == "quota_exceeded"  # the served attempt counts


def test_a_request_whose_upstream_fails_is_refunded() -> None:
    r, clock = metered(KEY_RPM_1)
    r.upstreams["fable-5"].failures.append(
        UpstreamError("bad field", status=400, code="invalid_request", retryable=False))
    assert send(r).status == 400
    assert send(r).status == 200  # the failed request did not use the minute's one request
    clock.now += 60
    for name in ("fable-5", "mythos-5"):  # every permitted upstream fails
        r.upstreams[name].failures.append(UpstreamError("down"))
    assert send(r).status == 502
    assert send(r).status == 200


def test_an_answer_is_settled_with_its_real_usage() -> None:
    r, _ = metered({"id": "tpm", "scope": {"key": "key-0"}, "tokens_per_minute": 10_000})
    body = BODIES["openai"][1]
    reserved = estimate_input_tokens("openai", body) + 1024  # no declared maximum: 1,024
    first = send(r)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(10_000 - reserved)
    second = send(r)  # the first now counts its real 7 + 5 tokens
    assert second.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 12 - reserved)
    assert second.headers["x-ratelimit-limit-tokens"] == "10000"


def test_a_budget_resets_at_the_period_boundary() -> None:
    clock = Clock(datetime(2026, 11, 26, 23, 59, 30, tzinfo=UTC).timestamp())
    body = BODIES["anthropic"][1]
    reserved = estimate_input_tokens("anthropic", body) + 5  # max_tokens 5
    used = 7 + 2 + 5  # the answer's input (with its 2 cache reads) and output
    budget = 2 * used + reserved - 1  # room for two answers, not a third reservation
    r, _ = metered({"id": "daily", "scope": {"participant": "acme"},
                    "budget": {"tokens": budget, "period": "day"}}, clock=clock)
    assert [send(r, "anthropic", max_tokens=5).status for _ in range(2)] == [200, 200]
    reply = send(r, "anthropic", max_tokens=5)
    assert reply.status == 429 and error_of(reply)["quota"] == "daily"
    assert "a budget of" in error_of(reply)["message"]
    assert reply.headers["retry-after"] == "30"  # to midnight UTC
    assert reply.headers["anthropic-ratelimit-tokens-limit"] == str(budget)
    assert reply.headers["anthropic-ratelimit-tokens-reset"] == "2026-11-27T00:00:00Z"
    clock.now += 29
    assert send(r, "anthropic", max_tokens=5).status == 429  # still the same day
    clock.now += 1  # 00:00:00: a new day, a new budget
    assert send(r, "anthropic", max_tokens=5).status == 200


def test_a_cost_budget_counts_at_the_route_price() -> None:
    priced = (route("fable-5", price=Price(3.0, 15.0)), *ROUTES[1:])
    r, _ = metered({"id": "spend", "scope": {"participant": "acme"},
                    "budget": {"cost": 1.0, "period": "month"}}, routes=priced)
    assert send(r).status == 200
    record = r.audit.records[-1]
    assert record["usage"]["input_tokens"] == 7 and record["usage"]["output_tokens"] == 5
    assert record["cost"] == pytest.approx((7 * 3.0 + 5 * 15.0) / 1e6)
    huge = send(r, max_tokens=100_000)  # up to 1.5 at 15 per million: over the budget alone
    assert huge.status == 429 and "alone exceeds quota 'spend'" in error_of(huge)["message"]


# -- what is metered -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["openai", "anthropic", "responses"])
def test_a_stream_is_settled_and_its_usage_recorded_after_it_ends(shape: str) -> None:
    r, _ = metered({"id": "tpm", "scope": {"key": "key-0"}, "tokens_per_minute": 10_000})
    body = BODIES[shape][1]
    reserved = estimate_input_tokens(shape, body) + (50 if shape == "anthropic" else 1024)
    reply = send(r, shape, stream=True)
    assert reply.status == 200
    names = ("anthropic-ratelimit-tokens-remaining" if shape == "anthropic"
             else "x-ratelimit-remaining-tokens")
    assert reply.headers[names] == str(10_000 - reserved)
    request, usage = r.audit.records
    assert request["kind"] == "request" and "usage" not in request  # committed before the end
    assert usage["kind"] == "usage" and usage["ended"] == "completed"
    assert usage["request_id"] == reply.headers["x-harbourgate-audit"]
    assert usage["usage"]["input_tokens"] == 7 and usage["usage"]["output_tokens"] == 5
    assert usage["model_served"] == "fable-5" and usage["cost"] == 0.0
    after = send(r, shape)
    assert after.headers[names] == str(10_000 - 12 - reserved)  # settled with 7 + 5


def test_a_stream_cut_short_is_settled_with_what_was_delivered() -> None:
    r, _ = metered({"id": "tpm", "scope": {"key": "key-0"}, "tokens_per_minute": 10_000})
    r.upstreams["fable-5"].stream_options = {"fail": UpstreamError("connection reset")}
    assert send(r, stream=True).status == 200
    kinds = [rec["kind"] for rec in r.audit.records]
    assert kinds == ["request", "stream_interrupted", "usage"]
    follow_up = r.audit.records[2]
    assert follow_up["ended"] == "cut" and follow_up["usage"]["input_tokens"] == 7
    r.upstreams["fable-5"].stream_options = {}
    body = BODIES["openai"][1]
    after = send(r)
    reserved = estimate_input_tokens("openai", body) + 1024
    assert after.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 7 - reserved)


def test_token_counting_and_model_lookup_are_not_metered() -> None:
    r, _ = metered(KEY_RPM_1)
    r.upstreams["fable-5"].count = 42
    for _ in range(3):
        reply = asyncio.run(request(r.gateway, "POST", "/v1/messages/count_tokens",
                                    {"model": "fable-5", "messages": HELLO}))
        assert reply.status == 200 and "anthropic-ratelimit-requests-limit" not in reply.headers
        assert asyncio.run(request(r.gateway, "GET", "/v1/models/fable-5")).status == 200
    assert all("usage" not in rec for rec in r.audit.records)
    assert send(r).status == 200  # the minute's one request is still there


def test_embeddings_reserve_no_output_and_record_their_prompt_tokens() -> None:
    r, _ = metered({"id": "tpm", "scope": {"key": "key-0"}, "tokens_per_minute": 100})
    reply = asyncio.run(request(r.gateway, "POST", "/v1/embeddings",
                                {"model": "embed-small", "input": ["hello there"]}))
    assert reply.status == 200, reply.body  # 1,024 reserved for output would not fit
    assert reply.headers["x-ratelimit-limit-tokens"] == "100"
    record = r.audit.records[-1]
    assert record["usage"]["input_tokens"] == 2 and record["usage"]["output_tokens"] == 0
    tokens = asyncio.run(request(r.gateway, "POST", "/v1/embeddings",
                                 {"model": "embed-small", "input": [list(range(150))]}))
    assert tokens.status == 429  # 150 token ids: over the limit alone
    assert "alone exceeds" in error_of(tokens)["message"]


def test_answers_no_quota_covers_carry_no_rate_limit_headers() -> None:
    r, _ = metered({"id": "other", "scope": {"participant": "other"},
                    "requests_per_minute": 1})
    reply = send(r)
    assert reply.status == 200
    assert not [h for h in reply.headers if "ratelimit" in h]
