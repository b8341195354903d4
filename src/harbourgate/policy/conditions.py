"""The condition language: parse a `when:` / `unless:` block, explain it, compile it.

A condition is a mapping of field to test, all of which must hold; `any:`, `all:` and
`not:` combine conditions. Tests by field kind:

    text  `equals`, `in`, `not_in`, `present`     shorthand: `field: value`, `field: [a, b]`
    set   `any_of`, `all_of`, `none_of`, `present` shorthand: `field: [a, b]` (any_of)
    flag  `is`, `present`                          shorthand: `field: true`

An unknown fact (None) satisfies no test except `present: false`: a condition that needs
a nationality is not met by a user whose nationality nobody attested. `not:` negates the
whole condition, so `not: {end_user.nationality: {any_of: [US]}}` *is* met by an unknown
user; write a restriction as `unless:` the facts that permit, and unknown users stay out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harbourgate.policy.context import Context
from harbourgate.policy.errors import Problems
from harbourgate.policy.fields import FIELDS, Field, suggest
from harbourgate.policy.yamlsrc import line_of

OPS: dict[str, tuple[str, ...]] = {
    "text": ("equals", "in", "not_in", "present"),
    "set": ("any_of", "all_of", "none_of", "present"),
    "flag": ("is", "present"),
}
COMBINATORS = ("any", "all", "not")


@dataclass(frozen=True, slots=True)
class Test:
    field: Field
    op: str
    values: tuple[str, ...] = ()
    flag: bool = True  # the operand of `is` and `present`

    def describe(self) -> str:
        if self.op in ("is", "present"):
            return f"{self.field.name} {self.op} {str(self.flag).lower()}"
        if self.op == "equals":
            return f"{self.field.name} equals {self.values[0]}"
        return f"{self.field.name} {self.op.replace('_', ' ')} [{', '.join(self.values)}]"


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]

    def describe(self) -> str:
        return " and ".join(_paren(i) for i in self.items) or "always"


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]

    def describe(self) -> str:
        return " or ".join(_paren(i) for i in self.items)


@dataclass(frozen=True, slots=True)
class NotOf:
    item: Condition

    def describe(self) -> str:
        return f"not {_paren(self.item)}"


Condition = Test | AllOf | AnyOf | NotOf
ALWAYS = AllOf(())


def _paren(c: Condition) -> str:
    text = c.describe()
    return f"({text})" if isinstance(c, AllOf | AnyOf) and len(c.items) > 1 else text


def fields_of(c: Condition) -> set[str]:
    """Every field a condition reads."""
    if isinstance(c, Test):
        return {c.field.name}
    if isinstance(c, NotOf):
        return fields_of(c.item)
    out: set[str] = set()
    for item in c.items:
        out |= fields_of(item)
    return out


# --- parsing ----------------------------------------------------------------------------------

def parse(node: Any, problems: Problems, where: str, line: int | None) -> Condition:
    """Parse a condition block; every mistake goes to `problems` with its line and fix."""
    if node is None:
        return ALWAYS
    if not isinstance(node, Mapping):
        problems.add(f"{where} must be a mapping of field: test", line_of(node, line),
                     "write e.g. `application.use_cases: {any_of: [social_scoring]}`")
        return ALWAYS
    items: list[Condition] = []
    for key, value in node.items():
        kline = _key_line(node, key, line)
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                problems.add(f"{where}.{key} must be a non-empty list of conditions", kline,
                             f"write `{key}: [{{field: test}}, {{field: test}}]`")
                continue
            parts = tuple(parse(v, problems, f"{where}.{key}[{i}]", _item_line(value, i, kline))
                          for i, v in enumerate(value))
            items.append(AnyOf(parts) if key == "any" else AllOf(parts))
        elif key == "not":
            items.append(NotOf(parse(value, problems, f"{where}.not", kline)))
        elif key in FIELDS:
            items.extend(_tests(FIELDS[key], value, problems, f"{where}.{key}", kline))
        else:
            problems.add(f"{where}: {key!r} is not a field a rule can test", kline,
                         suggest(key))
    return items[0] if len(items) == 1 else AllOf(tuple(items))


def _tests(field: Field, value: Any, problems: Problems, where: str,
           line: int | None) -> list[Test]:
    ops = OPS[field.kind]
    if not isinstance(value, Mapping):  # shorthand
        if isinstance(value, list):
            if field.kind == "flag":
                problems.add(f"{where} is true/false, not a list", line,
                             f"write `{field.name}: true`")
                return []
            value = {"in" if field.kind == "text" else "any_of": value}
        elif field.kind == "flag":
            value = {"is": value}
        elif field.kind == "set":
            value = {"any_of": [value]}
        else:
            value = {"equals": value}
    tests: list[Test] = []
    if not value:
        problems.add(f"{where} has no test", line, f"use one of: {', '.join(ops)}")
    for op, operand in value.items():
        oline = _key_line(value, op, line)
        if op not in ops:
            problems.add(f"{where}: {op!r} is not a test for a {field.kind} field", oline,
                         f"use one of: {', '.join(ops)}")
            continue
        if op in ("is", "present"):
            if not isinstance(operand, bool):
                problems.add(f"{where}.{op} takes true or false, not {operand!r}", oline,
                             f"write `{op}: true`")
                continue
            tests.append(Test(field, op, (), operand))
            continue
        values = [operand] if op == "equals" else operand
        if op != "equals" and (not isinstance(values, list) or not values):
            problems.add(f"{where}.{op} takes a non-empty list", oline,
                         f"write `{op}: [value, ...]`")
            continue
        good = True
        for v in values:
            if not isinstance(v, str):
                problems.add(f"{where}.{op}: {v!r} must be a string", oline, "quote the value")
                good = False
            elif msg := field.check_value(v):
                problems.add(f"{where}: {msg}", oline, "fix the spelling or the vocabulary")
                good = False
        if good:
            tests.append(Test(field, op, tuple(values)))
    return tests


def _key_line(node: Any, key: str, default: int | None) -> int | None:
    fn = getattr(node, "line_of", None)
    return fn(key) if fn else default


def _item_line(node: Any, index: int, default: int | None) -> int | None:
    fn = getattr(node, "line_of", None)
    return fn(index) if fn else default


# --- interpreting, for explanations ----------------------------------------------------------

def evaluate(c: Condition, ctx: Context, tier: str) -> tuple[bool, str]:
    """Whether `c` holds, and a sentence saying why (the first failing test when it does not)."""
    if isinstance(c, Test):
        return _test(c, c.field.get(ctx, tier))
    if isinstance(c, NotOf):
        held, why = evaluate(c.item, ctx, tier)
        return (not held, f"not ({why})")
    if isinstance(c, AllOf):
        reasons = []
        for item in c.items:
            held, why = evaluate(item, ctx, tier)
            if not held:
                return False, why
            reasons.append(why)
        return True, "; ".join(reasons) or "no conditions"
    failed = []
    for item in c.items:
        held, why = evaluate(item, ctx, tier)
        if held:
            return True, why
        failed.append(why)
    return False, "none of: " + " | ".join(failed)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return f"[{', '.join(value)}]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _test(t: Test, value: Any) -> tuple[bool, str]:
    name = t.field.name
    if t.op == "present":
        held = (value is not None) == t.flag
        return held, f"{name} is {'known' if value is not None else 'unknown'}"
    if value is None:
        return False, f"{name} is unknown (an unknown fact satisfies no test)"
    shown = _show(value)
    if t.op == "is":
        return value is t.flag, f"{name} is {shown}"
    if t.op == "equals":
        return value == t.values[0], f"{name} is {shown}"
    if t.op == "in":
        return value in t.values, f"{name} is {shown}"
    if t.op == "not_in":
        return value not in t.values, f"{name} is {shown}"
    have = set(value)
    if t.op == "any_of":
        held = bool(have & set(t.values))
    elif t.op == "all_of":
        held = set(t.values) <= have
    else:  # none_of
        held = not (have & set(t.values))
    return held, f"{name} is {shown}"


# --- compiling to Python ----------------------------------------------------------------------

class Constants:
    """Named constants shared by generated code (values never enter the source text)."""

    def __init__(self) -> None:
        self.names: dict[object, str] = {}
        self.values: dict[str, object] = {}

    def name(self, value: object) -> str:
        if value not in self.names:
            name = f"_k{len(self.names)}"
            self.names[value] = name
            self.values[name] = value
        return self.names[value]


def to_python(c: Condition, k: Constants) -> str:
    """A Python expression over the evaluator's locals that is true exactly when `c` holds."""
    if isinstance(c, NotOf):
        return f"(not {to_python(c.item, k)})"
    if isinstance(c, AllOf):
        return "(" + " and ".join(to_python(i, k) for i in c.items) + ")" if c.items else "True"
    if isinstance(c, AnyOf):
        return "(" + " or ".join(to_python(i, k) for i in c.items) + ")"
    x = c.field.py
    known = f"{x} is not None and " if c.field.nullable else ""
    if c.op == "present":
        return f"({x} is {'not ' if c.flag else ''}None)"
    if c.op == "is":
        return f"({x} is {c.flag})"
    if c.op == "equals":
        return f"({x} == {k.name(c.values[0])})"
    s = k.name(frozenset(c.values))
    if c.op == "in":
        return f"({x} in {s})"
    if c.op == "not_in":
        return f"({known}{x} not in {s})"
    if c.op == "any_of":
        return f"({known}not {s}.isdisjoint({x}))"
    if c.op == "all_of":
        return f"({known}{s}.issubset({x}))"
    return f"({known}{s}.isdisjoint({x}))"  # none_of
