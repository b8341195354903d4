"""Check-digit and format validators: pure functions on ASCII strings.

A recognizer finds a candidate by its shape; these decide whether it is real. Each takes
the value with separators already removed (and full-width characters folded to ASCII).

They run once per candidate on the scanner's hot path, so the weighted sums are computed in
C where an identity allows it (a base-13 `int` for MOD 11-2, `str.translate` and a byte sum
for Luhn and IBAN letters) instead of a Python loop per digit. The plain definitions are kept
in the tests, which check these against them.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re

# ---- Hong Kong identity card -------------------------------------------------------------


def hkid_check_digit(prefix: str, digits: str) -> str:
    """The check character ('0'-'9' or 'A') for a HKID with 1-2 letters and 6 digits.

    Weights 9..2 over (letter, letter, 6 digits); a single-letter prefix counts its missing
    first letter as a space (value 36). Letters are A=10 ... Z=35. Check = 11 - sum mod 11.
    """
    if len(prefix) == 1:
        total = 9 * 36 + 8 * (ord(prefix) - 55)
    else:
        total = 9 * (ord(prefix[0]) - 55) + 8 * (ord(prefix[1]) - 55)
    if len(digits) == 6 and digits.isascii():
        d0, d1, d2, d3, d4, d5 = digits.encode()
        total += 7 * d0 + 6 * d1 + 5 * d2 + 4 * d3 + 3 * d4 + 2 * d5 - 27 * 48
    else:  # not six ASCII characters: the plain loop (and its error on a wrong length)
        for weight, digit in zip(range(7, 1, -1), digits, strict=True):
            total += weight * (ord(digit) - 48)
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def is_hkid(prefix: str, digits: str, check: str) -> bool:
    """True when `check` is the right check character for `prefix` + `digits`."""
    if not (1 <= len(prefix) <= 2 and prefix.isascii() and prefix.isupper() and prefix.isalpha()):
        return False
    if len(digits) != 6 or not (digits.isascii() and digits.isdigit()):
        return False
    return hkid_check_digit(prefix, digits) == check.upper()


# ---- Mainland resident identity number (GB 11643-1999) -------------------------------------

_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"
# GB/T 2260 province-level codes, plus 71 (Taiwan) and 81/82/83 (HK, Macao, Taiwan residence
# permits for residents of those regions, which share the format).
CN_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
     50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)
_CN_PROVINCE_PREFIXES = frozenset(str(code) for code in CN_PROVINCES)
# Birth years before this one are in the past whatever today is (the year only grows), so
# most IDs need no call to `date.today()`.
_YEAR_AT_IMPORT = f"{_dt.date.today().year:04d}"
# Every real month and day as "MMDD" (0229 included: leap years are checked apart).
_MONTH_DAYS = frozenset(
    f"{month:02d}{day:02d}"
    for month, days in enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1)
    for day in range(1, days + 1)
)


def cn_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits.

    The weights are 2^k mod 11 and 13 = 2 (mod 11), so the weighted sum is
    ``2 * int(first17, 13)`` mod 11: one conversion in C.
    """
    if len(first17) == 17 and first17.isascii() and first17.isdigit():
        return _CN_CHECK[2 * int(first17, 13) % 11]
    total = sum(w * (ord(c) - 48) for w, c in zip(_CN_WEIGHTS, first17, strict=True))
    return _CN_CHECK[total % 11]


def is_cn_id(value: str, *, today: _dt.date | None = None) -> bool:
    """An 18-character mainland resident ID: region, birth date and check character valid.

    The region must start with a province-level code and its city/county part must not be
    `0000`; the birth date must be a real date between 1900-01-01 and today.
    """
    if len(value) != 18 or not value.isascii() or not value[:17].isdigit():
        return False
    if value[:2] not in _CN_PROVINCE_PREFIXES or value[2:6] == "0000":
        return False
    year, month_day = value[6:10], value[10:14]
    if year < "1900" or month_day not in _MONTH_DAYS:
        return False
    if month_day == "0229" and not calendar.isleap(int(year)):
        return False
    if today is not None or year >= _YEAR_AT_IMPORT:  # may be in the future
        born = _dt.date(int(year), int(month_day[:2]), int(month_day[2:]))
        if born > (today or _dt.date.today()):
            return False
    return _CN_CHECK[2 * int(value[:17], 13) % 11] == value[17].upper()


# ---- Payment cards --------------------------------------------------------------------------


_LUHN_DOUBLE = str.maketrans("0123456789", "0246813579")  # 2d, minus 9 when above 9


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by every major card scheme."""
    if digits.isascii() and digits.isdigit():
        # Digits in odd places from the right as they are, the others doubled by a table;
        # summing the bytes then subtracts 48 ('0') per digit.
        doubled = digits[-2::-2].translate(_LUHN_DOUBLE)
        total = sum(digits[::-2].encode()) + sum(doubled.encode()) - 48 * len(digits)
        return total % 10 == 0
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_scheme(digits: str) -> str | None:
    """The scheme whose prefix and length the number fits, or None."""
    n = len(digits)
    if n >= 6 and digits.isascii() and digits.isdigit():
        p6 = int(digits[:6])
        p2, p3, p4 = p6 // 10000, p6 // 1000, p6 // 100
    else:
        p2 = int(digits[:2]) if n >= 2 else -1
        p3 = int(digits[:3]) if n >= 3 else -1
        p4 = int(digits[:4]) if n >= 4 else -1
        p6 = int(digits[:6]) if n >= 6 else -1
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if (p2 in (36, 38, 39) or 300 <= p3 <= 305) and 14 <= n <= 19:
        return "diners"
    return None


def is_payment_card(digits: str) -> bool:
    """A known scheme's prefix and length, and a valid Luhn check digit."""
    if not 13 <= len(digits) <= 19:
        return False
    if not (digits.isascii() and digits.isdigit()):
        return card_scheme(digits) is not None and luhn_ok(digits)
    # The Luhn sum first (below), then the scheme: most numbers that fail, fail Luhn.
    doubled = digits[-2::-2].translate(_LUHN_DOUBLE)
    if (sum(digits[::-2].encode()) + sum(doubled.encode()) - 48 * len(digits)) % 10:
        return False
    return card_scheme(digits) is not None


# ---- IBAN (ISO 13616) -----------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


# Letters read as two digits for the mod-97 check: A (or a) = 10 ... Z = 35.
_IBAN_LETTER_VALUES = {
    c: str(int(c, 36)) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
}
_IBAN_LETTERS = str.maketrans(_IBAN_LETTER_VALUES)


def is_iban(value: str) -> bool:
    """Country length and the mod-97 check of ISO 13616 (on the value without spaces)."""
    if len(value) < 15 or IBAN_LENGTHS.get(value[:2]) != len(value) or not value.isascii():
        return False
    if not value[2:4].isdigit() or not value.isalnum():
        return False
    if value[4:].isdigit():  # letters only in the country code: no table for the rest
        letters = _IBAN_LETTER_VALUES
        number = value[4:] + letters[value[0]] + letters[value[1]] + value[2:4]
    else:
        number = (value[4:] + value[:4]).translate(_IBAN_LETTERS)
    return int(number) % 97 == 1


# ---- IP addresses ---------------------------------------------------------------------------


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def is_ipv4(value: str) -> bool:
    """Four decimal octets 0-255 without leading zeros (the `ipaddress` module's rules,
    as one pattern: no exception raised and caught per rejected candidate)."""
    return _IPV4.fullmatch(value) is not None


_H16 = "[0-9A-Fa-f]{1,4}"
_LS32 = f"(?:{_H16}:{_H16}|{_OCTET}(?:\\.{_OCTET}){{3}})"
# RFC 3986 `IPv6address`, which is what `ipaddress.IPv6Address` accepts (tested), plus its
# scope id (`fe80::1%eth0`), in one pattern: no exception raised and caught per rejection.
# The full form (eight groups, no "::") first: it is the common one in logs and prose.
_IPV6 = re.compile(
    f"(?:(?:{_H16}:){{6}}{_LS32}|"
    + "|".join(
        f"{head}::{f'(?:{_H16}:){{{tail}}}' if tail else ''}{last}"
        for head, tail, last in (
            ("", 5, _LS32),
            (f"(?:{_H16})?", 4, _LS32),
            (f"(?:(?:{_H16}:){{0,1}}{_H16})?", 3, _LS32),
            (f"(?:(?:{_H16}:){{0,2}}{_H16})?", 2, _LS32),
            (f"(?:(?:{_H16}:){{0,3}}{_H16})?", 1, _LS32),
            (f"(?:(?:{_H16}:){{0,4}}{_H16})?", 0, _LS32),
            (f"(?:(?:{_H16}:){{0,5}}{_H16})?", 0, _H16),
            (f"(?:(?:{_H16}:){{0,6}}{_H16})?", 0, ""),
        )
    )
    + ")(?:%[^%/]+)?"
)


def is_ipv6(value: str) -> bool:
    """A valid IPv6 address that looks like one in prose, not `A::B` in code.

    It must parse, and have at least three groups or a group of three or more hex digits.
    """
    if _IPV6.fullmatch(value) is None:
        return False
    groups = [g for g in value.replace("::", ":").split(":") if g]
    return len(groups) >= 3 or any(len(g) >= 3 for g in groups)


# ---- Email -----------------------------------------------------------------------------------


def is_email(local: str, domain: str) -> bool:
    """RFC 5321 lengths; no empty, leading, trailing or doubled dots; an alphabetic TLD."""
    if not local or len(local) > 64 or len(domain) > 253:
        return False
    if local[0] == "." or local[-1] == "." or ".." in local or ".." in domain:
        return False
    labels = domain.split(".")
    tld = labels[-1]
    return len(labels) >= 2 and len(tld) >= 2 and tld.isalpha()
