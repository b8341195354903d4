"""The recognizers: one compiled pattern finds candidate shapes, validators decide.

Speed comes from how CPython's `re` searches. A pattern whose first element is a character
class gets a "charset prefix": the engine skips in C over every character outside it and
only tries a match where a candidate can begin (a digit, an uppercase letter, `@`, `+`, `(`,
`:` or one of a few Chinese label characters). Each shape below is written as "first
character, then the rest", and the master pattern is ``[firsts](?:(?<=[f1])(?P<shape1>rest1)
|(?<=[f2])(?P<shape2>rest2)|...)``, so that whole scan is one `finditer` in C; Python code
runs only on the few shapes it yields (see docs/privacy.md for the measured effect).

A shape is not a class: a run of digits may be a card, a mainland ID, a phone number or an
account number. The handlers below classify each candidate by check digits, validity and,
where the format alone is ambiguous, context words just before it (passport, account, ...).
They try the cheapest test that can decide first and look for context words only when the
answer depends on them.

Shapes match ASCII digits only (``[0-9]``: ``\\d`` would take any script's digits), so
no match can contain a full-width character. The master pattern also stops at the first
full-width letter or digit (`wide`): only then is the text folded (`text.fold_width`) and
scanned again, so text without them, nearly all of it, is read once instead of being
searched for them first.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from harbourgate.privacy import checks, phones
from harbourgate.privacy.context import kind_before, passport_before
from harbourgate.privacy.names import is_han, name_before, trim_chinese_name
from harbourgate.privacy.text import WIDE_ALNUM, fold_width

# (start, end, class): a found value, offsets into the scanned text.
Found = tuple[int, int, str]

_NAME_EN = (
    r"(?:[A-Z][a-z]+(?:[ \-][A-Z][a-z]+){0,2}"
    r"|[A-Z]{2,}(?: [A-Z][a-z]+(?:-[a-z]+)?){1,2})(?![A-Za-z])"
)
_NAME_ZH = r"[\u4e00-\u9fff]{2,4}"

# What the character before a shape's first may (not) be: a look-behind, tested after the
# first character. Shapes of one group with the same look-behind share a single test.
_NOT_AFTER_ALNUM = r"(?<![A-Za-z0-9].)"
_NOT_AFTER_LETTER = r"(?<![A-Za-z].)"
_AFTER_CAPITAL = r"(?<=[A-Z].)"

# (shape name, first characters, look-behind before the first, rest)
_SHAPES: tuple[tuple[str, str, str, str], ...] = (
    # Digit-led shapes first: digits are by far the most frequent first characters, and the
    # groups' look-behinds are tried in this order. Groups have disjoint first characters,
    # so the order changes no match; within the digit group ip4 and num (not after a letter
    # or digit) exclude id and iban (after capitals), and id stays before iban since both
    # match "AB123456789".
    ("ip4", "0-9", _NOT_AFTER_ALNUM,
     r"(?<![.].)[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![0-9A-Za-z]|\.[0-9])"),
    ("num", "0-9", _NOT_AFTER_ALNUM,
     r"(?:[ \-]?[0-9]){5,22}(?:[Xx]|\s?[(（][0-9][)）])?(?![0-9A-Za-z]|[.:][0-9A-Fa-f])"),
    # Letter-led identifiers are anchored at their first digit (uppercase letters are far
    # too common in English to start a match at): the look-behinds require one or two
    # capitals before it, themselves not preceded by a letter or digit.
    ("id", "0-9", _AFTER_CAPITAL,
     r"(?:(?<![A-Za-z0-9]..)|(?<=[A-Z]..)(?<![A-Za-z0-9]...))"
     r"[0-9]{5,8}(?:\s?[(（][0-9A][)）]|A)?(?![A-Za-z0-9])"),
    ("iban", "0-9", _AFTER_CAPITAL,
     r"(?<=[A-Z][A-Z].)(?<![A-Za-z0-9]...)[0-9](?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
     r"(?![A-Za-z0-9])"),
    ("title", "MDP", _NOT_AFTER_LETTER,
     r"(?:(?<=M)(?:rs|r|s|iss|x)|(?<=D)r|(?<=P)rof)\.?[ ]{1,2}(?P<v_title>" + _NAME_EN + ")"),
    ("label_en", "NF", _NOT_AFTER_LETTER,
     r"(?:(?<=N)(?:ame|AME)[ ]?[:：]|(?<=F)ull [Nn]ame[ ]?[:：])[ ]*"
     r"(?P<v_label_en>" + _NAME_EN + "|" + _NAME_ZH + ")"),
    ("label_zh", "姓联聯收持申户戶", "",
     r"(?:(?<=姓)名|(?<=联)系人|(?<=聯)絡人|(?<=收)件人|(?<=持)卡人|(?<=申)[请請]人"
     r"|(?<=[户戶])名)[ ]*(?P<colon>[:：]?)[ ]*(?P<v_label_zh>" + _NAME_ZH + "|" + _NAME_EN + ")"),
    ("honorific", "先女小太医醫", "", r"(?<=先)生|(?<=女)士|(?<=小)姐|(?<=太)太|(?<=[医醫])生"),
    ("email", "@", "",
     r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+(?![A-Za-z0-9\-])"),
    ("ip6", ":", "",
     r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,6}(?:\.[0-9]{1,3}){0,3}(?![0-9A-Za-z:])"),
    ("plus", "+", r"(?<![A-Za-z0-9+].)",
     r"[ ]?[0-9]{1,3}(?:[ \-.]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,5}(?![0-9])"),
    ("paren", "(（", "",
     r"\+?[0-9]{1,4}[)）][ \-]?[0-9]{2,5}(?:[ \-]?[0-9]{2,5}){1,3}(?![0-9])"),
    # A full-width letter or digit: the text must be folded first (see the module doc).
    ("wide", WIDE_ALNUM, "", ""),
)

# Groups after which the others are skipped by one guard: a digit or a capital that
# starts no shape (most of them) then costs one failed look-behind, not one per group.
_GUARD_AFTER = frozenset({"0-9", "NF"})


def _build() -> re.Pattern[str]:
    """``[firsts](?:(?<=[0-9])(?:shapes led by a digit)|(?<![0-9])(?:(?<=[MDP])(?:...)|...))``.

    Shapes that share their first characters share one look-behind, so a character that
    starts no shape costs one failed test per group, not per shape; and after the groups
    of the most frequent first characters (digits, then capitals) a guard skips the rest.
    Groups have disjoint first characters, so none of this changes what matches.
    """
    # first characters -> runs of consecutive shapes with one look-behind, in table order
    by_first: dict[str, list[tuple[str, list[str]]]] = {}
    for name, first, before, rest in _SHAPES:
        runs = by_first.setdefault(first, [])
        if not runs or runs[-1][0] != before:
            runs.append((before, []))
        runs[-1][1].append(f"(?P<{name}>{rest})")
    groups = {
        first: [f"{before}(?:{'|'.join(shapes)})" for before, shapes in runs]
        for first, runs in by_first.items()
    }
    firsts = "".join(groups)
    tiers: list[tuple[str, list[str]]] = [("", [])]
    for first, alts in groups.items():
        chars, branches = tiers[-1]
        branches.append(f"(?<=[{first}])(?:{'|'.join(alts)})")
        tiers[-1] = (chars + first, branches)
        if first in _GUARD_AFTER:
            tiers.append(("", []))
    body = "|".join(tiers[-1][1])
    for chars, branches in reversed(tiers[:-1]):
        body = "|".join(branches) + f"|(?<![{chars}])(?:{body})"
    return re.compile(f"[{firsts}](?:{body})", re.DOTALL)


MASTER = _build()

# ---- helpers --------------------------------------------------------------------------------

_DATE_LIKE = re.compile(
    r"(?:19|20)[0-9][0-9][ \-](?:0?[1-9]|1[0-2])[ \-](?:0?[1-9]|[12][0-9]|3[01])"
)
_LOCAL_PART_REVERSED = re.compile(r"[A-Za-z0-9._%+\-]{1,64}")
_HEX = frozenset("0123456789abcdefABCDEF")
_HEX_TAIL = re.compile(r"[0-9A-Fa-f]{1,4}\Z")
_SEPARATORS = re.compile(r"[^0-9A-Za-z]")
_GROUP = re.compile(r"[0-9]+")
_CN_LANDLINE = re.compile(r"0[0-9]{2,3}-[0-9]{7,8}")
# What a `num` or `plus` shape may hold besides digits and X: removing these leaves the
# digits (the same as `_SEPARATORS.sub("", value)` on those shapes, without the regex call).
_NUMBER_SEPARATORS = str.maketrans(
    dict.fromkeys(" -.()（）+" + "".join(c for c in map(chr, range(0x3001)) if c.isspace()))
)
# Classes a digit sub-run may be taken as: only those proven by a check digit, so that a
# long number ("order 2221 8054 9536 3092") is not mined for a phone-shaped piece.
_SUBRUN_CLASSES = frozenset({"cn_id", "payment_card"})
_hk_valid = phones.national_check("HK")
_cn_valid = phones.national_check("CN")


def _alnum_before(text: str, i: int) -> bool:
    return i > 0 and text[i - 1].isascii() and text[i - 1].isalnum()


# ---- handlers: (text, match, out) -> None ----------------------------------------------------


def _id(text: str, m: re.Match[str], out: list[Found]) -> None:
    first, end = m.span()
    # One capital before the digits, or two with no letter or digit before them (the
    # pattern's look-behinds have checked that one of the two holds).
    two = first >= 2 and "A" <= text[first - 2] <= "Z" and not _alnum_before(text, first - 2)
    start = first - 2 if two else first - 1
    prefix = text[start:first]  # one or two capitals, and the digits ASCII: as is_hkid needs
    value = m.group()
    paren: str | None = None
    check: str | None = None
    if value[-1] in ")）":  # 123456(3), 123456 (3)
        check = paren = value[-2]
        digits = value[:-3].rstrip()
    elif value[-1] == "A":  # 123456A
        check = "A"
        digits = value[:-1]
    else:
        digits = value
    if check is not None:  # HKID shape: 6 digits + check
        if len(digits) == 6 and checks.hkid_check_digit(prefix, digits) == check:
            out.append((start, end, "hk_id"))
        elif paren is not None and passport_before(text, start):
            out.append((start, first + len(digits), "passport"))
        return
    if passport_before(text, start):
        out.append((start, end, "passport"))
    elif len(digits) == 7 and checks.hkid_check_digit(prefix, digits[:6]) == digits[6]:
        out.append((start, end, "hk_id"))


def _iban(text: str, m: re.Match[str], out: list[Found]) -> None:
    start, end = m.span()
    start -= 2
    value = text[start:end]
    compact = value.replace(" ", "")
    expected = checks.IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) < expected:
        return
    if len(compact) > expected:  # a following code word was swallowed: cut at the length
        count = 0
        for i, ch in enumerate(value):
            count += ch != " "
            if count == expected:
                if i + 1 < len(value) and value[i + 1] != " ":
                    return
                end = start + i + 1
                compact = compact[:expected]
                break
    if checks.is_iban(compact):
        out.append((start, end, "iban"))


def _title(text: str, m: re.Match[str], out: list[Found]) -> None:
    out.append((m.start("v_title"), m.end("v_title"), "person_name"))


def _label_en(text: str, m: re.Match[str], out: list[Found]) -> None:
    start, end = m.span("v_label_en")
    value = m.group("v_label_en")
    if is_han(value[0]):
        name = trim_chinese_name(value)
        if name is None:
            return
        end = start + len(name)
    out.append((start, end, "person_name"))


def _label_zh(text: str, m: re.Match[str], out: list[Found]) -> None:
    start, end = m.span("v_label_zh")
    value = m.group("v_label_zh")
    if is_han(value[0]):
        name = trim_chinese_name(value)
        if name is None:
            # After an explicit "姓名：" the value is a name even with a rare surname.
            if not m.group("colon") or value[:2] in ("地址", "电话", "電話"):
                return
            name = value[:3] if len(value) >= 3 else value
        end = start + len(name)
    out.append((start, end, "person_name"))


def _honorific(text: str, m: re.Match[str], out: list[Found]) -> None:
    start = name_before(text, m.start())
    if start is not None:
        out.append((start, m.start(), "person_name"))


def _email(text: str, m: re.Match[str], out: list[Found]) -> None:
    at = m.start()
    # The local part is the run of its characters just before "@" (at most 64): matched
    # on the reversed window, one pass, instead of trying every start in the window.
    local = _LOCAL_PART_REVERSED.match(text[max(0, at - 64):at][::-1])
    if local is None:
        return
    start = at - local.end()
    while start < at and text[start] in "._%+-":
        start += 1
    domain = text[at + 1:m.end()]
    if checks.is_email(text[start:at], domain):
        out.append((start, m.end(), "email"))


def _ip6(text: str, m: re.Match[str], out: list[Found]) -> None:
    start = m.start()
    head = _HEX_TAIL.search(text, max(0, start - 4), start)
    if head is not None:
        start = head.start()
    if _alnum_before(text, start) or (start > 0 and text[start - 1] == "."):
        return
    if start > 1 and text[start - 1] == ":" and text[start - 2] in _HEX:  # inside an address
        return
    if checks.is_ipv6(text[start:m.end()]):
        out.append((start, m.end(), "ip_address"))


def _plus(text: str, m: re.Match[str], out: list[Found]) -> None:
    start, end = m.span()
    value = m.group()
    if phones.is_valid_international(_digits_of(value[1:])):
        out.append((start, end, "phone"))
        return
    # Not valid whole: it may have joined a following number ("+852 9123 4567 2024"); try
    # without its trailing digit groups, longest first.
    for cut in _shorter_ends(value):
        if phones.is_valid_international(_digits_of(value[1:cut])):
            out.append((start, start + cut, "phone"))
            return


def _paren(text: str, m: re.Match[str], out: list[Found]) -> None:
    start, end = m.span()
    value = text[start:end]
    digits = _SEPARATORS.sub("", value)
    close = max(value.find(")"), value.find("）"))
    code = _SEPARATORS.sub("", value[:close])
    international = value[1] == "+" or code in ("852", "853", "86")
    if (
        (international and phones.is_valid_international(digits))
        or _local_phone(digits, grouped=True)
        or (digits.startswith("0") and _cn_valid(digits[1:]))
    ):
        out.append((start, end, "phone"))


def _ip4(text: str, m: re.Match[str], out: list[Found]) -> None:
    if checks.is_ipv4(m.group()):
        out.append((m.start(), m.end(), "ip_address"))


def _num(text: str, m: re.Match[str], out: list[Found]) -> None:
    start = m.start()
    value = m.group()
    whole = value.isdigit()
    digits = value if whole else _digits_of(value)
    cls = _classify_digits(text, start, value, digits)
    if cls is not None:
        out.append((start, m.end(), cls))
        return
    if whole or len(digits) < 9:  # one block; or no part of 8 digits beside another group
        return
    # The run may join several values ("card 4111 1111 1111 1111 2024", "call 13812345678
    # 2 times"): try its parts, longest first, leftmost first. A part of several groups is
    # taken only when a check digit proves it (a card, an ID), so that a long number
    # ("order 2221 8054 9536 3092") is not mined for a phone-shaped piece; a part that is
    # one unbroken block of 8 or more digits stands on its own and may be anything.
    groups = [(g.start(), g.end()) for g in _GROUP.finditer(value)]
    count = len(groups)
    if count < 2:
        return
    sizes = [b - a for a, b in groups]
    # The most digits a part of several groups can hold leaves out the first or last group.
    if max(sizes) < 8 and sum(sizes) - min(sizes[0], sizes[-1]) < 13:
        return
    taken: list[tuple[int, int]] = []
    for size in range(count - 1, 0, -1):
        for i in range(count - size + 1):
            lo, hi = groups[i][0], groups[i + size - 1][1]
            digits = sum(sizes[i:i + size])
            if digits < 13 and not (size == 1 and digits >= 8):
                continue
            if any(lo < t_hi and t_lo < hi for t_lo, t_hi in taken):
                continue
            part = value[lo:hi]
            cls = _classify_digits(text, start + lo, part, _digits_of(part))
            if cls in _SUBRUN_CLASSES or (size == 1 and cls is not None):
                taken.append((lo, hi))
                out.append((start + lo, start + hi, cls))


def _classify_digits(text: str, start: int, value: str, digits: str) -> str | None:
    """Decide what a run of digits (with spaces/hyphens, maybe `X` or `(8)`) is; `digits`
    is `value` without its separators.

    Checks run cheapest and most certain first: check-digit classes, then phone numbers
    by their format, then classes that need a context word before the run, looked for only
    when the number could be of such a class.
    """
    n = len(digits)
    if n < 8:
        return None
    if n == 18 and checks.is_cn_id(digits):
        return "cn_id"
    if value[-1] in ")）":
        return "macau_id" if n == 8 and digits[0] in "157" else None
    if not digits.isdigit():
        return None
    if n >= 13 and checks.is_payment_card(digits):
        return "payment_card"
    head = digits[0]
    if head == "1":
        if n == 11 and digits[1] in "3456789" and _cn_valid(digits):
            return "phone"
    elif head == "0":
        if digits[1] == "0" and phones.is_valid_international(digits[2:]):
            return "phone"
        if _CN_LANDLINE.fullmatch(value) and _cn_valid(digits[1:]):
            return "phone"
    elif head == "8":
        if n == 11 and digits.startswith("852") and _hk_valid(digits[3:]):
            return "phone"
        if n == 13 and digits[1] == "6" and _cn_valid(digits[2:]):
            return "phone"
    if n == 8:
        # A Hong Kong number when written 4-4 or after a phone word; a Macau ID (1, 5 or 7
        # first) after a Macau word. Anything else needs no context search.
        phone_ok = _hk_valid(digits)
        if phone_ok and len(value) == 9 and value[4] in " -" and value[:4].isdigit():
            return "phone"
        if not phone_ok and head not in "157":
            return None
        context = kind_before(text, start)
        if context == "phone" and phone_ok:
            return "phone"
        if context == "macau" and head in "157":
            return "macau_id"
        return None
    if n > 20:
        return None
    context = kind_before(text, start)
    if context == "bank" and not _DATE_LIKE.fullmatch(value):
        return "bank_account"
    if context == "passport" and n == 9:
        return "passport"
    return None


def _digits_of(value: str) -> str:
    """A `num` or `plus` value without its separators (the digits, and an `X`)."""
    digits = value.replace(" ", "").replace("-", "")
    if digits.isdigit():  # the usual writings: two `replace` calls, no table lookups
        return digits
    if digits[-1] == ")":  # a Macau ID, 1234567(8)
        digits = digits.replace("(", "").replace(")", "")
        if digits.isdigit():
            return digits
    return value.translate(_NUMBER_SEPARATORS)


def _local_phone(digits: str, *, grouped: bool) -> bool:
    """A mainland mobile (11 digits, 1[3-9]...) or a Hong Kong number written 4-4."""
    n = len(digits)
    if n == 11 and digits[0] == "1" and digits[1] in "3456789":
        return _cn_valid(digits)
    if n == 8 and grouped:
        return _hk_valid(digits)
    return False


def _shorter_ends(value: str) -> list[int]:
    """Ends within a `+...` match that drop one, two, ... trailing digit groups, longest
    first; separators before a dropped group go too, and at least `+` and 4 more remain."""
    ends = []
    for g in reversed(list(_GROUP.finditer(value))[1:]):
        cut = g.start()
        while cut > 0 and value[cut - 1] in " -.(":
            cut -= 1
        if cut >= 5:
            ends.append(cut)
    return ends


def _plus_recall(text: str, m: re.Match[str], out: list[Found]) -> None:
    """`_plus`, then: a calling code and a possible length is enough (recall mode)."""
    before = len(out)
    _plus(text, m, out)
    if len(out) > before:
        return
    start, value = m.start(), m.group()
    for cut in (len(value), *_shorter_ends(value)):
        if phones.is_plausible_international(_digits_of(value[1:cut])):
            out.append((start, start + cut, "phone"))
            return


def _paren_recall(text: str, m: re.Match[str], out: list[Found]) -> None:
    """`_paren`, then "(+852) 4123 4567" with a plausible calling code (recall mode)."""
    before = len(out)
    _paren(text, m, out)
    if len(out) > before:
        return
    start, end = m.span()
    value = text[start:end]
    close = max(value.find(")"), value.find("）"))
    code = _SEPARATORS.sub("", value[:close])
    if (value[1] == "+" or code in ("852", "853", "86")) and phones.is_plausible_international(
            _SEPARATORS.sub("", value)):
        out.append((start, end, "phone"))


def _num_recall(text: str, m: re.Match[str], out: list[Found]) -> None:
    """`_num`, then "00852 4123 4567" with a plausible calling code (recall mode)."""
    before = len(out)
    _num(text, m, out)
    if len(out) > before:
        return
    value = m.group()
    digits = _digits_of(value)
    if digits.startswith("00") and phones.is_plausible_international(digits[2:]):
        out.append((m.start(), m.end(), "phone"))


Handler = Callable[[str, re.Match[str], list[Found]], None]

HANDLERS: dict[str, Handler] = {
    "id": _id,
    "iban": _iban,
    "title": _title,
    "label_en": _label_en,
    "label_zh": _label_zh,
    "honorific": _honorific,
    "email": _email,
    "ip6": _ip6,
    "plus": _plus,
    "paren": _paren,
    "ip4": _ip4,
    "num": _num,
}
# Recall mode (de-identification): numbers written with a calling code are phones even in
# ranges the metadata calls unallocated. The same pattern and scan, other handlers.
RECALL_HANDLERS: dict[str, Handler] = {
    **HANDLERS, "plus": _plus_recall, "paren": _paren_recall, "num": _num_recall}


def _scan(text: str, *, folded: bool, handlers: dict[str, Handler]) -> list[Found] | None:
    """Every validated value in `text`; None when it meets a full-width letter or digit
    and `text` has not been `folded` yet."""
    out: list[Found] = []
    pos = 0
    while True:
        for m in MASTER.finditer(text, pos):
            kind = m.lastgroup
            if kind == "wide":
                if folded:
                    continue
                return None
            before = len(out)
            handlers[kind](text, m, out)  # type: ignore[index]
            taken = len(out) - before
            if taken:
                # A shape may have joined a value and the start of the next one ("6212…
                # 4111 1111 1111 1111", "+852 9123 4567 192.168.1.1") and kept only the
                # first: look again right after the last value taken (always forward).
                last = out[-1][1] if taken == 1 else max(found[1] for found in out[before:])
                if last < m.end():
                    pos = max(m.start() + 1, last)
                    break
        else:
            return out


def find_all(text: str, *, recall: bool = False) -> list[Found]:
    """Every validated value in `text`, possibly overlapping, offsets into `text`.

    Full-width forms are read as ASCII (`text.fold_width`, same length, so the offsets hold).
    `recall`: the de-identification mode (see `RECALL_HANDLERS`).
    """
    handlers = RECALL_HANDLERS if recall else HANDLERS
    found = _scan(text, folded=False, handlers=handlers)
    if found is None:
        found = _scan(fold_width(text), folded=True, handlers=handlers)
    return found or []
