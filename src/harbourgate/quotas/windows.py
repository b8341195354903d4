"""Window arithmetic: fixed windows aligned to UTC calendar boundaries.

Per-minute limits count in the wall-clock minute; budgets in the UTC day, the ISO week
(Monday 00:00 UTC) or the calendar month. Fixed windows make a limit exact (no request
beyond it in a window, across every replica) and give every caller the same reset time
(the `reset` headers and `Retry-After`). Times are POSIX seconds; the clock is injected.
"""

from __future__ import annotations

from datetime import UTC, datetime

MINUTE = 60
DAY = 86_400
WEEK = 7 * DAY
_MONDAY = 4 * DAY  # 1970-01-01 was a Thursday; the first Monday is 1970-01-05
WINDOWS = ("minute", "day", "week", "month")


def window(period: str, now: float) -> tuple[int, int]:
    """The [start, end) of the `period` window holding `now`, in whole seconds."""
    t = int(now // 1)
    if period == "minute":
        start = t - t % MINUTE
        return start, start + MINUTE
    if period == "day":
        start = t - t % DAY
        return start, start + DAY
    if period == "week":
        start = t - (t - _MONDAY) % WEEK
        return start, start + WEEK
    if period == "month":
        when = datetime.fromtimestamp(t, UTC)
        first = datetime(when.year, when.month, 1, tzinfo=UTC)
        after = datetime(when.year + when.month // 12, when.month % 12 + 1, 1, tzinfo=UTC)
        return int(first.timestamp()), int(after.timestamp())
    raise ValueError(f"unknown window {period!r}; windows: {', '.join(WINDOWS)}")


def seconds_until(end: float, now: float) -> int:
    """Whole seconds to wait for a window ending at `end` (at least 1): `Retry-After`."""
    remaining = end - now
    whole = int(remaining)
    return max(1, whole + (1 if remaining > whole else 0))
