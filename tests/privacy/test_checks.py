"""Check-digit validators against published examples and their own inverses."""

from __future__ import annotations

import datetime as dt

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.privacy import checks, phones


def test_hkid_published_example() -> None:
    assert checks.hkid_check_digit("A", "123456") == "3"
    assert checks.is_hkid("A", "123456", "3")
    assert not checks.is_hkid("A", "123456", "4")


def test_hkid_check_a_and_two_letters() -> None:
    assert checks.hkid_check_digit("C", "668668") == "9"
    two = checks.hkid_check_digit("AB", "987654")
    assert checks.is_hkid("AB", "987654", two)
    # find a value whose check character is 'A' (remainder 1) and check it round-trips
    digits = next(f"{i:06d}" for i in range(10**6)
                  if checks.hkid_check_digit("Z", f"{i:06d}") == "A")
    assert checks.is_hkid("Z", digits, "A")
    assert checks.is_hkid("Z", digits, "a")


@pytest.mark.parametrize(("prefix", "digits"), [("a", "123456"), ("A", "12345"), ("ABC", "123456"),
                                                 ("1", "123456"), ("A", "12345x")])
def test_hkid_rejects_malformed(prefix: str, digits: str) -> None:
    assert not checks.is_hkid(prefix, digits, "3")


def test_cn_id_known_valid_and_each_rule() -> None:
    valid = "11010519491231002X"
    assert checks.is_cn_id(valid)
    assert checks.is_cn_id(valid.lower())
    assert not checks.is_cn_id(valid[:-1] + "1")  # check character
    first17 = "990105" + valid[6:17]  # no province 99
    assert not checks.is_cn_id(first17 + checks.cn_id_check_char(first17))
    bad_date = "110105" + "19490231" + "002"
    assert not checks.is_cn_id(bad_date + checks.cn_id_check_char(bad_date))
    future = "110105" + "20991231" + "002"
    assert not checks.is_cn_id(future + checks.cn_id_check_char(future))
    zero_region = "110000" + "19491231" + "002"
    assert not checks.is_cn_id(zero_region + checks.cn_id_check_char(zero_region))
    assert not checks.is_cn_id(valid[:17])


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)),
       st.integers(0, 999), st.sampled_from(sorted(checks.CN_PROVINCES)))
def test_cn_id_check_char_makes_any_valid_number_valid(born: dt.date, seq: int, prov: int) -> None:
    first17 = f"{prov}0101{born:%Y%m%d}{seq:03d}"
    value = first17 + checks.cn_id_check_char(first17)
    assert checks.is_cn_id(value)
    wrong = next(c for c in "0123456789X" if c != value[-1])
    assert not checks.is_cn_id(first17 + wrong)


@pytest.mark.parametrize("number", ["4111111111111111", "5500005555555559", "378282246310005",
                                    "6011111111111117", "3530111333300000", "6212345678901265",
                                    "4012888888881881"])
def test_cards_valid(number: str) -> None:
    assert checks.is_payment_card(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234567812345670", "41111111111",
                                    "9111111111111111"])
def test_cards_invalid(number: str) -> None:
    assert not checks.is_payment_card(number)


@pytest.mark.parametrize("iban", ["GB82WEST12345698765432", "DE89370400440532013000",
                                  "FR1420041010050500013M02606", "NL91ABNA0417164300"])
def test_iban_valid(iban: str) -> None:
    assert checks.is_iban(iban)


@pytest.mark.parametrize("iban", ["GB83WEST12345698765432", "DE8937040044053201300",
                                  "XX89370400440532013000", "GB82WEST1234569876543!"])
def test_iban_invalid(iban: str) -> None:
    assert not checks.is_iban(iban)


def test_ip_addresses() -> None:
    assert checks.is_ipv4("192.168.1.1")
    assert not checks.is_ipv4("256.1.1.1")
    assert not checks.is_ipv4("01.2.3.4")
    assert checks.is_ipv6("2001:db8::1")
    assert checks.is_ipv6("fe80::1ff:fe23:4567:890a")
    assert not checks.is_ipv6("A::B")  # valid, but reads as code, not an address
    assert not checks.is_ipv6("10:30:00")


def test_email_rules() -> None:
    assert checks.is_email("john.doe", "example.com")
    assert not checks.is_email(".john", "example.com")
    assert not checks.is_email("john..doe", "example.com")
    assert not checks.is_email("john", "example.c0m")
    assert not checks.is_email("x" * 65, "example.com")


REGION_NUMBERS = st.sampled_from(["HK", "CN", "MO", "GB", "US", "SG", "TW", "JP"])


@settings(deadline=None)  # the first call loads a region's metadata (phonenumberslite)
@given(REGION_NUMBERS, st.integers(0, 10**11))
def test_fast_phone_check_agrees_with_phonenumbers(region: str, n: int) -> None:
    """The compiled-metadata check gives phonenumbers' own answer on any number."""
    code = phonenumbers.country_code_for_region(region)
    number = phonenumbers.PhoneNumber(country_code=code, national_number=n)
    reference = phonenumbers.is_valid_number(number)
    # +44 is shared by GB, GG, IM, JE (and +1 by the NANP): compare on the whole code
    assert phones.is_valid_international(f"{code}{n}") == reference
    if phonenumbers.region_code_for_number(number) == region:
        assert phones.is_valid_national(region, str(n)) == reference


@pytest.mark.parametrize("region", ["HK", "CN", "MO", "GB", "US", "SG"])
def test_fast_phone_check_accepts_example_numbers(region: str) -> None:
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        assert phones.is_valid_national(region, str(example.national_number))
        assert phones.is_valid_international(f"{example.country_code}{example.national_number}")


# ---- the fast validators against the plain definitions ----------------------------------------
# checks.py computes the weighted sums in C (base-13 int, translate tables, byte sums); these
# are the textbook loops they replace, so any divergence shows up as a counterexample.

DIGITS = st.text("0123456789", min_size=1, max_size=24)


def reference_luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def reference_cn_check(first17: str) -> str:
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return "10X98765432"[sum(w * int(c) for w, c in zip(weights, first17, strict=True)) % 11]


def reference_hkid(prefix: str, digits: str) -> str:
    letters = (" " + prefix) if len(prefix) == 1 else prefix
    values = [36 if c == " " else ord(c) - 55 for c in letters] + [int(d) for d in digits]
    total = sum(w * v for w, v in zip(range(9, 1, -1), values, strict=True))
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def reference_iban(value: str) -> bool:
    if not iban_shape_ok(value):
        return False
    rearranged = value[4:] + value[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def iban_shape_ok(value: str) -> bool:
    return (len(value) >= 15 and checks.IBAN_LENGTHS.get(value[:2]) == len(value)
            and value.isascii() and value[2:4].isdigit() and value.isalnum())


def reference_card_scheme(digits: str) -> str | None:
    n = len(digits)
    p = {k: int(digits[:k]) if n >= k else -1 for k in (2, 3, 4, 6)}
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p[2] <= 55 or 2221 <= p[4] <= 2720) and n == 16:
        return "mastercard"
    if p[2] in (34, 37) and n == 15:
        return "amex"
    if p[2] == 62 and 16 <= n <= 19:
        return "unionpay"
    if 3528 <= p[4] <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (p[4] == 6011 or p[2] == 65 or 644 <= p[3] <= 649 or 622126 <= p[6] <= 622925) \
            and 16 <= n <= 19:
        return "discover"
    if (p[2] in (36, 38, 39) or 300 <= p[3] <= 305) and 14 <= n <= 19:
        return "diners"
    return None


@given(DIGITS)
def test_luhn_matches_the_definition(digits: str) -> None:
    assert checks.luhn_ok(digits) == reference_luhn(digits)


@given(st.text("0123456789", min_size=2, max_size=19))
def test_card_scheme_matches_the_definition(digits: str) -> None:
    assert checks.card_scheme(digits) == reference_card_scheme(digits)


def test_card_schemes_at_their_prefix_bounds() -> None:
    for prefix, length, scheme in [("2221", 16, "mastercard"), ("2720", 16, "mastercard"),
                                   ("2721", 16, None), ("622126", 16, "unionpay"),
                                   ("644", 16, "discover"), ("305", 14, "diners"),
                                   ("3528", 16, "jcb"), ("3590", 16, None)]:
        digits = prefix + "0" * (length - len(prefix))
        assert checks.card_scheme(digits) == scheme == reference_card_scheme(digits)


@given(st.text("0123456789", min_size=17, max_size=17))
def test_cn_id_check_char_matches_the_definition(first17: str) -> None:
    assert checks.cn_id_check_char(first17) == reference_cn_check(first17)


def test_cn_id_check_char_keeps_its_length_error() -> None:
    with pytest.raises(ValueError, match="zip"):
        checks.cn_id_check_char("1234")


@given(st.sampled_from(["A", "Z", "AB", "XY", "K"]), st.text("0123456789", min_size=6, max_size=6))
def test_hkid_check_digit_matches_the_definition(prefix: str, digits: str) -> None:
    assert checks.hkid_check_digit(prefix, digits) == reference_hkid(prefix, digits)


@given(st.sampled_from(sorted(checks.IBAN_LENGTHS)), st.data())
def test_iban_matches_the_definition(country: str, data: st.DataObject) -> None:
    n = checks.IBAN_LENGTHS[country]
    bban = data.draw(st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabc", min_size=n - 4,
                             max_size=n - 4))
    check = 98 - int((bban + country + "00").upper().translate(
        {ord(c): str(int(c, 36)) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})) % 97
    valid = f"{country}{check:02d}{bban}"
    assert checks.is_iban(valid) and reference_iban(valid)
    wrong = data.draw(st.integers(0, 99).filter(lambda c: (c - check) % 97 != 0))
    assert not checks.is_iban(f"{country}{wrong:02d}{bban}")
    assert not reference_iban(f"{country}{wrong:02d}{bban}")


@given(st.dates(min_value=dt.date(1899, 1, 1), max_value=dt.date(2100, 12, 31)),
       st.sampled_from(["11", "44", "81", "99", "00"]), st.sampled_from(["0101", "0000"]),
       st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_cn_id_dates_against_any_today(born: dt.date, prov: str, area: str,
                                       today: dt.date) -> None:
    """Birth date rules (1900..today) hold for any `today`, also past the current year."""
    first17 = f"{prov}{area}{born:%Y%m%d}123"
    value = first17 + reference_cn_check(first17)
    region_ok = int(prov) in checks.CN_PROVINCES and area != "0000"
    assert checks.is_cn_id(value, today=today) == (
        region_ok and dt.date(1900, 1, 1) <= born <= today)
    assert checks.is_cn_id(value) == (region_ok and dt.date(1900, 1, 1) <= born <= dt.date.today())


def test_cn_id_born_after_today_is_rejected_this_year() -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    first17 = f"110101{tomorrow:%Y%m%d}123"
    assert not checks.is_cn_id(first17 + checks.cn_id_check_char(first17))
    today = dt.date.today()
    first17 = f"110101{today:%Y%m%d}123"
    assert checks.is_cn_id(first17 + checks.cn_id_check_char(first17))


@given(st.text("0123456789", min_size=0, max_size=16))
def test_calling_code_read_like_an_integer(digits: str) -> None:
    """Leading zeros read as int() reads them ("01…" is +1), as the per-region check did."""
    def reference(digits: str) -> bool:
        for size in (1, 2, 3):
            code = int(digits[:size]) if len(digits) > size else 0
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
            if regions:
                national = digits[size:]
                if code not in (39, 225) and national.startswith("0"):
                    national = national[1:]
                return any(phones.is_valid_national(r, national) for r in regions)
        return False

    assert phones.is_valid_international(digits) == reference(digits)
    assert phones.is_valid_international("01" + digits) == reference("01" + digits)
    assert phones.is_valid_international("44" + digits) == reference("44" + digits)


def test_shared_calling_codes_accept_each_region() -> None:
    assert phones.is_valid_international("447911123456")      # GB mobile
    assert phones.is_valid_international("447781123456")      # GG mobile
    assert phones.is_valid_international("12015550123")       # US
    assert phones.is_valid_international("14165550123") == phones.reference_is_valid(
        "+14165550123")                                       # CA, same code
    assert not phones.is_valid_international("4400")


def test_fast_phone_check_agrees_on_every_region_and_type() -> None:
    """Each region's example numbers of every type, and each one digit longer and shorter."""
    types = [t for t in vars(phonenumbers.PhoneNumberType).values() if isinstance(t, int)]
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in types:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            code, national = example.country_code, str(example.national_number)
            for variant in filter(None, (national, national + "1", national[:-1])):
                number = phonenumbers.PhoneNumber(country_code=code, national_number=int(variant))
                reference = phonenumbers.is_valid_number(number)
                assert phones.is_valid_international(f"{code}{variant}") == reference, (
                    region, kind, variant)
                if phonenumbers.region_code_for_number(number) == region:
                    assert phones.is_valid_national(region, variant) == reference
                checked += 1
    assert checked > 1000


@given(st.text("0123456789", min_size=13, max_size=19))
def test_payment_card_is_scheme_and_luhn(digits: str) -> None:
    assert checks.is_payment_card(digits) == (
        reference_card_scheme(digits) is not None and reference_luhn(digits))


@pytest.mark.parametrize("year", [1900, 1999, 2000, 2023, 2024])
def test_cn_id_every_month_and_day(year: int) -> None:
    """Each "MMDD" from 0000 to 1399 is a birth date exactly when datetime says it is."""
    for month in range(14):
        for day in range(100):
            first17 = f"110101{year}{month:02d}{day:02d}123"
            try:
                dt.date(year, month, day)
                real = True
            except ValueError:
                real = False
            value = first17 + reference_cn_check(first17)
            assert checks.is_cn_id(value) == real, value
