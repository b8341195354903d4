"""Helpers of the admin API tests: tokens, a recording runtime, a stand-in policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harbourgate.admin import AdminServices
from harbourgate.config import AdminToken
from harbourgate.identity.model import Application
from harbourgate.store import Store

OPERATOR_TOKEN = "op-" + "o" * 29
AUDITOR_TOKEN = "au-" + "a" * 29
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
AUDITOR = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
ROUTES = ("fable-5", "mythos-5", "glm-5.2", "qwen-local")


@dataclass
class Recorder:
    """What the admin plane told the runtime: reloads and audit entries, in order."""

    events: list[Any] = field(default_factory=list)

    @property
    def audits(self) -> list[tuple[str, dict[str, Any]]]:
        return [e[1:] for e in self.events if e[0] == "audit"]

    @property
    def reloads(self) -> int:
        return sum(1 for e in self.events if e == ("change",))

    def on_change(self) -> None:
        self.events.append(("change",))

    def audit(self, action: str, details: dict[str, Any]) -> str:
        self.events.append(("audit", action, details))
        return f"aud_{len(self.audits):04d}"


def classify(app: Application) -> dict[str, Any] | None:
    """A stand-in policy: credit scoring is high risk, everything else minimal."""
    if "finance.credit_scoring" in app.use_cases:
        return {"tier": "high", "rule": "hk.high.credit", "citation": "EU AI Act Annex III 5(b)",
                "reason": "credit scoring"}
    return {"tier": "minimal", "rule": "hk.minimal.default", "citation": None,
            "reason": "no higher tier applies"}


def make_services(store: Store, recorder: Recorder,
                  tokens: tuple[AdminToken, ...] | None = None) -> AdminServices:
    return AdminServices(
        store=store,
        tokens=(AdminToken(OPERATOR_TOKEN, "operator"), AdminToken(AUDITOR_TOKEN, "auditor"))
        if tokens is None else tokens,
        route_names=lambda: ROUTES,
        on_change=recorder.on_change,
        audit=recorder.audit,
        classify=classify,
    )


def error_of(response: Any) -> dict[str, Any]:
    """The `error` object of an admin error answer (and check the shape while at it)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"type", "code", "message", "param"}, body
    error: dict[str, Any] = body["error"]
    return error
