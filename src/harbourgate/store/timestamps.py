"""Timestamps as stored: ISO-8601 UTC text with `Z`, to the second.

One fixed width and precision means text order is time order on both engines, so
`created_at` can be compared and sorted as a plain string.
"""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    """Now, e.g. `2026-06-12T00:00:00Z`."""
    return format_timestamp(datetime.now(UTC))


def format_timestamp(moment: datetime) -> str:
    """`moment` in UTC, to the second. A naive datetime is taken to be UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(FORMAT)


def parse_timestamp(text: str) -> datetime:
    """The aware UTC datetime of an ISO-8601 timestamp (any offset, `Z` accepted)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z for UTC")
    return moment.astimezone(UTC)
