"""Reversible pseudonymisation for one request, and restoring values in the answer.

Token format: ``[PHONE_1]``, ``[HK_ID_2]``, ``[PERSON_NAME_1]``: the class in capitals and a
counter, in square brackets. Why this shape:

- models copy it verbatim: it is short, plain ASCII, and reads as a placeholder, so a model
  keeps it intact in its answer (and the class name tells it what stands there);
- it carries nothing of the value (the counter numbers values in order of appearance), so
  the upstream learns the class of a value and how often it recurs, nothing more;
- it does not occur in ordinary text, and a session never issues a token that already
  appears literally in the request (`reserve`), so restoring cannot alter the user's text;
- it starts with `[` and contains no `[` or `]` inside, so a stream restorer needs to hold
  back at most the text from the last `[` while a token may still be arriving.

The same value (compared after folding widths and dropping separators, so `9123 4567` and
`91234567` are one value) gets the same token everywhere in the request. Restoring puts
back the value as first written. Only tokens this session issued are restored: an invented
``[PHONE_9]`` is left as it is.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from harbourgate.privacy.classes import CLASSES, check_classes
from harbourgate.privacy.recognizers import Found
from harbourgate.privacy.scanner import Profile, Scanner
from harbourgate.privacy.text import fold_value

TOKEN_PATTERN = re.compile(
    r"\[(" + "|".join(sorted((c.upper() for c in CLASSES), key=len, reverse=True))
    + r")_([1-9][0-9]{0,8})\]"
)
_MAX_TOKEN = max(len(c) for c in CLASSES) + 12
_SEPARATORS = re.compile(r"[\s\-().（）/]")
# Up to this many known values, `_sweep` first tests which occur in a text at all.
_FEW_FORMS = 32
_DEFAULT_SCANNER = Scanner()
_ALL_CLASSES = frozenset(CLASSES)


def token_for(kind: str, number: int) -> str:
    """The token of the `number`-th distinct value of class `kind`: ``[PHONE_1]``."""
    return f"[{kind.upper()}_{number}]"


def canonical(kind: str, value: str) -> str:
    """The form two writings of one value share: widths folded, separators and case dropped."""
    return _forms(kind, value)[0]


def _forms(kind: str, value: str) -> tuple[str, str]:
    """`canonical(kind, value)`, and the value without separators as it may recur
    ("9123 4567" -> "91234567"). One pass: an ASCII value (nearly all) has nothing to fold,
    so its canonical form is its compact form in capitals."""
    ascii_ = value.isascii()
    folded = value if ascii_ else fold_value(value)
    if kind == "person_name":
        return " ".join(folded.split()).casefold(), value
    if kind == "email":
        return folded.casefold(), value
    compact = _SEPARATORS.sub("", value)
    return (compact if ascii_ else _SEPARATORS.sub("", folded)).upper(), compact


def _forms_pattern(forms: Iterable[str]) -> re.Pattern[str]:
    """One pattern for the values seen so far, longest first where several could match.

    An ASCII value must not touch a letter or digit on either side (`91234567` is not part
    of `191234567`). The alternatives are grouped by their first character,
    ``9(?:1234567|123 4567)|A(?:123456\\(3\\))``, so that the pattern starts with a
    literal and `re` skips in C to the places where a value can begin, instead of trying
    every alternative at every position of the text.
    """
    by_first: dict[str, list[str]] = {}
    for form in sorted(forms, key=len, reverse=True):
        rest = re.escape(form[1:])
        if form.isascii():  # the look-behind now looks past the first character
            rest = rf"(?<![A-Za-z0-9].){rest}(?![A-Za-z0-9])"
        by_first.setdefault(form[0], []).append(rest)
    return re.compile(
        "|".join(f"{re.escape(first)}(?:{'|'.join(rests)})" for first, rests in by_first.items())
    )


class Pseudonymiser:
    """Replaces values of `classes` by tokens; one `session()` per request.

    Cheap to build (the scanner's pattern is shared), so the gateway may build one per
    decision from its `pseudonymise: [classes]` obligation.
    """

    def __init__(self, classes: Iterable[str] = CLASSES, *, scanner: Scanner | None = None):
        self.classes = check_classes(classes)
        self.scanner = scanner or _DEFAULT_SCANNER

    def session(self) -> PseudonymSession:
        return PseudonymSession(self.classes, self.scanner)  # checked: not checked again


class PseudonymSession:
    """The token table of one request: pseudonymise the prompt, restore the answer.

    Holds raw values in memory for the request's lifetime only; nothing here is logged, and
    `counts` (classes and counts) is all that should leave it.
    """

    def __init__(self, classes: Iterable[str] = CLASSES, scanner: Scanner | None = None):
        # a set of known classes (what `check_classes` returns) is one already
        self.classes = classes if type(classes) is frozenset and classes <= _ALL_CLASSES \
            else check_classes(classes)
        self._scanner = scanner or _DEFAULT_SCANNER
        self._by_value: dict[tuple[str, str], str] = {}
        self._values: dict[str, str] = {}
        self._issued_per_class: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._reserved: set[str] = set()
        self._sorted_tokens: list[str] | None = []
        self._known: re.Pattern[str] | None = None
        self._known_forms: dict[str, str] = {}

    # ---- pseudonymising ------------------------------------------------------------------

    def reserve(self, text: str) -> None:
        """Never issue a token that appears literally in `text` (the user's own brackets)."""
        if "[" in text:
            self._reserved.update(m.group() for m in TOKEN_PATTERN.finditer(text))

    def pseudonymise(self, text: str) -> str:
        """`text` with every value of the session's classes replaced by its token."""
        self.reserve(text)
        if not self.classes or not text:
            return text
        return self._sweep([self._apply(text, self._scanner.find(text))])[0]

    def pseudonymise_many(self, texts: Sequence[str], profile: Profile | None = None) -> list[str]:
        """Pseudonymise all texts of a request. Reserves tokens across all of them first.

        Pass the `profile` from ``scanner.scan_many(texts)`` (same texts, same order) to
        reuse that scan instead of scanning again.
        """
        for text in texts:
            self.reserve(text)
        if not self.classes:
            return list(texts)
        if profile is None:
            out = [self._apply(t, self._scanner.find(t)) if t else t for t in texts]
        else:
            per_part: dict[int, list[Found]] = {}
            for span in profile.spans:
                per_part.setdefault(span.part, []).append((span.start, span.end, span.kind))
            out = [self._apply(t, per_part.get(i, [])) for i, t in enumerate(texts)]
        return self._sweep(out)

    def _apply(self, text: str, found: list[Found]) -> str:
        pieces: list[str] = []
        pos = 0
        for start, end, kind in found:
            if kind not in self.classes:
                continue
            pieces.append(text[pos:start])
            pieces.append(self._token(kind, text[start:end]))
            pos = end
        if not pieces:
            return text
        pieces.append(text[pos:])
        return "".join(pieces)

    def _sweep(self, texts: list[str]) -> list[str]:
        """Replace further occurrences of values already tokenised in this request.

        A value recognised once (a phone after "Tel:", a name after "Mr.") is personal data
        wherever it recurs, also where its context is missing ("call 91234567 again").

        Usually there is nothing left to replace. With a few values, a substring test per
        value (in C) over all the texts at once shows that, and a pattern is built only for
        the values present; with many, one pattern for all of them is built once and reused
        for every text. (A value found only across the joints is a false alarm: it costs
        the pattern, and replaces nothing.)
        """
        known = self._known_forms
        if not known:
            return texts
        if len(known) <= _FEW_FORMS:
            joined = texts[0] if len(texts) == 1 else "\0".join(texts)
            present = [form for form in known if form in joined]
            if not present:
                return texts
            pattern = _forms_pattern(present)  # `re` keeps recent patterns compiled
        else:
            if self._known is None:
                self._known = _forms_pattern(known)
            pattern = self._known

        def replace(m: re.Match[str]) -> str:
            token = known[m.group()]
            kind = token[1:token.rindex("_")].lower()
            self._counts[kind] = self._counts.get(kind, 0) + 1
            return token

        return [pattern.sub(replace, text) if text else text for text in texts]

    def _token(self, kind: str, value: str) -> str:
        counts = self._counts
        counts[kind] = counts.get(kind, 0) + 1
        same, compact = _forms(kind, value)
        key = (kind, same)
        token = self._by_value.get(key)
        if token is None:
            issued = self._issued_per_class
            while True:
                number = issued[kind] = issued.get(kind, 0) + 1
                token = token_for(kind, number)
                if token not in self._reserved:
                    break
            self._by_value[key] = token
            self._values[token] = value
            self._sorted_tokens = None
            known = self._known_forms
            if len(value) >= 2:
                known.setdefault(value, token)
            if compact is not value and len(compact) >= 2:
                known.setdefault(compact, token)
            self._known = None
        return token

    # ---- what happened -------------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """Class -> values replaced (occurrences), in `CLASSES` order: header and audit."""
        counts = self._counts
        return {c: counts[c] for c in CLASSES if c in counts}

    def header_value(self) -> str:
        """The `X-Harbourgate-Pseudonymised` value, e.g. ``hk_id=1,phone=2``."""
        return ",".join(f"{name}={n}" for name, n in self.counts.items())

    @property
    def tokens_issued(self) -> int:
        return len(self._values)

    # ---- restoring -----------------------------------------------------------------------

    def restore(self, text: str) -> str:
        """`text` with every token this session issued replaced by its value."""
        if not self._values or "[" not in text:
            return text
        values = self._values
        return TOKEN_PATTERN.sub(lambda m: values.get(m.group(), m.group()), text)

    def stream_restorer(self) -> StreamRestorer:
        """A restorer for one streamed answer (one per choice / content block)."""
        return StreamRestorer(self)

    def _is_partial_token(self, fragment: str) -> bool:
        """True when `fragment` (starting with '[') is a proper prefix of an issued token."""
        if len(fragment) >= _MAX_TOKEN or "]" in fragment:
            return False
        if self._sorted_tokens is None:
            self._sorted_tokens = sorted(self._values)
        tokens = self._sorted_tokens
        i = bisect_left(tokens, fragment)
        return i < len(tokens) and tokens[i].startswith(fragment) and tokens[i] != fragment


class StreamRestorer:
    """Restores tokens in a streamed answer whose deltas may split a token anywhere.

    `feed(delta)` returns the text that is safe to emit now; it holds back only a trailing
    fragment that could still become an issued token (``[PHO``). `flush()` at the end of the
    stream returns what was held back: an unfinished token is emitted as the model wrote it,
    never half-restored. Feeding a text in any split gives what `restore` gives for the whole.
    """

    def __init__(self, session: PseudonymSession) -> None:
        self._session = session
        self._pending = ""

    def feed(self, delta: str) -> str:
        buffer = self._pending + delta if self._pending else delta
        if not buffer:
            return ""
        cut = len(buffer)
        bracket = buffer.rfind("[")
        if bracket != -1 and self._session._is_partial_token(buffer[bracket:]):
            cut = bracket
        self._pending = buffer[cut:]
        return self._session.restore(buffer[:cut])

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return self._session.restore(rest)

    @property
    def pending(self) -> str:
        """The held-back fragment (for diagnostics; it never contains a raw value)."""
        return self._pending
