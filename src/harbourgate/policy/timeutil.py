"""Instants to the second, in UTC: the only clock the policy knows is the context's."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_instant(value: object) -> datetime:
    """An ISO-8601 instant with a zone (`2026-06-12T00:00:00Z`) as an aware UTC datetime.

    Raises `ValueError` with a message fit for a user: a time without a zone is ambiguous
    across the replicas of a gateway, so it is refused rather than guessed.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 time such as "
                             "2026-06-12T00:00:00Z") from None
    else:
        raise ValueError(f"must be an ISO-8601 time such as 2026-06-12T00:00:00Z, "
                         f"not {type(value).__name__}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{value!s} has no time zone; add Z for UTC "
                         "(e.g. 2026-06-12T00:00:00Z)")
    return parsed.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """UTC, seconds precision (sub-second kept when present), with a Z."""
    if value.tzinfo is not UTC:  # the gateway's own clock reads are UTC already
        value = value.astimezone(UTC)
    # `isoformat()` gives microseconds exactly when there are any, then "+00:00"
    return value.isoformat()[:-6] + "Z"
