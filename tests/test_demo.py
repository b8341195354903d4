"""`harbourgate demo`: the whole story end to end, and the pieces that judge whether it held.

The end-to-end run starts real `harbourgate stand-in` and `harbourgate serve` processes;
its expectations are written out here by hand, not derived from `demo.expect`, so a
mistake in the demo's own idea of the directive cannot hide a wrong gateway.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from harbourgate import demo
from harbourgate.cli.demo import demo as demo_command
from harbourgate.config import VerifierSettings
from harbourgate.directives.model import load_directive_file
from harbourgate.identity.attestation import AttestationVerifier

DIRECTIVE = load_directive_file(demo.DIRECTIVE_FILE)
CITATION = "Order to Anthropic of 2026-06-12"
ROUTES = ("fable-5", "mythos-5", "glm-5.2", "qwen-local")


def caller(app: demo.Application, user: demo.EndUser, model: str) -> demo.Caller:
    found = [c for c in demo.CALLERS
             if c.application == app and c.user == user and c.model == model]
    assert len(found) == 1, (app.id, user.kind, model)
    return found[0]


# What each caller must see while the directive is in force, written out by hand:
# (application, end user, asked) -> (status, decision, served model or error code)
DURING = {
    (demo.RESEARCH, demo.US_NATIONAL, "fable-5"): (200, "allow", "fable-5"),
    (demo.RESEARCH, demo.CN_NATIONAL, "mythos-5"): (200, "reroute", "glm-5.2"),
    (demo.RESEARCH, demo.ANONYMOUS, "fable-5"): (200, "reroute", "glm-5.2"),
    (demo.FRONTIER_EVAL, demo.US_NATIONAL, "mythos-5"): (200, "allow", "mythos-5"),
    (demo.FRONTIER_EVAL, demo.CN_NATIONAL, "fable-5"): (451, "deny", "legal_restriction"),
    (demo.COPILOT, demo.DUAL_NATIONAL, "fable-5"): (200, "allow", "fable-5"),
    (demo.COPILOT, demo.CN_NATIONAL, "mythos-5"): (200, "reroute", "qwen-local"),
    (demo.COPILOT, demo.ANONYMOUS, "mythos-5"): (200, "reroute", "qwen-local"),
    (demo.QUALITY, demo.ANONYMOUS, "fable-5"): (200, "reroute", "glm-5.2"),
    (demo.QUALITY, demo.CN_NATIONAL, "glm-5.2"): (200, "allow", "glm-5.2"),
}


# -- the whole story, once ----------------------------------------------------------------

@pytest.fixture(scope="module")
def story() -> Iterator[tuple[demo.DemoResult, str, Path]]:
    """One real run with short phases; yields the result, its printed output, its temp dir."""
    made: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args: object, **kwargs: object) -> str:
        path = real_mkdtemp(*args, **kwargs)  # type: ignore[call-overload]
        made.append(Path(path))
        return path

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo.tempfile, "mkdtemp", recording_mkdtemp)
        result = demo.run_demo(phase_seconds=1.5, console=Console(file=out, width=250))
    assert len(made) == 1
    yield result, out.getvalue(), made[0]


@pytest.mark.e2e
def test_the_story_holds_and_exits_0(story: tuple[demo.DemoResult, str, Path]) -> None:
    result, output, _ = story
    assert result.problems == []
    assert result.exit_code == 0
    assert "The story held" in output


@pytest.mark.e2e
def test_every_caller_is_seen_in_every_phase(story: tuple[demo.DemoResult, str, Path]) -> None:
    result, _, _ = story
    phases = result.by_phase()
    for phase in ("before", "during", "after"):
        for c in demo.CALLERS:
            assert any(o.caller == c for o in phases[phase]), (phase, c.label)


@pytest.mark.e2e
@pytest.mark.parametrize("phase", ["before", "after"])
def test_without_the_directive_everyone_gets_the_model_they_asked_for(
        story: tuple[demo.DemoResult, str, Path], phase: str) -> None:
    result, _, _ = story
    for o in result.by_phase()[phase]:
        assert (o.status, o.decision, o.served, o.rerouted_from) == \
            (200, "allow", o.caller.model, None), o.describe()
        assert o.answered_by == o.caller.model  # the upstream that answered, by its own word
        assert o.policy is not None and DIRECTIVE.id not in demo.directives_in(o.policy)


@pytest.mark.e2e
def test_under_the_directive_exactly_the_named_users_are_cut_off(
        story: tuple[demo.DemoResult, str, Path]) -> None:
    result, _, _ = story
    during = result.by_phase()["during"]
    for (app, user, model), (status, decision, what) in DURING.items():
        mine = [o for o in during if o.caller == caller(app, user, model)]
        assert mine
        for o in mine:
            assert (o.status, o.decision) == (status, decision), o.describe()
            assert demo.directives_in(o.policy) == ("us-doc-2026-06-12",)
            assert o.audit_id
            if status == 200:
                assert o.served == what and o.answered_by == what
                assert o.rerouted_from == (model if decision == "reroute" else None)
            else:
                assert o.code == what
                assert o.citation == CITATION
                assert o.rule == "directive:us-doc-2026-06-12"
                assert o.message == ("Frontier models for US nationals only (US Department of "
                                     "Commerce): fable-5, mythos-5 only for verified end users "
                                     "with nationality US")


@pytest.mark.e2e
def test_while_a_change_lands_answers_are_old_or_new_never_failures(
        story: tuple[demo.DemoResult, str, Path]) -> None:
    result, _, _ = story
    phases = result.by_phase()
    for phase in ("landing", "lifting"):
        for o in phases[phase]:
            key = (o.caller.application, o.caller.user, o.caller.model)
            status, decision, what = DURING[key]
            old = (200, "allow", o.caller.model)
            got = (o.status, o.decision, o.code if o.status != 200 else o.served)
            assert got in (old, (status, decision, what)), o.describe()


@pytest.mark.e2e
def test_unaffected_callers_never_fail(story: tuple[demo.DemoResult, str, Path]) -> None:
    result, output, _ = story
    total, failed = demo.unaffected_failures(result)
    assert total > 0 and failed == 0
    assert f"0 failed requests of {total}, across all phases" in output


@pytest.mark.e2e
def test_propagation_is_measured_both_ways(story: tuple[demo.DemoResult, str, Path]) -> None:
    result, output, _ = story
    assert result.issue is not None and result.revoke is not None
    for p in (result.issue, result.revoke):
        assert p.first_answer_s is not None and p.first_answer_s >= 0
        assert p.header_s is not None and p.header_s >= 0
        assert p.stale_polls >= 0
    # GET /v1/models lists only what this (unattested) caller may use now
    assert result.issue.models == ("glm-5.2", "qwen-local")
    assert result.revoke.models == ROUTES
    assert "Propagation (from the admin call's answer)" in output


@pytest.mark.e2e
def test_the_audit_log_verifies_against_the_fetched_checkpoint(
        story: tuple[demo.DemoResult, str, Path]) -> None:
    result, output, _ = story
    assert result.verify_exit == 0
    assert "OK: every entry and checkpoint verifies" in result.verify_output
    assert "saved checkpoint: size" in result.verify_output
    assert result.checkpoint is not None
    assert result.checkpoint.splitlines()[0] == "harbourgate.local/audit"
    assert result.checkpoint_size is not None and result.checkpoint_size > 0
    ids = [o.audit_id for o in result.outcomes]
    assert all(ids) and len(set(ids)) == len(ids)  # one entry per answer, never shared
    assert "harbourgate audit verify: verified" in output


@pytest.mark.e2e
def test_the_output_tells_the_story(story: tuple[demo.DemoResult, str, Path]) -> None:
    _, output, _ = story
    for text in ("Phase 1 · before the directive", "Phase 2 · directive in force",
                 "Phase 3 · after the revocation", "directive issued: POST /admin/v1/directives"
                 " → 201, id us-doc-2026-06-12", "directive revoked: DELETE "
                 "/admin/v1/directives/us-doc-2026-06-12 → 200, status revoked",
                 "first 451 legal_restriction: lantau-evals · CN national · openai → fable-5, "
                 f"citing “{CITATION}”", f"citation: {CITATION}",
                 "local pool qwen-local (1 server, 1 healthy, 0 errors) absorbed "):
        assert text in output
    absorbed = re.search(r"absorbed (\d+) rerouted requests, at most (\d+)/s against its "
                         r"declared capacity of 40/s", output)
    assert absorbed and int(absorbed.group(1)) >= 1 and int(absorbed.group(2)) >= 1


@pytest.mark.e2e
def test_the_temporary_directory_is_removed(story: tuple[demo.DemoResult, str, Path]) -> None:
    result, output, workdir = story
    assert result.data_dir is None
    assert not workdir.exists()
    assert "kept in" not in output


# -- when it cannot run ---------------------------------------------------------------------

@pytest.mark.e2e
def test_a_gateway_that_does_not_start_is_reported_with_its_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARBOURGATE_POLICY_PACKS", "[no-such-pack]")
    out = io.StringIO()
    result = demo.run_demo(data_dir=tmp_path / "run", console=Console(file=out, width=100))
    assert result.exit_code == 1
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.startswith("harbourgate serve exited with code 2 before it was ready:\n")
    assert "no-such-pack" in problem  # the tail of its log says why
    assert "The story did not run to the end" in out.getvalue()
    assert (tmp_path / "run" / "serve.log").exists()  # a given --data-dir is kept
    assert result.outcomes == []


@pytest.mark.e2e
def test_a_directive_the_gateway_refuses_stops_the_story_with_its_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    odd = demo.Directive.from_dict({**DIRECTIVE.to_dict(), "models": ["fable-5", "fable-6"]})
    monkeypatch.setattr(demo, "load_directive_file", lambda path: odd)
    out = io.StringIO()
    result = demo.run_demo(phase_seconds=0.5, console=Console(file=out, width=250))
    assert result.exit_code == 1
    assert result.problems[0].startswith("POST /admin/v1/directives answered 400: ")
    assert "fable-6" in result.problems[0]
    assert result.outcomes  # phase 1 ran, and is shown
    assert result.stopped_by == result.problems[0] and len(result.problems) == 1
    assert "The story did not run to the end" in out.getvalue()
    assert "Phase 1 · before the directive" in out.getvalue()


@pytest.mark.e2e
def test_a_process_that_cannot_even_run_is_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "HARBOURGATE",
                        (sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"))
    out = io.StringIO()
    result = demo.run_demo(console=Console(file=out, width=100))
    assert result.exit_code == 1
    assert result.problems == ["harbourgate stand-in exited with code 3 before it was ready:"
                               "\n  | boom"]
    assert "run again with --keep" in out.getvalue()


def test_a_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.db").write_text("")
    with pytest.raises(demo.DemoError) as caught:
        demo.run_demo(data_dir=tmp_path)
    assert str(caught.value) == (f"--data-dir {tmp_path.resolve()}: must be a new or empty "
                                 "directory, so this run's log holds only this run")


def test_the_command_refuses_a_data_dir_in_use_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "old.db").write_text("")
    got = CliRunner().invoke(demo_command, ["--data-dir", str(tmp_path)])
    assert got.exit_code == 2
    assert "must be a new or empty directory" in got.output


def test_the_command_checks_its_options() -> None:
    got = CliRunner().invoke(demo_command, ["--phase-seconds", "0.1"])
    assert got.exit_code == 2
    assert "--phase-seconds" in got.output


@pytest.mark.e2e
def test_sigterm_stops_the_demo_and_its_processes() -> None:
    """A demo stopped mid-run leaves nothing listening."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from harbourgate.cli.demo import demo; demo()",
         "--phase-seconds", "30"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"})
    assert proc.stdout is not None
    seen = ""
    try:
        deadline = time.monotonic() + 120
        while "phase 1" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            seen += line
        assert "phase 1" in seen, seen
        urls = re.findall(r"up at (http://127\.0\.0\.1:\d+)", seen)
        assert len(urls) == 2, seen
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, seen + rest.decode(errors="replace")
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/healthz", timeout=2)


# -- judging the story ----------------------------------------------------------------------

@pytest.mark.parametrize(("user", "model", "expected"), [
    (demo.US_NATIONAL, "fable-5", demo.Expected("allow", "fable-5")),
    (demo.DUAL_NATIONAL, "mythos-5", demo.Expected("allow", "mythos-5")),  # any nationality
    (demo.CN_NATIONAL, "fable-5", demo.Expected("reroute", "glm-5.2")),
    (demo.ANONYMOUS, "mythos-5", demo.Expected("reroute", "glm-5.2")),
    (demo.ANONYMOUS, "qwen-local", demo.Expected("allow", "qwen-local")),  # not governed
])
def test_expect_under_the_directive(user: demo.EndUser, model: str,
                                    expected: demo.Expected) -> None:
    c = demo.Caller(demo.RESEARCH, user, "openai", model, "hi")
    assert demo.expect(c, DIRECTIVE) == expected
    assert demo.expect(c, None) == demo.Expected("allow", model)


def test_expect_a_refusal_when_the_application_chose_only_governed_models() -> None:
    c = caller(demo.FRONTIER_EVAL, demo.CN_NATIONAL, "fable-5")
    assert demo.expect(c, DIRECTIVE) == demo.Expected("deny", code="legal_restriction")
    assert str(demo.expect(c, DIRECTIVE)) == "legal_restriction"


def test_a_user_attesting_no_nationality_is_outside() -> None:
    assert not demo.EndUser("stateless", ()).inside(DIRECTIVE)
    assert not demo.ANONYMOUS.inside(DIRECTIVE)
    assert demo.DUAL_NATIONAL.inside(DIRECTIVE)


@given(preference=st.lists(st.sampled_from(ROUTES), min_size=1, max_size=4, unique=True),
       pick=st.integers(0, 3),
       nationality=st.none() | st.lists(st.sampled_from(["US", "CN", "HK", "GB", "CA"]),
                                        max_size=3, unique=True))
def test_expect_follows_the_fallback_order(preference: list[str], pick: int,
                                           nationality: list[str] | None) -> None:
    app = demo.Application("app", demo.LANTAU, "App", ("research.b2b",), "HK",
                           tuple(preference))
    user = demo.EndUser("someone", None if nationality is None else tuple(nationality))
    asked = preference[pick % len(preference)]
    got = demo.expect(demo.Caller(app, user, "openai", asked, "hi"), DIRECTIVE)
    governed = asked in ("fable-5", "mythos-5")
    inside = nationality is not None and "US" in nationality
    permitted = [m for m in preference if m not in ("fable-5", "mythos-5")]
    if not governed or inside:
        assert got == demo.Expected("allow", asked)
    elif permitted:
        assert got == demo.Expected("reroute", permitted[0])
    else:
        assert got == demo.Expected("deny", code="legal_restriction")


def outcome(c: demo.Caller, **kw: object) -> demo.Outcome:
    fields: dict[str, object] = {"started": 0.0, "ended": 0.0, "status": 200,
                                 "decision": "allow", "served": c.model,
                                 "answered_by": c.model, "audit_id": "01AUDIT"}
    fields.update(kw)
    return demo.Outcome(c, **fields)  # type: ignore[arg-type]


def test_an_answer_matches_only_when_every_part_is_right() -> None:
    refused = caller(demo.FRONTIER_EVAL, demo.CN_NATIONAL, "fable-5")
    deny = demo.Expected("deny", code="legal_restriction")
    good = outcome(refused, status=451, decision="deny", served=None, answered_by=None,
                   code="legal_restriction", citation=CITATION)
    assert good.matches(deny, CITATION)
    assert not outcome(refused, status=451, decision="deny", code="legal_restriction",
                       citation="another order").matches(deny, CITATION)
    assert not outcome(refused, status=451, decision="deny", code="legal_restriction",
                       citation=CITATION, audit_id=None).matches(deny, CITATION)

    moved = caller(demo.RESEARCH, demo.ANONYMOUS, "fable-5")
    reroute = demo.Expected("reroute", "glm-5.2")
    assert outcome(moved, decision="reroute", served="glm-5.2", answered_by="glm-5.2",
                   rerouted_from="fable-5").matches(reroute, CITATION)
    # the header says glm-5.2 but fable-5 answered: not what the directive demands
    assert not outcome(moved, decision="reroute", served="glm-5.2", answered_by="fable-5",
                       rerouted_from="fable-5").matches(reroute, CITATION)
    assert not outcome(moved, decision="reroute", served="glm-5.2", answered_by="glm-5.2",
                       rerouted_from=None).matches(reroute, CITATION)


def test_phases_are_judged_by_the_whole_life_of_a_request() -> None:
    timeline = demo.Timeline(t0=0.0, marks={"issue_sent": 10.0, "issue_confirmed": 11.0,
                                            "revoke_sent": 20.0, "revoke_confirmed": 21.0})
    c = demo.CALLERS[0]
    for started, ended, phase in [(9.0, 10.0, "before"), (9.5, 10.5, "landing"),
                                  (10.9, 11.2, "landing"), (11.0, 12.0, "during"),
                                  (19.0, 20.0, "during"), (19.5, 20.5, "lifting"),
                                  (20.9, 21.5, "lifting"), (21.0, 21.5, "after")]:
        assert timeline.phase_of(outcome(c, started=started, ended=ended)) == phase


def test_while_a_change_lands_both_answers_are_acceptable() -> None:
    moved = caller(demo.RESEARCH, demo.ANONYMOUS, "fable-5")
    before, under = demo.Expected("allow", "fable-5"), demo.Expected("reroute", "glm-5.2")
    assert demo.acceptable(moved, "before", DIRECTIVE) == (before,)
    assert demo.acceptable(moved, "during", DIRECTIVE) == (under,)
    assert demo.acceptable(moved, "landing", DIRECTIVE) == (before, under)
    kept = caller(demo.RESEARCH, demo.US_NATIONAL, "fable-5")
    assert demo.acceptable(kept, "lifting", DIRECTIVE) == (before,)


def _judged(outcomes: list[demo.Outcome], **kw: object) -> list[str]:
    timeline = demo.Timeline(t0=0.0, marks={"issue_sent": 10.0, "issue_confirmed": 11.0,
                                            "revoke_sent": 20.0, "revoke_confirmed": 21.0})
    fields: dict[str, object] = {
        "outcomes": outcomes, "timeline": timeline, "directive": DIRECTIVE,
        "issue": demo.Propagation(0.01, 0.01, 0), "revoke": demo.Propagation(0.01, 0.01, 0),
        "verify_exit": 0}
    fields.update(kw)
    return demo.check(demo.DemoResult(**fields))  # type: ignore[arg-type]


def _complete() -> list[demo.Outcome]:
    """One right answer per caller per phase."""
    out = []
    for c in demo.CALLERS:
        for started, phase in ((5.0, "before"), (15.0, "during"), (25.0, "after")):
            want = demo.expect(c, DIRECTIVE if phase == "during" else None)
            if want.code:
                out.append(outcome(c, started=started, ended=started + 0.01, status=451,
                                   decision="deny", served=None, answered_by=None,
                                   code=want.code, citation=CITATION))
            else:
                out.append(outcome(c, started=started, ended=started + 0.01,
                                   decision=want.decision, served=want.served,
                                   answered_by=want.served,
                                   rerouted_from=c.model if want.decision == "reroute"
                                   else None))
    return out


def test_check_accepts_a_run_that_told_the_story() -> None:
    assert _judged(_complete()) == []


def test_check_names_an_unaffected_caller_that_failed() -> None:
    us = caller(demo.RESEARCH, demo.US_NATIONAL, "fable-5")
    failed = outcome(us, started=15.1, ended=15.2, status=502, decision="deny", served=None,
                     answered_by=None, code="upstream_error", message="every upstream failed")
    assert _judged([*_complete(), failed]) == [
        "during: lantau-research · US national · openai → fable-5: 1 of 2 answers were not "
        "allow fable-5; e.g. 502 upstream_error: every upstream failed"]


def test_check_names_an_affected_caller_still_served_under_the_directive() -> None:
    cn = caller(demo.COPILOT, demo.CN_NATIONAL, "mythos-5")
    leaked = outcome(cn, started=15.1, ended=15.2)
    assert _judged([*_complete(), leaked]) == [
        "during: pacific-copilot · CN national · openai → mythos-5: 1 of 2 answers were not "
        "reroute qwen-local; e.g. 200 allow mythos-5"]


def test_check_names_what_was_not_shown_and_not_verified() -> None:
    missing = [o for o in _complete() if not (o.caller == demo.CALLERS[0] and o.started > 20)]
    assert _judged(missing, revoke=demo.Propagation(None, 0.01, 0), verify_exit=1,
                   verify_output="FAIL leaf: entry 3 does not match") == [
        "after: lantau-research · US national · openai → fable-5 sent no request that fits "
        "the phase, so the story is not shown for it",
        "no affected caller was seen served as asked after the revocation",
        "harbourgate audit verify failed (exit 1):\nFAIL leaf: entry 3 does not match"]


def test_directives_in_reads_the_policy_header() -> None:
    assert demo.directives_in("2026.06+sha256:1a2b3c4d; directives=d1,d2") == ("d1", "d2")
    assert demo.directives_in("2026.06+sha256:1a2b3c4d") == ()
    assert demo.directives_in(None) == ()


def test_attestations_verify_with_the_gateways_own_verifier(tmp_path: Path) -> None:
    verifier = demo.Verifier()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(verifier.jwks()))
    gateway_side = AttestationVerifier.from_settings(
        VerifierSettings(jwks=str(jwks), issuers=(demo.ISSUER,)))
    gateway_side.load()
    token = verifier.attest(demo.DUAL_NATIONAL, "user-7")
    assert token is not None
    user = gateway_side.verify(token)
    assert (user.sub, user.nationality, user.residence, user.verified) == \
        ("user-7", ("CA", "US"), "HK", True)
    assert verifier.attest(demo.ANONYMOUS, "user-8") is None


def test_the_generated_config_is_one_harbourgate_reads(tmp_path: Path) -> None:
    import yaml

    from harbourgate import config

    path = tmp_path / "harbourgate.yaml"
    path.write_text(yaml.safe_dump(demo.gateway_config(tmp_path, "http://127.0.0.1:9",
                                                       tmp_path / "jwks.json")))
    settings = config.load(path, environ={})
    assert [r.name for r in settings.routes] == list(ROUTES)
    assert settings.route("mythos-5").provider == "anthropic"  # type: ignore[union-attr]
    assert settings.route("fable-5").export_tags == ("us-frontier",)  # type: ignore[union-attr]
    assert settings.route("qwen-local").hosting == "HK"  # type: ignore[union-attr]
    assert [a["id"] for a in settings.sandbox.applications] == \
        [a.id for a in demo.APPLICATIONS]


def test_without_the_sdks_the_command_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "harbourgate.demo")
    monkeypatch.setitem(sys.modules, "anthropic", None)
    got = CliRunner().invoke(demo_command, [])
    assert got.exit_code == 2
    assert ("the demo drives the gateway with the official OpenAI and Anthropic SDKs, and "
            "'anthropic' is not installed: pip install 'harbourgate[demo]'") in got.output
