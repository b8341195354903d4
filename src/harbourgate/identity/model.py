"""The sandbox's registry, as immutable values the hot path can share without locks.

The vocabularies an application declares (use cases, data categories, transfer
mechanisms, statuses) are the policy's (`harbourgate.policy.vocab`), re-exported here so
that the admin API, the config seed and the policy packs all check the same strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from harbourgate import geo
from harbourgate.policy.vocab import (
    APPLICATION_STATUSES,
    DATA_CATEGORIES,
    PARTICIPANT_STATUSES,
    SCREENING_RESULTS,
    TRANSFER_MECHANISMS,
    USE_CASES,
)

__all__ = [
    "APPLICATION_STATUSES", "DATA_CATEGORIES", "PARTICIPANT_STATUSES", "SCREENING_RESULTS",
    "TRANSFER_MECHANISMS", "USE_CASES", "ApiKey", "Application", "Approval", "Participant",
    "Registry",
]

# Ids of participants and applications: readable slugs, safe in URLs, logs and headers.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.fullmatch(value))


def is_country_code(value: str) -> bool:
    """An assigned ISO 3166-1 alpha-2 code, exactly (`harbourgate.geo`)."""
    return geo.is_country(value)


# Checks shared by the admin API's schemas and the config seed: each returns the value or
# raises ValueError with a message that completes "<field> ..." and says what to write.

def check_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                         f"letter or digit, not {value!r}")
    return value


def check_country(value: str) -> str:
    return geo.check_country(value)


def check_use_case(value: str) -> str:
    if value not in USE_CASES:
        raise ValueError(f"{value!r} is not a known use case; known: {', '.join(USE_CASES)}")
    return value


def check_category(value: str) -> str:
    if value not in DATA_CATEGORIES:
        raise ValueError(f"{value!r} is not a known data category; known: "
                         f"{', '.join(DATA_CATEGORIES)}")
    return value


def check_transfer_mechanism(value: str) -> str:
    if value not in TRANSFER_MECHANISMS:
        raise ValueError(f"{value!r} is not a known transfer mechanism; known: "
                         f"{', '.join(TRANSFER_MECHANISMS)}")
    return value


def check_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > 200:
        raise ValueError("must be at most 200 characters")
    return value


def check_one_of(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
    return value


def check_unique(values: list[str] | tuple[str, ...]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"lists {value!r} twice")
        seen.add(value)


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    jurisdiction: str
    status: str = "admitted"  # admitted | suspended
    screening: str = "clear"  # restricted-party screening result
    created_at: str = ""
    updated_at: str = ""

    @property
    def admitted(self) -> bool:
        return self.status == "admitted"


@dataclass(frozen=True, slots=True)
class Application:
    id: str
    participant_id: str
    name: str
    use_cases: tuple[str, ...] = ()
    data_categories: tuple[str, ...] = ()
    data_origin: str | None = None
    model_preference: tuple[str, ...] = ()
    transfer_mechanisms: tuple[str, ...] = ()  # e.g. gba_standard_contract
    status: str = "active"
    created_at: str = ""
    updated_at: str = ""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    application_id: str
    key_hash: str  # SHA-256 hex of the key; the key itself is never stored
    prefix: str  # the first characters, to recognise a key in a list
    created_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class Approval:
    """A recorded approval of a high-risk application: who, when, on what terms, until."""

    id: str
    application_id: str
    approver: str
    conditions: str
    expires_at: str  # ISO-8601 UTC, "2027-01-01T00:00:00Z"
    created_at: str
    revoked_at: str | None = None

    def valid_at(self, when: str) -> bool:
        """In force at `when` (an ISO-8601 UTC timestamp of the same format)."""
        return self.revoked_at is None and self.created_at <= when < self.expires_at


def _frozen(mapping: Mapping[str, object] | None = None) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Registry:
    """Everything the data plane needs to know about callers, as of one `version`.

    Built by `harbourgate.store.load_registry`; the mappings are read-only views, so a
    snapshot can be shared by every request and swapped whole when `version` moves.
    """

    version: int = 0
    participants: Mapping[str, Participant] = field(default_factory=_frozen)
    applications: Mapping[str, Application] = field(default_factory=_frozen)
    keys: Mapping[str, ApiKey] = field(default_factory=_frozen)  # by key_hash, live keys only
    approvals: Mapping[str, tuple[Approval, ...]] = field(default_factory=_frozen)

    def identify(self, key_hash: str) -> tuple[ApiKey, Application, Participant] | None:
        """The live key with this hash, its application and participant; else None."""
        key = self.keys.get(key_hash)
        if key is None:
            return None
        application = self.applications.get(key.application_id)
        if application is None:
            return None
        participant = self.participants.get(application.participant_id)
        if participant is None:
            return None
        return key, application, participant

    def approvals_for(self, application_id: str) -> tuple[Approval, ...]:
        return self.approvals.get(application_id, ())
