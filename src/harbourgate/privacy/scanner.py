"""The scanner: a data profile (classes, counts, spans) of a text in one pass.

Build one `Scanner` at start and share it: it holds no per-request state. Text with no
personal data (the common case) costs one `finditer` of the master pattern in C.

Overlapping matches are resolved deterministically: the longer span wins; at equal length
the class earlier in `CLASSES` (the more specific) wins; then the earlier start.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import NamedTuple

from harbourgate.privacy.classes import CLASSES, check_classes, class_rank
from harbourgate.privacy.recognizers import Found, find_all


class Span(NamedTuple):
    """One value found: `text[start:end]` is of class `kind`; `part` is the text's index
    when several texts were scanned together (`Scanner.scan_many`)."""

    part: int
    start: int
    end: int
    kind: str

    def to_dict(self) -> dict[str, object]:
        return {"part": self.part, "start": self.start, "end": self.end, "class": self.kind}


@dataclass(frozen=True)
class Profile:
    """What a scan found: spans in text order, and per-class counts. Never the values."""

    spans: tuple[Span, ...] = ()

    @cached_property
    def counts(self) -> dict[str, int]:
        """Class -> number of values found, in `CLASSES` order."""
        if not self.spans:
            return {}
        found: dict[str, int] = {}
        for span in self.spans:
            found[span.kind] = found.get(span.kind, 0) + 1
        return {name: found[name] for name in CLASSES if name in found}

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(span.kind for span in self.spans)

    def __bool__(self) -> bool:
        return bool(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def to_dict(self) -> dict[str, object]:
        """For an audit record or a log line: classes and counts only, never values."""
        return {"classes": list(self.counts), "counts": dict(self.counts)}


_EMPTY = Profile()
# Span(part, start, end, kind) without the Python-level `__new__` of a NamedTuple: a span
# is made for every value found, so this is on the hot path.
_span = partial(tuple.__new__, Span)


def resolve(found: list[Found]) -> list[Found]:
    """Drop overlapping spans: longer first, then more specific class, then earlier start.

    Returns the kept spans sorted by start. Linear when nothing overlaps (the usual case).
    """
    if len(found) < 2:
        return found
    found.sort()
    end = found[0][1]
    for i in range(1, len(found)):
        if found[i][0] < end:
            break
        end = found[i][1]
    else:
        return found
    order = sorted(found, key=lambda f: (f[0] - f[1], class_rank(f[2]), f[0]))
    starts: list[int] = []
    kept: list[Found] = []
    for item in order:
        start, end, _ = item
        i = bisect_left(starts, start)
        if i > 0 and kept[i - 1][1] > start:
            continue
        if i < len(kept) and kept[i][0] < end:
            continue
        starts.insert(i, start)
        kept.insert(i, item)
    return kept


class Scanner:
    """Finds personal data of the given classes (default: all of `CLASSES`).

    ``Scanner().scan("call 9123 4567")`` -> ``Profile(spans=(Span(0, 5, 14, 'phone'),))``.
    Construction is cheap (the pattern is compiled once per process), scanning is pure CPU
    and thread-safe.

    `recall=True` is de-identification's mode: recall before precision, so a number written
    with a calling code is a phone even in a range the numbering plan calls unallocated.
    The gateway keeps the default (precision: a false positive rewrites a prompt).
    """

    def __init__(self, classes: Iterable[str] | None = None, *, recall: bool = False) -> None:
        self.classes: frozenset[str] = (
            frozenset(CLASSES) if classes is None else check_classes(classes)
        )
        self._all = self.classes == frozenset(CLASSES)
        self.recall = recall

    def find(self, text: str) -> list[Found]:
        """(start, end, class) of every value of the scanner's classes, in text order."""
        kept = resolve(find_all(text, recall=self.recall))
        if self._all:
            return kept
        wanted = self.classes
        return [f for f in kept if f[2] in wanted]

    def scan(self, text: str) -> Profile:
        """The data profile of one text."""
        found = self.find(text)
        if not found:
            return _EMPTY
        return Profile(tuple([_span((0, s, e, k)) for s, e, k in found]))

    def scan_many(self, texts: Iterable[str]) -> Profile:
        """One profile over several texts (the messages and parts of one request)."""
        spans: list[Span] = []
        for part, text in enumerate(texts):
            if text:
                spans.extend([_span((part, s, e, k)) for s, e, k in self.find(text)])
        return Profile(tuple(spans)) if spans else _EMPTY

    def __repr__(self) -> str:
        names = "all" if self._all else ",".join(c for c in CLASSES if c in self.classes)
        return f"Scanner(classes={names}{', recall=True' if self.recall else ''})"
