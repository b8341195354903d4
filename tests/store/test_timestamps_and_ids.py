"""Stored timestamps sort as time does; generated ids are always valid ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.identity.model import is_valid_id
from harbourgate.store import Store, schema
from harbourgate.store.ids import new_id, slugify
from harbourgate.store.timestamps import format_timestamp, parse_timestamp, utc_now

moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1),
                       timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))


@given(moments)
def test_a_timestamp_round_trips_to_the_second(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert len(text) == 20 and text.endswith("Z")
    assert parse_timestamp(text) == moment


@given(moments, moments)
def test_text_order_is_time_order(a: datetime, b: datetime) -> None:
    assert (format_timestamp(a) < format_timestamp(b)) == (a < b)


def test_offsets_are_converted_to_utc() -> None:
    hong_kong = timezone(timedelta(hours=8))
    assert format_timestamp(datetime(2026, 6, 12, 8, 0, tzinfo=hong_kong)) == "2026-06-12T00:00:00Z"
    assert parse_timestamp("2026-06-12T08:00:00+08:00") == datetime(2026, 6, 12, tzinfo=UTC)


def test_a_timestamp_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone; add Z for UTC"):
        parse_timestamp("2026-06-12T00:00:00")


def test_now_is_utc_with_z() -> None:
    now = utc_now()
    assert now.endswith("Z")
    assert abs(parse_timestamp(now) - datetime.now(UTC)) < timedelta(minutes=1)


@given(st.text(max_size=120))
def test_a_slug_is_empty_or_a_valid_id(name: str) -> None:
    slug = slugify(name)
    assert slug == "" or is_valid_id(slug)
    assert len(slug) <= 48


@pytest.mark.parametrize(("name", "slug"), [
    ("Acme Research", "acme-research"),
    ("  Zürich AI -- Lab  ", "zurich-ai-lab"),
    ("香港大學", ""),
    ("a" * 100, "a" * 48),
])
def test_slugs(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_a_new_id_avoids_taken_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(f"sqlite:///{tmp_path / 'hg.db'}")
    store.migrate()
    try:
        with store.transaction() as conn:
            assert new_id(conn, schema.participants, "Acme", fallback="participant") == "acme"
            conn.execute(schema.participants.insert().values(
                id="acme", name="Acme", jurisdiction="HK", created_at=utc_now(),
                updated_at=utc_now()))
            other = new_id(conn, schema.participants, "Acme", fallback="participant")
            assert other != "acme" and other.startswith("acme-") and is_valid_id(other)
            assert new_id(conn, schema.participants, "!!!", fallback="participant") \
                == "participant"
    finally:
        store.close()
