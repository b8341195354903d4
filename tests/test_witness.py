"""The assembled process: witness endpoints without a token, and a damaged log failing closed.

`GET /audit/checkpoint` and `GET /audit/key` answer anyone (unless `audit.public: false`);
a log whose database contradicts its last signed checkpoint makes /readyz 503 with the
damage named, withholds every answer (503 audit_unavailable), signs nothing, and the
witnesses keep getting the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from harbourgate import config
from harbourgate.app import create_app, prepare
from harbourgate.audit.note import Verifier, open_checkpoint
from harbourgate.store import registry

CHAT = {"model": "fable-5", "messages": [{"role": "user", "content": "hello"}]}


def _settings(tmp_path: Path, **audit: object) -> config.Settings:
    base = config.load(None, environ={})
    return config.Settings(data_dir=tmp_path, routes=base.routes, sandbox=base.sandbox,
                           audit=dataclasses.replace(base.audit, **audit))


def _serve(settings: config.Settings) -> tuple[TestClient, str]:
    hg = create_app(settings)
    with hg.store.change() as conn:
        key = registry.issue_key(conn, "acme-research").key
    hg.runtime.reload()
    return TestClient(hg, raise_server_exceptions=False), key


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[config.Settings]:
    settings = _settings(tmp_path)
    prepare(settings)
    yield settings


def test_anyone_can_read_the_checkpoint_and_the_key(settings: config.Settings) -> None:
    client, key = _serve(settings)
    with client:
        vkey = client.get("/audit/key")
        assert vkey.status_code == 200 and vkey.headers["content-type"].startswith("text/plain")
        verifier = Verifier.from_vkey(vkey.text)
        first = open_checkpoint(client.get("/audit/checkpoint").text, verifier,
                                settings.audit.origin)
        answered = client.post("/v1/chat/completions", json=CHAT,
                               headers={"authorization": f"Bearer {key}"})
        assert answered.status_code == 200, answered.text
        later = open_checkpoint(client.get("/audit/checkpoint").text, verifier,
                                settings.audit.origin)
        assert later.size == first.size + 1
        proof = client.get("/admin/v1/audit/consistency",
                           params={"first": first.size, "second": later.size},
                           headers={"authorization": "Bearer x"})
        assert proof.status_code == 401  # proofs stay behind the admin token
        refused = client.post("/audit/checkpoint")
        assert refused.status_code == 405 and refused.json()["error"]["code"] == \
            "method_not_allowed"


def test_audit_public_false_turns_them_off(tmp_path: Path) -> None:
    settings = _settings(tmp_path, public=False)
    prepare(settings)
    client, _ = _serve(settings)
    with client:
        for path in ("/audit/checkpoint", "/audit/key"):
            assert client.get(path).status_code == 404


def test_a_damaged_log_fails_closed_until_restored(settings: config.Settings) -> None:
    client, key = _serve(settings)
    auth = {"authorization": f"Bearer {key}"}
    with client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
        good = client.get("/audit/checkpoint").text
    engine = sa.create_engine(settings.effective_database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_entries WHERE idx = "
                             "(SELECT MAX(idx) FROM audit_entries)"))
        before = conn.execute(sa.text("SELECT COUNT(*) FROM audit_checkpoints")).scalar()
    client, key = _serve(settings)
    auth = {"authorization": f"Bearer {key}"}
    with client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["audit"].startswith("damaged: entries were deleted: checkpoint ")
        assert "harbourgate audit verify" in ready.json()["audit"]
        refused = client.post("/v1/chat/completions", json=CHAT, headers=auth)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "audit_unavailable"
        assert client.get("/audit/checkpoint").text == good  # the last good one, nothing new
    with engine.begin() as conn:
        after = conn.execute(sa.text("SELECT COUNT(*) FROM audit_checkpoints")).scalar()
        indices = [r[0] for r in conn.execute(sa.text("SELECT idx FROM audit_entries"))]
    engine.dispose()
    assert after == before and len(indices) == len(set(indices))
