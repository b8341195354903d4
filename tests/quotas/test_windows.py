"""Window arithmetic: every instant lies in exactly one window of each period, windows
tile time without gaps, and budgets follow the UTC calendar."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from harbourgate.quotas.windows import seconds_until, window

instants = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)  # to 2100
periods = st.sampled_from(["minute", "day", "week", "month"])


def _utc(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@given(instants, periods)
def test_an_instant_lies_in_its_window(now: float, period: str) -> None:
    start, end = window(period, now)
    assert start <= now < end
    assert window(period, start) == (start, end)  # the boundary belongs to the window it opens
    assert window(period, end - 1) == (start, end)
    assert window(period, end)[0] == end  # the next window starts where this one ends


@given(instants, periods)
def test_windows_are_aligned_to_the_calendar(now: float, period: str) -> None:
    start, end = window(period, now)
    first, after = _utc(start), _utc(end)
    assert (first.second, first.microsecond) == (0, 0)
    if period == "minute":
        assert end - start == 60
    else:
        assert (first.hour, first.minute) == (0, 0)
    if period == "day":
        assert end - start == 86_400
    if period == "week":
        assert first.weekday() == 0 and end - start == 7 * 86_400
    if period == "month":
        assert first.day == 1 and after.day == 1
        assert (after.year * 12 + after.month) - (first.year * 12 + first.month) == 1


def test_known_boundaries() -> None:
    june_12 = datetime(2026, 6, 12, tzinfo=UTC).timestamp()
    assert window("minute", june_12 + 59.999) == (int(june_12), int(june_12) + 60)
    assert _utc(window("week", june_12)[0]) == datetime(2026, 6, 8, tzinfo=UTC)  # a Monday
    assert _utc(window("month", june_12)[1]) == datetime(2026, 7, 1, tzinfo=UTC)
    december = datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp()
    assert _utc(window("month", december)[1]) == datetime(2027, 1, 1, tzinfo=UTC)


@given(instants, st.floats(min_value=0.000001, max_value=10_000_000))
def test_retry_after_is_the_whole_seconds_to_the_end(now: float, ahead: float) -> None:
    end = now + ahead
    wait = seconds_until(end, now)
    assert wait >= 1
    assert now + wait >= end - 1e-6  # waiting that long reaches the next window
    assert wait < max(1.0, end - now) + 1
