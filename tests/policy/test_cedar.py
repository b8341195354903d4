"""Differential test against Cedar: an engine nobody here wrote must agree on every context."""

from __future__ import annotations

import cedarpy
import pytest
from hypothesis import given, settings

from harbourgate import policy
from harbourgate.policy.cedar import cedar_request, export_policies
from harbourgate.policy.testing import find_test_files, load_test_file

from .strategies import contexts


@pytest.fixture(scope="module")
def cedar_policies(snapshot: policy.PolicySnapshot) -> cedarpy.PolicySet:
    return cedarpy.PolicySet.from_str(export_policies(snapshot))


def cedar_effect(ctx: policy.Context, policies: cedarpy.PolicySet) -> str:
    result = cedarpy.is_authorized(cedar_request(ctx), policies, [])
    assert result.diagnostics.errors == [], result.diagnostics.errors  # no policy erred
    return "allow" if result.allowed else "deny"


def test_the_export_is_valid_cedar_with_one_policy_per_rule(
        snapshot: policy.PolicySnapshot) -> None:
    text = export_policies(snapshot)
    parsed = cedarpy.PolicySet.from_str(text)
    assert parsed is not None
    assert text.count("forbid(") == sum(r.kind == "deny" for r in snapshot.rules)
    assert text.count("permit(") == 1 + sum(r.kind == "allow" for r in snapshot.rules)
    assert '@id("directive:us-doc-2026-06-12")' in text
    assert '@citation("EU AI Act Art. 5(1)(c)")' not in text  # tier rules are inlined


@settings(max_examples=500, deadline=None)
@given(contexts())
def test_harbourgate_and_cedar_agree_on_permit_and_forbid(
        snapshot: policy.PolicySnapshot, cedar_policies: cedarpy.PolicySet,
        ctx: policy.Context) -> None:
    assert snapshot.decide(ctx).effect == cedar_effect(ctx, cedar_policies)


def test_they_agree_on_every_pack_test_case(snapshot: policy.PolicySnapshot,
                                            cedar_policies: cedarpy.PolicySet) -> None:
    from harbourgate.policy.bundle import PACKS_DIR

    effects = {"allow": 0, "deny": 0}
    for path in find_test_files(PACKS_DIR):
        for case in load_test_file(path).cases:
            ours = snapshot.decide(case.context).effect
            assert ours == cedar_effect(case.context, cedar_policies), case.name
            effects[ours] += 1
    assert effects["allow"] > 20 and effects["deny"] > 20  # both sides are exercised


def test_a_forbid_that_cedar_would_skip_on_error_is_guarded(
        snapshot: policy.PolicySnapshot, cedar_policies: cedarpy.PolicySet) -> None:
    """Unknown facts are left out of the Cedar context; every access is `has`-guarded."""
    from .conftest import make_context

    ctx = make_context(model=policy.ModelFacts("fable-5", None, None, ("us-frontier",)))
    assert cedar_effect(ctx, cedar_policies) == snapshot.decide(ctx).effect == "deny"
