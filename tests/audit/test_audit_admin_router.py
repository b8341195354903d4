"""The audit endpoints of §4.2 on a bare FastAPI app: shapes, proofs and errors."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from harbourgate.admin.audit import audit_router
from harbourgate.audit import merkle
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Verifier, open_checkpoint

ORIGIN = "test.harbourgate/audit"


@pytest.fixture
def log(tmp_path, make_log: Callable[..., AuditLog]) -> AuditLog:  # type: ignore[no-untyped-def]
    return make_log(f"sqlite:///{tmp_path / 'a.db'}", checkpoint_interval=3600)


@pytest.fixture
def client(log: AuditLog) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(audit_router(lambda: log), prefix="/admin/v1")
    with TestClient(app) as c:
        yield c


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def test_key_and_checkpoint_are_signed_notes(client: TestClient, log: AuditLog) -> None:
    for i in range(5):
        log.append_sync({"decision": "allow", "i": i})
    vkey = client.get("/admin/v1/audit/key")
    assert vkey.status_code == 200 and vkey.headers["content-type"].startswith("text/plain")
    verifier = Verifier.from_vkey(vkey.text)
    note = client.get("/admin/v1/audit/checkpoint")
    assert note.status_code == 200 and note.headers["content-type"].startswith("text/plain")
    cp = open_checkpoint(note.text, verifier, ORIGIN)
    assert cp.size == 5  # signed on demand, although the interval is an hour


def test_entry_and_inclusion_proof(client: TestClient, log: AuditLog) -> None:
    ids = [log.append_sync({"decision": "deny", "i": i}) for i in range(7)]
    cp = open_checkpoint(client.get("/admin/v1/audit/checkpoint").text, log.signer.verifier)
    body = client.get(f"/admin/v1/audit/entries/{ids[4]}").json()
    assert set(body) == {"id", "index", "leaf", "record"}
    assert body["id"] == ids[4] and body["index"] == 4
    assert body["record"]["decision"] == "deny" and body["record"]["id"] == ids[4]
    proof = client.get(f"/admin/v1/audit/entries/{ids[4]}/proof").json()
    assert set(proof) == {"index", "tree_size", "hashes"}
    assert proof["index"] == 4 and proof["tree_size"] == 7
    merkle.verify_inclusion(4, 7, merkle.leaf_hash(_b(body["leaf"])),
                            [_b(h) for h in proof["hashes"]], cp.root)
    older = client.get(f"/admin/v1/audit/entries/{ids[1]}/proof?tree_size=3").json()
    assert older["tree_size"] == 3
    merkle.verify_inclusion(1, 3, merkle.leaf_hash(log.entry(ids[1]).leaf),
                            [_b(h) for h in older["hashes"]], log.root(3))


def test_consistency_proof(client: TestClient, log: AuditLog) -> None:
    for i in range(9):
        log.append_sync({"i": i})
    body = client.get("/admin/v1/audit/consistency?first=3&second=9").json()
    assert set(body) == {"first", "second", "hashes"}
    merkle.verify_consistency(3, 9, log.root(3), log.root(9), [_b(h) for h in body["hashes"]])


def _error(code: str, message: str, param: str | None) -> dict[str, object]:
    kind = "not_found_error" if code == "not_found" else "invalid_request_error"
    return {"error": {"type": kind, "code": code, "message": message, "param": param}}


@pytest.mark.parametrize(("path", "status", "code", "message", "param"), [
    ("/entries/NOPE", 404, "not_found", "no audit entry with id 'NOPE'", "id"),
    ("/entries/NOPE/proof", 404, "not_found", "no audit entry with id 'NOPE'", "id"),
    ("/entries/{id}/proof?tree_size=4", 400, "invalid_request",
     "tree_size=4 is beyond the tree, which has 3 entries", "tree_size"),
    ("/entries/{id}/proof?tree_size=x", 400, "invalid_request",
     "tree_size must be a whole number, not 'x'", "tree_size"),
    ("/consistency?first=3&second=2", 400, "invalid_request",
     "first (3) must not be greater than second (2)", "first"),
    ("/consistency?first=0&second=2", 400, "invalid_request",
     "first must be at least 1: every tree extends the empty one", "first"),
    ("/consistency?first=1&second=5", 400, "invalid_request",
     "second=5 is beyond the tree, which has 3 entries", "second"),
    ("/consistency?first=1", 400, "invalid_request",
     "second is required: ?first=M&second=N", "second"),
])
def test_errors(client: TestClient, log: AuditLog, path: str, status: int, code: str,
                message: str, param: str) -> None:
    ids = [log.append_sync({"i": i}) for i in range(3)]
    response = client.get("/admin/v1/audit" + path.replace("{id}", ids[0]))
    assert response.status_code == status
    assert response.json() == _error(code, message, param)


def test_an_entry_outside_the_requested_tree(client: TestClient, log: AuditLog) -> None:
    ids = [log.append_sync({"i": i}) for i in range(3)]
    response = client.get(f"/admin/v1/audit/entries/{ids[2]}/proof?tree_size=2")
    assert response.status_code == 400
    assert response.json() == _error(
        "invalid_request", f"audit entry {ids[2]} has index 2, so a tree of size 2 does not "
        "contain it; ask for tree_size > 2", "tree_size")
