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

    def audit(self, _conn: Any, action: str, details: dict[str, Any]) -> str:
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


# --- a real deployment: the default routes, the shipped packs, a real audit log -------------

JUNE = {
    "authority": "US Department of Commerce", "citation": "Order to Anthropic of 2026-06-12",
    "title": "Frontier models for US nationals only", "models": ["fable-5", "mythos-5"],
    "permit_only": {"nationality": ["US"]}, "effective_from": "2026-06-12T00:00:00Z",
    "effective_until": None,
}
PREFERENCE = ["fable-5", "mythos-5", "glm-5.2", "qwen-local"]
ROUTE_FACTS = {
    "fable-5": {"origin": "US", "hosting": "US", "export_tags": ["us-frontier"],
                "class": "frontier-chat", "provider": "stand-in"},
    "mythos-5": {"origin": "US", "hosting": "US", "export_tags": ["us-frontier"],
                 "class": "frontier-chat", "provider": "stand-in"},
    "glm-5.2": {"origin": "CN", "hosting": "CN", "export_tags": [], "class": "frontier-chat",
                "provider": "stand-in"},
    "qwen-local": {"origin": "CN", "hosting": "HK", "export_tags": [],
                   "class": "frontier-chat", "provider": "stand-in"},
    "embed-small": {"origin": "HK", "hosting": "HK", "export_tags": [],
                    "class": "embedding-small", "provider": "stand-in"},
}


def context(*, application: str = "acme-research", participant: str = "acme",
            use_cases: tuple[str, ...] = ("research.b2b",), model: str = "fable-5",
            time: str = "2026-06-01T09:00:00Z", nationality: list[str] | None = None,
            sub: str = "sha256:00000000000000aa", fallback: str = "auto",
            endpoint: str = "chat") -> dict[str, Any]:
    """A context as the gateway records it (`Context.to_dict()`, the end user hashed)."""
    verified = nationality is not None
    return {
        "application": {"id": application, "use_cases": list(use_cases),
                        "data_categories": [], "data_origin": "HK", "transfer_mechanisms": [],
                        "status": "active", "approval_expires_at": None},
        "participant": {"id": participant, "jurisdiction": "HK", "status": "admitted",
                        "screening": "clear"},
        "end_user": {"verified": verified, "nationality": nationality,
                     "residence": None, "verification_level": "document" if verified else None,
                     "issuer": "https://verifier.example" if verified else None,
                     "sub": sub if verified else None},
        "model": {"name": model, **ROUTE_FACTS[model]},
        "data": {"origin": None, "region": None, "classes": {}},
        "request": {"time": time, "api": "openai", "endpoint": endpoint, "fallback": fallback},
    }


def request_record(*, decision: str = "allow", served: str | None = "fable-5",
                   status: int = 200, code: str | None = None, with_context: bool = True,
                   **ctx: Any) -> dict[str, Any]:
    """A data-plane audit record in the gateway's contract shape."""
    c = context(**ctx)
    record: dict[str, Any] = {
        "kind": "request", "api": "openai", "endpoint": c["request"]["endpoint"],
        "participant": c["participant"]["id"], "application": c["application"]["id"],
        "key": "key_test", "model_requested": c["model"]["name"], "model_served": served,
        "decision": decision, "status": status, "code": code, "rule": None, "citation": None,
        "reasons": [], "tier": "minimal", "obligations": {}, "policy": "test",
        "directives": [], "data_profile": {}, "pseudonymised": {}, "failover": [],
        "stream": False, "timing_ms": {},
    }
    if with_context:
        record["context"] = c
    return record
