"""What the engine answers: decisions, their reasons and obligations, tiers and versions.

All values are immutable and shared: the snapshot hands the same `Decision` object to
every request with the same outcome, so building one is paid once, not per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harbourgate.policy import vocab


@dataclass(frozen=True, slots=True)
class Obligations:
    """What enforcement must do when a request goes ahead (PRODUCT.md §3)."""

    pseudonymise: tuple[str, ...] = ()  # personal-data classes to pseudonymise
    log: str = "metadata"  # metadata | full
    notice: str | None = None  # transparency notice to show the end user
    human_review: bool = False  # flag the answer for human review

    def to_dict(self) -> dict[str, Any]:
        return {"pseudonymise": list(self.pseudonymise), "log": self.log,
                "notice": self.notice, "human_review": self.human_review}


NO_OBLIGATIONS = Obligations()


@dataclass(frozen=True, slots=True)
class Reason:
    """A rule that fired: its id, its legal basis, and what it means in words."""

    rule: str
    citation: str
    message: str
    kind: str  # tier | allow | deny
    pack: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "citation": self.citation, "message": self.message,
                "kind": self.kind, "pack": self.pack}


@dataclass(frozen=True, slots=True)
class TierResult:
    """An application's tier and the rule that gave it (for the registration answer)."""

    tier: str
    rule: str | None
    citation: str
    reason: str
    fired: tuple[str, ...] = ()  # every tier rule that matched, in bundle order
    pack: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "rule": self.rule, "citation": self.citation,
                "reason": self.reason, "matched": list(self.fired), "pack": self.pack}

    def as_reason(self) -> Reason:
        return Reason(self.rule or "tier.default", self.citation, self.reason, "tier",
                      self.pack)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one context (one candidate model).

    `effect` is `allow` or `deny`; the gateway turns a sequence of these into `reroute`.
    A deny carries a `code` (its HTTP status in `status`) and says whether another model
    could help (`model_dependent`): a directive or a cross-border rule depends on the
    model, a prohibited tier does not.
    """

    effect: str
    tier: str
    obligations: Obligations
    reasons: tuple[Reason, ...]
    code: str | None = None
    model_dependent: bool = False
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    @property
    def status(self) -> int | None:
        """The HTTP status of a refusal (403 or 451), None when allowed."""
        return vocab.DENY_CODES.get(self.code) if self.code else None

    @property
    def primary(self) -> Reason | None:
        """The reason to show first: the deciding deny, or the tier reason of an allow."""
        return self.reasons[0] if self.reasons else None

    @property
    def rule(self) -> str | None:
        return self.primary.rule if self.primary else None

    @property
    def citation(self) -> str | None:
        return self.primary.citation if self.primary else None

    def to_dict(self) -> dict[str, Any]:
        return {"effect": self.effect, "code": self.code, "status": self.status,
                "message": self.message, "tier": self.tier,
                "model_dependent": self.model_dependent, "rule": self.rule,
                "citation": self.citation, "obligations": self.obligations.to_dict(),
                "reasons": [r.to_dict() for r in self.reasons]}


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """Declared version + content hash of the bundle, plus the directives in force.

    `str(version)` is what the gateway sends in `X-Harbourgate-Policy`, e.g.
    `2026.06+sha256:1a2b3c4d; directives=d1,d2`.
    """

    declared: str
    digest: str  # full SHA-256 hex of the bundle's canonical content
    directives: tuple[str, ...] = ()

    @property
    def bundle(self) -> str:
        return f"{self.declared}+sha256:{self.digest[:8]}"

    def __str__(self) -> str:
        if self.directives:
            return f"{self.bundle}; directives={','.join(self.directives)}"
        return self.bundle

    def to_dict(self) -> dict[str, Any]:
        return {"declared": self.declared, "digest": self.digest, "bundle": self.bundle,
                "directives": list(self.directives), "header": str(self)}
