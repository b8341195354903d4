"""The decisions index is written in the transaction that stores the leaves: no request
leaf without its row, whatever fails or crashes; the migration builds it from old leaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.audit.decisions_index import statements
from harbourgate.audit.keys import create_key
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.audit.record import encode, new_entry_id, timestamp
from harbourgate.store import Store, schema
from harbourgate.store.migrate import alembic_config

HERE = Path(__file__).parent
REQUEST = {"kind": "request", "api": "openai", "endpoint": "/v1/chat/completions",
           "participant": "acme", "application": "acme-research", "key": "key_1",
           "model_requested": "fable-5", "model_served": "glm-5.2", "decision": "reroute",
           "status": 200, "code": None, "rule": "export.us_only", "quota": None,
           "usage": {"input_tokens": 12, "output_tokens": 34, "cache_read_tokens": 5,
                     "cache_write_tokens": 6, "reasoning_tokens": 7}, "cost": 0.0125}


def _rows(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.audit_id: r._asdict() for r in conn.execute(sa.select(schema.decisions))}


def _request_leaves(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        leaves = [orjson.loads(r.leaf) for r in conn.execute(sa.select(schema.audit_entries))]
    return {leaf["id"] for leaf in leaves if leaf.get("kind") == "request"}


def test_a_request_record_becomes_a_row(database_url: str,
                                        make_log: Callable[..., AuditLog]) -> None:
    log = make_log(database_url)
    request_id = log.append_sync(REQUEST)
    admin_id = log.append_sync({"kind": "admin", "action": "key.issue"})
    rows = _rows(log.engine)
    assert set(rows) == {request_id} and admin_id not in rows
    row = rows[request_id]
    assert {k: row[k] for k in ("participant", "application", "key", "endpoint",
                                "model_requested", "model_served", "decision", "rule",
                                "status", "code", "input_tokens", "output_tokens",
                                "cache_read_tokens", "cache_write_tokens",
                                "reasoning_tokens", "cost")} == {
        "participant": "acme", "application": "acme-research", "key": "key_1",
        "endpoint": "/v1/chat/completions", "model_requested": "fable-5",
        "model_served": "glm-5.2", "decision": "reroute", "rule": "export.us_only",
        "status": 200, "code": None, "input_tokens": 12, "output_tokens": 34,
        "cache_read_tokens": 5, "cache_write_tokens": 6, "reasoning_tokens": 7,
        "cost": 0.0125}
    assert row["ts"] == log.entry(request_id).record["ts"]


def test_a_usage_follow_up_fills_in_the_row(database_url: str,
                                            make_log: Callable[..., AuditLog]) -> None:
    log = make_log(database_url)
    request_id = log.append_sync({**REQUEST, "usage": None, "cost": None, "stream": True})
    assert _rows(log.engine)[request_id]["output_tokens"] == 0
    log.append_sync({"kind": "usage", "request_id": request_id,
                     "usage": {"input_tokens": 9, "output_tokens": 99}, "cost": 1.5})
    row = _rows(log.engine)[request_id]
    assert (row["input_tokens"], row["output_tokens"], row["cost"]) == (9, 99, 1.5)
    assert len(_rows(log.engine)) == 1


def test_no_leaf_is_stored_when_its_row_cannot_be(database_url: str,
                                                  make_log: Callable[..., AuditLog]) -> None:
    """A row that cannot be written (here: its key is taken) takes the leaf down with it."""
    log = make_log(database_url)
    before = log.append_sync(REQUEST)
    clash = new_entry_id()
    with log.engine.begin() as conn:
        conn.execute(schema.decisions.insert().values(audit_id=clash, ts="x", decision="deny"))
    with pytest.raises(Exception):  # noqa: B017 - whatever the log raises, nothing is stored
        log.append_sync(REQUEST, entry_id=clash)
    with log.engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(schema.audit_entries.c.id))]
    assert clash not in ids and before in ids


def test_no_leaf_without_its_row_after_a_crash(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url)
    store.migrate()
    key = tmp_path / "audit-key.pem"
    create_key(key)
    child = subprocess.Popen([sys.executable, str(HERE / "_indexed_appender.py"), database_url,
                              str(key)], stdout=subprocess.PIPE, text=True,
                             cwd=HERE.parent.parent,
                             env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)})
    try:
        assert child.stdout is not None and child.stdout.readline() == "appending\n"
        deadline = time.monotonic() + 120
        while len(_request_leaves(store.engine)) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    leaves = _request_leaves(store.engine)
    rows = _rows(store.engine)
    assert len(leaves) >= 200
    assert set(rows) == leaves
    with store.engine.connect() as conn:
        follow_ups = [orjson.loads(r.leaf) for r in conn.execute(
            sa.select(schema.audit_entries.c.leaf))]
    settled = {f["request_id"]: f["usage"]["input_tokens"] for f in follow_ups
               if f.get("kind") == "usage"}
    assert all(rows[rid]["input_tokens"] == tokens and rows[rid]["output_tokens"] == 1
               for rid, tokens in settled.items())
    store.close()


def test_the_migration_indexes_the_leaves_already_there(database_url: str,
                                                        signer: Signer) -> None:
    """A log written before the index existed (migrated to 0001 only) is indexed on upgrade."""
    store = Store(database_url)
    with store.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
    ids = []
    with store.engine.begin() as conn:
        for n in range(3):
            entry_id = new_entry_id()
            leaf = orjson.dumps({**REQUEST, "id": entry_id, "ts": f"2026-06-12T00:00:0{n}.000Z",
                                 "application": f"app-{n}"}, option=orjson.OPT_SORT_KEYS)
            conn.execute(schema.audit_entries.insert().values(id=entry_id, idx=n, leaf=leaf,
                                                              created_at="2026-06-12T00:00:00Z"))
            ids.append(entry_id)
        conn.execute(schema.audit_entries.insert().values(
            id=new_entry_id(), idx=3, leaf=b'{"kind":"admin"}', created_at="2026-06-12"))
    store.migrate()
    rows = _rows(store.engine)
    assert set(rows) == set(ids)
    assert [rows[i]["application"] for i in ids] == ["app-0", "app-1", "app-2"]
    assert rows[ids[2]]["ts"] == "2026-06-12T00:00:02.000Z"
    store.close()


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text()
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(fields=st.dictionaries(st.sampled_from(sorted({*REQUEST, "x_request_id", "request_id"})),
                              _JSON, max_size=len(REQUEST) + 2),
       kind=st.sampled_from(["request", "usage", "admin"]))
def test_the_row_read_from_the_record_is_the_row_read_from_its_leaf(
        fields: dict[str, Any], kind: str) -> None:
    """The log hands the index the record it encoded rather than the leaf decoded again:
    both must give the same row (or update) for any JSON values a record may hold."""
    rec = {**fields, "kind": kind}
    entry_id, ts = new_entry_id(), timestamp()
    leaf = encode(rec, entry_id, ts)
    assert statements([leaf], [{**rec, "id": entry_id, "ts": ts}]) == statements([leaf])
