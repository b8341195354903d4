"""The policy test runner: passes, clear diffs on failure, precise input errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harbourgate.policy import PolicyError
from harbourgate.policy.testing import run_tests

BUNDLE = """
bundle: mine
version: "1"
effective_from: 2026-01-01T00:00:00Z
rules:
  - id: us.only
    effect: deny
    code: legal_restriction
    when: {model.hosting: {not_in: [US]}}
    citation: Some law
"""
TESTS = """
bundles: [rules.yaml]
defaults:
  model: {name: m, hosting: US}
  request: {time: 2026-06-01T00:00:00Z}
cases:
  - name: US hosting is fine
    expect: {effect: allow, not_rules: [us.only]}
  - name: CN hosting is refused
    context: {model: {hosting: CN}}
    expect: {effect: deny, code: legal_restriction, rule: us.only, model_dependent: true}
"""


def test_passing_cases(write: Callable[..., Path], tmp_path: Path) -> None:
    write("rules.yaml", BUNDLE)
    write("mine.test.yaml", TESTS)
    report = run_tests([tmp_path])
    assert report.ok and len(report.results) == 2
    assert report.render() == "PASS: 2/2   (1 file)"
    assert "PASS  CN hosting is refused (line 8)" in report.render(verbose=True)


def test_a_failing_case_prints_each_difference_and_why_a_rule_did_not_fire(
        write: Callable[..., Path], tmp_path: Path) -> None:
    write("rules.yaml", BUNDLE)
    path = write("mine.test.yaml", TESTS + """\
  - name: wrong on purpose
    context: {model: {hosting: US}}
    expect: {effect: deny, code: legal_restriction, rules: [us.only],
             obligations: {log: full}}
""")
    report = run_tests([path])
    assert not report.ok
    assert [r.name for r in report.failed] == ["wrong on purpose"]
    assert report.render() == "\n".join([
        f"{path}:",
        "  FAIL  wrong on purpose (line 11)",
        "        effect: expected deny, got allow",
        "        code: expected legal_restriction, got null",
        "        rules: expected us.only to fire; it did not: when not met: model.hosting is US",
        "        obligations.log: expected full, got metadata",
        "        decision: allow, tier minimal, fired: tier.default",
        "-" * 72,
        "PASS: 2/3   FAIL: 1   (1 file)"])


def test_a_bad_test_file_is_an_input_error_with_lines(write: Callable[..., Path],
                                                       tmp_path: Path) -> None:
    write("rules.yaml", BUNDLE)
    path = write("bad.test.yaml", """
        bundles: [rules.yaml]
        cases:
          - name: one
            context: {model: {name: m}, request: {time: 2026-06-01T00:00:00Z}}
            expect: {effect: maybe, colour: red}
          - name: one
            context: {model: {name: m}, request: {time: yesterday}}
            expect: {effect: allow}
          - name: three
            expect: {}
        """)
    with pytest.raises(PolicyError) as info:
        run_tests([path])
    assert [str(p) for p in info.value.problems] == [
        f"{path}:5: case 'one': effect must be allow or deny, not 'maybe'",
        f"{path}:5: case 'one': unknown expectation 'colour' (fix: expect takes: effect, code, "
        "tier, model_dependent, rule, rules, not_rules, obligations)",
        f"{path}:7: request.time: 'yesterday' is not an ISO-8601 time such as "
        "2026-06-12T00:00:00Z",
        f"{path}:10: case 'three': expect must be a non-empty mapping (fix: use keys: effect, "
        "code, tier, model_dependent, rule, rules, not_rules, obligations)"]


def test_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        run_tests([tmp_path / "none"])
    assert str(info.value) == f"{tmp_path / 'none'}: no such file or folder (fix: check the path)"
