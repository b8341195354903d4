"""Pseudonymise, restore, and restore a stream split anywhere: no raw value ever leaks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.privacy import (
    CLASSES,
    TOKEN_PATTERN,
    Pseudonymiser,
    PseudonymSession,
    Scanner,
    format_counts,
    parse_classes,
    token_for,
)
from harbourgate.privacy.pseudonymise import _forms_pattern

VALUES = {
    "hk_id": ["A123456(3)", "C668668(9)"],
    "cn_id": ["11010519491231002X"],
    "phone": ["+852 9123 4567", "13812345678", "+86 139 1234 5678"],
    "email": ["john.doe@example.com", "wei.zhang@qq.com"],
    "payment_card": ["4111 1111 1111 1111", "6212345678901265"],
    "iban": ["GB82 WEST 1234 5698 7654 32"],
    "ip_address": ["192.168.1.1", "2001:db8::1"],
}
ALL_VALUES = [v for vs in VALUES.values() for v in vs]
SEPARATORS = [" ", "，", "。", "：", "\n", " and ", "（", "）", ", "]


def session(classes: list[str] | tuple[str, ...] = CLASSES) -> PseudonymSession:
    return Pseudonymiser(classes).session()


def test_replaces_values_and_counts() -> None:
    s = session()
    out = s.pseudonymise("My phone is +852 9123 4567, HKID A123456(3), again +852 9123 4567.")
    assert out == "My phone is [PHONE_1], HKID [HK_ID_1], again [PHONE_1]."
    assert s.counts == {"hk_id": 1, "phone": 2}
    assert s.header_value() == "hk_id=1,phone=2"
    assert s.tokens_issued == 2


def test_same_value_same_token_across_messages_and_writings() -> None:
    s = session()
    out = s.pseudonymise_many(["Tel 9123 4567 (mobile)", "call 91234567 or 9123-4567 again"])
    assert out == ["Tel [PHONE_1] (mobile)", "call [PHONE_1] or [PHONE_1] again"]
    assert s.restore("ring [PHONE_1]") == "ring 9123 4567"  # the value as first written


def test_a_value_recurring_without_context_is_still_replaced() -> None:
    s = session()
    out = s.pseudonymise_many(["Mr. John Smith called", "John Smith said 王伟 was late",
                               "姓名：王伟，"])
    assert out == ["Mr. [PERSON_NAME_1] called", "[PERSON_NAME_1] said [PERSON_NAME_2] was late",
                   "姓名：[PERSON_NAME_2]，"]


def test_only_the_decided_classes_are_replaced() -> None:
    s = session(["hk_id"])
    assert s.pseudonymise("A123456(3) +852 9123 4567") == "[HK_ID_1] +852 9123 4567"
    assert s.counts == {"hk_id": 1}
    assert session([]).pseudonymise("A123456(3)") == "A123456(3)"


def test_profile_from_the_request_scan_is_reused() -> None:
    scanner = Scanner()
    texts = ["HKID A123456(3)", "nothing", "a@b.com"]
    profile = scanner.scan_many(texts)
    s = Pseudonymiser(["hk_id", "email"], scanner=scanner).session()
    assert s.pseudonymise_many(texts, profile) == ["HKID [HK_ID_1]", "nothing", "[EMAIL_1]"]


def test_user_text_that_looks_like_a_token_is_never_reused() -> None:
    s = session()
    out = s.pseudonymise_many(["literal [PHONE_1] here", "my number +852 9123 4567"])
    assert out == ["literal [PHONE_1] here", "my number [PHONE_2]"]
    assert s.restore("[PHONE_1] [PHONE_2]") == "[PHONE_1] +852 9123 4567"


def test_invented_and_malformed_tokens_are_left_alone() -> None:
    s = session()
    s.pseudonymise("HKID A123456(3)")
    answer = "[HK_ID_1] [HK_ID_2] [PHONE_1] [hk_id_1] [HK_ID_01] [HK_ID_1"
    assert s.restore(answer) == "A123456(3) [HK_ID_2] [PHONE_1] [hk_id_1] [HK_ID_01] [HK_ID_1"


def test_tokens_carry_nothing_of_the_value() -> None:
    s = session()
    out = s.pseudonymise(" ".join(ALL_VALUES))
    for token in TOKEN_PATTERN.findall(out):
        assert token[0] in {c.upper() for c in CLASSES}
    assert token_for("hk_id", 3) == "[HK_ID_3]"


def test_stream_restorer_holds_back_only_a_possible_token() -> None:
    s = session()
    s.pseudonymise("+852 9123 4567")
    r = s.stream_restorer()
    assert r.feed("Call [PHO") == "Call "
    assert r.pending == "[PHO"
    assert r.feed("NE_1] now [") == "+852 9123 4567 now "
    assert r.feed("note]") == "[note]"
    assert r.flush() == ""


def test_stream_cut_mid_token_emits_the_fragment_not_a_value() -> None:
    s = session()
    s.pseudonymise("+852 9123 4567")
    r = s.stream_restorer()
    assert r.feed("Call [PHONE_") == "Call "
    assert r.flush() == "[PHONE_"


def test_stream_without_tokens_passes_through_at_once() -> None:
    s = session()
    r = s.stream_restorer()
    assert r.feed("[PHO") == "[PHO"  # nothing issued: nothing to wait for
    assert r.flush() == ""


def test_header_value_formatting() -> None:
    assert format_counts({"phone": 2, "hk_id": 1, "email": 0}) == "hk_id=1,phone=2"
    assert format_counts({}) == ""


def test_parse_classes_errors() -> None:
    assert parse_classes(" hk_id , phone") == {"hk_id", "phone"}
    with pytest.raises(ValueError, match="no class given; name one or more of hk_id"):
        parse_classes(" , ")
    with pytest.raises(ValueError, match="unknown personal-data class 'ssn'"):
        parse_classes("ssn")


# ---- properties -----------------------------------------------------------------------------

filler = st.text(st.characters(codec="utf-8", exclude_characters="[]"), max_size=30)
documents = st.lists(st.one_of(st.sampled_from(ALL_VALUES), filler, st.sampled_from(SEPARATORS)),
                     max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_pseudonymise_then_restore_is_identity(text: str) -> None:
    s = session()
    assert s.restore(s.pseudonymise(text)) == text


@settings(max_examples=300, deadline=None)
@given(documents)
def test_no_detected_value_survives_and_no_token_contains_one(text: str) -> None:
    scanner = Scanner()
    s = session()
    out = s.pseudonymise(text)
    values = [text[sp.start:sp.end] for sp in scanner.scan(text).spans]
    for value in values:
        assert value not in out
        for token in s._values:
            assert value not in token
    assert not scanner.scan(out)


@settings(max_examples=200, deadline=None)
@given(documents, st.data())
def test_stream_split_anywhere_equals_restoring_the_whole(text: str, data: st.DataObject) -> None:
    s = session()
    answer = s.pseudonymise(text) + " [PHONE_77] [EMAIL_1"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(answer)), max_size=8)))
    pieces = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
    r = s.stream_restorer()
    streamed = "".join(r.feed(p) for p in pieces) + r.flush()
    assert streamed == s.restore(answer)


def test_stream_split_at_every_point_equals_whole() -> None:
    s = session()
    answer = s.pseudonymise("A123456(3), +852 9123 4567 and john.doe@example.com. [x] [")
    expected = s.restore(answer)
    for cut in range(len(answer) + 1):
        for cut2 in range(cut, len(answer) + 1):
            r = s.stream_restorer()
            out = r.feed(answer[:cut]) + r.feed(answer[cut:cut2]) + r.feed(answer[cut2:])
            assert out + r.flush() == expected


def test_a_four_megabyte_prompt_round_trips() -> None:
    line = "客户陈大文先生，電話 +852 9123 4567，email a.b@example.com。" + "x" * 200 + "\n"
    text = line * 15000
    s = session()
    out = s.pseudonymise(text)
    assert "+852 9123 4567" not in out and "a.b@example.com" not in out
    assert s.counts["phone"] == 15000
    assert s.restore(out) == text


# ---- the sweep of recurring values ----------------------------------------------------------


def plain_forms_pattern(forms: list[str]) -> re.Pattern[str]:
    """The definition `_forms_pattern` is grouped from: longest first, ASCII values bounded."""
    return re.compile("|".join(
        rf"(?<![A-Za-z0-9]){re.escape(f)}(?![A-Za-z0-9])" if f.isascii() else re.escape(f)
        for f in sorted(forms, key=len, reverse=True)))


form_text = st.text(st.sampled_from(list("91234 5-A(3)aé王伟[]x")), min_size=2, max_size=6)


@settings(max_examples=300)
@given(st.lists(form_text, min_size=1, max_size=8, unique=True),
       st.lists(st.one_of(form_text, st.sampled_from(list(" 1aX王"))), max_size=12))
def test_grouped_forms_pattern_matches_like_the_plain_alternation(
        forms: list[str], pieces: list[str]) -> None:
    text = "".join(pieces)
    grouped = _forms_pattern(forms)
    assert [m.span() for m in grouped.finditer(text)] == [
        m.span() for m in plain_forms_pattern(forms).finditer(text)]


@pytest.mark.parametrize("count", [3, 40])  # below and above the substring pre-test's limit
def test_recurring_values_are_swept_with_few_and_many_values(count: int) -> None:
    firsts, lasts = ["Ann", "Ben", "Cleo", "Dev", "Eva"], ["Chan", "Wong", "Lee", "Ho", "Lam",
                                                           "Ng", "Tam", "Yip"]
    people = [f"{f} {last}" for f in firsts for last in lasts][:count]
    s = session()
    first = " ".join(f"Mr. {name}." for name in people)
    again = f"{people[-1]} met {people[0]}, not {people[0]}son"
    out = s.pseudonymise_many([first, again])
    assert out[1] == f"[PERSON_NAME_{count}] met [PERSON_NAME_1], not {people[0]}son"
    assert s.counts == {"person_name": count + 2}
