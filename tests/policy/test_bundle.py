"""Bundle loading: the shipped packs load, and every kind of bad input is reported precisely."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harbourgate import policy
from harbourgate.policy import PolicyError

from .conftest import SHIPPED

HEAD = """
# a bundle for the tests
bundle: mine
version: "1.0"
effective_from: 2026-01-01T00:00:00Z
rules:
"""


def problems(paths: list[Path]) -> list[str]:
    with pytest.raises(PolicyError) as info:
        policy.load_bundle((), paths)
    return [str(p) for p in info.value.problems]


def test_the_shipped_packs_load_with_a_declared_version_and_content_hash() -> None:
    bundle = policy.load_bundle(SHIPPED)
    assert [f.name for f in bundle.files] == list(SHIPPED)
    assert bundle.declared_version == "2026.06"
    assert bundle.version == f"2026.06+sha256:{bundle.digest[:8]}"
    assert len(bundle.digest) == 64
    assert policy.available_packs() == tuple(sorted(SHIPPED))


def test_every_shipped_rule_cites_its_basis_and_names_a_pack(bundle: policy.Bundle) -> None:
    for rule in bundle.rules:
        assert rule.citation.strip(), rule.id
        assert rule.pack in SHIPPED
        assert rule.line is not None


def test_the_content_hash_ignores_layout_but_not_meaning(write: Callable[..., Path]) -> None:
    rule = "  - {id: a.rule, effect: deny, code: legal_restriction, citation: X, " \
           "when: {model.hosting: US}}\n"
    one = policy.load_bundle((), [write("one.yaml", HEAD + rule)])
    spaced = policy.load_bundle((), [write("two.yaml", "# comment\n" + HEAD + "\n" + rule)])
    changed = policy.load_bundle((), [write("three.yaml", HEAD + rule.replace("US", "CN"))])
    assert one.digest == spaced.digest
    assert one.digest != changed.digest


def test_broken_yaml_gives_the_line(write: Callable[..., Path]) -> None:
    path = write("broken.yaml", HEAD + "  - id: a\n    when: {model.hosting: [US}\n")
    (message,) = problems([path])
    assert message.startswith(f"{path}:7: invalid YAML")


def test_a_key_given_twice_is_an_error_not_a_silent_override(write: Callable[..., Path]) -> None:
    path = write("dup.yaml", HEAD + "  - id: a\n    effect: deny\n    effect: allow\n")
    assert problems([path]) == [
        f"{path}:8: key 'effect' appears twice in one mapping (first on line 7); YAML would "
        "silently keep only the last (fix: remove or rename one of them)"]


def test_unknown_keys_in_file_and_rule(write: Callable[..., Path]) -> None:
    path = write("keys.yaml", HEAD.replace("rules:", "rulez: []\nrules:")
                 + "  - {id: a, effect: allow, citation: X, whenn: {}}\n")
    found = problems([path])
    assert f"{path}:5: unknown key 'rulez' (fix: a bundle file takes: bundle, version, " \
           "effective_from, description, rules)" in found
    assert any(m.startswith(f"{path}:7: rule a: unknown key 'whenn'") for m in found)


def test_a_condition_on_a_field_that_does_not_exist(write: Callable[..., Path]) -> None:
    path = write("field.yaml", HEAD + """\
  - id: a
    effect: deny
    code: legal_restriction
    citation: X
    when:
      end_user.nationalty: [US]
""")
    assert problems([path]) == [
        f"{path}:11: rule a.when: 'end_user.nationalty' is not a field a rule can test "
        "(fix: did you mean end_user.nationality or end_user.verification_level or "
        "end_user.residence?)"]


def test_a_rule_without_citation_and_a_deny_without_citation(write: Callable[..., Path]) -> None:
    path = write("cite.yaml", HEAD + """\
  - {id: a, effect: allow}
  - {id: b, effect: deny, code: legal_restriction, citation: "  "}
""")
    assert problems([path]) == [
        f"{path}:6: rule a has no citation: every rule cites its legal basis "
        '(fix: add `citation: "EU AI Act Art. 5(1)(c)"` (see CITATIONS.md))',
        f"{path}:7: rule b has no citation: a deny must cite its legal basis "
        '(fix: add `citation: "EU AI Act Art. 5(1)(c)"` (see CITATIONS.md))']


def test_two_rules_with_one_id_across_files(write: Callable[..., Path]) -> None:
    rule = "  - {id: same.id, effect: allow, citation: X}\n"
    first = write("a.yaml", HEAD + rule)
    second = write("b.yaml", HEAD.replace("mine", "other") + rule)
    assert problems([first, second]) == [
        f"{second}:6: two rules have the id 'same.id' (first at {first}:6) "
        "(fix: give each rule its own id)"]


def test_wrong_operator_wrong_value_and_vocabulary(write: Callable[..., Path]) -> None:
    path = write("ops.yaml", HEAD + """\
  - id: a
    effect: deny
    code: legal_restriction
    citation: X
    when:
      model.hosting: {any_of: [US]}
      data.origin: usa
      application.use_cases: [social_scorin]
      end_user.verified: [true]
""")
    assert problems([path]) == [
        f"{path}:11: rule a.when.model.hosting: 'any_of' is not a test for a text field "
        "(fix: use one of: equals, in, not_in, present)",
        f"{path}:12: rule a.when.data.origin: 'usa' is not an ISO 3166-1 alpha-2 code "
        "(fix: fix the spelling or the vocabulary)",
        f"{path}:13: rule a.when.application.use_cases: 'social_scorin' is not a known value "
        "of application.use_cases; known values: " + ", ".join(policy.vocab.USE_CASES)
        + " (fix: fix the spelling or the vocabulary)",
        f"{path}:14: rule a.when.end_user.verified is true/false, not a list "
        "(fix: write `end_user.verified: true`)"]


def test_kind_specific_mistakes(write: Callable[..., Path]) -> None:
    path = write("kinds.yaml", HEAD + """\
  - {id: a, tier: severe, citation: X}
  - {id: b, tier: high, citation: X, when: {model.hosting: US}}
  - {id: c, tier: high, citation: X, effective_from: 2026-01-01T00:00:00Z}
  - {id: d, effect: deny, citation: X}
  - {id: e, effect: deny, code: legal_restriction, citation: X, obligations: {log: full}}
  - {id: f, effect: allow, tier: high, citation: X}
  - {id: g, effect: allow, citation: X, obligations: {pseudonymise: [hkid], log: all}}
  - {id: h, effect: allow, citation: X, effective_from: 2026-02-01T00:00:00Z,
     effective_until: 2026-01-01T00:00:00Z}
  - {id: i, tier: limited, default: true, citation: X, when: {application.use_cases: [translation]}}
  - {id: Bad Id, effect: allow, citation: X}
""")
    found = problems([path])
    expected = [
        f"{path}:6: rule a: tier 'severe' is not a tier (fix: use one of: prohibited, high, "
        "limited, minimal)",
        f"{path}:7: rule b: a tier rule classifies the application and may only test "
        "application.use_cases and application.data_categories, not model.hosting (fix: move "
        "the condition to an `effect: deny` or `effect: allow` rule)",
        f"{path}:8: rule c: a tier rule cannot be time-bounded (effective_from) (fix: tiers are "
        "fixed per bundle version; bound an effect rule instead)",
        f"{path}:9: rule d: a deny needs a code, not None (fix: use one of: tier_prohibited, "
        "approval_required, participant_suspended, legal_restriction)",
        f"{path}:10: rule e: only an allow rule carries obligations (fix: move them to an "
        "`effect: allow` rule)",
        f"{path}:11: rule f needs exactly one of tier: or effect: (fix: a rule either "
        "classifies (tier: high) or decides (effect: deny))",
        f"{path}:12: rule g: unknown data class 'hkid' in pseudonymise (fix: classes are: "
        + ", ".join(policy.vocab.DATA_CLASSES) + ")",
        f"{path}:12: rule g: log must be metadata or full, not 'all'",
        f"{path}:14: rule h: effective_until 2026-01-01T00:00:00Z is not after effective_from "
        "2026-02-01T00:00:00Z (fix: fix one of the two dates)",
        f"{path}:15: rule i: a default tier rule applies when no other tier rule does, so it "
        "takes no conditions (fix: remove when:/unless:)",
        f"{path}:16: rule id 'Bad Id' is missing or malformed (fix: use lower-case words with "
        "dots or dashes, e.g. hk.tier.high.credit)",
    ]
    assert found == expected


def test_file_level_requirements(write: Callable[..., Path]) -> None:
    path = write("head.yaml", "version: 1\nrules: {}\n")
    assert problems([path]) == [
        f"{path}:1: bundle is required (a string) (fix: name the bundle, e.g. "
        "`bundle: my-rules`)",
        f"{path}:1: effective_from is required: the date the bundle takes effect "
        "(fix: add `effective_from: 2026-06-01T00:00:00Z`)",
        f"{path}:2: rules must be a list of rules (fix: add `rules:` followed by `- id: ...` "
        "items)"]


def test_a_time_without_zone_is_refused(write: Callable[..., Path]) -> None:
    path = write("zone.yaml", HEAD.replace("2026-01-01T00:00:00Z", "2026-01-01"))
    assert problems([path]) == [
        f"{path}:4: effective_from: 2026-01-01 has no time zone; add Z for UTC "
        "(e.g. 2026-06-12T00:00:00Z)", f"{path}:5: rules must be a list of rules (fix: add "
        "`rules:` followed by `- id: ...` items)"]


def test_unknown_pack_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        policy.load_bundle(["hk-sandbx"], [tmp_path / "nope.yaml"])
    assert [str(p) for p in info.value.problems] == [
        "policy.packs: unknown pack 'hk-sandbx' (fix: built-in packs are: cross-border, "
        "eu-ai-act, export-directives, hk-sandbox)",
        f"{tmp_path / 'nope.yaml'}: no such file or folder (fix: check the path in "
        "policy.bundles)"]


def test_a_folder_loads_its_bundle_files_but_not_tests_or_directives(
        write: Callable[..., Path], tmp_path: Path) -> None:
    write("rules/a.yaml", HEAD + "  - {id: a, effect: allow, citation: X}\n")
    write("rules/a.test.yaml", "cases: []\n")
    write("rules/directives/d.yaml", "authority: X\n")
    bundle = policy.load_bundle((), [tmp_path / "rules"])
    assert [r.id for r in bundle.rules] == ["a"]


def test_the_same_bundle_twice_and_two_default_tiers(write: Callable[..., Path]) -> None:
    first = write("a.yaml", HEAD + "  - {id: a, tier: limited, default: true, citation: X}\n")
    second = write("b.yaml", HEAD + "  - {id: b, tier: minimal, default: true, citation: X}\n")
    assert problems([first, second]) == [
        f"{second}:1: bundle 'mine' is loaded twice (also {first}) (fix: load each pack or "
        "file once)",
        f"{second}:6: a second default tier rule 'b' (first: a at {first}:6) "
        "(fix: keep one default tier rule)"]
