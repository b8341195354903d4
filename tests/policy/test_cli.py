"""`harbourgate policy ...`: exit codes 0 / 1 / 2 and what the user reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from harbourgate.cli.policy import policy as policy_cli
from harbourgate.policy.bundle import PACKS_DIR

DIRECTIVE = PACKS_DIR / "export-directives" / "directives" / "us-doc-2026-06-12.yaml"
CONTEXT = """
application: {id: acme-research, use_cases: [research.b2b], data_origin: HK}
participant: {id: acme, jurisdiction: HK}
end_user: {verified: true, nationality: [HK]}
model: {name: fable-5, origin: US, hosting: US, export_tags: [us-frontier]}
request: {time: 2026-06-12T08:00:00Z}
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(policy_cli, [str(a) for a in args])
    return result.exit_code, result.output


def test_check_the_shipped_packs() -> None:
    code, out = run("check", PACKS_DIR)
    assert code == 0, out
    assert out.startswith("ok: 4 bundle file(s), 54 rules, version 2026.06+sha256:")
    assert out.endswith("2 directive(s), 5 test file(s)\n")


def test_check_reports_every_problem_and_exits_2(write: Callable[..., Path]) -> None:
    bad = write("bad.yaml", """
        bundle: bad
        version: "1"
        effective_from: 2026-01-01T00:00:00Z
        rules:
          - {id: a, effect: deny, code: legal_restriction}
          - {id: a, effect: allow, citation: X, when: {model.colour: red}}
        """)
    code, out = run("check", bad)
    assert code == 2
    assert out == (
        "Error: policy check failed: 2 problems\n"
        f"  {bad}:5: rule a has no citation: a deny must cite its legal basis (fix: add "
        '`citation: "EU AI Act Art. 5(1)(c)"` (see CITATIONS.md))\n'
        f"  {bad}:6: rule a.when: 'model.colour' is not a field a rule can test "
        "(fix: did you mean model.class or model.origin or model.hosting?)\n")


def test_check_validates_directive_documents_in_a_directives_folder(
        write: Callable[..., Path], tmp_path: Path) -> None:
    write("directives/bad.yaml", "authority: X\ncitation: Y\ntitle: Z\nmodels: [m]\n"
                                 "permit_only: {nationality: []}\n")
    code, out = run("check", tmp_path)
    assert code == 2
    assert "permit_only is empty" in out


def test_test_passes_with_exit_0_and_fails_with_exit_1(write: Callable[..., Path],
                                                       tmp_path: Path) -> None:
    code, out = run("test", PACKS_DIR)
    assert code == 0, out
    assert out.startswith("PASS: ") and "FAIL" not in out
    write("x.test.yaml", """
        packs: [hk-sandbox]
        cases:
          - name: research is wrongly expected to be refused
            context: {application: {use_cases: [research.b2b]}, model: {name: m},
                      request: {time: 2026-07-01T00:00:00Z}}
            expect: {effect: deny}
        """)
    code, out = run("test", tmp_path)
    assert code == 1
    assert "FAIL  research is wrongly expected to be refused (line 3)" in out
    assert "effect: expected deny, got allow" in out


def test_test_with_an_input_error_exits_2(write: Callable[..., Path], tmp_path: Path) -> None:
    write("x.test.yaml", "cases: 1\n")
    code, out = run("test", tmp_path)
    assert code == 2
    assert "cases must be a non-empty list" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("test", empty) == (2, "Error: nothing to test: 1 problem\n"
                                    f"  {empty}: no test files (*.test.yaml) here "
                                    "(fix: name test files NAME.test.yaml)\n")


def test_explain_prints_the_decision_and_every_rule(write: Callable[..., Path]) -> None:
    ctx = write("ctx.yaml", CONTEXT)
    code, out = run("explain", "--context", ctx, "--directive", DIRECTIVE)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "DENY  legal_restriction (451)"
    assert lines[1] == "  rule:     directive:us-doc-2026-06-12"
    assert lines[2] == "  citation: Order to Anthropic of 2026-06-12"
    assert "  another model could serve it" in lines
    assert "  FIRED directive:us-doc-2026-06-12 (deny legal_restriction) [Order to Anthropic " \
           "of 2026-06-12]" in lines
    assert "rules considered (2 of 19 fired):" in lines  # the directive, hk.allow.minimal


def test_explain_as_json_without_the_directive(write: Callable[..., Path]) -> None:
    ctx = write("ctx.yaml", CONTEXT)
    code, out = run("explain", "--context", ctx, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["decision"]["effect"] == "allow"
    assert data["decision"]["obligations"]["log"] == "metadata"
    assert "directives=" not in data["policy"]


def test_explain_with_a_bad_context_exits_2(write: Callable[..., Path]) -> None:
    ctx = write("ctx.yaml", "model: {name: m}\nrequest: {time: 2026-06-12}\n")
    code, out = run("explain", "--context", ctx)
    assert code == 2
    assert out == ("Error: invalid context: 1 problem\n"
                   f"  {ctx}:2: request.time: 2026-06-12 has no time zone; add Z for UTC "
                   "(e.g. 2026-06-12T00:00:00Z)\n")


def test_explain_with_an_unknown_pack_exits_2(write: Callable[..., Path]) -> None:
    ctx = write("ctx.yaml", CONTEXT)
    code, out = run("explain", "--context", ctx, "--pack", "nope")
    assert code == 2 and "unknown pack 'nope'" in out


def test_explain_takes_packs_and_routes_from_a_config(write: Callable[..., Path]) -> None:
    ctx = write("ctx.yaml", CONTEXT)
    cfg = write("hg.yaml", """
        policy: {packs: [hk-sandbox]}
        routes: [{name: glm-5.2, provider: stand-in}]
        """)
    code, out = run("explain", "--context", ctx, "--config", cfg, "--directive", DIRECTIVE)
    assert code == 2
    assert "models: unknown model 'fable-5' (fix: use a route name: glm-5.2)" in out


def test_export_cedar_prints_or_writes(tmp_path: Path) -> None:
    code, out = run("export", "--cedar")
    assert code == 0 and out.startswith("// Harbourgate policy 2026.06+sha256:")
    code, out = run("export", "--cedar", "--out", tmp_path / "cedar", "--directive", DIRECTIVE)
    assert code == 0, out
    text = (tmp_path / "cedar" / "policies.cedar").read_text()
    assert '@id("directive:us-doc-2026-06-12")' in text
    assert "context.end_user" in (tmp_path / "cedar" / "MAPPING.md").read_text()
