"""`AuditLog.record_in`: an entry that commits with the caller's transaction, or not at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from harbourgate.audit import merkle
from harbourgate.audit.errors import LogDamagedError
from harbourgate.audit.log import AuditLog

MakeLog = Callable[..., AuditLog]


def _integrated(log: AuditLog, entry_id: str) -> int:
    for _ in range(1200):  # PostgreSQL indexes after the commit: wait for it, generously
        with log.engine.connect() as conn:
            found = conn.execute(sa.text("SELECT idx FROM audit_entries WHERE id = :id"),
                                 {"id": entry_id}).scalar()
        if found is not None:
            return int(found)
        time.sleep(0.1)
    raise AssertionError(f"{entry_id} was never integrated")


def test_an_entry_commits_with_the_change_or_not_at_all(database_url: str,
                                                        make_log: MakeLog) -> None:
    log = make_log(database_url)
    with log.engine.begin() as conn:
        kept = log.record_in(conn, {"kind": "admin", "action": "kept"})
    with pytest.raises(RuntimeError, match="the change failed"), log.engine.begin() as conn:
        dropped = log.record_in(conn, {"kind": "admin", "action": "dropped"})
        raise RuntimeError("the change failed")
    with log.engine.connect() as conn:
        ids = {r[0] for r in conn.execute(sa.text("SELECT id FROM audit_entries"))}
    assert kept in ids and dropped not in ids
    index = _integrated(log, kept)
    assert log.entry(kept).record["action"] == "kept"
    size = log.checkpoint().size
    while size <= index:
        time.sleep(0.1)
        size = log.checkpoint().size
    proof = log.inclusion_proof(kept, size)
    merkle.verify_inclusion(index, size, merkle.leaf_hash(log.entry(kept).leaf),
                            proof.hashes, log.checkpoint().root)


def test_entries_in_transactions_and_appends_share_one_tree(database_url: str,
                                                            make_log: MakeLog) -> None:
    """Admin entries interleaved with group-committed ones: every index once, no gap."""
    log = make_log(database_url)

    async def appends() -> list[str]:
        return [await log.append({"decision": "allow", "i": i}) for i in range(200)]

    recorded: list[str] = []
    for i in range(20):
        with log.engine.begin() as conn:
            recorded.append(log.record_in(conn, {"kind": "admin", "i": i}))
        if i % 5 == 0:
            asyncio.run(appends())
    last = recorded[-1]
    _integrated(log, last)
    for entry_id in recorded:
        _integrated(log, entry_id)
    with log.engine.connect() as conn:
        indices = sorted(r[0] for r in conn.execute(sa.text("SELECT idx FROM audit_entries")))
    assert indices == list(range(len(indices))) and len(indices) == 20 + 4 * 200
    log.close()
    again = make_log(database_url)
    assert again.damage is None and again.size == len(indices)


def test_a_damaged_log_records_nothing_in_transactions(database_url: str,
                                                       make_log: MakeLog) -> None:
    log = make_log(database_url)
    with log.engine.begin() as conn:
        entry = log.record_in(conn, {"kind": "admin"})
    _integrated(log, entry)
    assert log.checkpoint().size == 1
    log.close()
    with log.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_entries"))
    again = make_log(database_url)
    with pytest.raises(LogDamagedError, match="entries were deleted"), \
            again.engine.begin() as conn:
        again.record_in(conn, {"kind": "admin"})
    with again.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM audit_entries")).scalar() == 0
