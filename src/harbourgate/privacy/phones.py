"""Phone-number validity from the `phonenumbers` metadata, without its per-call cost.

`phonenumbers.is_valid_number` costs tens of microseconds per call, too much for the hot
path. It decides validity by matching the national number against per-region patterns of
its metadata (the general description, then one of the number types); this module applies
the same patterns, compiled once per region and cached, so a check costs about a
microsecond. Regions that share a calling code (+44: GB, GG, IM, JE; +1: the NANP) are
joined into one pattern, so an international number costs one match, not one per region.
The test suite compares it with `phonenumbers.is_valid_number`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

# Valid means valid as any type, so the order changes no answer, only the time: the usual
# types first, so that most valid numbers stop at the first or second alternative.
_TYPES = (
    "mobile", "fixed_line", "premium_rate", "toll_free", "shared_cost", "voip",
    "personal_number", "pager", "uan", "voicemail",
)


def _with_lengths(desc: object) -> str | None:
    """The description's pattern, guarded by its possible lengths, as one regex source."""
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    lengths = sorted(set(getattr(desc, "possible_length", None) or ()))
    guard = "(?=(?:" + "|".join(f"\\d{{{n}}}" for n in lengths) + r")\Z)" if lengths else ""
    return f"{guard}(?:{pattern})"


@lru_cache(maxsize=512)
def _region(region: str) -> re.Pattern[str] | None:
    """One pattern per region: the general description, then any number type."""
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None
    general = _with_lengths(metadata.general_desc)
    types = [t for t in (_with_lengths(getattr(metadata, n, None)) for n in _TYPES) if t]
    if general is None or not types:
        return None
    # ASCII: `\d` is [0-9] (the metadata writes digits as `\d`), checked faster than the
    # Unicode digit category; callers pass ASCII digits.
    return re.compile(f"(?=(?:{general})\\Z)(?:{'|'.join(types)})", re.ASCII)


def national_check(region: str) -> Callable[[str], bool]:
    """`is_valid_national` for one region, bound once (for a caller's hot loop)."""
    compiled = _region(region)
    if compiled is None:
        return _never
    fullmatch = compiled.fullmatch
    return lambda number: fullmatch(number) is not None


def is_valid_national(region: str, number: str) -> bool:
    """True when `number` (ASCII digits, no national prefix) is a valid number of `region`."""
    compiled = _region(region)
    return compiled is not None and compiled.fullmatch(number) is not None


@lru_cache(maxsize=512)
def _calling_code(code: int) -> Callable[[str], bool]:
    """Valid in any region of a calling code: one pattern for all of them."""
    patterns = [
        compiled.pattern
        for region in COUNTRY_CODE_TO_REGION_CODE.get(code, ())
        if (compiled := _region(region)) is not None
    ]
    if not patterns:
        return _never
    fullmatch = re.compile("|".join(f"(?:{p})" for p in patterns), re.ASCII).fullmatch
    return lambda national: fullmatch(national) is not None


def _never(number: str) -> bool:
    return False


# The leading digits that name a calling code, as `int(digits[:size])` reads them: "852",
# and also "01" or "001" for +1, so that a number starting with zeros reads as before.
_CODE_PREFIXES: dict[str, int] = {
    str(code).zfill(size): code
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items()
    if regions
    for size in (1, 2, 3)
    if len(str(code)) <= size
}


def is_valid_international(digits: str) -> bool:
    """`digits` = country calling code + national number (what follows `+` or `00`)."""
    n = len(digits)
    for size in (1, 2, 3):
        if n <= size:  # no national number left after the code
            return False
        code = _CODE_PREFIXES.get(digits[:size])
        if code is not None:
            break
    else:
        return False
    national = digits[size:]
    # A trunk '0' written after the country code ("+44 (0)20 ...") is not part of the
    # number, except in Italy and Côte d'Ivoire where it is.
    if national[0] == "0" and code != 39 and code != 225:
        national = national[1:]
    return _calling_code(code)(national)


@lru_cache(maxsize=512)
def _possible_lengths(code: int) -> frozenset[int]:
    """National-number lengths any region of a calling code may have (allocated or not)."""
    lengths: set[int] = set()
    for region in COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        metadata = PhoneMetadata.metadata_for_region(region, None)
        general = getattr(metadata, "general_desc", None)
        lengths.update(getattr(general, "possible_length", None) or ())
    return frozenset(n for n in lengths if n > 0)


def is_plausible_international(digits: str) -> bool:
    """`digits` (calling code + national number) has a known calling code and a national
    number of a length possible there, in any range, allocated or not.

    De-identification wants recall first: a number written with its calling code is a phone
    number even when the metadata calls its range unallocated (or it was allocated after
    the metadata). The gateway's scanner keeps `is_valid_international`.
    """
    n = len(digits)
    for size in (1, 2, 3):
        if n <= size:
            return False
        code = _CODE_PREFIXES.get(digits[:size])
        if code is not None:
            break
    else:
        return False
    national = digits[size:]
    if national[0] == "0" and code != 39 and code != 225:
        national = national[1:]
    return national.isdigit() and len(national) in _possible_lengths(code)


def reference_is_valid(text: str, region: str | None = None) -> bool:
    """`phonenumbers`' own answer, for tests and tooling (slow: not for the hot path)."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)
