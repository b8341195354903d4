"""The data plane in process (ASGI calls, no sockets): what happens when a part fails."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from harbourgate import config
from harbourgate.app import Harbourgate, create_app, prepare
from harbourgate.gateway import pipeline
from harbourgate.store import registry


class BrokenAudit:
    async def append(self, record: dict[str, Any], entry_id: str | None = None) -> str:
        raise OSError("disk full")


@pytest.fixture
def app(tmp_path: Path) -> tuple[Harbourgate, str]:
    base = config.load(None, environ={})
    settings = config.Settings(data_dir=tmp_path, routes=base.routes, sandbox=base.sandbox)
    prepare(settings)
    hg = create_app(settings)
    with hg.store.change() as conn:
        key = registry.issue_key(conn, "acme-research").key
    hg.runtime.reload()
    return hg, key


def call(hg: Harbourgate, key: str, path: str, body: dict[str, Any]) -> tuple[int, dict, dict]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": orjson.dumps(body), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path,
             "headers": [(b"authorization", f"Bearer {key}".encode())]}
    asyncio.run(hg.gateway(scope, receive, send))
    start = sent[0]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), orjson.loads(payload)


def test_no_answer_without_its_audit_record(app: tuple[Harbourgate, str]) -> None:
    hg, key = app
    hg.gateway.audit = BrokenAudit()
    for path, body, shape in (
            ("/v1/chat/completions", {"model": "fable-5", "stream": True,
                                      "messages": [{"role": "user", "content": "hi"}]}, "openai"),
            ("/v1/messages", {"model": "fable-5", "max_tokens": 5,
                              "messages": [{"role": "user", "content": "hi"}]}, "anthropic"),
            ("/v1/embeddings", {"model": "embed-small", "input": "hi"}, "openai")):
        status, headers, payload = call(hg, key, path, body)
        assert status == 503 and headers[b"retry-after"] == b"1"
        error = payload["error"]
        assert error["code"] == "audit_unavailable" and "withheld" in error["message"]
        assert (payload.get("type") == "error") is (shape == "anthropic")


def test_an_unexpected_bug_is_a_500_in_the_callers_shape(app: tuple[Harbourgate, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    hg, key = app

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline, "admit", boom)
    status, _, payload = call(hg, key, "/v1/messages", {
        "model": "fable-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert status == 500
    assert payload["type"] == "error" and payload["error"]["code"] == "internal_error"
