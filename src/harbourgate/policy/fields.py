"""The facts a rule may test: name, kind, vocabulary, and how each is read from a context.

This registry is the single definition of the condition language's vocabulary. The
loader validates rules against it, the compiler turns each field into a Python
expression, the explainer reads values through it, and the Cedar exporter maps it to a
Cedar attribute: one table, so the four can never disagree about what a name means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from harbourgate import geo
from harbourgate.policy import vocab
from harbourgate.policy.context import Context

Kind = Literal["text", "set", "flag"]
Getter = Callable[[Context, str], Any]  # (context, tier) -> value, None when unknown


def approval_state(ctx: Context) -> str:
    """`valid`, `expired` or `none`: the approval as of the request time, to the second."""
    expires = ctx.application.approval_expires_at
    if expires is None:
        return "none"
    return "valid" if ctx.request.time < expires else "expired"


def data_origin(ctx: Context) -> str | None:
    """The request's data origin, else the application's declared one (PRODUCT.md §4.1)."""
    origin = ctx.data.origin
    return origin if origin is not None else ctx.application.data_origin


def gba_city(region: str | None) -> bool | None:
    """Whether a region is one of the nine mainland GBA cities; unknown without a region."""
    return None if region is None else region in vocab.GBA_CITIES


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    py: str  # expression over the compiled evaluator's locals (a, p, u, m, d, r, tier, ...)
    get: Getter
    doc: str
    vocab: tuple[str, ...] | None = None
    shape: str | None = None  # "country" | "region": the shape values must have
    nullable: bool = True  # may be unknown (None)
    model: bool = False  # depends on the candidate model
    tier_input: bool = False  # may be used by tier (classification) rules
    derived: bool = False  # computed from other facts, not given by the gateway

    def check_value(self, value: str) -> str | None:
        """A problem message when `value` cannot be a value of this field, else None."""
        if self.vocab is not None and value not in self.vocab:
            return (f"{value!r} is not a known value of {self.name}; "
                    f"known values: {', '.join(self.vocab)}")
        if self.shape == "country":
            return geo.country_problem(value)
        if self.shape == "region" and not (geo.is_country(value) or geo.is_region(value)):
            return f"{value!r} is not {geo.REGION_HELP}"
        return None


def _f(name: str, kind: Kind, py: str, get: Getter, doc: str, **kw: Any) -> Field:
    return Field(name, kind, py, get, doc, **kw)


FIELDS: dict[str, Field] = {f.name: f for f in (
    _f("application.id", "text", "a.id", lambda c, t: c.application.id or None,
       "the application's id", nullable=False),
    _f("application.use_cases", "set", "a.use_cases", lambda c, t: c.application.use_cases,
       "declared use cases", vocab=vocab.USE_CASES, nullable=False, tier_input=True),
    _f("application.data_categories", "set", "a.data_categories",
       lambda c, t: c.application.data_categories, "declared data categories",
       vocab=vocab.DATA_CATEGORIES, nullable=False, tier_input=True),
    _f("application.data_origin", "text", "a.data_origin",
       lambda c, t: c.application.data_origin, "declared origin of its data",
       shape="country"),
    _f("application.transfer_mechanisms", "set", "a.transfer_mechanisms",
       lambda c, t: c.application.transfer_mechanisms, "recorded transfer mechanisms",
       vocab=vocab.TRANSFER_MECHANISMS, nullable=False),
    _f("application.status", "text", "a.status", lambda c, t: c.application.status,
       "active or suspended", vocab=vocab.APPLICATION_STATUSES, nullable=False),
    _f("application.tier", "text", "tier", lambda c, t: t,
       "the tier the policy gives the application", vocab=vocab.TIERS, nullable=False,
       derived=True),
    _f("application.approval", "text", "approval", lambda c, t: approval_state(c),
       "valid, expired or none, at the request time", vocab=vocab.APPROVAL_STATES,
       nullable=False, derived=True),
    _f("participant.id", "text", "p.id", lambda c, t: c.participant.id or None,
       "the participant's id"),
    _f("participant.jurisdiction", "text", "p.jurisdiction",
       lambda c, t: c.participant.jurisdiction, "jurisdiction of incorporation",
       shape="country"),
    _f("participant.status", "text", "p.status", lambda c, t: c.participant.status,
       "admitted or suspended", vocab=vocab.PARTICIPANT_STATUSES, nullable=False),
    _f("participant.screening", "text", "p.screening", lambda c, t: c.participant.screening,
       "restricted-party screening result", vocab=vocab.SCREENING_RESULTS, nullable=False),
    _f("end_user.verified", "flag", "u.verified", lambda c, t: c.end_user.verified,
       "a trusted verifier's attestation was checked", nullable=False),
    _f("end_user.nationality", "set", "u.nationality", lambda c, t: c.end_user.nationality,
       "verified nationalities", shape="country"),
    _f("end_user.residence", "text", "u.residence", lambda c, t: c.end_user.residence,
       "verified residence", shape="country"),
    _f("end_user.verification_level", "text", "u.verification_level",
       lambda c, t: c.end_user.verification_level, "the verifier's assurance level"),
    _f("end_user.issuer", "text", "u.issuer", lambda c, t: c.end_user.issuer,
       "the attestation's issuer"),
    _f("model.name", "text", "m.name", lambda c, t: c.model.name, "route name",
       nullable=False, model=True),
    _f("model.origin", "text", "m.origin", lambda c, t: c.model.origin,
       "developer's country", shape="country", model=True),
    _f("model.hosting", "text", "m.hosting", lambda c, t: c.model.hosting,
       "hosting jurisdiction", shape="country", model=True),
    _f("model.export_tags", "set", "m.export_tags", lambda c, t: c.model.export_tags,
       "export-control tags", nullable=False, model=True),
    _f("model.class", "text", "m.capability_class", lambda c, t: c.model.capability_class,
       "capability class", model=True),
    _f("model.provider", "text", "m.provider", lambda c, t: c.model.provider,
       "provider adapter", model=True),
    _f("data.origin", "text", "origin", lambda c, t: data_origin(c),
       "origin of the request's data, else the application's declared origin",
       shape="country", derived=True),
    _f("data.region", "text", "d.region", lambda c, t: c.data.region,
       "region of the data's origin (CN-GD-SZ)", shape="region"),
    _f("data.gba_city", "flag", "gba", lambda c, t: gba_city(c.data.region),
       "the data comes from one of the nine mainland GBA cities", derived=True),
    _f("data.classes", "set", "d.classes", lambda c, t: tuple(c.data.classes),
       "personal-data classes found in the request", vocab=vocab.DATA_CLASSES,
       nullable=False),
    _f("request.api", "text", "r.api", lambda c, t: c.request.api, "openai or anthropic",
       vocab=vocab.API_SHAPES, nullable=False),
    _f("request.endpoint", "text", "r.endpoint", lambda c, t: c.request.endpoint,
       "chat, embeddings or models", vocab=vocab.ENDPOINTS, nullable=False),
    _f("request.fallback", "text", "r.fallback", lambda c, t: c.request.fallback,
       "auto or none", vocab=vocab.FALLBACK_MODES, nullable=False),
)}


def suggest(name: str) -> str:
    """The closest known field names, for a "did you mean" in errors."""
    import difflib

    close = difflib.get_close_matches(name, FIELDS, n=3, cutoff=0.5)
    if close:
        return f"did you mean {' or '.join(close)}?"
    section = name.split(".")[0]
    same = [f for f in FIELDS if f.startswith(section + ".")]
    return f"known fields: {', '.join(same or FIELDS)}"
