"""Context words: which kind of word (passport, bank, phone, Macau) comes just before a value.

A bare number is ambiguous: nine digits may be a passport or an account, eight a Hong Kong
number or a Macau ID. The recognizers decide by the last context word in the same line, at
most `WINDOW` characters before the value.

The words are searched with one pattern per question, written, like the master pattern of
`recognizers`, as "first character, then the rest": ``[firsts](?:(?<=[p])(?i:assport)|...)``.
A pattern that starts with a plain character class lets CPython's `re` skip in C to the
next possible first character; ``(?i:passport|...)`` at the front would instead try every
alternative at every position of the window. Each word keeps its place in the alternation,
so a match starts, ends and is classified exactly as with the plain alternation.
"""

from __future__ import annotations

import re

WINDOW = 40

# kind -> words, each as (first character(s), rest); an ASCII first letter is matched in
# either case, and so is the rest after it.
_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "passport": (
        ("p", "assport"), ("t", r"ravel\s+doc"), ("護", "照"), ("护", "照"),
        ("通", "行[證证]"), ("回", "[鄉乡][證证]"), ("旅", "行[證证]件"),
    ),
    "bank": (
        ("a", "ccount"), ("a", r"/c\b"), ("a", "cct"), ("b", "ank"), ("帳账", "[戶户号號]"),
        ("戶", "口"), ("户", "口"), ("銀", "行"), ("银", "行"), ("賬", "[戶户号號]"),
    ),
    "phone": (
        ("p", "hone"), ("t", r"el\b"), ("t", "el[.:：]"), ("m", "obile"), ("c", "ell"),
        ("c", "all"), ("w", "hatsapp"), ("c", "ontact"), ("f", "ax"), ("電电", "[話话]"),
        ("手", "[機机]"), ("聯联", "[絡络系]"), ("致", "[電电]"), ("傳", "真"), ("传", "真"),
    ),
    "macau": (
        ("m", "aca[uo]"), ("b", r"(?<![\w].)ir\b"), ("澳", "[門门]"),
    ),
}

# The only non-ASCII characters that `re.IGNORECASE` equates with ASCII letters (İ ı ~ i,
# ſ ~ s, K ~ k); a test checks this over the whole of Unicode.
_CASE_EXTRA = {"i": "\u0130\u0131", "s": "\u017f", "k": "\u212a"}


def _variants(first: str) -> str:
    """Every character a word's first character matches: both cases of an ASCII letter."""
    out = []
    for ch in first:
        if ch.isascii() and ch.isalpha():
            out.append(ch.lower() + ch.upper() + _CASE_EXTRA.get(ch.lower(), ""))
        else:
            out.append(ch)
    return "".join(out)


def _compile(kinds: tuple[str, ...]) -> re.Pattern[str]:
    """``[all firsts](?:(?P<kind>(?<=[f])rest|...)|...)`` over the words of `kinds`, in order."""
    firsts: list[str] = []
    groups = []
    for kind in kinds:
        alternatives = []
        for first, rest in _WORDS[kind]:
            chars = _variants(first)
            firsts.extend(c for c in chars if c not in firsts)
            ascii_word = first.isascii()
            alternatives.append(f"(?<=[{chars}])" + (f"(?i:{rest})" if ascii_word else rest))
        groups.append(f"(?P<{kind}>{'|'.join(alternatives)})")
    return re.compile(f"[{''.join(firsts)}](?:{'|'.join(groups)})")


_ANY = _compile(("passport", "bank", "phone", "macau"))
_PASSPORT = _compile(("passport",))


def _window(text: str, start: int) -> int:
    """Where the context window before `start` begins: `WINDOW` back, or the line start."""
    lo = start - WINDOW if start > WINDOW else 0
    line = text.rfind("\n", lo, start) + 1
    return line if line > lo else lo


def kind_before(text: str, start: int) -> str | None:
    """The kind of the last context word in the same line before `start`, if any."""
    lo = start - WINDOW if start > WINDOW else 0
    line = text.rfind("\n", lo, start) + 1
    kind = None
    for m in _ANY.finditer(text, line if line > lo else lo, start):
        kind = m.lastgroup
    return kind


def passport_before(text: str, start: int) -> bool:
    """A passport word in the same line, at most `WINDOW` characters before `start`."""
    return _PASSPORT.search(text, _window(text, start), start) is not None
