"""Check-digit validators against published examples and their own inverses."""

from __future__ import annotations

import datetime as dt

import phonenumbers
import pytest
from hypothesis import given
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
