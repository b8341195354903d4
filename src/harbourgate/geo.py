"""Countries and regions: the one definition every part of Harbourgate checks against.

A country is an ISO 3166-1 alpha-2 code as ISO assigns it: two ASCII capital letters, one
of the 249 officially assigned codes, plus XK (Kosovo), the one user-assigned code that
identity documents and verifiers use in practice. Other user-assigned codes (AA, QM-QZ,
XA-XZ, ZZ) and reserved ones (UK, EU, EL, UN) are refused everywhere alike: the
data-origin header, attestations, policy bundles, directives, participants, applications.

What people author (config, admin API, policy bundles, directives) must be written exactly
(`check_country`). What machines send (the data-origin header, an identity verifier's
claims) may be in ASCII lower case (`normalise_country`, `parse_origin`): `hk` is HK. Only
ASCII is ever case-folded: `uſ` and `ıs`, which `str.upper()` turns into US and IS, are
refused, not guessed at.

A region is a country followed by one or two subdivision parts (`CN-GD`, `CN-GD-SZ`: ISO
3166-2 stops at the province; Harbourgate adds the city).
"""

from __future__ import annotations

import re
from typing import Final

_CODES = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
VN VU WF WS YE YT ZA ZM ZW XK
"""
COUNTRIES: Final = frozenset(_CODES.split())

# Codes people write that ISO 3166-1 does not assign, and what they almost always mean.
LOOKALIKES: Final = {"UK": "GB", "EL": "GR", "EU": None, "UN": None}

_REGION: Final = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3}){1,2}", re.ASCII)

COUNTRY_HELP: Final = "an ISO 3166-1 alpha-2 country code in capitals, such as HK, CN or US"
REGION_HELP: Final = "a region code such as CN-GD or CN-GD-SZ"


def is_country(value: object) -> bool:
    """Exactly an assigned ISO 3166-1 alpha-2 code (`HK`; not `hk`, `UK` or `ZZ`)."""
    return isinstance(value, str) and value in COUNTRIES


def is_region(value: object) -> bool:
    """A region code of a known country: `CN-GD`, `CN-GD-SZ` (ASCII capitals and digits)."""
    return isinstance(value, str) and _REGION.fullmatch(value) is not None \
        and value[:2] in COUNTRIES


def country_problem(value: object) -> str | None:
    """Why `value` is not a country code, in words that say what to write; None if it is."""
    if is_country(value):
        return None
    if not isinstance(value, str):
        return f'must be an ISO 3166-1 alpha-2 code such as "HK", not {type(value).__name__}'
    return f"{value!r} is not an ISO 3166-1 alpha-2 code{_hint(value)}"


def _hint(value: str) -> str:
    if value.isascii() and value.upper() in COUNTRIES:
        return f" (write it in capitals: {value.upper()})"
    code = value.upper() if value.isascii() else value
    if code in LOOKALIKES:
        right = LOOKALIKES[code]
        return f" (use {right})" if right else " (it is not a country)"
    return ""


def normalise_country(value: object) -> str:
    """A code as a machine may send it: ASCII letters in either case (`hk` -> `HK`);
    `ValueError` for anything else, non-ASCII look-alikes included."""
    if isinstance(value, str) and value.isascii() and value.upper() in COUNTRIES:
        return value.upper()
    problem = country_problem(value)
    assert problem is not None
    raise ValueError(problem)


def check_country(value: object) -> str:
    """`value` if it is a country code, else `ValueError` with `country_problem`'s words."""
    problem = country_problem(value)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(value, str)
    return value


def check_region(value: object) -> str:
    """`value` if it is a region code, else `ValueError` saying what to write."""
    if is_region(value):
        assert isinstance(value, str)
        return value
    if isinstance(value, str) and _REGION.fullmatch(value):
        return check_country(value[:2])  # raises, naming the country part
    raise ValueError(f"{value!r} is not {REGION_HELP} (a country code, then one or two "
                     "parts of capitals and digits)")


def parse_origin(value: str) -> tuple[str, str | None]:
    """The X-Harbourgate-Data-Origin header: `(country, region or None)`.

    `HK` -> ("HK", None); `CN-GD-SZ` -> ("CN", "CN-GD-SZ"). Surrounding blanks are
    ignored (HTTP allows them); anything else not a country or region code is a
    `ValueError` whose message says what to send.
    """
    text = value.strip(" \t")
    if text.isascii():
        text = text.upper()  # ASCII only: never `str.upper()` of a look-alike
    if is_country(text):
        return text, None
    if is_region(text):
        return text[:2], text
    if "-" in text:
        try:
            check_region(text)
        except ValueError as exc:
            raise ValueError(f"must be {COUNTRY_HELP} (or {REGION_HELP}): {exc}") from None
    raise ValueError(f"must be {COUNTRY_HELP} (or {REGION_HELP}), not {value.strip()!r}"
                     f"{_hint(text)}")
