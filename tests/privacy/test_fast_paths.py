"""The fast paths of the scanner and the pseudonymiser give the answers of the plain
definitions they replace.

Context words are searched with a charset-led pattern instead of a plain alternation, the
text is folded only once a full-width letter or digit turns up, and IPv4 is one pattern
instead of `ipaddress`: each is checked here against the straightforward version.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.privacy import CLASSES, Pseudonymiser, Scanner, checks, names
from harbourgate.privacy.context import WINDOW, kind_before, passport_before
from harbourgate.privacy.pseudonymise import _forms, canonical
from harbourgate.privacy.scanner import Profile, Span, resolve
from harbourgate.privacy.text import fold_value, fold_width

SCANNER = Scanner()
WIDE = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})

# ---- context words --------------------------------------------------------------------------

PASSPORT = r"(?i:passport|travel\s+doc)|護照|护照|通行[證证]|回[鄉乡][證证]|旅行[證证]件"
BANK = r"(?i:account|a/c\b|acct|bank)|[帳账][戶户号號]|戶口|户口|銀行|银行|賬[戶户号號]"
PHONE = (r"(?i:phone|tel\b|tel[.:：]|mobile|cell|call|whatsapp|contact|fax)"
         r"|[電电][話话]|手[機机]|[聯联][絡络系]|致[電电]|傳真|传真")
MACAU = r"(?i:macau|macao|\bBIR\b)|澳[門门]"
PLAIN_ANY = re.compile(f"(?P<passport>{PASSPORT})|(?P<bank>{BANK})|(?P<phone>{PHONE})"
                       f"|(?P<macau>{MACAU})")
PLAIN_PASSPORT = re.compile(PASSPORT)


def plain_window(text: str, start: int) -> int:
    lo = max(0, start - WINDOW)
    return max(lo, text.rfind("\n", lo, start) + 1)


def plain_kind_before(text: str, start: int) -> str | None:
    kind = None
    for m in PLAIN_ANY.finditer(text, plain_window(text, start), start):
        kind = m.lastgroup
    return kind


FRAGMENTS = [
    "passport", "PassPort", "travel  doc", "Travel\tDOC", "護照", "护照", "通行證", "回鄉证",
    "旅行证件", "account", "A/C", "a/c1", "acct", "Bank", "帳戶", "账号", "戶口", "户口",
    "銀行", "银行", "賬號", "phone", "tel", "TEL.", "tel：", "telx", "hotel", "Mobile", "cell",
    "recall", "WhatsApp", "contact", "fax", "電話", "电话", "手機", "聯絡", "联系", "致電",
    "傳真", "传真", "macau", "MACAO", "BIR", "bir", "xBIR", "_bir", "birth", "澳門", "澳门",
    " ", "\n", "x", "1", "_", "é", "ſ", "\u212a", "\u0130", "P", "T", "a", "b", "m",
]
windows = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)


@settings(max_examples=400)
@given(windows, st.data())
def test_context_words_as_the_plain_alternation_finds_them(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    assert kind_before(text, start) == plain_kind_before(text, start)
    expected = PLAIN_PASSPORT.search(text, plain_window(text, start), start) is not None
    assert passport_before(text, start) == expected


def test_context_words_cases_and_boundaries() -> None:
    assert kind_before("PASSPORT no. ", 13) == "passport"
    assert kind_before("telex 12345678", 6) is None           # "tel" then a letter
    assert kind_before("tel: 12345678", 5) == "phone"
    assert kind_before("Macau, then bank ", 17) == "bank"      # the last word wins
    assert kind_before("bank\nMacau ", 11) == "macau"          # only the same line
    assert kind_before("BIR 12345678", 4) == "macau"
    assert kind_before("xBIR 12345678", 5) is None
    assert kind_before("account" + " " * WINDOW + "1", WINDOW + 7) is None  # too far back
    assert passport_before("護照號碼 E12345678", 5)
    assert not passport_before("no context E12345678", 11)


def test_only_four_non_ascii_characters_fold_to_ascii_letters_ignoring_case() -> None:
    """context.py lists them (İ ı ſ K) instead of searching Unicode at import."""
    everything = "".join(map(chr, range(0x110000))).encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace")
    extra = sorted({c for c in re.findall("(?i)[a-z]", everything) if not c.isascii()})
    assert extra == ["\u0130", "\u0131", "\u017f", "\u212a"]


# ---- folding full-width forms only when they occur ------------------------------------------

texts = st.lists(
    st.sampled_from(list("0123456789 -+()@.:A") + list("０１２３９＋（）＠．：Ａ　")
                    + ["Tel ", "HKID ", "A123456", "(3)", "91234567", "+852 ", "a@b.com"]),
    max_size=24,
).map("".join)


@settings(max_examples=400)
@given(texts)
def test_a_text_and_its_folded_form_give_the_same_spans(text: str) -> None:
    assert SCANNER.find(text) == SCANNER.find(fold_width(text))


def test_values_before_and_after_the_first_full_width_character() -> None:
    text = "Tel 9123 4567, then 身份證" + "A123456(3)".translate(WIDE) + " and a@b.com"
    assert [(text[s:e], k) for s, e, k in SCANNER.find(text)] == [
        ("9123 4567", "phone"), ("Ａ１２３４５６（３）", "hk_id"), ("a@b.com", "email")]


def test_a_full_width_digit_inside_a_number() -> None:
    text = "Tel 9123 ４567"
    assert SCANNER.find(text) == [(4, 13, "phone")]


def test_full_width_punctuation_alone_needs_no_folding() -> None:
    # "，" and "：" are full-width but not letters or digits: the text is read as it is
    assert SCANNER.find("電話：9123 4567，謝謝") == [(3, 12, "phone")]


def test_digits_of_other_scripts_are_not_read_as_digits() -> None:
    # Arabic-Indic digits are not ASCII digits: they neither extend nor form a number
    assert SCANNER.find("Tel +852 9123 4567\u0663") == [(4, 18, "phone")]
    assert SCANNER.find("Tel \u0669\u0661\u0662\u0663\u0664\u0665\u0666\u0667") == []


# ---- IPv4 as one pattern --------------------------------------------------------------------

octets = st.one_of(st.integers(0, 300).map(str), st.text("0123456789", min_size=1, max_size=4))


@given(st.lists(octets, min_size=3, max_size=5).map(".".join))
def test_ipv4_pattern_is_ipaddress(value: str) -> None:
    try:
        ipaddress.IPv4Address(value)
        expected = True
    except ValueError:
        expected = False
    assert checks.is_ipv4(value) == expected


# ---- overlap resolution ---------------------------------------------------------------------

spans = st.lists(
    st.tuples(st.integers(0, 30), st.integers(1, 8), st.sampled_from(CLASSES)).map(
        lambda t: (t[0], t[0] + t[1], t[2])),
    max_size=12,
)


@given(spans)
def test_resolve_keeps_what_the_greedy_definition_keeps(found: list[tuple[int, int, str]]) -> None:
    """Longest first, then the more specific class, then the earlier start; sorted by start."""
    kept: list[tuple[int, int, str]] = []
    for item in sorted(found, key=lambda f: (f[0] - f[1], CLASSES.index(f[2]), f[0])):
        if all(item[1] <= k[0] or k[1] <= item[0] for k in kept):
            kept.append(item)
    assert resolve(list(found)) == sorted(kept)


# ---- IPv6 as one pattern --------------------------------------------------------------------

hextets = st.sampled_from(["", "0", "1", "ab", "abc", "FFFF", "12345", "g", "1.2.3.4", "256.1.1.1",
                           "01.2.3.4", "1.2.3"])


@settings(max_examples=500)
@given(st.lists(hextets, min_size=1, max_size=10).map(":".join),
       st.sampled_from(["", "%eth0", "%", "%a%b", "%x/y", "/64"]))
def test_ipv6_pattern_is_ipaddress(address: str, suffix: str) -> None:
    value = address + suffix
    try:
        ipaddress.IPv6Address(value)
        parses = True
    except ValueError:
        parses = False
    groups = [g for g in value.replace("::", ":").split(":") if g]
    prose = len(groups) >= 3 or any(len(g) >= 3 for g in groups)
    assert checks.is_ipv6(value) == (parses and prose)


@given(st.text(alphabet="0123456789abcdefABCDEF:.%", max_size=24))
def test_ipv6_pattern_is_ipaddress_on_any_string(value: str) -> None:
    try:
        ipaddress.IPv6Address(value)
        parses = True
    except ValueError:
        parses = False
    if not parses:
        assert not checks.is_ipv6(value)


# ---- names before an honorific --------------------------------------------------------------


def reference_name_before(text: str, end: int) -> int | None:
    for size in (4, 3):
        start = end - size
        if start >= 0 and text[start:start + 2] in names.COMPOUND and all(
                names.is_han(c) for c in text[start:end]):
            return start
    for size in (3, 2, 1):
        start = end - size
        if start < 0:
            continue
        chunk = text[start:end]
        if chunk[0] in names.SINGLE and all(names.is_han(c) for c in chunk):
            if size > 1 and chunk[0] in names.AFTER_NAME:
                continue
            return start
    return None


@given(st.text(alphabet="王陳歐陽司馬大文小女在的 x1，", max_size=8), st.data())
def test_name_before_as_defined(text: str, data: st.DataObject) -> None:
    end = data.draw(st.integers(0, len(text)))
    assert names.name_before(text, end) == reference_name_before(text, end)


def test_email_local_part_is_at_most_64_characters() -> None:
    text = "x" * 70 + "@example.com"
    assert SCANNER.find(text) == [(6, 82, "email")]
    assert SCANNER.find("mail .john.doe@example.com") == [(6, 26, "email")]


# ---- pseudonymisation: canonical and compact forms ------------------------------------------

_SEP = re.compile(r"[\s\-().（）/]")


def plain_canonical(kind: str, value: str) -> str:
    folded = fold_value(value)
    if kind == "person_name":
        return " ".join(folded.split()).casefold()
    if kind == "email":
        return folded.casefold()
    return _SEP.sub("", folded).upper()


def plain_compact(kind: str, value: str) -> str:
    return value if kind in ("person_name", "email") else _SEP.sub("", value)


values = st.text(st.sampled_from("0123456789 -()（）/AaXx@.+_é\u3000\uff11\uff21\uff41ßİ陳"),
                 max_size=20)


@settings(max_examples=500)
@given(st.sampled_from(CLASSES), values)
def test_forms_are_the_plain_canonical_and_compact_forms(kind: str, value: str) -> None:
    assert _forms(kind, value) == (plain_canonical(kind, value), plain_compact(kind, value))
    assert canonical(kind, value) == plain_canonical(kind, value)


# ---- profile counts ------------------------------------------------------------------------


@given(st.lists(st.sampled_from(CLASSES), max_size=12))
def test_profile_counts_count_each_class_in_class_order(kinds: list[str]) -> None:
    profile = Profile(tuple(Span(0, i, i + 1, kind) for i, kind in enumerate(kinds)))
    expected = Counter(kinds)
    assert profile.counts == {name: expected[name] for name in CLASSES if expected[name]}
    assert list(profile.counts) == [name for name in CLASSES if name in expected]


# ---- the sweep over all the texts of a request at once ---------------------------------------

SEED = "Tel: 9123 4567, HKID A123456(3), chan@example.com, Mr. Chan Tai Man"
pieces = st.lists(st.sampled_from(["91234567", "9123 4567", "A123456(3)", "chan@example.com",
                                   "Chan Tai Man", " call ", "x", "\0", "[PHONE_1]", "9",
                                   "1234567", "陳"]), max_size=8).map("".join)


@settings(max_examples=300)
@given(st.lists(pieces, max_size=5))
def test_one_sweep_over_all_texts_is_a_sweep_of_each(texts: list[str]) -> None:
    together, apart = Pseudonymiser().session(), Pseudonymiser().session()
    for session in (together, apart):
        session.pseudonymise(SEED)
    assert together._sweep(list(texts)) == [apart._sweep([t])[0] for t in texts]
    assert together.counts == apart.counts
