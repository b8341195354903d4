"""The directive document, its validation, and the policy rule it compiles into.

A directive names the models it governs (by route name or export tag) and who may still
use them (`permit_only`). Compiled, it is a deny rule that overrides the bundle: for a
governed model, an end user is permitted only when verified and inside `permit_only`;
everyone else is refused with `legal_restriction`, citing the directive. The refusal is
model-dependent, so the gateway reroutes to a permitted model of the same class.

`permit_only` may list `nationality` (inside when *any* verified nationality is listed)
and `residence` (inside when the verified residence is listed); when it lists both, a user
must satisfy both. An unverified user is never inside.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harbourgate import geo
from harbourgate.policy import vocab
from harbourgate.policy.bundle import Rule
from harbourgate.policy.conditions import AllOf, AnyOf, Condition, Test
from harbourgate.policy.errors import PolicyError, Problems
from harbourgate.policy.fields import FIELDS
from harbourgate.policy.timeutil import format_instant, parse_instant
from harbourgate.policy.yamlsrc import line_of, parse_file

FIXED_KEYS = ("authority", "citation", "title", "models", "export_tags", "permit_only",
              "effective_from", "effective_until")
PERMIT_KEYS = ("nationality", "residence")
ID_PATTERN = vocab.RULE_ID


class DirectiveError(PolicyError):
    """A directive that cannot be issued; `problems` says which key and how to fix it."""


@dataclass(frozen=True, slots=True)
class Directive:
    authority: str
    citation: str
    title: str
    models: tuple[str, ...] = ()
    export_tags: tuple[str, ...] = ()
    permit_nationality: tuple[str, ...] = ()
    permit_residence: tuple[str, ...] = ()
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    # -- reading

    @classmethod
    def from_dict(cls, data: Any, *, known_models: Collection[str] | None = None,
                  source: str = "<directive>") -> Directive:
        """Validate a directive document (PRODUCT.md §4.2); more keys are kept in `extra`.

        `known_models`: the route names in force; a directive naming another model is
        refused (pass None to skip the check, e.g. when routes are not known yet).
        """
        problems = Problems(source)
        if not isinstance(data, Mapping):
            problems.add("a directive must be a mapping with authority, citation, title, "
                         "models (or export_tags) and permit_only", line_of(data))
            raise DirectiveError(problems.items)
        texts = {key: _text(data, key, problems) for key in ("authority", "citation", "title")}
        models = _names(data, "models", problems)
        tags = _names(data, "export_tags", problems)
        if not models and not tags:
            problems.add("the directive governs no model", _line(data, "models"),
                         "add `models: [fable-5, ...]` or `export_tags: [us-frontier]`")
        if known_models is not None:
            for name in models:
                if name not in known_models:
                    problems.add(f"models: unknown model {name!r}", _line(data, "models"),
                                 f"use a route name: {', '.join(sorted(known_models)) or 'none'}")
        nationality, residence = _permit_only(data, problems)
        start = _instant(data, "effective_from", problems)
        until = _instant(data, "effective_until", problems)
        if start and until and until <= start:
            problems.add(f"effective_until {format_instant(until)} is not after effective_from "
                         f"{format_instant(start)}", _line(data, "effective_until"),
                         "a directive must be in force for some time: fix one of the dates")
        ident = data.get("id")
        if ident is not None and (not isinstance(ident, str) or not ID_PATTERN.fullmatch(ident)):
            problems.add(f"id {ident!r} is malformed", _line(data, "id"),
                         "use lower-case letters, digits, dots and dashes (or leave it out)")
            ident = None
        if problems:
            raise DirectiveError(problems.items)
        extra = {k: v for k, v in data.items() if k not in FIXED_KEYS and k != "id"}
        return cls(authority=texts["authority"], citation=texts["citation"],
                   title=texts["title"], models=models, export_tags=tags,
                   permit_nationality=nationality, permit_residence=residence,
                   effective_from=start, effective_until=until, id=ident,
                   extra=MappingProxyType(extra))

    def to_dict(self) -> dict[str, Any]:
        """The document form (what `from_dict` reads back)."""
        permit: dict[str, list[str]] = {}
        if self.permit_nationality:
            permit["nationality"] = list(self.permit_nationality)
        if self.permit_residence:
            permit["residence"] = list(self.permit_residence)
        out: dict[str, Any] = {}
        if self.id:
            out["id"] = self.id
        out.update(authority=self.authority, citation=self.citation, title=self.title)
        if self.models:
            out["models"] = list(self.models)
        if self.export_tags:
            out["export_tags"] = list(self.export_tags)
        out["permit_only"] = permit
        out["effective_from"] = format_instant(self.effective_from) if self.effective_from \
            else None
        out["effective_until"] = format_instant(self.effective_until) if self.effective_until \
            else None
        out.update(self.extra)
        return out

    # -- meaning

    @property
    def rule_id(self) -> str:
        """`directive:ID`, or `directive:` and a content hash when it has no id yet."""
        return f"directive:{self.id or 'sha256-' + self.digest[:8]}"

    @property
    def digest(self) -> str:
        body = {k: v for k, v in self.to_dict().items() if k in FIXED_KEYS}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def in_force_at(self, at: datetime) -> bool:
        return ((self.effective_from is None or at >= self.effective_from)
                and (self.effective_until is None or at < self.effective_until))

    def governs(self, model: str, export_tags: Collection[str] = ()) -> bool:
        return model in self.models or any(t in self.export_tags for t in export_tags)

    def permits(self, verified: bool, nationality: Collection[str] | None,
                residence: str | None) -> bool:
        """Whether an end user is inside `permit_only` (unknown facts are outside)."""
        if not verified:
            return False
        if self.permit_nationality and not (
                nationality and any(n in self.permit_nationality for n in nationality)):
            return False
        return not (self.permit_residence and residence not in self.permit_residence)

    def to_rule(self) -> Rule:
        """The deny rule this directive adds to a policy snapshot."""
        governed: list[Condition] = []
        if self.models:
            governed.append(Test(FIELDS["model.name"], "in", self.models))
        if self.export_tags:
            governed.append(Test(FIELDS["model.export_tags"], "any_of", self.export_tags))
        inside: list[Condition] = [Test(FIELDS["end_user.verified"], "is", (), True)]
        if self.permit_nationality:
            inside.append(Test(FIELDS["end_user.nationality"], "any_of", self.permit_nationality))
        if self.permit_residence:
            inside.append(Test(FIELDS["end_user.residence"], "in", self.permit_residence))
        who = []
        if self.permit_nationality:
            who.append(f"nationality {'/'.join(self.permit_nationality)}")
        if self.permit_residence:
            who.append(f"residence {'/'.join(self.permit_residence)}")
        scope = ", ".join([*self.models, *(f"tag {t}" for t in self.export_tags)])
        message = (f"{self.title} ({self.authority}): {scope} only for verified end users "
                   f"with {' and '.join(who)}")
        return Rule(
            id=self.rule_id, kind="deny", citation=self.citation, message=message,
            when=governed[0] if len(governed) == 1 else AnyOf(tuple(governed)),
            unless=AllOf(tuple(inside)), code="legal_restriction",
            effective_from=self.effective_from, effective_until=self.effective_until,
            description=self.title, pack="directive", source=f"directive {self.id or ''}".strip())


def load_directive_file(path: str | Path, *,
                        known_models: Collection[str] | None = None) -> Directive:
    """Read a directive from a YAML or JSON file (`harbourgate directive issue FILE`)."""
    try:
        data = parse_file(path)
    except PolicyError as exc:
        raise DirectiveError(exc.problems) from None
    return Directive.from_dict(data, known_models=known_models, source=str(path))


# --- validation helpers -------------------------------------------------------------------------

def _line(data: Any, key: str) -> int | None:
    fn = getattr(data, "line_of", None)
    return fn(key) if fn else None


def _text(data: Mapping[str, Any], key: str, problems: Problems) -> str:
    value = data.get(key)
    hint = {"authority": "who issued it, e.g. `authority: US Department of Commerce`",
            "citation": "its source, e.g. `citation: \"Order to Anthropic of 2026-06-12\"`",
            "title": "a short title, e.g. `title: Frontier models for US nationals only`"}[key]
    if value is None:
        problems.add(f"{key} is required", line_of(data), f"add {hint}")
        return ""
    if not isinstance(value, str) or not value.strip():
        problems.add(f"{key} must be non-empty text", _line(data, key), f"write {hint}")
        return ""
    return value.strip()


def _names(data: Mapping[str, Any], key: str, problems: Problems) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.add(f"{key} must be a list of names", _line(data, key),
                     f"write `{key}: [a, b]`")
        return ()
    return tuple(dict.fromkeys(v.strip() for v in value))


def _permit_only(data: Mapping[str, Any], problems: Problems) -> tuple[tuple[str, ...],
                                                                      tuple[str, ...]]:
    value = data.get("permit_only")
    fix = "write `permit_only: {nationality: [US]}` (or residence: [...])"
    if value is None:
        problems.add("permit_only is required: who may still use the governed models",
                     line_of(data), fix)
        return (), ()
    if not isinstance(value, Mapping):
        problems.add("permit_only must be a mapping", _line(data, "permit_only"), fix)
        return (), ()
    for key in value:
        if key not in PERMIT_KEYS:
            problems.add(f"permit_only: unknown key {key!r}", _line(value, key) or
                         _line(data, "permit_only"), "permit_only takes nationality and residence")
    out: list[tuple[str, ...]] = []
    for key in PERMIT_KEYS:
        raw = value.get(key)
        if raw is None:
            out.append(())
            continue
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            problems.add(f"permit_only.{key} must be a list of country codes",
                         _line(value, key), fix)
            out.append(())
            continue
        codes = []
        for item in raw:
            if (problem := geo.country_problem(item)) is not None:
                problems.add(f"permit_only.{key}: {problem}", _line(value, key),
                             "use two capital letters, e.g. US, HK")
            else:
                codes.append(item)
        out.append(tuple(dict.fromkeys(codes)))
    if not any(value.get(k) for k in PERMIT_KEYS) and not [k for k in value
                                                         if k not in PERMIT_KEYS]:
        problems.add("permit_only is empty: it would cut everyone off without saying whom it "
                     "permits", _line(data, "permit_only"), fix)
    return out[0], out[1]


def _instant(data: Mapping[str, Any], key: str, problems: Problems) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        problems.add(f"{key}: {exc}", _line(data, key))
        return None
