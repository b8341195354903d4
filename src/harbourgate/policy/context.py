"""The request context a decision is made on: facts the gateway knows, nothing else.

Frozen, slotted dataclasses, cheap to build on every request. `None` means *unknown*
(no attestation, no declared origin): an unknown fact never satisfies a condition that
requires it. The gateway builds these directly; files and the admin API go through
`Context.from_dict`, which checks every type and vocabulary and names the bad key.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from harbourgate import geo
from harbourgate.policy import vocab
from harbourgate.policy.errors import PolicyError, Problems
from harbourgate.policy.timeutil import format_instant, parse_instant
from harbourgate.policy.yamlsrc import line_of

_NO_CLASSES: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ApplicationFacts:
    """The calling application as registered; the tier is computed by the policy."""

    id: str = ""
    use_cases: tuple[str, ...] = ()
    data_categories: tuple[str, ...] = ()
    data_origin: str | None = None
    transfer_mechanisms: tuple[str, ...] = ()
    status: str = "active"
    # Expiry of the application's latest non-revoked approval (past if it has expired);
    # None when none was ever recorded. Valid means: request time < this instant.
    approval_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParticipantFacts:
    id: str = ""
    jurisdiction: str | None = None
    status: str = "admitted"
    screening: str = "clear"


@dataclass(frozen=True, slots=True)
class EndUserFacts:
    """What a verified attestation says about the end user; all unknown without one."""

    verified: bool = False
    nationality: tuple[str, ...] | None = None
    residence: str | None = None
    verification_level: str | None = None
    issuer: str | None = None
    sub: str | None = None


UNKNOWN_END_USER = EndUserFacts()


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """The candidate route being evaluated (one decision per candidate)."""

    name: str
    origin: str | None = None
    hosting: str | None = None
    export_tags: tuple[str, ...] = ()
    capability_class: str | None = None
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class DataFacts:
    """Where the request's data comes from, and the personal-data classes found in it.

    `origin` is ISO alpha-2 (`CN` for the mainland; the `X-Harbourgate-Data-Origin`
    header); when None, rules see the application's declared origin instead. `region`
    refines it (`CN-GD-SZ` for Shenzhen, see `vocab.GBA_CITIES`) for the GBA rules.
    """

    origin: str | None = None
    region: str | None = None
    classes: Mapping[str, int] = field(default_factory=lambda: _NO_CLASSES)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The request itself. `time` is the only clock the policy reads (aware, UTC)."""

    time: datetime
    api: str = "openai"
    endpoint: str = "chat"
    fallback: str = "auto"


@dataclass(frozen=True, slots=True)
class Context:
    """Everything one decision depends on. The same context always gets the same decision."""

    application: ApplicationFacts
    model: ModelFacts
    request: RequestFacts
    participant: ParticipantFacts = ParticipantFacts()
    end_user: EndUserFacts = UNKNOWN_END_USER
    data: DataFacts = DataFacts()

    def with_model(self, model: ModelFacts) -> Context:
        """The same request evaluated for another candidate model (for fallback)."""
        return Context(self.application, model, self.request, self.participant,
                       self.end_user, self.data)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<context>") -> Context:
        """Build and validate a context from JSON-able data; `PolicyError` names every bad key."""
        return _ContextReader(source).read(data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form `from_dict` reads back to an equal context."""
        a, p, u, m, d, r = (self.application, self.participant, self.end_user, self.model,
                            self.data, self.request)
        return {
            "application": {
                "id": a.id, "use_cases": list(a.use_cases),
                "data_categories": list(a.data_categories), "data_origin": a.data_origin,
                "transfer_mechanisms": list(a.transfer_mechanisms), "status": a.status,
                "approval_expires_at": (format_instant(a.approval_expires_at)
                                        if a.approval_expires_at else None),
            },
            "participant": {"id": p.id, "jurisdiction": p.jurisdiction, "status": p.status,
                            "screening": p.screening},
            "end_user": {"verified": u.verified,
                         "nationality": None if u.nationality is None else list(u.nationality),
                         "residence": u.residence, "verification_level": u.verification_level,
                         "issuer": u.issuer, "sub": u.sub},
            "model": {"name": m.name, "origin": m.origin, "hosting": m.hosting,
                      "export_tags": list(m.export_tags), "class": m.capability_class,
                      "provider": m.provider},
            "data": {"origin": d.origin, "region": d.region, "classes": dict(d.classes)},
            "request": {"time": format_instant(r.time), "api": r.api, "endpoint": r.endpoint,
                        "fallback": r.fallback},
        }


# --- reading a context from JSON / YAML, with precise errors ---------------------------------

Check = Callable[[Any], str | None]  # returns a problem message, or None when fine


def _one_of(values: Iterable[str], what: str) -> Check:
    allowed = tuple(values)

    def check(v: Any) -> str | None:
        if v in allowed:
            return None
        if len(allowed) <= 12:
            return f"unknown {what} {v!r}; expected one of: {', '.join(allowed)}"
        close = difflib.get_close_matches(v, allowed, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else \
            "see harbourgate.policy.vocab for the list"
        return f"unknown {what} {v!r}; {hint}"
    return check


def _country(v: Any) -> str | None:
    return geo.country_problem(v)


def _region(v: Any) -> str | None:
    if geo.is_country(v) or geo.is_region(v):
        return None
    return f"{v!r} is not a region code such as CN-GD-SZ (country, province, city)"


class _ContextReader:
    SECTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "application": ("id", "use_cases", "data_categories", "data_origin",
                        "transfer_mechanisms", "status", "approval_expires_at"),
        "participant": ("id", "jurisdiction", "status", "screening"),
        "end_user": ("verified", "nationality", "residence", "verification_level", "issuer",
                     "sub"),
        "model": ("name", "origin", "hosting", "export_tags", "class", "provider"),
        "data": ("origin", "region", "classes"),
        "request": ("time", "api", "endpoint", "fallback"),
    }

    def __init__(self, source: str) -> None:
        self.problems = Problems(source)

    def read(self, data: Any) -> Context:
        if not isinstance(data, Mapping):
            self.problems.add("a context must be a mapping with application, model, request, "
                              "... sections", line_of(data),
                              "see docs/policy.md, 'Context files'")
            self.problems.raise_if_any()
        self._keys(data, "", tuple(self.SECTIONS))
        sect = {name: self._section(data, name) for name in self.SECTIONS}
        if data.get("model") is None:
            self.problems.add("model is missing: a decision is for one candidate model",
                              line_of(data), "add model: {name: fable-5, hosting: US, ...}")
        if data.get("request") is None:
            self.problems.add("request is missing: the policy needs the request time",
                              line_of(data), "add request: {time: 2026-06-12T00:00:00Z}")
        app = self._application(sect["application"])
        participant = self._participant(sect["participant"])
        end_user = self._end_user(sect["end_user"])
        model = self._model(sect["model"])
        facts = self._data(sect["data"], app)
        request = self._request(sect["request"])
        self.problems.raise_if_any()
        assert model is not None and request is not None
        return Context(app, model, request, participant, end_user, facts)

    # -- helpers

    def _keys(self, m: Mapping[str, Any], prefix: str, known: tuple[str, ...]) -> None:
        for key in m:
            if key not in known:
                self.problems.add(f"unknown key {prefix}{key}", _key_line(m, key),
                                  f"{prefix.rstrip('.') or 'a context'} takes: {', '.join(known)}")

    def _section(self, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        value = data.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problems.add(f"{name} must be a mapping, not {type(value).__name__}",
                              _key_line(data, name), f"write {name}: {{key: value, ...}}")
            return {}
        self._keys(value, f"{name}.", self.SECTIONS[name])
        return value

    def _str(self, m: Mapping[str, Any], path: str, key: str, *, default: str | None = None,
             check: Check | None = None, required: bool = False) -> str | None:
        value = m.get(key)
        if value is None:
            if required:
                self.problems.add(f"{path}.{key} is required", line_of(m),
                                  f"add {key}: to {path}")
            return default
        if not isinstance(value, str):
            self.problems.add(f"{path}.{key} must be a string, not {_type(value)}",
                              _key_line(m, key), "quote the value")
            return default
        if check and (msg := check(value)):
            self.problems.add(f"{path}.{key}: {msg}", _key_line(m, key))
            return default
        return value

    def _strs(self, m: Mapping[str, Any], path: str, key: str, *,
              check: Check | None = None) -> tuple[str, ...] | None:
        value = m.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problems.add(f"{path}.{key} must be a list of strings, not {_type(value)}",
                              _key_line(m, key), f"write {key}: [a, b]")
            return None
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.problems.add(f"{path}.{key}[{i}] must be a string, not {_type(item)}",
                                  _key_line(m, key), "quote the value")
            elif check and (msg := check(item)):
                self.problems.add(f"{path}.{key}[{i}]: {msg}", _key_line(m, key))
            else:
                out.append(item)
        return tuple(out)

    def _time(self, m: Mapping[str, Any], path: str, key: str) -> datetime | None:
        value = m.get(key)
        if value is None:
            return None
        try:
            return parse_instant(value)
        except ValueError as exc:
            self.problems.add(f"{path}.{key}: {exc}", _key_line(m, key))
            return None

    # -- sections

    def _application(self, m: Mapping[str, Any]) -> ApplicationFacts:
        p = "application"
        return ApplicationFacts(
            id=self._str(m, p, "id", default="") or "",
            use_cases=self._strs(m, p, "use_cases",
                                 check=_one_of(vocab.USE_CASES, "use case")) or (),
            data_categories=self._strs(m, p, "data_categories",
                                       check=_one_of(vocab.DATA_CATEGORIES,
                                                     "data category")) or (),
            data_origin=self._str(m, p, "data_origin", check=_country),
            transfer_mechanisms=self._strs(
                m, p, "transfer_mechanisms",
                check=_one_of(vocab.TRANSFER_MECHANISMS, "transfer mechanism")) or (),
            status=self._str(m, p, "status", default="active",
                             check=_one_of(vocab.APPLICATION_STATUSES, "status")) or "active",
            approval_expires_at=self._time(m, p, "approval_expires_at"),
        )

    def _participant(self, m: Mapping[str, Any]) -> ParticipantFacts:
        p = "participant"
        return ParticipantFacts(
            id=self._str(m, p, "id", default="") or "",
            jurisdiction=self._str(m, p, "jurisdiction", check=_country),
            status=self._str(m, p, "status", default="admitted",
                             check=_one_of(vocab.PARTICIPANT_STATUSES, "status")) or "admitted",
            screening=self._str(m, p, "screening", default="clear",
                                check=_one_of(vocab.SCREENING_RESULTS, "screening")) or "clear",
        )

    def _end_user(self, m: Mapping[str, Any]) -> EndUserFacts:
        p = "end_user"
        verified = m.get("verified", False)
        if not isinstance(verified, bool):
            self.problems.add(f"end_user.verified must be true or false, not {_type(verified)}",
                              _key_line(m, "verified"), "write verified: true")
            verified = False
        return EndUserFacts(
            verified=verified,
            nationality=self._strs(m, p, "nationality", check=_country),
            residence=self._str(m, p, "residence", check=_country),
            verification_level=self._str(m, p, "verification_level"),
            issuer=self._str(m, p, "issuer"),
            sub=self._str(m, p, "sub"),
        )

    def _model(self, m: Mapping[str, Any]) -> ModelFacts | None:
        p = "model"
        if not m:
            return None
        name = self._str(m, p, "name", required=True)
        return ModelFacts(
            name=name or "",
            origin=self._str(m, p, "origin", check=_country),
            hosting=self._str(m, p, "hosting", check=_country),
            export_tags=self._strs(m, p, "export_tags") or (),
            capability_class=self._str(m, p, "class"),
            provider=self._str(m, p, "provider"),
        )

    def _data(self, m: Mapping[str, Any], app: ApplicationFacts) -> DataFacts:
        p = "data"
        origin = self._str(m, p, "origin", check=_country)
        region = m.get("region")
        if isinstance(region, str):
            region = vocab.normalise_region(region)
            if msg := _region(region):
                self.problems.add(f"data.region: {msg}", _key_line(m, "region"))
                region = None
        elif region is not None:
            self.problems.add(f"data.region must be a string, not {_type(region)}",
                              _key_line(m, "region"), "write region: CN-GD-SZ")
            region = None
        if region is not None:
            if origin is None:
                origin = vocab.region_country(region)
            elif origin != vocab.region_country(region):
                self.problems.add(f"data.region {region} is not in data.origin {origin}",
                                  _key_line(m, "region"),
                                  "make the region's first two letters the origin")
        classes: dict[str, int] = {}
        raw = m.get("classes")
        if raw is not None and not isinstance(raw, Mapping):
            self.problems.add(f"data.classes must be a mapping of class to count, "
                              f"not {_type(raw)}", _key_line(m, "classes"),
                              "write classes: {hk_id: 1, phone: 2}")
        elif raw:
            for name, count in raw.items():
                if name not in vocab.DATA_CLASSES:
                    self.problems.add(f"data.classes: unknown class {name!r}",
                                      _key_line(raw, name),
                                      f"use one of: {', '.join(vocab.DATA_CLASSES)}")
                elif isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    self.problems.add(f"data.classes.{name} must be a count (a whole number "
                                      f">= 0), not {count!r}", _key_line(raw, name))
                elif count:
                    classes[name] = count
        return DataFacts(origin, region, MappingProxyType(classes) if classes else _NO_CLASSES)

    def _request(self, m: Mapping[str, Any]) -> RequestFacts | None:
        p = "request"
        if not m:
            return None
        time = self._time(m, p, "time")
        if time is None and "time" not in m:
            self.problems.add("request.time is required: decisions never read the wall clock",
                              line_of(m), "add time: 2026-06-12T10:00:00Z")
        api = self._str(m, p, "api", default="openai", check=_one_of(vocab.API_SHAPES, "api"))
        endpoint = self._str(m, p, "endpoint", default="chat",
                             check=_one_of(vocab.ENDPOINTS, "endpoint"))
        fallback = self._str(m, p, "fallback", default="auto",
                             check=_one_of(vocab.FALLBACK_MODES, "fallback mode"))
        if time is None:
            return None
        return RequestFacts(time, api or "openai", endpoint or "chat", fallback or "auto")


def _key_line(m: Any, key: str) -> int | None:
    fn = getattr(m, "line_of", None)
    return fn(key) if fn else None


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


__all__ = [
    "UNKNOWN_END_USER", "ApplicationFacts", "Context", "DataFacts", "EndUserFacts",
    "ModelFacts", "ParticipantFacts", "PolicyError", "RequestFacts",
]
