"""Policy test cases: context -> expected decision, run like `opa test`.

A test file (`*.test.yaml`) sits beside the bundle it tests:

    packs: [hk-sandbox]              # built-in packs (default, without packs or bundles:
                                     # the four shipped packs)
    bundles: [../my-rules.yaml]      # extra bundle files, relative to this file
    directives: [directive.yaml]     # directive documents in force, relative to this file
    defaults:                        # merged under every case's context
      request: {time: 2026-07-01T00:00:00Z}
    cases:
      - name: social scoring is refused
        context: {application: {use_cases: [social_scoring]}, model: {name: fable-5}}
        expect: {effect: deny, code: tier_prohibited, rule: hk.deny.prohibited}

`expect` may hold effect, code, tier, model_dependent, rule (the deciding rule), rules
(must all fire), not_rules (must not fire), obligations (only the keys given are
compared). A failing case prints each difference and, for a rule that should have fired,
why it did not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harbourgate.policy import vocab
from harbourgate.policy.bundle import TEST_SUFFIX, load_bundle
from harbourgate.policy.context import Context
from harbourgate.policy.decision import Decision
from harbourgate.policy.errors import PolicyError, Problem, Problems
from harbourgate.policy.snapshot import Explanation, PolicySnapshot, compile
from harbourgate.policy.yamlsrc import line_of, parse_file

SHIPPED = ("hk-sandbox", "eu-ai-act", "cross-border", "export-directives")
FILE_KEYS = ("packs", "bundles", "directives", "defaults", "cases")
CASE_KEYS = ("name", "context", "expect")
EXPECT_KEYS = ("effect", "code", "tier", "model_dependent", "rule", "rules", "not_rules",
               "obligations")
OBLIGATION_KEYS = ("pseudonymise", "log", "notice", "human_review")


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    line: int | None
    context: Context
    expect: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TestFile:
    path: str
    snapshot: PolicySnapshot
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    source: str
    name: str
    line: int | None
    differences: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.differences


@dataclass
class TestReport:
    results: list[CaseResult] = field(default_factory=list)
    files: int = 0

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.failed

    def render(self, verbose: bool = False) -> str:
        lines: list[str] = []
        source = None
        for r in self.results:
            if r.passed and not verbose:
                continue
            if r.source != source:
                source = r.source
                lines.append(f"{source}:")
            where = f" (line {r.line})" if r.line else ""
            lines.append(f"  {'PASS' if r.passed else 'FAIL'}  {r.name}{where}")
            lines.extend(f"        {d}" for d in r.differences)
        passed = len(self.results) - len(self.failed)
        if lines:
            lines.append("-" * 72)
        summary = f"PASS: {passed}/{len(self.results)}"
        if self.failed:
            summary += f"   FAIL: {len(self.failed)}"
        lines.append(f"{summary}   ({self.files} file{'s' if self.files != 1 else ''})")
        return "\n".join(lines)


def find_test_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(q for q in p.rglob(f"*{TEST_SUFFIX}") if q.is_file())
    return [p]


def run_tests(paths: Sequence[str | Path]) -> TestReport:
    """Run every test file in the given files or folders.

    Raises `PolicyError` when a test file (or a bundle or directive it names) is invalid:
    that is an input error, not a failing test.
    """
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if not Path(path).exists():
            problems.append(Problem("no such file or folder", str(path), None,
                                    "check the path"))
            continue
        files.extend(find_test_files(path))
    loaded: list[TestFile] = []
    cache: dict[tuple[Any, ...], PolicySnapshot] = {}
    for f in files:
        try:
            loaded.append(load_test_file(f, cache))
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyError(problems)
    report = TestReport(files=len(loaded))
    for tf in loaded:
        for case in tf.cases:
            report.results.append(CaseResult(tf.path, case.name, case.line,
                                             tuple(check_case(tf.snapshot, case))))
    return report


def load_test_file(path: str | Path,
                   cache: dict[tuple[Any, ...], PolicySnapshot] | None = None) -> TestFile:
    from harbourgate.directives.model import load_directive_file

    source = str(path)
    data = parse_file(path)
    problems = Problems(source)
    if not isinstance(data, Mapping):
        problems.add("a test file must be a mapping with cases", line_of(data, 1),
                     "start with `cases:`")
        problems.raise_if_any()
    for key in data:
        if key not in FILE_KEYS:
            problems.add(f"unknown key {key!r}", _line(data, key),
                         f"a test file takes: {', '.join(FILE_KEYS)}")
    base = Path(path).parent
    given = "packs" in data or "bundles" in data
    packs = tuple(_strings(data, "packs", problems)) if given else SHIPPED
    bundles = tuple(str(base / b) for b in _strings(data, "bundles", problems))
    directive_paths = tuple(str(base / d) for d in _strings(data, "directives", problems))
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        problems.add("defaults must be a mapping (a partial context)", _line(data, "defaults"))
        defaults = {}
    cases_node = data.get("cases")
    if not isinstance(cases_node, list) or not cases_node:
        problems.add("cases must be a non-empty list", _line(data, "cases"),
                     "add `cases:` with `- name: ...` items")
        cases_node = []
    cases: list[Case] = []
    names: set[str] = set()
    for i, node in enumerate(cases_node):
        line = cases_node.line_of(i) if hasattr(cases_node, "line_of") else None
        case = _case(node, defaults, problems, line)
        if case is not None:
            if case.name in names:
                problems.add(f"two cases are named {case.name!r}", line, "rename one")
            names.add(case.name)
            cases.append(case)
    problems.raise_if_any()
    key = (packs, bundles, directive_paths)
    snapshot = cache.get(key) if cache is not None else None
    if snapshot is None:
        directives = [load_directive_file(p) for p in directive_paths]
        snapshot = compile(load_bundle(packs, bundles), directives)
        if cache is not None:
            cache[key] = snapshot
    return TestFile(source, snapshot, tuple(cases))


def _case(node: Any, defaults: Mapping[str, Any], problems: Problems,
          line: int | None) -> Case | None:
    if not isinstance(node, Mapping):
        problems.add("a case must be a mapping with name, context and expect", line)
        return None
    for key in node:
        if key not in CASE_KEYS:
            problems.add(f"unknown key {key!r} in a case", _line(node, key),
                         f"a case takes: {', '.join(CASE_KEYS)}")
    name = node.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add("a case needs a name", line, "add `name: what this case shows`")
        name = f"case at line {line}"
    expect = node.get("expect")
    if not isinstance(expect, Mapping) or not expect:
        problems.add(f"case {name!r}: expect must be a non-empty mapping",
                     _line(node, "expect", line), f"use keys: {', '.join(EXPECT_KEYS)}")
        return None
    _check_expect(expect, problems, name)
    try:
        context = Context.from_dict(merge(defaults, node.get("context") or {}),
                                   problems.source)
    except PolicyError as exc:
        problems.extend(exc.problems)
        return None
    return Case(name, line, context, expect)


def _check_expect(expect: Mapping[str, Any], problems: Problems, name: str) -> None:
    for key, value in expect.items():
        line = _line(expect, key)
        if key not in EXPECT_KEYS:
            problems.add(f"case {name!r}: unknown expectation {key!r}", line,
                         f"expect takes: {', '.join(EXPECT_KEYS)}")
        elif key == "effect" and value not in vocab.EFFECTS:
            problems.add(f"case {name!r}: effect must be allow or deny, not {value!r}", line)
        elif key == "code" and value is not None and value not in vocab.DENY_CODES:
            problems.add(f"case {name!r}: unknown code {value!r}", line,
                         f"codes: {', '.join(vocab.DENY_CODES)}")
        elif key == "tier" and value not in vocab.TIERS:
            problems.add(f"case {name!r}: unknown tier {value!r}", line,
                         f"tiers: {', '.join(vocab.TIERS)}")
        elif key == "model_dependent" and not isinstance(value, bool):
            problems.add(f"case {name!r}: model_dependent takes true or false", line)
        elif key in ("rules", "not_rules") and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            problems.add(f"case {name!r}: {key} must be a list of rule ids", line)
        elif key == "obligations":
            if not isinstance(value, Mapping):
                problems.add(f"case {name!r}: obligations must be a mapping", line)
                continue
            for ok in value:
                if ok not in OBLIGATION_KEYS:
                    problems.add(f"case {name!r}: unknown obligation {ok!r}", _line(value, ok),
                                 f"obligations: {', '.join(OBLIGATION_KEYS)}")


def check_case(snapshot: PolicySnapshot, case: Case) -> list[str]:
    """The differences between what the case expects and what the policy decides."""
    decision = snapshot.decide(case.context)
    explanation = snapshot.explain(case.context)
    diffs: list[str] = []
    if explanation.decision != decision:
        diffs.append("engine disagreement: the compiled decide() and explain() differ "
                     f"({decision.effect}/{decision.code} vs {explanation.decision.effect}/"
                     f"{explanation.decision.code}); please report this")
    fired = _fired(decision)
    e = case.expect
    for key in ("effect", "code", "tier", "model_dependent", "rule"):
        if key in e:
            got = getattr(decision, key)
            if got != e[key]:
                diffs.append(f"{key}: expected {_show(e[key])}, got {_show(got)}")
    for rid in e.get("rules", ()):
        if rid not in fired:
            diffs.append(f"rules: expected {rid} to fire; {_why_not(explanation, rid)}")
    for rid in e.get("not_rules", ()):
        if rid in fired:
            diffs.append(f"not_rules: {rid} fired but should not have")
    for key, want in (e.get("obligations") or {}).items():
        got = getattr(decision.obligations, key)
        if key == "pseudonymise":
            want = "all" if want == "all" else want
            want_t = vocab.DATA_CLASSES if want == "all" else tuple(
                c for c in vocab.DATA_CLASSES if c in (want or ()))
            if tuple(got) != want_t:
                diffs.append(f"obligations.pseudonymise: expected {_show(list(want_t))}, "
                             f"got {_show(list(got))}")
        elif got != want:
            diffs.append(f"obligations.{key}: expected {_show(want)}, got {_show(got)}")
    if diffs:
        diffs.append(f"decision: {decision.effect}"
                     + (f" {decision.code}" if decision.code else "")
                     + f", tier {decision.tier}, fired: {', '.join(sorted(fired)) or 'none'}")
    return diffs


def _fired(decision: Decision) -> set[str]:
    return {r.rule for r in decision.reasons}


def _why_not(explanation: Explanation, rid: str) -> str:
    for trace in (*explanation.tier_rules, *explanation.rules):
        if trace.rule.id == rid:
            if trace.fired:
                return "it matched, but the decision does not list it (a deny overrides allows)"
            return f"it did not: {trace.why}"
    return "no rule has that id in this bundle"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def merge(defaults: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """A case's context over the file's defaults, section by section.

    Within a section a case's key replaces the default's (so `classes: {}` means none);
    a section given as null (e.g. `end_user: null`) drops the default section.
    """
    out: dict[str, Any] = {}
    for key in [*defaults, *(k for k in context if k not in defaults)]:
        base, over = defaults.get(key), context.get(key, _MISSING)
        if over is _MISSING:
            out[key] = base
        elif isinstance(base, Mapping) and isinstance(over, Mapping):
            merged = type(over)() if hasattr(over, "key_lines") else {}
            for attr in ("line", "key_lines"):
                if hasattr(over, attr):
                    setattr(merged, attr, getattr(over, attr))
            merged.update(base)
            merged.update(over)
            out[key] = merged
        else:
            out[key] = over
    return out


_MISSING = object()


def _strings(data: Mapping[str, Any], key: str, problems: Problems) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(f"{key} must be a list of names or paths", _line(data, key))
        return []
    return list(value)


def _line(node: Any, key: str, default: int | None = None) -> int | None:
    fn = getattr(node, "line_of", None)
    return fn(key) if fn else default
