"""Export the allow/deny part of a snapshot to Cedar, to check it against an engine we
did not write (`harbourgate policy export --cedar`, and the differential tests).

Mapping. Principal `Harbourgate::Application::"<application id>"`, action
`Harbourgate::Action::"decide"`, resource `Harbourgate::Model::"<route name>"`, no entity
hierarchy; every fact travels in the request context, one record per section:

    context.application  id, use_cases, data_categories, transfer_mechanisms (sets),
                         status, data_origin?, approval_expires_at? (Long, µs since epoch)
    context.participant  id, status, screening, jurisdiction?
    context.end_user     verified (Bool), nationality? (set), residence?,
                         verification_level?, issuer?
    context.model        name, export_tags (set), origin?, hosting?, capability_class?,
                         provider?
    context.data         classes (set of class names found), origin? (the request's,
                         else the application's declared origin), region?
    context.request      time (Long, µs since epoch), api, endpoint, fallback

`?` marks an attribute left out when the fact is unknown; every test on it is guarded
with `has`, which is exactly Harbourgate's "unknown satisfies no test". Derived facts are
computed in Cedar from the raw ones: the tier from the tier rules (most severe wins),
the approval state from `approval_expires_at` and `request.time`, the GBA flag from
`data.region`. Obligations have no Cedar meaning and are carried as annotations only.

Harbourgate allows unless a deny fires; the export starts with one unconditional
`permit` and turns each deny rule into a `forbid ... when {...} unless {...}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from harbourgate.policy import vocab
from harbourgate.policy.bundle import Rule
from harbourgate.policy.conditions import AllOf, AnyOf, Condition, NotOf, Test
from harbourgate.policy.context import Context
from harbourgate.policy.snapshot import PolicySnapshot

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
ACTION = {"type": "Harbourgate::Action", "id": "decide"}

# Harbourgate field -> (Cedar record, attribute); derived fields are handled apart.
_ATTRS: dict[str, tuple[str, str]] = {
    "application.id": ("application", "id"),
    "application.use_cases": ("application", "use_cases"),
    "application.data_categories": ("application", "data_categories"),
    "application.data_origin": ("application", "data_origin"),
    "application.transfer_mechanisms": ("application", "transfer_mechanisms"),
    "application.status": ("application", "status"),
    "participant.id": ("participant", "id"),
    "participant.jurisdiction": ("participant", "jurisdiction"),
    "participant.status": ("participant", "status"),
    "participant.screening": ("participant", "screening"),
    "end_user.verified": ("end_user", "verified"),
    "end_user.nationality": ("end_user", "nationality"),
    "end_user.residence": ("end_user", "residence"),
    "end_user.verification_level": ("end_user", "verification_level"),
    "end_user.issuer": ("end_user", "issuer"),
    "model.name": ("model", "name"),
    "model.origin": ("model", "origin"),
    "model.hosting": ("model", "hosting"),
    "model.export_tags": ("model", "export_tags"),
    "model.class": ("model", "capability_class"),
    "model.provider": ("model", "provider"),
    "data.origin": ("data", "origin"),
    "data.region": ("data", "region"),
    "data.classes": ("data", "classes"),
    "request.api": ("request", "api"),
    "request.endpoint": ("request", "endpoint"),
    "request.fallback": ("request", "fallback"),
}


def micros(t: datetime) -> int:
    """An instant as whole microseconds since the epoch (exact, so bounds stay exact)."""
    return (t - EPOCH) // _US


def _lit(value: str) -> str:
    return json.dumps(value)


def _set(values: Sequence[str]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


class CedarExporter:
    """Translates one snapshot's rules; tier expressions are built once and reused."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot
        rules = [r for r in snapshot.bundle.rules if r.kind == "tier"]
        self.tier_rules = [r for r in rules if not r.default]
        default = next((r for r in rules if r.default), None)
        self.default_tier = default.tier if default and default.tier else "minimal"

    # -- policies

    def policies(self) -> str:
        out = [f"// Harbourgate policy {self.snapshot.version}, exported to Cedar.",
               "// Allow unless a forbid applies (Harbourgate: deny overrides allow).",
               '@id("harbourgate.default-allow")',
               "permit(principal, action, resource);", ""]
        for rule in self.snapshot.rules:
            out.append(self.policy(rule))
        return "\n".join(out)

    def policy(self, rule: Rule) -> str:
        effect = "forbid" if rule.kind == "deny" else "permit"
        notes = [f"@id({_lit(rule.id)})", f"@citation({_lit(rule.citation)})"]
        if rule.code:
            notes.append(f"@code({_lit(rule.code)})")
        if rule.obligations is not None:
            obligations = rule.to_dict().get("obligations", {})
            notes.append(f"@obligations({_lit(json.dumps(obligations, sort_keys=True))})")
        when = [self.condition(rule.when)]
        if rule.effective_from is not None:
            when.insert(0, f"context.request.time >= {micros(rule.effective_from)}")
        if rule.effective_until is not None:
            when.insert(0, f"context.request.time < {micros(rule.effective_until)}")
        text = "\n".join(notes) + f"\n{effect}(principal, action, resource)\n"
        text += "  when { " + " && ".join(f"({w})" for w in when) + " }"
        if rule.unless is not None:
            text += "\n  unless { " + self.condition(rule.unless) + " }"
        return text + ";\n"

    # -- conditions

    def condition(self, c: Condition) -> str:
        if isinstance(c, NotOf):
            return f"!({self.condition(c.item)})"
        if isinstance(c, AllOf):
            return " && ".join(f"({self.condition(i)})" for i in c.items) if c.items else "true"
        if isinstance(c, AnyOf):
            return " || ".join(f"({self.condition(i)})" for i in c.items) if c.items else "false"
        return self.test(c)

    def test(self, t: Test) -> str:
        name = t.field.name
        if name == "application.tier":
            return self._enum(t, self.tier_is)
        if name == "application.approval":
            return self._enum(t, _approval_is)
        if name == "data.gba_city":
            return _gba(t)
        record, attr = _ATTRS[name]
        path = f"context.{record}.{attr}"
        guard = f"context.{record} has {attr}"
        if t.op == "present":
            if not t.field.nullable:
                return "true" if t.flag else "false"
            return guard if t.flag else f"!({guard})"
        if t.op == "is":
            expr = f"{path} == {str(t.flag).lower()}"
        elif t.op == "equals":
            expr = f"{path} == {_lit(t.values[0])}"
        elif t.op == "in":
            expr = f"{_set(t.values)}.contains({path})"
        elif t.op == "not_in":
            expr = f"!({_set(t.values)}.contains({path}))"
        elif t.op == "any_of":
            expr = f"{path}.containsAny({_set(t.values)})"
        elif t.op == "all_of":
            expr = f"{path}.containsAll({_set(t.values)})"
        else:
            expr = f"!({path}.containsAny({_set(t.values)}))"
        return f"{guard} && ({expr})" if t.field.nullable else expr

    def _enum(self, t: Test, is_value: Any) -> str:
        """A test on a derived, always-known text field, as a disjunction over its values."""
        if t.op == "present":
            return "true" if t.flag else "false"
        assert t.field.vocab is not None
        chosen = [v for v in t.field.vocab
                  if (v in t.values) != (t.op == "not_in")]
        return " || ".join(f"({is_value(v)})" for v in chosen) or "false"

    def tier_is(self, tier: str) -> str:
        """`application.tier == tier`, from the tier rules (most severe matching wins)."""
        fired = {level: [r for r in self.tier_rules if r.tier == level] for level in vocab.TIERS}

        def any_fires(level: str) -> str:
            parts = [self._rule_holds(r) for r in fired[level]]
            return " || ".join(f"({p})" for p in parts) if parts else "false"

        order = list(vocab.TIERS)  # most severe first
        above = order[:order.index(tier)]
        terms = [f"!({any_fires(level)})" for level in above]
        matched = " && ".join([*terms, f"({any_fires(tier)})"])
        if tier == self.default_tier:
            none = " && ".join(f"!({any_fires(level)})" for level in order)
            return f"({matched}) || ({none})"
        return matched

    def _rule_holds(self, rule: Rule) -> str:
        text = self.condition(rule.when)
        if rule.unless is not None:
            text = f"({text}) && !({self.condition(rule.unless)})"
        return text


def _approval_is(state: str) -> str:
    has = "context.application has approval_expires_at"
    if state == "none":
        return f"!({has})"
    cmp = "<" if state == "valid" else ">="
    return f"{has} && context.request.time {cmp} context.application.approval_expires_at"


def _gba(t: Test) -> str:
    has = "context.data has region"
    member = f"{_set(tuple(vocab.GBA_CITIES))}.contains(context.data.region)"
    if t.op == "present":
        return has if t.flag else f"!({has})"
    return f"{has} && ({member})" if t.flag else f"{has} && !({member})"


def export_policies(snapshot: PolicySnapshot) -> str:
    """The Cedar policy set equivalent to the snapshot's allow/deny outcome."""
    return CedarExporter(snapshot).policies()


def cedar_request(ctx: Context) -> dict[str, Any]:
    """The Cedar request (principal, action, resource, context) for a Harbourgate context."""
    a, p, u, m, d, r = (ctx.application, ctx.participant, ctx.end_user, ctx.model, ctx.data,
                        ctx.request)
    application: dict[str, Any] = {
        "id": a.id, "use_cases": list(a.use_cases), "data_categories": list(a.data_categories),
        "transfer_mechanisms": list(a.transfer_mechanisms), "status": a.status}
    _put(application, "data_origin", a.data_origin)
    if a.approval_expires_at is not None:
        application["approval_expires_at"] = micros(a.approval_expires_at)
    participant: dict[str, Any] = {"id": p.id, "status": p.status, "screening": p.screening}
    _put(participant, "jurisdiction", p.jurisdiction)
    end_user: dict[str, Any] = {"verified": u.verified}
    if u.nationality is not None:
        end_user["nationality"] = list(u.nationality)
    for key in ("residence", "verification_level", "issuer"):
        _put(end_user, key, getattr(u, key))
    model: dict[str, Any] = {"name": m.name, "export_tags": list(m.export_tags)}
    for key, value in (("origin", m.origin), ("hosting", m.hosting),
                       ("capability_class", m.capability_class), ("provider", m.provider)):
        _put(model, key, value)
    data: dict[str, Any] = {"classes": sorted(d.classes)}
    _put(data, "origin", d.origin if d.origin is not None else a.data_origin)
    _put(data, "region", d.region)
    return {
        "principal": {"type": "Harbourgate::Application", "id": a.id or "anonymous"},
        "action": ACTION,
        "resource": {"type": "Harbourgate::Model", "id": m.name},
        "context": {"application": application, "participant": participant,
                    "end_user": end_user, "model": model, "data": data,
                    "request": {"time": micros(r.time), "api": r.api, "endpoint": r.endpoint,
                                "fallback": r.fallback}},
    }


def _put(record: dict[str, Any], key: str, value: str | None) -> None:
    if value is not None:
        record[key] = value


MAPPING = __doc__ or ""
