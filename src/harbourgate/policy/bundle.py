"""Bundles: YAML files of rules, composed of packs, validated with file:line and a fix.

A bundle file reads like this (see docs/policy.md for the whole format):

    bundle: hk-sandbox
    version: "2026.06"
    effective_from: 2026-01-01T00:00:00Z
    rules:
      - id: hk.tier.prohibited.social-scoring
        tier: prohibited
        when: {application.use_cases: [social_scoring]}
        citation: "EU AI Act Art. 5(1)(c)"
      - id: hk.deny.prohibited
        effect: deny
        code: tier_prohibited
        when: {application.tier: prohibited}
        citation: "EU AI Act Art. 5(1)"

Rules either classify an application (`tier:`) or decide a request (`effect: allow` with
obligations, `effect: deny` with a code). Every rule cites its legal basis.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harbourgate.policy import conditions, vocab
from harbourgate.policy.conditions import ALWAYS, AllOf, AnyOf, Condition, NotOf, Test
from harbourgate.policy.decision import Obligations
from harbourgate.policy.errors import PolicyError, Problem, Problems
from harbourgate.policy.timeutil import format_instant, parse_instant
from harbourgate.policy.yamlsrc import line_of, parse_file

PACKS_DIR = Path(__file__).parent / "packs"
PACK_FILE = "pack.yaml"
TEST_SUFFIX = ".test.yaml"

FILE_KEYS = ("bundle", "version", "effective_from", "description", "rules")
RULE_KEYS = ("id", "description", "tier", "effect", "code", "when", "unless", "obligations",
             "citation", "message", "effective_from", "effective_until", "default")
OBLIGATION_KEYS = ("pseudonymise", "log", "notice", "human_review")


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule, parsed and validated. `kind` is `tier`, `allow` or `deny`."""

    id: str
    kind: str
    citation: str
    message: str
    when: Condition = ALWAYS
    unless: Condition | None = None
    tier: str | None = None
    code: str | None = None
    obligations: Obligations | None = None
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    default: bool = False
    description: str = ""
    pack: str = ""
    source: str = ""
    line: int | None = None

    @property
    def fields(self) -> set[str]:
        out = conditions.fields_of(self.when)
        if self.unless is not None:
            out |= conditions.fields_of(self.unless)
        return out

    @property
    def model_dependent(self) -> bool:
        """Whether another candidate model could change this rule's outcome."""
        return any(f.startswith("model.") for f in self.fields)

    def in_effect(self, at: datetime) -> bool:
        return ((self.effective_from is None or at >= self.effective_from)
                and (self.effective_until is None or at < self.effective_until))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.tier:
            out["tier"] = self.tier
        else:
            out["effect"] = self.kind
        if self.code:
            out["code"] = self.code
        if self.default:
            out["default"] = True
        if self.when is not ALWAYS:
            out["when"] = condition_to_data(self.when)
        if self.unless is not None:
            out["unless"] = condition_to_data(self.unless)
        if self.obligations is not None:
            ob = self.obligations
            out["obligations"] = {k: v for k, v in (
                ("pseudonymise", list(ob.pseudonymise)), ("log", ob.log),
                ("notice", ob.notice), ("human_review", ob.human_review)) if v}
        out["citation"] = self.citation
        out["message"] = self.message
        if self.description:
            out["description"] = self.description
        if self.effective_from:
            out["effective_from"] = format_instant(self.effective_from)
        if self.effective_until:
            out["effective_until"] = format_instant(self.effective_until)
        return out


def condition_to_data(c: Condition) -> Any:
    """The canonical JSON-able form of a condition (what the content hash covers)."""
    if isinstance(c, Test):
        operand: Any = c.flag if c.op in ("is", "present") else (
            c.values[0] if c.op == "equals" else list(c.values))
        return {c.field.name: {c.op: operand}}
    if isinstance(c, NotOf):
        return {"not": condition_to_data(c.item)}
    if isinstance(c, AnyOf):
        return {"any": [condition_to_data(i) for i in c.items]}
    assert isinstance(c, AllOf)
    return {"all": [condition_to_data(i) for i in c.items]}


@dataclass(frozen=True, slots=True)
class BundleFile:
    name: str
    version: str
    effective_from: datetime
    rules: tuple[Rule, ...]
    source: str
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.name, "version": self.version,
                "effective_from": format_instant(self.effective_from),
                "description": self.description, "source": self.source,
                "rules": [r.to_dict() for r in self.rules]}


@dataclass(frozen=True)
class Bundle:
    """The composed packs and files, in load order; immutable and content-addressed."""

    files: tuple[BundleFile, ...]
    rules: tuple[Rule, ...] = field(init=False)
    declared_version: str = field(init=False)
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(r for f in self.files for r in f.rules))
        versions = sorted({f.version for f in self.files})
        object.__setattr__(self, "declared_version", "/".join(versions) or "empty")
        canonical = json.dumps([_hashable(f) for f in self.files], sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False)
        object.__setattr__(self, "digest", hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def version(self) -> str:
        return f"{self.declared_version}+sha256:{self.digest[:8]}"

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "declared_version": self.declared_version,
                "digest": self.digest, "files": [f.to_dict() for f in self.files]}


def _hashable(f: BundleFile) -> dict[str, Any]:
    data = f.to_dict()
    data.pop("source")  # moving a file does not change what it says
    return data


# --- loading ---------------------------------------------------------------------------------

def available_packs() -> tuple[str, ...]:
    """The names of the built-in packs shipped in `policy/packs/`."""
    return tuple(sorted(p.name for p in PACKS_DIR.iterdir() if (p / PACK_FILE).is_file()))


def pack_path(name: str) -> Path:
    return PACKS_DIR / name / PACK_FILE


def bundle_paths(path: str | Path) -> list[Path]:
    """A file, or every bundle file under a folder: `*.yaml` and `*.yml`, except test
    files (`*.test.yaml`) and directive documents (anything under a `directives/` folder)."""
    p = Path(path)
    if p.is_dir():
        return sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml")
                      and not q.name.endswith(TEST_SUFFIX) and q.is_file()
                      and "directives" not in q.relative_to(p).parts[:-1])
    return [p]


def load_bundle(packs: Sequence[str] = (), extra_paths: Sequence[str | Path] = ()) -> Bundle:
    """Built-in packs by name, then extra files or folders, composed in that order.

    Raises `PolicyError` listing every problem in every file (file:line, message, fix).
    """
    problems: list[Problem] = []
    paths: list[Path] = []
    known = available_packs()
    for name in packs:
        if name not in known:
            problems.append(Problem(f"unknown pack {name!r}", "policy.packs", None,
                                    f"built-in packs are: {', '.join(known)}"))
        else:
            paths.append(pack_path(name))
    for extra in extra_paths:
        if not Path(extra).exists():
            problems.append(Problem("no such file or folder", str(extra), None,
                                    "check the path in policy.bundles"))
        else:
            found = bundle_paths(extra)
            if not found:
                problems.append(Problem("the folder holds no bundle files (*.yaml)", str(extra)))
            paths.extend(found)
    files: list[BundleFile] = []
    for path in paths:
        try:
            files.append(parse_bundle_file(parse_file(path), str(path)))
        except PolicyError as exc:
            problems.extend(exc.problems)
    problems.extend(_cross_file_problems(files))
    if problems:
        raise PolicyError(problems)
    return Bundle(tuple(files))


def parse_bundle_file(data: Any, source: str) -> BundleFile:
    """Validate one parsed YAML document as a bundle file."""
    problems = Problems(source)
    if not isinstance(data, Mapping):
        problems.add("a bundle file must be a mapping with bundle, version, effective_from "
                     "and rules", line_of(data, 1), "start the file with `bundle: NAME`")
        problems.raise_if_any()
    for key in data:
        if key not in FILE_KEYS:
            problems.add(f"unknown key {key!r}", _kline(data, key),
                         f"a bundle file takes: {', '.join(FILE_KEYS)}")
    name = _req_str(data, "bundle", problems, "name the bundle, e.g. `bundle: my-rules`")
    version = data.get("version")
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.strip():
        problems.add("version is required (a string, e.g. \"2026.06\")", _kline(data, "version"),
                     "add `version: \"2026.06\"` (quoted)")
        version = ""
    effective = None
    if "effective_from" not in data:
        problems.add("effective_from is required: the date the bundle takes effect",
                     line_of(data, 1), "add `effective_from: 2026-06-01T00:00:00Z`")
    else:
        effective = _instant(data, "effective_from", problems)
    description = data.get("description") or ""
    rules_node = data.get("rules")
    rules: list[Rule] = []
    if not isinstance(rules_node, list):
        problems.add("rules must be a list of rules", _kline(data, "rules"),
                     "add `rules:` followed by `- id: ...` items")
    else:
        for i, node in enumerate(rules_node):
            rule = _parse_rule(node, problems, name or "", effective,
                               rules_node.line_of(i) if hasattr(rules_node, "line_of") else None)
            if rule is not None:
                rules.append(rule)
    problems.raise_if_any()
    assert name is not None and effective is not None
    return BundleFile(name, version, effective, tuple(rules), source, str(description).strip())


def _parse_rule(node: Any, problems: Problems, pack: str, file_from: datetime | None,
                line: int | None) -> Rule | None:
    if not isinstance(node, Mapping):
        problems.add("a rule must be a mapping with id, tier or effect, and citation", line,
                     "write `- id: my.rule` then its keys, indented")
        return None
    start = len(problems.items)
    line = line_of(node, line)
    for key in node:
        if key not in RULE_KEYS:
            problems.add(f"rule {node.get('id', '?')}: unknown key {key!r}", _kline(node, key),
                         f"a rule takes: {', '.join(RULE_KEYS)}")
    rid = node.get("id")
    if not isinstance(rid, str) or not vocab.RULE_ID.fullmatch(rid):
        problems.add(f"rule id {rid!r} is missing or malformed", _kline(node, "id", line),
                     "use lower-case words with dots or dashes, e.g. hk.tier.high.credit")
        rid = "?"
    label = f"rule {rid}"
    tier, effect = node.get("tier"), node.get("effect")
    kind = "tier"
    if (tier is None) == (effect is None):
        problems.add(f"{label} needs exactly one of tier: or effect:", line,
                     "a rule either classifies (tier: high) or decides (effect: deny)")
    elif tier is not None:
        if tier not in vocab.TIERS:
            problems.add(f"{label}: tier {tier!r} is not a tier", _kline(node, "tier", line),
                         f"use one of: {', '.join(vocab.TIERS)}")
    elif effect not in vocab.EFFECTS:
        problems.add(f"{label}: effect {effect!r} is not an effect",
                     _kline(node, "effect", line), "use allow or deny")
    else:
        kind = effect
    citation = node.get("citation")
    if not isinstance(citation, str) or not citation.strip():
        what = "a deny must cite its legal basis" if kind == "deny" else "every rule cites " \
            "its legal basis"
        problems.add(f"{label} has no citation: {what}", line,
                     "add `citation: \"EU AI Act Art. 5(1)(c)\"` (see CITATIONS.md)")
        citation = ""
    code = node.get("code")
    if kind == "deny":
        if code not in vocab.DENY_CODES:
            problems.add(f"{label}: a deny needs a code, not {code!r}",
                         _kline(node, "code", line), f"use one of: {', '.join(vocab.DENY_CODES)}")
    elif code is not None:
        problems.add(f"{label}: only a deny has a code", _kline(node, "code", line),
                     "remove code:")
    where = label
    when = conditions.parse(node.get("when"), problems, f"{where}.when", _kline(node, "when", line))
    unless = (conditions.parse(node["unless"], problems, f"{where}.unless",
                               _kline(node, "unless", line)) if "unless" in node else None)
    obligations = None
    if "obligations" in node:
        if kind != "allow":
            problems.add(f"{label}: only an allow rule carries obligations",
                         _kline(node, "obligations", line), "move them to an `effect: allow` rule")
        obligations = _obligations(node["obligations"], problems, label,
                                   _kline(node, "obligations", line))
    start_at = _instant(node, "effective_from", problems) if "effective_from" in node else None
    until = _instant(node, "effective_until", problems) if node.get("effective_until") else None
    default = node.get("default", False)
    if not isinstance(default, bool):
        problems.add(f"{label}: default takes true or false", _kline(node, "default", line))
        default = False
    if kind == "tier":
        used = (conditions.fields_of(when) | (conditions.fields_of(unless) if unless else set()))
        for name in sorted(used):
            from harbourgate.policy.fields import FIELDS

            if not FIELDS[name].tier_input:
                problems.add(f"{label}: a tier rule classifies the application and may only test "
                             f"application.use_cases and application.data_categories, not {name}",
                             _kline(node, "when", line),
                             "move the condition to an `effect: deny` or `effect: allow` rule")
        for key in ("effective_from", "effective_until"):
            if key in node:
                problems.add(f"{label}: a tier rule cannot be time-bounded ({key})",
                             _kline(node, key, line),
                             "tiers are fixed per bundle version; bound an effect rule instead")
        if default and (when is not ALWAYS or unless is not None):
            problems.add(f"{label}: a default tier rule applies when no other tier rule does, "
                         "so it takes no conditions", line, "remove when:/unless:")
    elif default:
        problems.add(f"{label}: only a tier rule can be the default", _kline(node, "default", line),
                     "remove default:")
    if start_at and until and until <= start_at:
        problems.add(f"{label}: effective_until {format_instant(until)} is not after "
                     f"effective_from {format_instant(start_at)}",
                     _kline(node, "effective_until", line), "fix one of the two dates")
    if kind != "tier" and file_from and (start_at is None or start_at < file_from):
        start_at = file_from
    message = node.get("message")
    if message is not None and not isinstance(message, str):
        problems.add(f"{label}: message must be text", _kline(node, "message", line))
        message = None
    description = node.get("description") or ""
    if len(problems.items) > start:
        return None
    return Rule(
        id=rid, kind=kind, citation=citation.strip(),
        message=(message or _default_message(kind, tier, code, rid)).strip(),
        when=when, unless=unless, tier=tier if kind == "tier" else None,
        code=code if kind == "deny" else None, obligations=obligations,
        effective_from=start_at, effective_until=until, default=default,
        description=str(description).strip(), pack=pack, source=problems.source, line=line)


def _default_message(kind: str, tier: str | None, code: str | None, rid: str) -> str:
    if kind == "tier":
        return f"classified {tier} by {rid}"
    if kind == "deny":
        return f"refused ({code}) by {rid}"
    return f"allowed under {rid}"


def _obligations(node: Any, problems: Problems, label: str, line: int | None) -> Obligations:
    if not isinstance(node, Mapping):
        problems.add(f"{label}: obligations must be a mapping", line,
                     f"use keys: {', '.join(OBLIGATION_KEYS)}")
        return Obligations()
    for key in node:
        if key not in OBLIGATION_KEYS:
            problems.add(f"{label}: unknown obligation {key!r}", _kline(node, key, line),
                         f"obligations are: {', '.join(OBLIGATION_KEYS)}")
    classes: tuple[str, ...] = ()
    raw = node.get("pseudonymise")
    if raw == "all":
        classes = vocab.DATA_CLASSES
    elif raw is not None:
        if not isinstance(raw, list) or not raw:
            problems.add(f"{label}: pseudonymise takes a list of classes or `all`",
                         _kline(node, "pseudonymise", line), "write `pseudonymise: [hk_id, phone]`")
        else:
            bad = [c for c in raw if c not in vocab.DATA_CLASSES]
            if bad:
                problems.add(f"{label}: unknown data class {bad[0]!r} in pseudonymise",
                             _kline(node, "pseudonymise", line),
                             f"classes are: {', '.join(vocab.DATA_CLASSES)}")
            classes = tuple(c for c in vocab.DATA_CLASSES if c in raw)
    log = node.get("log", "")
    if log and log not in vocab.LOG_LEVELS:
        problems.add(f"{label}: log must be metadata or full, not {log!r}",
                     _kline(node, "log", line))
        log = ""
    notice = node.get("notice")
    if notice is not None and (not isinstance(notice, str) or not notice.strip()):
        problems.add(f"{label}: notice must be non-empty text", _kline(node, "notice", line))
        notice = None
    review = node.get("human_review", False)
    if not isinstance(review, bool):
        problems.add(f"{label}: human_review takes true or false",
                     _kline(node, "human_review", line))
        review = False
    return Obligations(classes, log, notice.strip() if notice else None, review)


def _cross_file_problems(files: Iterable[BundleFile]) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, Rule] = {}
    names: dict[str, BundleFile] = {}
    default: Rule | None = None
    for f in files:
        if f.name in names:
            problems.append(Problem(
                f"bundle {f.name!r} is loaded twice (also {names[f.name].source})",
                f.source, 1, "load each pack or file once"))
        names[f.name] = f
        for rule in f.rules:
            if rule.id in seen:
                first = seen[rule.id]
                problems.append(Problem(
                    f"two rules have the id {rule.id!r} (first at {first.source}:{first.line})",
                    rule.source, rule.line, "give each rule its own id"))
            seen[rule.id] = rule
            if rule.default:
                if default is not None:
                    problems.append(Problem(
                        f"a second default tier rule {rule.id!r} (first: {default.id} at "
                        f"{default.source}:{default.line})", rule.source, rule.line,
                        "keep one default tier rule"))
                default = default or rule
    return problems


def _kline(node: Any, key: str, default: int | None = None) -> int | None:
    fn = getattr(node, "line_of", None)
    return fn(key) if fn and key in node else (line_of(node, default))


def _req_str(data: Mapping[str, Any], key: str, problems: Problems, fix: str) -> str | None:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.add(f"{key} is required (a string)", _kline(data, key, 1), fix)
        return None
    return value.strip()


def _instant(data: Mapping[str, Any], key: str, problems: Problems) -> datetime | None:
    try:
        return parse_instant(data.get(key))
    except ValueError as exc:
        problems.add(f"{key}: {exc}", _kline(data, key))
        return None
