"""The scanner: each recognizer on valid and invalid values, boundaries, widths, overlaps."""

from __future__ import annotations

import pytest

from harbourgate.privacy import CLASSES, Profile, Scanner, Span, UnknownClassError, checks
from harbourgate.privacy.scanner import resolve

SCANNER = Scanner()
WIDE = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


def found(text: str, scanner: Scanner = SCANNER) -> list[tuple[str, str]]:
    return [(text[s.start:s.end], s.kind) for s in scanner.scan(text).spans]


CN_ID = "11010519491231002X"
first17 = "44030519900307123"
CN_ID_2 = first17 + checks.cn_id_check_char(first17)


@pytest.mark.parametrize(("text", "expected"), [
    # Hong Kong identity card: with and without brackets, full-width brackets, two letters
    ("HKID A123456(3).", [("A123456(3)", "hk_id")]),
    ("身份證號碼：A123456(3)。", [("A123456(3)", "hk_id")]),
    ("身份證A123456（3），", [("A123456（3）", "hk_id")]),
    ("card A1234563 on file", [("A1234563", "hk_id")]),
    ("A123456(3)", [("A123456(3)", "hk_id")]),
    # mainland resident ID, also with a lower-case x and next to Chinese text
    (f"身份证号码{CN_ID}，", [(CN_ID, "cn_id")]),
    (f"id {CN_ID.lower()}", [(CN_ID.lower(), "cn_id")]),
    (f"{CN_ID_2}", [(CN_ID_2, "cn_id")]),
    # Macau identity card
    ("澳門身份證：1234567(8)。", [("1234567(8)", "macau_id")]),
    ("Macau ID 51234567 on file", [("51234567", "macau_id")]),
    # passports need a context word
    ("Passport No.: E12345678", [("E12345678", "passport")]),
    ("护照号码：EA1234567，", [("EA1234567", "passport")]),
    ("US passport 123456789", [("123456789", "passport")]),
    ("回鄉證 H12345678。", [("H12345678", "passport")]),
    # phones
    ("Call +852 9123 4567 now", [("+852 9123 4567", "phone")]),
    ("电话13812345678，", [("13812345678", "phone")]),
    ("+86 138 1234 5678", [("+86 138 1234 5678", "phone")]),
    ("(852) 9123-4567", [("(852) 9123-4567", "phone")]),
    ("office 2123 4567", [("2123 4567", "phone")]),
    ("Tel: 91234567", [("91234567", "phone")]),
    ("London +44 20 7946 0958.", [("+44 20 7946 0958", "phone")]),
    ("00852 9123 4567", [("00852 9123 4567", "phone")]),
    ("深圳 0755-82345678", [("0755-82345678", "phone")]),
    # email
    ("mail: john.doe@example.com，", [("john.doe@example.com", "email")]),
    ("邮箱zhang.wei@qq.com。", [("zhang.wei@qq.com", "email")]),
    # cards
    ("card 4111 1111 1111 1111, exp 09/28", [("4111 1111 1111 1111", "payment_card")]),
    ("银联卡6212345678901265。", [("6212345678901265", "payment_card")]),
    ("amex 378282246310005", [("378282246310005", "payment_card")]),
    # IBAN, with and without spaces
    ("IBAN GB82 WEST 1234 5698 7654 32 thanks", [("GB82 WEST 1234 5698 7654 32", "iban")]),
    ("DE89370400440532013000", [("DE89370400440532013000", "iban")]),
    # IP addresses
    ("from 192.168.1.1 at", [("192.168.1.1", "ip_address")]),
    ("IP：2001:db8::1，", [("2001:db8::1", "ip_address")]),
    ("fe80::1ff:fe23:4567:890a", [("fe80::1ff:fe23:4567:890a", "ip_address")]),
    # bank accounts need a context word
    ("Account no. 012-345678-001", [("012-345678-001", "bank_account")]),
    ("戶口號碼：012345678901。", [("012345678901", "bank_account")]),
    # names, where context makes them clear
    ("Dear Mr. John Smith,", [("John Smith", "person_name")]),
    ("Dr. Wong will see you", [("Wong", "person_name")]),
    ("Name: CHAN Tai Man", [("CHAN Tai Man", "person_name")]),
    ("姓名：陳大文，", [("陳大文", "person_name")]),
    ("姓名：王伟电话", [("王伟", "person_name")]),
    ("请联系陈大文先生。", [("陈大文", "person_name")]),
    ("李女士您好", [("李", "person_name")]),
    ("聯絡人：歐陽娜娜，", [("歐陽娜娜", "person_name")]),
])
def test_recognizes(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    "HKID A123456(4).",                      # wrong check digit
    "A123456(3)7",                           # glued to more digits
    "xA123456(3)",                           # glued to a letter
    f"{CN_ID[:-1]}1",                         # wrong check character
    "110105194902310021",                     # 31 February
    "4111 1111 1111 1112",                    # Luhn fails
    "GB83 WEST 1234 5698 7654 32",            # mod-97 fails
    "version 999.1.1.1",                      # not an IPv4 address
    "at 10:30:00 today",                      # a time, not IPv6
    "std::vector<int> a; A::B",               # code
    "+852 1234 5678",                         # HK numbers never start with 1
    "order 48213377 shipped",                 # a bare 8-digit number without context
    "E12345678",                              # passport shape without context
    "012-345678-001",                         # account shape without context
    "on 2024-03-15 and 2023 12 31",           # dates
    "the 各位先生 and Mr. and Mrs. smith",      # honorifics without a name
    "共有 1,234,567 人参加，增长 12.5%",
    "",
])
def test_does_not_find(text: str) -> None:
    assert found(text) == []


def test_full_width_digits_and_letters() -> None:
    text = "電話：" + "+852 9123 4567".translate(WIDE) + "，身份證" + "A123456(3)".translate(WIDE)
    assert [k for _, k in found(text)] == ["phone", "hk_id"]
    spans = SCANNER.scan(text).spans
    assert text[spans[0].start:spans[0].end] == "+852 9123 4567".translate(WIDE)


def test_values_at_the_very_start_and_end() -> None:
    text = "91234567@qq.com and then A123456(3)"
    assert found(text) == [("91234567@qq.com", "email"), ("A123456(3)", "hk_id")]
    assert found(CN_ID) == [(CN_ID, "cn_id")]


def test_overlap_longer_span_wins_then_more_specific_class() -> None:
    assert resolve([(0, 10, "phone"), (5, 20, "email")]) == [(5, 20, "email")]
    assert resolve([(0, 8, "bank_account"), (0, 8, "hk_id")]) == [(0, 8, "hk_id")]
    assert resolve([(0, 4, "phone"), (4, 8, "email")]) == [(0, 4, "phone"), (4, 8, "email")]
    # an email whose local part is a phone-shaped number is one email
    assert found("電話91234567@qq.com") == [("91234567@qq.com", "email")]


def test_profile_counts_classes_and_dict() -> None:
    profile = SCANNER.scan("Tel +852 9123 4567, +852 6123 4567; HKID A123456(3)")
    assert profile.counts == {"hk_id": 1, "phone": 2}
    assert list(profile.counts) == ["hk_id", "phone"]  # CLASSES order
    assert profile.classes == {"hk_id", "phone"}
    assert profile.to_dict() == {"classes": ["hk_id", "phone"],
                                 "counts": {"hk_id": 1, "phone": 2}}
    assert bool(profile) and len(profile) == 3
    assert not SCANNER.scan("nothing here")


def test_scan_many_tags_parts() -> None:
    profile = SCANNER.scan_many(["no data", "", "Tel +852 9123 4567", "A123456(3)"])
    assert [(s.part, s.kind) for s in profile.spans] == [(2, "phone"), (3, "hk_id")]
    assert isinstance(profile.spans[0], Span)
    assert profile.spans[0].to_dict() == {"part": 2, "start": 4, "end": 18, "class": "phone"}


def test_scanner_for_some_classes() -> None:
    scanner = Scanner(classes=["email"])
    assert found("a@b.com +852 9123 4567", scanner) == [("a@b.com", "email")]
    assert repr(scanner) == "Scanner(classes=email)"
    assert repr(Scanner()) == "Scanner(classes=all)"


def test_unknown_class_is_named() -> None:
    with pytest.raises(UnknownClassError, match="unknown personal-data class 'ssn'; known "
                                                "classes are hk_id, cn_id"):
        Scanner(classes=["phone", "ssn"])


def test_class_vocabulary_is_fixed() -> None:
    assert CLASSES == ("hk_id", "cn_id", "macau_id", "passport", "phone", "email",
                       "payment_card", "iban", "ip_address", "bank_account", "person_name")


def test_a_four_megabyte_prompt() -> None:
    block = ("Lorem ipsum dolor sit amet, 今天天气很好。" * 40) + " Tel +852 9123 4567.\n"
    text = block * (4_000_000 // len(block.encode()) + 1)
    profile = SCANNER.scan(text)
    assert profile.counts == {"phone": text.count("+852 9123 4567")}
    assert isinstance(profile, Profile)


def test_binary_garbage_does_not_crash() -> None:
    text = bytes(range(256)).decode("latin-1") * 50 + "\udcff\x00"
    SCANNER.scan(text)
