"""Personal data: a fast bilingual scanner, reversible pseudonymisation, de-identification.

The gateway builds one `Scanner` at start; per request it scans the message texts for the
data profile, and when the decision carries ``pseudonymise: [classes]`` it uses a
`PseudonymSession` to replace values before the request leaves and to restore them in the
answer (`restore`, or a `StreamRestorer` per streamed choice / content block)::

    scanner = Scanner()
    profile = scanner.scan_many(texts)                # classes, counts, spans
    session = Pseudonymiser(["hk_id", "phone"]).session()
    outgoing = session.pseudonymise_many(texts, profile)
    session.header_value()                           # "hk_id=1,phone=2"
    answer = session.restore(upstream_text)

Nothing here does I/O or knows about HTTP.
"""

from harbourgate.privacy.classes import (
    CLASSES,
    UnknownClassError,
    check_classes,
    format_counts,
    parse_classes,
)
from harbourgate.privacy.pseudonymise import (
    TOKEN_PATTERN,
    Pseudonymiser,
    PseudonymSession,
    StreamRestorer,
    token_for,
)
from harbourgate.privacy.scanner import Profile, Scanner, Span

__all__ = [
    "CLASSES",
    "TOKEN_PATTERN",
    "Profile",
    "PseudonymSession",
    "Pseudonymiser",
    "Scanner",
    "Span",
    "StreamRestorer",
    "UnknownClassError",
    "check_classes",
    "format_counts",
    "parse_classes",
    "token_for",
]
