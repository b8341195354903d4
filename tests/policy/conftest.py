"""Shared helpers for the policy tests: the shipped packs, contexts, bundle files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harbourgate import policy
from harbourgate.directives import Directive
from harbourgate.policy import (
    ApplicationFacts,
    Context,
    DataFacts,
    EndUserFacts,
    ModelFacts,
    ParticipantFacts,
    RequestFacts,
)

SHIPPED = ("hk-sandbox", "eu-ai-act", "cross-border", "export-directives")
JUNE_DIRECTIVE = {
    "id": "us-doc-2026-06-12", "authority": "US Department of Commerce",
    "citation": "Order to Anthropic of 2026-06-12",
    "title": "Frontier models for US nationals only", "models": ["fable-5", "mythos-5"],
    "permit_only": {"nationality": ["US"]}, "effective_from": "2026-06-12T00:00:00Z",
    "effective_until": None,
}
FABLE = ModelFacts("fable-5", "US", "US", ("us-frontier",), "frontier-chat", "openai")
GLM = ModelFacts("glm-5.2", "CN", "CN", (), "frontier-chat", "openai")
QWEN = ModelFacts("qwen-local", "CN", "HK", (), "frontier-chat", "openai")
T = datetime(2026, 8, 15, tzinfo=UTC)


@pytest.fixture(scope="session")
def bundle() -> policy.Bundle:
    return policy.load_bundle(SHIPPED)


@pytest.fixture(scope="session")
def snapshot(bundle: policy.Bundle) -> policy.PolicySnapshot:
    return policy.compile(bundle, [Directive.from_dict(JUNE_DIRECTIVE)])


def make_context(use_cases: tuple[str, ...] = ("research.b2b",), *, model: ModelFacts = FABLE,
                 nationality: tuple[str, ...] | None = None, verified: bool | None = None,
                 time: datetime = T, data: DataFacts | None = None,
                 approval: datetime | None = None, **app: object) -> Context:
    user = EndUserFacts() if nationality is None else EndUserFacts(
        verified=True if verified is None else verified, nationality=nationality)
    return Context(ApplicationFacts("app", use_cases, approval_expires_at=approval,
                                    **app),  # type: ignore[arg-type]
                   model, RequestFacts(time), ParticipantFacts("acme", "HK"), user,
                   data or DataFacts())


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a dedented file under tmp_path and return its path."""
    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path
    return _write
