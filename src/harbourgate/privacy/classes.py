"""The personal-data class vocabulary, defined once.

The policy engine's `pseudonymise: [classes]` obligation, the scanner's profile, the
`X-Harbourgate-Pseudonymised` header and the audit record all use these exact strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CLASSES: tuple[str, ...] = (
    "hk_id",
    "cn_id",
    "macau_id",
    "passport",
    "phone",
    "email",
    "payment_card",
    "iban",
    "ip_address",
    "bank_account",
    "person_name",
)

_ORDER = {name: i for i, name in enumerate(CLASSES)}


class UnknownClassError(ValueError):
    """A class name outside `CLASSES`: the message lists the valid ones."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"unknown personal-data class {name!r}; known classes are {', '.join(CLASSES)}"
        )


def check_classes(names: Iterable[str]) -> frozenset[str]:
    """Validate class names (as the policy or a user gives them) and return them as a set."""
    out = frozenset(names)
    for name in sorted(out):
        if name not in _ORDER:
            raise UnknownClassError(name)
    return out


def parse_classes(spec: str) -> frozenset[str]:
    """Parse a comma-separated list such as ``"hk_id, phone"`` (the CLI's `--classes`)."""
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise ValueError("no class given; name one or more of " + ", ".join(CLASSES))
    return check_classes(names)


def format_counts(counts: Mapping[str, int]) -> str:
    """``{"phone": 2, "hk_id": 1}`` -> ``"hk_id=1,phone=2"``: the header value, in class order.

    Classes with a zero count are left out; an empty mapping gives an empty string.
    """
    items = sorted(
        ((name, n) for name, n in counts.items() if n), key=lambda kv: _ORDER.get(kv[0], 99)
    )
    return ",".join(f"{name}={n}" for name, n in items)


def class_rank(name: str) -> int:
    """Position of a class in `CLASSES`; lower is more specific when spans tie."""
    return _ORDER[name]
