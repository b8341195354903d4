"""The compiled engine: semantics, determinism, and agreement with the explainer."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate import policy
from harbourgate.directives import Directive
from harbourgate.policy import ApplicationFacts, Context, DataFacts, EndUserFacts

from .conftest import FABLE, GLM, JUNE_DIRECTIVE, QWEN, SHIPPED, T, make_context
from .strategies import MODELS, contexts


@settings(max_examples=400)
@given(contexts())
def test_compiled_decide_agrees_with_the_interpreting_explainer(
        snapshot: policy.PolicySnapshot, ctx: Context) -> None:
    assert snapshot.decide(ctx) == snapshot.explain(ctx).decision


@settings(max_examples=200)
@given(contexts())
def test_the_same_context_and_version_always_give_the_same_decision(
        bundle: policy.Bundle, ctx: Context) -> None:
    directive = Directive.from_dict(JUNE_DIRECTIVE)
    first, second = policy.compile(bundle, [directive]), policy.compile(bundle, [directive])
    assert str(first.version) == str(second.version)
    rebuilt = Context.from_dict(json.loads(json.dumps(ctx.to_dict())))
    assert first.decide(ctx) == second.decide(rebuilt) == first.decide(ctx)


@settings(max_examples=200)
@given(contexts())
def test_decide_each_equals_deciding_each_candidate(snapshot: policy.PolicySnapshot,
                                                    ctx: Context) -> None:
    assert snapshot.decide_each(ctx, MODELS) == [snapshot.decide(ctx.with_model(m))
                                                  for m in MODELS]


@settings(max_examples=300)
@given(contexts())
def test_deny_overrides_allow_and_a_deny_carries_no_obligations(
        snapshot: policy.PolicySnapshot, ctx: Context) -> None:
    explanation = snapshot.explain(ctx)
    fired_denies = [t.rule for t in explanation.rules if t.fired and t.rule.kind == "deny"]
    decision = snapshot.decide(ctx)
    assert (decision.effect == "deny") == bool(fired_denies)
    if fired_denies:
        assert decision.code in policy.vocab.DENY_CODES
        assert decision.status in (403, 451)
        assert decision.obligations == policy.Obligations()
        assert decision.model_dependent == all(r.model_dependent for r in fired_denies)
    else:
        assert decision.code is None and decision.status is None


@settings(max_examples=300)
@given(contexts())
def test_an_unknown_end_user_is_never_inside_a_directive(snapshot: policy.PolicySnapshot,
                                                         ctx: Context) -> None:
    ctx = replace(ctx, end_user=EndUserFacts())
    if ctx.model.name in ("fable-5", "mythos-5") and ctx.request.time >= datetime(
            2026, 6, 12, tzinfo=UTC):
        decision = snapshot.decide(ctx)
        assert decision.effect == "deny"
        assert "directive:us-doc-2026-06-12" in {r.rule for r in decision.reasons}


def test_the_version_names_the_bundle_hash_and_the_directives(
        bundle: policy.Bundle) -> None:
    other = dict(JUNE_DIRECTIVE, id="d2", models=["glm-5.2"])
    snap = policy.compile(bundle, [Directive.from_dict(JUNE_DIRECTIVE),
                                   Directive.from_dict(other)])
    assert str(snap.version) == f"2026.06+sha256:{bundle.digest[:8]}; " \
                                "directives=us-doc-2026-06-12,d2"
    assert str(policy.compile(bundle).version) == f"2026.06+sha256:{bundle.digest[:8]}"


def test_a_directive_overrides_the_bundle_and_the_gateway_can_reroute(
        snapshot: policy.PolicySnapshot) -> None:
    ctx = make_context(nationality=("HK",))
    fable, glm, qwen = snapshot.decide_each(ctx, [FABLE, GLM, QWEN])
    assert (fable.effect, fable.code, fable.status) == ("deny", "legal_restriction", 451)
    assert fable.model_dependent
    assert fable.rule == "directive:us-doc-2026-06-12"
    assert fable.citation == "Order to Anthropic of 2026-06-12"
    assert glm.allowed and qwen.allowed
    us = snapshot.decide(make_context(nationality=("HK", "US")))
    assert us.allowed


def test_an_unverified_nationality_does_not_satisfy_a_directive(
        snapshot: policy.PolicySnapshot) -> None:
    decision = snapshot.decide(make_context(nationality=("US",), verified=False))
    assert decision.code == "legal_restriction"


def test_directive_time_bounds_to_the_second(bundle: policy.Bundle) -> None:
    bounded = dict(JUNE_DIRECTIVE, effective_until="2026-07-01T00:00:00Z")
    snap = policy.compile(bundle, [Directive.from_dict(bounded)])
    start = datetime(2026, 6, 12, tzinfo=UTC)
    end = datetime(2026, 7, 1, tzinfo=UTC)
    second = timedelta(seconds=1)
    outcomes = [snap.decide(make_context(nationality=("HK",), time=t)).effect
                for t in (start - second, start, end - second, end)]
    assert outcomes == ["allow", "deny", "deny", "allow"]


def test_a_tier_refusal_is_not_model_dependent_and_explains_the_tier(
        snapshot: policy.PolicySnapshot) -> None:
    decision = snapshot.decide(make_context(("social_scoring",), model=GLM))
    assert (decision.code, decision.status, decision.model_dependent) == \
        ("tier_prohibited", 403, False)
    assert decision.rule == "hk.deny.prohibited"
    assert decision.message == (
        "the application's use case is prohibited in the sandbox (tier prohibited: social "
        "scoring leading to detrimental treatment is prohibited; EU AI Act Art. 5(1)(c))")
    assert [r.rule for r in decision.reasons] == [
        "hk.deny.prohibited", "eu.art5.deny", "hk.tier.prohibited.social-scoring"]


def test_approval_states_against_the_request_time(snapshot: policy.PolicySnapshot) -> None:
    def decide(approval: datetime | None) -> policy.Decision:
        return snapshot.decide(make_context(("finance.credit_scoring",), model=QWEN,
                                            approval=approval))
    assert decide(None).code == "approval_required"
    assert decide(T).code == "approval_required"  # expires at the request's second
    allowed = decide(T + timedelta(seconds=1))
    assert allowed.allowed
    assert allowed.obligations == policy.Obligations(
        pseudonymise=policy.vocab.DATA_CLASSES, log="full", notice=None, human_review=True)


def test_obligations_per_tier(snapshot: policy.PolicySnapshot) -> None:
    minimal = snapshot.decide(make_context(("research.b2b",), model=QWEN))
    limited = snapshot.decide(make_context(("assistant.general",), model=QWEN))
    assert minimal.obligations == policy.Obligations(log="metadata")
    assert limited.obligations.notice == "You are interacting with an AI system."
    assert limited.tier == "limited" and not limited.obligations.human_review


def test_cross_border_pseudonymisation_and_the_mainland_route(
        snapshot: policy.PolicySnapshot) -> None:
    data = DataFacts("CN", None, {"cn_id": 1})
    ctx = make_context(model=QWEN, data=data, nationality=("US",))
    assert snapshot.decide(ctx).obligations.pseudonymise == policy.vocab.DATA_CLASSES
    assert snapshot.decide(ctx.with_model(GLM)).obligations.pseudonymise == ()
    important = make_context(model=QWEN, data=data, data_categories=("important_data",))
    qwen, glm = snapshot.decide_each(important, [QWEN, GLM])
    assert (qwen.code, qwen.model_dependent, glm.allowed) == ("legal_restriction", True, True)


def test_classify_gives_the_tier_and_the_rule(snapshot: policy.PolicySnapshot) -> None:
    def classify(*uses: str) -> policy.TierResult:
        return snapshot.classify(ApplicationFacts("a", uses))
    credit = classify("finance.credit_scoring")
    assert (credit.tier, credit.rule, credit.citation) == (
        "high", "hk.tier.high.credit-scoring", "EU AI Act Annex III 5(b)")
    assert credit.fired == ("hk.tier.high.credit-scoring", "eu.annex3.5b.credit")
    assert classify("research.b2b").tier == "minimal"
    assert classify("translation").rule == "hk.tier.limited.unlisted"
    assert classify("research.b2b", "social_scoring").tier == "prohibited"
    assert classify("surveillance.public_space", "law_enforcement.victim_search").tier == "high"
    assert json.loads(json.dumps(credit.to_dict()))["rule"] == "hk.tier.high.credit-scoring"


def test_without_tier_rules_the_tier_is_minimal() -> None:
    snap = policy.compile(policy.load_bundle(["cross-border"]))
    result = snap.classify(ApplicationFacts("a", ("social_scoring",)))
    assert (result.tier, result.rule) == ("minimal", None)
    assert snap.decide(make_context(("social_scoring",))).allowed


def test_explain_lists_every_rule_with_why(snapshot: policy.PolicySnapshot) -> None:
    explanation = snapshot.explain(make_context(nationality=("HK",)))
    assert len(explanation.rules) == len(snapshot.rules)
    assert len(explanation.tier_rules) == sum(1 for r in snapshot.bundle.rules
                                              if r.kind == "tier" and not r.default)
    by_id = {t.rule.id: t for t in explanation.rules}
    directive = by_id["directive:us-doc-2026-06-12"]
    assert directive.fired
    assert directive.why == ("when met: model.name is fable-5; unless not met: "
                             "end_user.nationality is [HK]")
    assert by_id["hk.deny.high-without-approval"].why == \
        "when not met: application.tier is minimal"
    assert by_id["eu.art50.1.notice"].why == "when not met: application.use_cases is " \
                                             "[research.b2b]"
    early = snapshot.explain(make_context(time=datetime(2026, 6, 1, tzinfo=UTC)))
    assert {t.rule.id: t for t in early.rules}["directive:us-doc-2026-06-12"].why == (
        "not yet in effect at 2026-06-01T00:00:00Z (from 2026-06-12T00:00:00Z)")
    unknown = {t.rule.id: t for t in snapshot.explain(make_context()).rules}
    assert unknown["directive:us-doc-2026-06-12"].why == (
        "when met: model.name is fable-5; unless not met: end_user.verified is false")
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["decision"]["code"] == "legal_restriction"
    assert data["policy"] == str(snapshot.version)


def test_the_policy_in_force_is_json_able(snapshot: policy.PolicySnapshot) -> None:
    data = json.loads(json.dumps(snapshot.to_dict()))
    assert data["version"]["header"] == str(snapshot.version)
    assert [f["bundle"] for f in data["bundle"]["files"]] == list(SHIPPED)
    assert data["directives"][0]["rule"] == "directive:us-doc-2026-06-12"
    assert data["codes"]["legal_restriction"] == 451


def test_compile_refuses_a_directive_for_an_unknown_route_or_twice(
        bundle: policy.Bundle) -> None:
    d = Directive.from_dict(JUNE_DIRECTIVE)
    with pytest.raises(policy.PolicyError) as info:
        policy.compile(bundle, [d, d], known_models=["fable-5"])
    assert [str(p) for p in info.value.problems] == [
        "directives: directive directive:us-doc-2026-06-12 governs unknown model 'mythos-5' "
        "(fix: use a route name from the config)",
        "directives: directive directive:us-doc-2026-06-12 is given twice",
        "directives: directive directive:us-doc-2026-06-12 governs unknown model 'mythos-5' "
        "(fix: use a route name from the config)"]


def test_a_bundle_cannot_inject_code(write: Callable[..., Path]) -> None:
    path = write("evil.yaml", """
        bundle: evil
        version: "1"
        effective_from: 2026-01-01T00:00:00Z
        rules:
          - id: evil.rule
            effect: deny
            code: legal_restriction
            citation: "') or __import__('os').system('echo pwned') or ('"
            message: "\\"; import os #"
            when: {model.provider: "x') or True or ('"}
        """)
    snap = policy.compile(policy.load_bundle((), [path]))
    assert snap.decide(make_context()).allowed  # the odd provider is just a string
    assert "import" not in snap._eval.__source__


def test_contexts_built_directly_must_carry_an_aware_time() -> None:
    naive = make_context(time=datetime(2026, 7, 1))
    snap = policy.compile(policy.load_bundle(["hk-sandbox"]))
    with pytest.raises(TypeError):
        snap.decide(naive)


@given(st.sampled_from(sorted(policy.vocab.USE_CASES)))
def test_every_use_case_in_the_vocabulary_gets_a_tier(snapshot: policy.PolicySnapshot,
                                                      use: str) -> None:
    result = snapshot.classify(ApplicationFacts("a", (use,)))
    assert result.tier in policy.vocab.TIERS and result.rule


def test_decisions_stay_right_when_the_caches_overflow(
        bundle: policy.Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    from harbourgate.policy import snapshot as module

    monkeypatch.setattr(module, "_CACHE_LIMIT", 2)
    snap = policy.compile(bundle)
    reference = policy.compile(bundle)
    uses = [("research.b2b",), ("social_scoring",), ("assistant.general",),
            ("finance.credit_scoring",)] * 3
    for use in uses:
        ctx = make_context(use, model=QWEN)
        assert snap.decide(ctx) == reference.decide(ctx)
