"""One country list and one rule, wherever a country code arrives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate import geo
from harbourgate.directives.model import Directive, DirectiveError
from harbourgate.identity import model
from harbourgate.policy import fields

LOOK_ALIKES = ["uſ", "ıs", "ＵＳ", "hK\u0307", "U\u200bS"]  # long s, dotless i, fullwidth, ...


def test_assigned_codes_only() -> None:
    assert len(geo.COUNTRIES) == 250  # 249 assigned by ISO, plus XK
    assert {"HK", "CN", "US", "GB", "MO", "TW", "XK"} <= geo.COUNTRIES
    assert not {"UK", "EU", "EL", "UN", "ZZ", "AA", "QM", "XA"} & geo.COUNTRIES


@pytest.mark.parametrize("value", ["ZZ", "UK", "hk", "HKG", "", *LOOK_ALIKES])
def test_every_place_refuses_the_same_codes(value: str) -> None:
    """The admin API and config seed, policy fields, directives and the origin header."""
    with pytest.raises(ValueError):
        model.check_country(value)
    assert not model.is_country_code(value)
    assert fields.FIELDS["data.origin"].check_value(value) is not None
    with pytest.raises(DirectiveError):
        Directive.from_dict({"authority": "A", "citation": "C", "title": "T",
                             "models": ["m"], "permit_only": {"nationality": [value]},
                             "effective_from": "2026-06-12T00:00:00Z"}, known_models={"m"})
    if value.isascii() and value.upper() in geo.COUNTRIES:
        return  # what machines send may be lower case: hk is HK
    with pytest.raises(ValueError):
        geo.normalise_country(value)
    with pytest.raises(ValueError, match="must be an ISO 3166-1 alpha-2 country code"):
        geo.parse_origin(value)


def test_the_origin_header() -> None:
    assert geo.parse_origin("HK") == ("HK", None)
    assert geo.parse_origin(" hk ") == ("HK", None)
    assert geo.parse_origin("CN-GD-SZ") == ("CN", "CN-GD-SZ")
    assert geo.parse_origin("cn-gd") == ("CN", "CN-GD")
    with pytest.raises(ValueError) as refused:
        geo.parse_origin("uſ")
    assert str(refused.value) == (
        "must be an ISO 3166-1 alpha-2 country code in capitals, such as HK, CN or US (or a "
        "region code such as CN-GD or CN-GD-SZ), not 'uſ'")
    with pytest.raises(ValueError, match=r"'ZZ' is not an ISO 3166-1 alpha-2 code"):
        geo.parse_origin("ZZ-AB")
    with pytest.raises(ValueError, match=r"not 'UK' \(use GB\)"):
        geo.parse_origin("UK")


@given(st.text(max_size=12))
def test_whatever_is_accepted_is_an_assigned_ascii_code(text: str) -> None:
    for parse in (geo.check_country, geo.normalise_country,
                  lambda v: geo.parse_origin(v)[0]):
        try:
            code = parse(text)
        except ValueError:
            continue
        assert code in geo.COUNTRIES and code.isascii() and code.isupper()
        assert text.strip(" \t").isascii()
    assert (text in geo.COUNTRIES) == geo.is_country(text)
