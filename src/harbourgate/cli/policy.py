"""`harbourgate policy`: check bundles, run policy tests, explain a decision, export to Cedar.

Exit codes (PRODUCT.md §4.3): 0 success, 1 a policy test failed, 2 an input error, with
every problem printed as `file:line: message (fix: ...)`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from harbourgate.policy.errors import PolicyError, Problem

SHIPPED = ("hk-sandbox", "eu-ai-act", "cross-border", "export-directives")


class PolicyInputError(click.ClickException):
    """Exit 2 with every problem listed (file:line, message, fix)."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem], heading: str) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{heading}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@click.group("policy")
def policy() -> None:
    """Validate, test, explain and export the policy (bundles, packs, directives)."""


# --- check -------------------------------------------------------------------------------------

@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path())
def check(files: tuple[str, ...]) -> None:
    """Validate bundle files (and directive and test files): every problem, with file:line.

    FILES are bundle files or folders; in a folder, `*.test.yaml` files are checked as
    policy tests and files under `directives/` as directive documents.
    """
    from harbourgate.directives.model import load_directive_file
    from harbourgate.policy.bundle import load_bundle
    from harbourgate.policy.testing import load_test_file

    bundles, tests, directives = _sort_files(files)
    problems: list[Problem] = []
    bundle = None
    try:
        bundle = load_bundle((), bundles)
    except PolicyError as exc:
        problems.extend(exc.problems)
    for path in directives:
        try:
            load_directive_file(path)
        except PolicyError as exc:
            problems.extend(exc.problems)
    for path in tests:
        try:
            load_test_file(path)
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyInputError(problems, "policy check failed")
    rules = len(bundle.rules) if bundle else 0
    version = bundle.version if bundle and bundle.files else "-"
    click.echo(f"ok: {len(bundles)} bundle file(s), {rules} rules, version {version}; "
               f"{len(directives)} directive(s), {len(tests)} test file(s)")


def _sort_files(files: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    from harbourgate.policy.bundle import TEST_SUFFIX

    bundles: list[str] = []
    tests: list[str] = []
    directives: list[str] = []
    for name in files:
        path = Path(name)
        candidates = sorted(q for q in path.rglob("*") if q.suffix in (".yaml", ".yml")) \
            if path.is_dir() else [path]
        for q in candidates:
            if q.name.endswith(TEST_SUFFIX):
                tests.append(str(q))
            elif "directives" in q.parts[len(path.parts) - (0 if path.is_dir() else 1):]:
                directives.append(str(q))
            else:
                bundles.append(str(q))
    return bundles, tests, directives


# --- test --------------------------------------------------------------------------------------

@policy.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
def test(paths: tuple[str, ...], verbose: bool) -> None:
    """Run the policy test cases (`*.test.yaml`) under PATHS; exit 1 when one fails."""
    from harbourgate.policy.testing import run_tests

    try:
        report = run_tests(paths)
    except PolicyError as exc:
        raise PolicyInputError(exc.problems, "cannot run the policy tests") from None
    if not report.results:
        raise PolicyInputError([Problem("no test files (*.test.yaml) here", ", ".join(paths),
                                        None, "name test files NAME.test.yaml")],
                               "nothing to test")
    click.echo(report.render(verbose))
    if not report.ok:
        raise SystemExit(1)


# --- explain -----------------------------------------------------------------------------------

def _policy_options(fn: Any) -> Any:
    fn = click.option("--config", "config_path", type=click.Path(),
                      help="Take packs, bundles and routes from this config file.")(fn)
    fn = click.option("--directive", "directive_files", multiple=True, type=click.Path(),
                      help="A directive document to put in force (repeatable).")(fn)
    fn = click.option("--bundle", "bundle_paths", multiple=True, type=click.Path(),
                      help="An extra bundle file or folder (repeatable).")(fn)
    fn = click.option("--pack", "packs", multiple=True,
                      help="A built-in pack (repeatable; default: the config's, or all four).")(fn)
    return fn


def _snapshot(packs: Sequence[str], bundle_paths: Sequence[str], directive_files: Sequence[str],
              config_path: str | None) -> Any:
    from harbourgate.directives.model import load_directive_file
    from harbourgate.policy.bundle import load_bundle
    from harbourgate.policy.snapshot import compile

    known = None
    chosen_packs: Sequence[str] = packs
    extra: list[str] = list(bundle_paths)
    if config_path:
        from harbourgate.cli.common import load_settings

        settings = load_settings(config_path)
        chosen_packs = packs or settings.policy.packs
        extra = [*settings.policy.bundles, *extra]
        known = [r.name for r in settings.routes]
    elif not packs and not bundle_paths:
        chosen_packs = SHIPPED
    try:
        directives = [load_directive_file(f, known_models=known) for f in directive_files]
        return compile(load_bundle(chosen_packs, extra), directives, known_models=known)
    except PolicyError as exc:
        raise PolicyInputError(exc.problems, "cannot load the policy") from None


@policy.command("explain")
@click.option("--context", "context_file", required=True, type=click.Path(),
              help="A context file (YAML or JSON): application, model, request, ...")
@_policy_options
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain(context_file: str, packs: tuple[str, ...], bundle_paths: tuple[str, ...],
            directive_files: tuple[str, ...], config_path: str | None, as_json: bool) -> None:
    """Print the decision for a context and every rule considered, with citations."""
    from harbourgate.policy.context import Context
    from harbourgate.policy.yamlsrc import parse_file

    snapshot = _snapshot(packs, bundle_paths, directive_files, config_path)
    try:
        ctx = Context.from_dict(parse_file(context_file), context_file)
    except PolicyError as exc:
        raise PolicyInputError(exc.problems, "invalid context") from None
    explanation = snapshot.explain(ctx)
    if as_json:
        click.echo(json.dumps(explanation.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_explanation(explanation))


def render_explanation(explanation: Any) -> str:
    """The explanation as text for a terminal: decision first, then every rule."""
    d = explanation.decision
    lines = []
    if d.allowed:
        lines.append(click.style("ALLOW", fg="green", bold=True) + f"  (tier {d.tier})")
    else:
        status = f"{d.code} ({d.status})"
        lines.append(click.style("DENY", fg="red", bold=True) + f"  {status}")
        lines.append(f"  rule:     {d.rule}")
        lines.append(f"  citation: {d.citation}")
        lines.append(f"  message:  {d.message}")
        lines.append("  another model could serve it" if d.model_dependent
                     else "  no other model would be allowed either")
    ob = d.obligations
    if d.allowed:
        lines.append(f"  obligations: log={ob.log}, human_review={str(ob.human_review).lower()}"
                     f", pseudonymise=[{', '.join(ob.pseudonymise)}]")
        if ob.notice:
            lines.append(f"  notice: {ob.notice}")
    t = explanation.tier
    lines.append(f"  tier {t.tier}: {t.rule or '(no rule)'} - {t.reason}"
                 + (f" [{t.citation}]" if t.citation else ""))
    lines.append(f"  policy: {explanation.version}")
    for title, traces in (("tier rules", explanation.tier_rules),
                          ("rules", explanation.rules)):
        lines.append("")
        lines.append(f"{title} considered ({sum(x.fired for x in traces)} of {len(traces)} "
                     "fired):")
        for trace in traces:
            r = trace.rule
            mark = click.style("FIRED", fg="yellow") if trace.fired else "  -  "
            what = r.tier if r.kind == "tier" else (f"deny {r.code}" if r.code else r.kind)
            lines.append(f"  {mark} {r.id} ({what}) [{r.citation}]")
            lines.append(f"          {trace.why}")
    return "\n".join(lines)


# --- export ------------------------------------------------------------------------------------

@policy.command("export")
@click.option("--cedar", is_flag=True, required=True,
              help="Export the allow/deny part as Cedar policies.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Write policies.cedar and MAPPING.md here (default: print the policies).")
@_policy_options
def export(cedar: bool, out_dir: str | None, packs: tuple[str, ...],
           bundle_paths: tuple[str, ...], directive_files: tuple[str, ...],
           config_path: str | None) -> None:
    """Export the policy's allow/deny outcome to Cedar, with the entity/context mapping."""
    from harbourgate.policy import cedar as cedar_export

    snapshot = _snapshot(packs, bundle_paths, directive_files, config_path)
    text = cedar_export.export_policies(snapshot)
    if not out_dir:
        click.echo(text)
        return
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "policies.cedar").write_text(text, encoding="utf-8")
    (out / "MAPPING.md").write_text(
        f"# Harbourgate -> Cedar mapping\n\nPolicy {snapshot.version}.\n\n"
        + cedar_export.MAPPING, encoding="utf-8")
    click.echo(f"wrote {out / 'policies.cedar'} ({text.count(';')} policies) and "
               f"{out / 'MAPPING.md'}")
