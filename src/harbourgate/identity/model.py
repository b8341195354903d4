"""The sandbox's registry, as immutable values the hot path can share without locks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    jurisdiction: str
    status: str = "admitted"  # admitted | suspended
    screening: str = "clear"  # restricted-party screening result


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


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    application_id: str
    key_hash: str  # SHA-256 hex of the key; the key itself is never stored
    prefix: str  # the first characters, to recognise a key in a list
    created_at: str
    revoked_at: str | None = None
