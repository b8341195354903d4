"""The gate: reserve before the call, settle after; every covering quota must pass."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harbourgate.quotas import (
    Admission,
    MemoryStore,
    Price,
    QuotaGate,
    QuotaSet,
    Refusal,
    RequestFacts,
    SqliteStore,
    parse_quota,
    rate_limit_headers,
)
from harbourgate.quotas.stores import CounterStore

JUNE_12 = 1_781_222_400.0  # 2026-06-12T00:00:00Z


@dataclass
class Usage:
    input_tokens: int
    output_tokens: int


class Clock:
    def __init__(self, now: float = JUNE_12) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(route: str = "fable-5", *, key: str = "key_1", input_tokens: int = 100,
            max_out: int | None = 100, participant: str = "acme",
            application: str = "acme-research") -> RequestFacts:
    return RequestFacts(participant, application, key, route, input_tokens, max_out)


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CounterStore]:
    made: CounterStore = MemoryStore() if request.param == "memory" else \
        SqliteStore(tmp_path / "counters.db")
    yield made
    made.close()


def gate_of(store: CounterStore, clock: Clock) -> QuotaGate:
    return QuotaGate(store, clock=clock)


def test_requests_per_minute_and_the_reset(store: CounterStore) -> None:
    clock = Clock(JUNE_12 + 10)
    gate = gate_of(store, clock)
    quotas = QuotaSet([parse_quota({"id": "acme-rpm", "scope": {"participant": "acme"},
                                    "requests_per_minute": 3})])
    outcomes = [gate.reserve(quotas, request()) for _ in range(4)]
    assert [type(o).__name__ for o in outcomes] == ["Admission"] * 3 + ["Refusal"]
    refusal = outcomes[3]
    assert isinstance(refusal, Refusal)
    assert refusal.quota.id == "acme-rpm" and refusal.code == "quota_exceeded"
    assert refusal.retry_after == 50  # the minute ends at :60
    assert "acme-rpm" in refusal.message and "3 requests per minute" in refusal.message
    assert not refusal.reroute
    clock.now = JUNE_12 + 59.999
    assert isinstance(gate.reserve(quotas, request()), Refusal)
    clock.now = JUNE_12 + 60  # the boundary opens the next window
    assert isinstance(gate.reserve(quotas, request()), Admission)


def test_only_covering_quotas_count_and_all_of_them_must_pass(store: CounterStore) -> None:
    gate = gate_of(store, Clock())
    quotas = QuotaSet([
        parse_quota({"id": "p", "scope": {"participant": "acme"}, "requests_per_minute": 5}),
        parse_quota({"id": "a", "scope": {"application": "acme-research"},
                     "requests_per_minute": 4}),
        parse_quota({"id": "k", "scope": {"key": "key_1"}, "requests_per_minute": 3}),
        parse_quota({"id": "r", "scope": {"participant": "acme", "route": "qwen-local"},
                     "requests_per_minute": 1}),
        parse_quota({"id": "other", "scope": {"participant": "globex"},
                     "requests_per_minute": 1}),
    ])
    assert isinstance(gate.reserve(quotas, request("qwen-local")), Admission)
    second = gate.reserve(quotas, request("qwen-local"))
    assert isinstance(second, Refusal) and second.quota.id == "r"
    # the refused request reserved nothing: the key still has two requests left
    assert isinstance(gate.reserve(quotas, request("fable-5")), Admission)
    assert isinstance(gate.reserve(quotas, request("fable-5")), Admission)
    third = gate.reserve(quotas, request("fable-5"))
    assert isinstance(third, Refusal) and third.quota.id == "k"
    # another key of the application runs into the application's limit (4)
    assert isinstance(gate.reserve(quotas, request(key="key_2")), Admission)
    fifth = gate.reserve(quotas, request(key="key_2"))
    assert isinstance(fifth, Refusal) and fifth.quota.id == "a"
    # nobody else is touched
    assert gate.reserve(quotas, request(participant="initech", application="x",
                                        key="key_9")).governed is False


def test_tokens_are_reserved_then_settled_with_the_real_usage(store: CounterStore) -> None:
    clock = Clock()
    gate = gate_of(store, clock)
    quotas = QuotaSet([parse_quota({"id": "tpm", "scope": {"key": "key_1"},
                                    "tokens_per_minute": 1000})])
    first = gate.reserve(quotas, request(input_tokens=100, max_out=500))
    assert isinstance(first, Admission)
    assert store.read([first.held[0].key]) == [600]
    second = gate.reserve(quotas, request(input_tokens=100, max_out=500))
    assert isinstance(second, Refusal) and second.metric == "tokens"  # 600 + 600 > 1000
    gate.settle(first, Usage(100, 20))
    assert store.read([first.held[0].key]) == [120]
    assert isinstance(gate.reserve(quotas, request(input_tokens=100, max_out=500)), Admission)
    gate.settle(first, Usage(100, 900))  # settling twice changes nothing
    assert store.read([first.held[0].key]) == [720]


def test_a_failed_upstream_is_refunded(store: CounterStore) -> None:
    gate = gate_of(store, Clock())
    quotas = QuotaSet([parse_quota({"id": "q", "scope": {"key": "key_1"},
                                    "requests_per_minute": 1, "tokens_per_minute": 5000,
                                    "budget": {"tokens": 10000, "period": "day"}})])
    held = gate.reserve(quotas, request())
    assert isinstance(held, Admission)
    assert isinstance(gate.reserve(quotas, request()), Refusal)
    gate.settle(held, None)
    assert store.read([h.key for h in held.held]) == [0, 0, 0]
    assert isinstance(gate.reserve(quotas, request()), Admission)


def test_a_declared_maximum_over_a_budget_is_refused_up_front(store: CounterStore) -> None:
    gate = gate_of(store, Clock())
    quotas = QuotaSet([parse_quota({"id": "small", "scope": {"key": "key_1"},
                                    "budget": {"tokens": 1000, "period": "month"}})])
    refusal = gate.reserve(quotas, request(input_tokens=200, max_out=900))
    assert isinstance(refusal, Refusal) and refusal.up_front
    assert refusal.message.startswith("this request's declared maximum of 1100 tokens (input "
                                      "200 + max_tokens 900) alone exceeds quota 'small': a "
                                      "budget of 1000 tokens per month")
    assert refusal.retry_after == 19 * 86_400  # June 12 to July 1
    # without a declared maximum the reservation is capped and the request goes through
    assert isinstance(gate.reserve(quotas, request(input_tokens=200, max_out=None)), Admission)


def test_cost_budgets_use_the_route_price(store: CounterStore) -> None:
    gate = gate_of(store, Clock())
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    quotas = QuotaSet([parse_quota({"id": "dollar", "scope": {"participant": "acme"},
                                    "budget": {"cost": 0.01, "period": "day"}})])
    # 100 in + 500 out = 0.0003 + 0.0075 = 0.0078 <= 0.01
    first = gate.reserve(quotas, request(input_tokens=100, max_out=500), price)
    assert isinstance(first, Admission)
    assert isinstance(gate.reserve(quotas, request(input_tokens=100, max_out=500), price),
                      Refusal)
    gate.settle(first, Usage(100, 10))  # really 0.00045
    assert store.read([first.held[0].key]) == [450_000]  # in billionths
    too_big = gate.reserve(quotas, request(input_tokens=100, max_out=1000), price)
    assert isinstance(too_big, Refusal) and too_big.up_front and "costing up to" in \
        too_big.message


def test_reroute_is_offered_only_when_every_refusing_quota_says_so(store: CounterStore) -> None:
    gate = gate_of(store, Clock())
    quotas = QuotaSet([
        parse_quota({"id": "alloc", "scope": {"participant": "acme", "route": "qwen-local"},
                     "requests_per_minute": 1, "on_exhausted": "reroute"}),
        parse_quota({"id": "key", "scope": {"key": "key_1"}, "requests_per_minute": 2}),
    ])
    assert isinstance(gate.reserve(quotas, request("qwen-local")), Admission)
    over = gate.reserve(quotas, request("qwen-local"))
    assert isinstance(over, Refusal) and over.reroute and over.quota.id == "alloc"
    assert isinstance(gate.reserve(quotas, request("glm-5.2")), Admission)  # the reroute
    both = gate.reserve(quotas, request("qwen-local"))
    assert isinstance(both, Refusal) and not both.reroute


def test_headers_in_each_convention() -> None:
    clock = Clock(JUNE_12 + 30)
    gate = QuotaGate(MemoryStore(), clock=clock)
    quotas = QuotaSet([
        parse_quota({"id": "wide", "scope": {"participant": "acme"}, "requests_per_minute": 100,
                     "tokens_per_minute": 10000}),
        parse_quota({"id": "narrow", "scope": {"key": "key_1"}, "requests_per_minute": 10}),
    ])
    admitted = gate.reserve(quotas, request(input_tokens=50, max_out=50))
    assert isinstance(admitted, Admission) and admitted.governed
    assert dict(rate_limit_headers("openai", admitted, clock.now)) == {
        "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "30s", "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "9900", "x-ratelimit-reset-tokens": "30s"}
    assert rate_limit_headers("responses", admitted, clock.now) == \
        rate_limit_headers("openai", admitted, clock.now)
    assert dict(rate_limit_headers("anthropic", admitted, clock.now)) == {
        "anthropic-ratelimit-requests-limit": "10",
        "anthropic-ratelimit-requests-remaining": "9",
        "anthropic-ratelimit-requests-reset": "2026-06-12T00:01:00Z",
        "anthropic-ratelimit-tokens-limit": "10000",
        "anthropic-ratelimit-tokens-remaining": "9900",
        "anthropic-ratelimit-tokens-reset": "2026-06-12T00:01:00Z"}
    for _ in range(9):
        gate.reserve(quotas, request(input_tokens=50, max_out=50))
    refused = gate.reserve(quotas, request())
    assert isinstance(refused, Refusal)
    headers = dict(rate_limit_headers("openai", refused, clock.now))
    assert headers["retry-after"] == "30" and headers["x-ratelimit-remaining-requests"] == "0"
    ungoverned = gate.reserve(quotas, request(participant="globex", key="key_9"))
    assert rate_limit_headers("openai", ungoverned, clock.now) == []


# --- property: any interleaving of reservations, settlements and time ---------------------

RPM, TPM, DAILY = 5, 3000, 8000
_examples = itertools.count()

operations = st.lists(st.one_of(
    st.tuples(st.just("reserve"), st.integers(0, 400), st.integers(1, 800)),
    st.tuples(st.just("settle"), st.integers(0, 50), st.integers(0, 1500)),
    st.tuples(st.just("fail"), st.integers(0, 50), st.just(0)),
    st.tuples(st.just("wait"), st.integers(1, 40), st.just(0)),
), max_size=60)


@dataclass
class Model:
    """The rules, written out once more: what every counter must hold."""

    counters: dict[str, int] = field(default_factory=dict)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_the_gate_agrees_with_the_rules_under_any_interleaving(store: CounterStore,
                                                               ops: list) -> None:
    clock = Clock(JUNE_12 + 1)
    gate = gate_of(store, clock)
    # a fresh quota id per example: the store outlives the examples
    quota = parse_quota({"id": f"prop-{next(_examples)}", "scope": {"participant": "acme"},
                         "requests_per_minute": RPM, "tokens_per_minute": TPM,
                         "budget": {"tokens": DAILY, "period": "day"}})
    quotas = QuotaSet([quota])
    model: dict[str, int] = {}
    open_: list[tuple[Admission, dict[str, int], int]] = []
    net_in_minute: dict[int, int] = {}  # admitted less refunded, per minute window
    for op, a, b in ops:
        minute = int(clock.now // 60 * 60)
        day = int(clock.now // 86_400 * 86_400)
        keys = {"requests": f"{quota.id}:requests:{minute}",
                "tokens": f"{quota.id}:tokens:{minute}",
                "budget_tokens": f"{quota.id}:budget_tokens:{day}"}
        if op == "reserve":
            amounts = {"requests": 1, "tokens": a + b, "budget_tokens": a + b}
            limits = {"requests": RPM, "tokens": TPM, "budget_tokens": DAILY}
            up_front = any(amounts[m] > limits[m] for m in ("tokens", "budget_tokens"))
            fits = not up_front and all(model.get(keys[m], 0) + amounts[m] <= limits[m]
                                        for m in keys)
            outcome = gate.reserve(quotas, request(input_tokens=a, max_out=b))
            assert isinstance(outcome, Admission) == fits, (op, a, b, model)
            if fits:
                assert isinstance(outcome, Admission)
                for m in keys:
                    model[keys[m]] = model.get(keys[m], 0) + amounts[m]
                held = {keys[m]: amounts[m] for m in keys}
                open_.append((outcome, held, minute))
                net_in_minute[minute] = net_in_minute.get(minute, 0) + 1
            elif up_front:
                assert isinstance(outcome, Refusal) and outcome.up_front
        elif op in ("settle", "fail") and open_:
            admission, held, at = open_.pop(a % len(open_))
            if op == "fail":
                gate.settle(admission, None)
                net_in_minute[at] -= 1
                for k, amount in held.items():
                    model[k] -= amount
            else:
                gate.settle(admission, Usage(admission.request.input_tokens, b))
                real = admission.request.input_tokens + b
                for k, amount in held.items():
                    model[k] += (1 if ":requests:" in k else real) - amount
        elif op == "wait":
            clock.now += a
        assert store.read(list(model)) == list(model.values())
        assert all(count <= RPM for count in net_in_minute.values())
