"""Context.from_dict / to_dict: round trips, and wrong types named precisely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.policy import Context, PolicyError, vocab
from harbourgate.policy.fields import FIELDS
from harbourgate.policy.timeutil import format_instant
from harbourgate.policy.yamlsrc import parse_text

from .strategies import contexts


@given(contexts())
def test_to_dict_and_from_dict_round_trip(ctx: Context) -> None:
    assert Context.from_dict(ctx.to_dict()) == ctx


def errors(data: object) -> list[str]:
    with pytest.raises(PolicyError) as info:
        Context.from_dict(data, "ctx.yaml")
    return [str(p) for p in info.value.problems]


def test_a_minimal_context_defaults_to_unknown_facts() -> None:
    ctx = Context.from_dict({"model": {"name": "fable-5"},
                             "request": {"time": "2026-06-12T08:00:00+08:00"}})
    assert ctx.request.time == datetime(2026, 6, 12, 0, 0, tzinfo=UTC)
    assert ctx.end_user.verified is False and ctx.end_user.nationality is None
    assert ctx.data.origin is None and ctx.model.hosting is None
    assert ctx.participant.status == "admitted"


def test_wrong_types_are_reported_with_file_and_line() -> None:
    data = parse_text("""\
application:
  use_cases: research.b2b
  transfer_mechanisms: [pipl_contract]
  approval_expires_at: tomorrow
end_user: {verified: "yes", nationality: [us]}
model: {name: fable-5, export_tags: us-frontier, hosting: 1}
data: {origin: CN, region: CN-BJ-HD, classes: {hk_id: two, hkid: 1}}
request: {time: 2026-06-12T00:00:00Z, api: grpc}
""", "ctx.yaml")
    assert errors(data) == [
        "ctx.yaml:3: application.transfer_mechanisms[0]: unknown transfer mechanism "
        "'pipl_contract'; expected one of: " + ", ".join(vocab.TRANSFER_MECHANISMS),
        "ctx.yaml:4: application.approval_expires_at: 'tomorrow' is not an ISO-8601 time such "
        "as 2026-06-12T00:00:00Z",
        "ctx.yaml:5: end_user.verified must be true or false, not a string "
        "(fix: write verified: true)",
        "ctx.yaml:5: end_user.nationality[0]: 'us' is not an ISO 3166-1 alpha-2 code "
        "(write it in capitals: US)",
        "ctx.yaml:6: model.hosting must be a string, not the number 1 (fix: quote the value)",
        "ctx.yaml:7: data.classes.hk_id must be a count (a whole number >= 0), not 'two'",
        "ctx.yaml:7: data.classes: unknown class 'hkid' (fix: use one of: "
        + ", ".join(vocab.DATA_CLASSES) + ")",
        "ctx.yaml:8: request.api: unknown api 'grpc'; expected one of: openai, anthropic",
    ]


def test_missing_model_and_request_and_unknown_sections() -> None:
    assert errors({"application": [], "modle": {}}) == [
        "ctx.yaml: unknown key modle (fix: a context takes: application, participant, "
        "end_user, model, data, request)",
        "ctx.yaml: application must be a mapping, not list (fix: write application: "
        "{key: value, ...})",
        "ctx.yaml: model is missing: a decision is for one candidate model "
        "(fix: add model: {name: fable-5, hosting: US, ...})",
        "ctx.yaml: request is missing: the policy needs the request time "
        "(fix: add request: {time: 2026-06-12T00:00:00Z})",
    ]


def test_request_time_is_required_and_must_have_a_zone() -> None:
    assert errors({"model": {"name": "m"}, "request": {"api": "openai"}}) == [
        "ctx.yaml: request.time is required: decisions never read the wall clock "
        "(fix: add time: 2026-06-12T10:00:00Z)"]
    assert errors({"model": {"name": "m"}, "request": {"time": "2026-06-12T10:00:00"}}) == [
        "ctx.yaml: request.time: 2026-06-12T10:00:00 has no time zone; add Z for UTC "
        "(e.g. 2026-06-12T00:00:00Z)"]


def test_not_a_mapping() -> None:
    assert errors(["a"]) == [
        "ctx.yaml: a context must be a mapping with application, model, request, ... sections "
        "(fix: see docs/policy.md, 'Context files')"]


def test_region_normalisation_and_consistency() -> None:
    base = {"model": {"name": "m"}, "request": {"time": "2026-06-12T00:00:00Z"}}
    ctx = Context.from_dict({**base, "data": {"region": "shenzhen"}})
    assert (ctx.data.origin, ctx.data.region) == ("CN", "CN-GD-SZ")
    assert errors({**base, "data": {"origin": "HK", "region": "CN-GD-SZ"}}) == [
        "ctx.yaml: data.region CN-GD-SZ is not in data.origin HK (fix: make the region's "
        "first two letters the origin)"]
    assert errors({**base, "data": {"region": "Atlantis City"}}) == [
        "ctx.yaml: data.region: 'Atlantis City' is not a region code such as CN-GD-SZ "
        "(country, province, city)"]


def test_the_declared_origin_is_what_rules_see_when_the_request_names_none() -> None:
    ctx = Context.from_dict({"application": {"data_origin": "HK"}, "model": {"name": "m"},
                             "request": {"time": "2026-06-12T00:00:00Z"}})
    assert ctx.data.origin is None  # the context keeps what it was given ...
    assert FIELDS["data.origin"].get(ctx, "minimal") == "HK"  # ... rules see the default


@given(st.sampled_from(sorted(vocab.GBA_CITIES.values())))
def test_every_gba_city_name_maps_to_its_code(name: str) -> None:
    assert vocab.GBA_CITIES[vocab.normalise_region(name)] == name


def plain_format_instant(value: datetime) -> str:
    value = value.astimezone(UTC)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)),
       st.sampled_from([UTC, timezone(timedelta(0)), timezone(timedelta(hours=8)),
                        timezone(timedelta(hours=-5, minutes=-30))]))
def test_instants_are_formatted_in_utc_whatever_their_zone(value: datetime,
                                                           zone: timezone) -> None:
    instant = value.replace(tzinfo=zone)
    assert format_instant(instant) == plain_format_instant(instant)
    assert format_instant(instant).endswith("Z")
