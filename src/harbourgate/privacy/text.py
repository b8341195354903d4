"""Width folding: full-width digits, letters and punctuation read as their ASCII forms.

Chinese input methods often produce `１２３`, `Ａ１２３４５６（７）` or `＋８５２`. Folding maps
each full-width character (U+FF01-U+FF5E) to one ASCII character and the ideographic space
to a space, so the folded text has exactly the same length and every span found in it is a
span of the original. Text without full-width letters or digits (the usual case) is returned
as is after one fast search; Chinese punctuation such as `，。：（）` is left alone and the
recognizers accept it around values. The scanner does not even pay for that search: its
master pattern notices a full-width letter or digit and only then folds (`recognizers`).
"""

from __future__ import annotations

import re

# Full-width digits, letters, `＠` and `＋`, as the body of a character class.
WIDE_ALNUM = "\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\uff20\uff0b"
_WIDE_ALNUM = re.compile(f"[{WIDE_ALNUM}]")
_WIDE_RUN = re.compile("[\uff01-\uff5e\u3000]+")
_TABLE = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def _fold_run(match: re.Match[str]) -> str:
    return match.group().translate(_TABLE)


def fold_width(text: str) -> str:
    """`text` with full-width forms folded to ASCII (same length), or `text` itself."""
    if _WIDE_ALNUM.search(text) is None:
        return text
    return _WIDE_RUN.sub(_fold_run, text)


def fold_value(value: str) -> str:
    """Fold one short value (no fast path needed)."""
    return value.translate(_TABLE)
