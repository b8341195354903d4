"""The group-commit writer: batching, durability before return, bounds, errors, proofs."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from harbourgate.audit import log as log_module
from harbourgate.audit import merkle, record
from harbourgate.audit.errors import (
    AuditLogClosedError,
    AuditWriteError,
    DuplicateEntryError,
    EntryNotFoundError,
    InvalidProofRequestError,
)
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import open_checkpoint
from harbourgate.audit.tree import TreeCorruptionError

MakeLog = Callable[..., AuditLog]


def _stored(log: AuditLog) -> dict[str, int | None]:
    with log.engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT id, idx FROM audit_entries")).all())


def _drain(log: AuditLog) -> None:
    """Let the integrator index everything written (PostgreSQL integrates after commit)."""
    log.close()
    log.start()


async def _append_many(log: AuditLog, tasks: int, each: int) -> list[str]:
    async def worker(k: int) -> list[str]:
        return [await log.append({"decision": "allow", "k": k, "i": i}) for i in range(each)]

    return [i for ids in await asyncio.gather(*(worker(k) for k in range(tasks))) for i in ids]


def test_concurrent_appends_share_transactions_and_all_land(database_url: str,
                                                            make_log: MakeLog) -> None:
    log = make_log(database_url)
    ids = asyncio.run(_append_many(log, tasks=50, each=20))
    assert len(set(ids)) == 1000
    assert log.batches < 500  # grouped: far fewer commits than entries
    _drain(log)
    stored = _stored(log)
    assert set(stored) == set(ids)
    assert sorted(stored.values()) == list(range(1000))  # type: ignore[type-var]


def test_an_id_is_returned_only_once_its_entry_is_committed(database_url: str,
                                                            make_log: MakeLog) -> None:
    log = make_log(database_url)
    other = sa.create_engine(log.engine.url)  # another connection: sees only what committed

    async def main() -> None:
        async def one(i: int) -> None:
            entry_id = await log.append({"i": i})
            with other.connect() as conn:
                found = conn.execute(sa.text("SELECT count(*) FROM audit_entries WHERE id = :i"),
                                     {"i": entry_id}).scalar()
            assert found == 1

        await asyncio.gather(*(one(i) for i in range(40)))

    asyncio.run(main())
    other.dispose()


def test_a_full_queue_makes_append_wait_and_nothing_is_dropped(tmp_path, make_log) -> None:
    log = make_log(f"sqlite:///{tmp_path / 'a.db'}", max_queue=4, inline=False)
    gate = threading.Event()
    real_write = log._writer.write

    def slow_write(rows, size):  # type: ignore[no-untyped-def]
        gate.wait()
        return real_write(rows, size)

    log._writer.write = slow_write  # type: ignore[method-assign]
    depths: list[int] = []

    async def main() -> list[str]:
        tasks = [asyncio.create_task(log.append({"i": i})) for i in range(30)]
        for _ in range(20):
            await asyncio.sleep(0.01)
            depths.append(log.queue_depth)
        assert not any(t.done() for t in tasks)
        gate.set()
        return await asyncio.gather(*tasks)

    ids = asyncio.run(main())
    assert max(depths) <= 4 + 4  # the queue bound, plus one batch being written
    assert set(_stored(log)) == set(ids) and len(ids) == 30


def test_append_sync_and_explicit_ids(database_url: str, make_log: MakeLog) -> None:
    log = make_log(database_url)
    entry_id = record.new_entry_id()
    assert log.append_sync({"action": "participant.admit"}, entry_id=entry_id) == entry_id
    with pytest.raises(DuplicateEntryError,
                       match=f"an audit entry with id {entry_id} already exists"):
        log.append_sync({"action": "other"}, entry_id=entry_id)
    assert log.append_sync({"after": True})  # the log still works after a refusal


def test_bad_records_fail_at_once_without_harming_the_batch(tmp_path, make_log) -> None:
    log = make_log(f"sqlite:///{tmp_path / 'a.db'}")
    with pytest.raises(record.RecordError, match="must not set 'ts'"):
        log.append_sync({"ts": "now"})
    with pytest.raises(record.RecordError, match="not JSON-serialisable"):
        log.append_sync({"x": {1, 2}})
    assert len(_stored(log)) == 0


def test_appending_to_a_closed_log_is_refused(tmp_path, make_log) -> None:
    log = make_log(f"sqlite:///{tmp_path / 'a.db'}")
    asyncio.run(log.aclose())
    with pytest.raises(AuditLogClosedError, match="the audit log is closed"):
        log.append_sync({"x": 1})


def test_a_failing_database_fails_the_append_rather_than_faking_it(tmp_path, make_log,
                                                                   monkeypatch,
                                                                   caplog) -> None:
    log = make_log(f"sqlite:///{tmp_path / 'a.db'}")
    monkeypatch.setattr(log_module, "_RETRIES", (0.0, 0.0))

    def broken(rows, size):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("disk I/O error")

    log._writer.write = broken  # type: ignore[method-assign]
    log._writer.connect = lambda: None  # type: ignore[method-assign]
    log._inline.write = broken  # type: ignore[union-attr,method-assign]  # the loop's path too
    with pytest.raises(AuditWriteError,
                       match="the audit entry could not be committed: disk I/O error"):
        asyncio.run(log.append({"x": 1}))
    assert any(r.name == "harbourgate.audit" and r.levelname == "ERROR"
               and "not committed after retries: disk I/O error" in r.getMessage()
               for r in caplog.records)  # the fault is logged with its reason


def test_checkpoints_sign_the_recomputed_root(database_url: str, make_log: MakeLog,
                                              signer) -> None:  # type: ignore[no-untyped-def]
    log = make_log(database_url)
    asyncio.run(_append_many(log, tasks=5, each=10))
    _drain(log)
    cp = log.checkpoint()
    assert cp.size == 50
    with log.engine.connect() as conn:
        leaves = [bytes(r[0]) for r in conn.execute(
            sa.text("SELECT leaf FROM audit_entries ORDER BY idx"))]
        stored = conn.execute(sa.text("SELECT note FROM audit_checkpoints "
                                      "ORDER BY tree_size DESC")).first()
    assert cp.root == merkle.root([merkle.leaf_hash(leaf) for leaf in leaves])
    assert open_checkpoint(stored[0], signer.verifier, signer.name).size == 50


def test_entries_and_proofs_across_tiles_and_restarts(database_url: str,
                                                      make_log: MakeLog) -> None:
    log = make_log(database_url, checkpoint_interval=0)
    ids = [log.append_sync({"i": i}) for i in range(3)]
    ids += asyncio.run(_append_many(log, tasks=20, each=30))  # > 2 tiles of 256
    _drain(log)
    first_cp = log.checkpoint()
    log.close()
    log = make_log(database_url, checkpoint_interval=0)  # restart: the tree is rebuilt
    ids += [log.append_sync({"late": i}) for i in range(5)]
    _drain(log)
    cp = log.checkpoint()
    assert cp.size == 608
    for entry_id in (ids[0], ids[300], ids[-1]):
        entry = log.entry(entry_id)
        assert entry.record["id"] == entry_id and entry.leaf == record.encode(
            {k: v for k, v in entry.record.items() if k not in ("id", "ts")}, entry_id,
            entry.record["ts"])
        proof = log.inclusion_proof(entry_id)
        assert proof.tree_size == cp.size
        merkle.verify_inclusion(entry.index, cp.size, merkle.leaf_hash(entry.leaf),
                                proof.hashes, cp.root)
    old = log.inclusion_proof(ids[1], tree_size=first_cp.size)
    merkle.verify_inclusion(old.index, first_cp.size, merkle.leaf_hash(log.entry(ids[1]).leaf),
                            old.hashes, first_cp.root)
    c = log.consistency_proof(first_cp.size, cp.size)
    merkle.verify_consistency(first_cp.size, cp.size, first_cp.root, cp.root, c.hashes)


def test_proof_requests_outside_the_tree_are_precise_errors(tmp_path, make_log) -> None:
    log = make_log(f"sqlite:///{tmp_path / 'a.db'}")
    ids = [log.append_sync({"i": i}) for i in range(5)]
    with pytest.raises(EntryNotFoundError, match="no audit entry with id 'nope'"):
        log.inclusion_proof("nope")
    with pytest.raises(InvalidProofRequestError,
                       match="tree_size=6 is beyond the tree, which has 5 entries"):
        log.inclusion_proof(ids[0], tree_size=6)
    with pytest.raises(InvalidProofRequestError, match="a tree of size 3 does not contain it; "
                       "ask for tree_size > 3"):
        log.inclusion_proof(ids[3], tree_size=3)
    with pytest.raises(InvalidProofRequestError,
                       match=r"first \(4\) must not be greater than second \(2\)"):
        log.consistency_proof(4, 2)
    with pytest.raises(InvalidProofRequestError, match="first must be at least 1"):
        log.consistency_proof(0, 2)
    with pytest.raises(InvalidProofRequestError, match="second=9 is beyond the tree"):
        log.consistency_proof(2, 9)


def test_a_leaf_changed_after_integration_is_caught_when_proving(tmp_path, make_log) -> None:
    log = make_log(f"sqlite:///{tmp_path / 'a.db'}")
    asyncio.run(_append_many(log, tasks=10, each=30))
    with log.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_entries SET leaf = "
                             "CAST(replace(leaf, 'allow', 'deny') AS BLOB) WHERE idx = 7"))
        entry_id = conn.execute(sa.text("SELECT id FROM audit_entries WHERE idx = 3")).scalar()
    with pytest.raises(TreeCorruptionError, match=r"the stored entries at indices 0\.\.255 no "
                       r"longer hash to the tree"):
        log.inclusion_proof(entry_id, tree_size=300)


def test_a_locked_database_hands_the_loops_batch_to_the_writer_thread(tmp_path,
                                                                     make_log) -> None:
    """The event loop commits SQLite batches itself but never sleeps on a lock: while
    another process holds the write lock, the batch waits in the writer thread instead,
    and no append returns before its commit."""
    import sqlite3

    path = tmp_path / "a.db"
    log = make_log(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)

    async def main() -> list[str]:
        await log.append({"warm": 1})  # the loop's own path works
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        tasks = [asyncio.create_task(log.append({"i": i})) for i in range(5)]
        await asyncio.sleep(0.2)
        assert not any(t.done() for t in tasks)  # nothing answered before its commit
        other.execute("COMMIT")
        return await asyncio.gather(*tasks)

    ids = asyncio.run(main())
    assert len(set(ids)) == 5
    stored = {row[0] for row in other.execute("SELECT id FROM audit_entries")}
    assert set(ids) <= stored
    other.close()


def test_the_loop_never_checkpoints_the_wal_the_writer_thread_does(tmp_path,  # type: ignore[no-untyped-def]
                                                                   make_log: MakeLog) -> None:
    """A WAL checkpoint copies pages into the database and syncs it: milliseconds that
    would stall every request in flight if a commit on the event loop ran it."""
    log = make_log(f"sqlite:///{tmp_path / 'audit.db'}", poll_interval=0.05)
    assert log._inline is not None
    assert log._inline._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0

    async def serially() -> list[str]:
        return [await log.append({"i": i}) for i in range(3 * log_module.WAL_CHECKPOINT_COMMITS)]

    ids = asyncio.run(serially())
    assert log.batches >= 3 * log_module.WAL_CHECKPOINT_COMMITS  # one transaction each
    deadline = time.monotonic() + 120
    while log._checkpointed_at < log.batches - log_module.WAL_CHECKPOINT_COMMITS:
        assert time.monotonic() < deadline, "the writer thread never checkpointed"
        time.sleep(0.05)
    assert set(_stored(log)) == set(ids)


def test_entries_another_connection_committed_are_integrated_before_the_next_write(
        tmp_path, make_log: MakeLog) -> None:  # type: ignore[no-untyped-def]
    """The loop's writer reads nothing back while only it commits; entries another
    process committed meanwhile still take their indices in the tree, in order."""
    path = tmp_path / "audit.db"
    log = make_log(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)

    async def append(n: int) -> list[str]:
        return [await log.append({"i": i}) for i in range(n)]

    ours = asyncio.run(append(3))
    theirs = [f"other-{i}" for i in range(3)]
    for entry_id in theirs:
        leaf = record.encode({"by": "another process"}, entry_id, record.timestamp())
        other.execute("INSERT INTO audit_entries (id, idx, leaf, created_at) "
                      "SELECT ?, MAX(idx) + 1, ?, 'ts' FROM audit_entries", (entry_id, leaf))
    ours += asyncio.run(append(2))
    stored = other.execute("SELECT id, leaf FROM audit_entries ORDER BY idx").fetchall()
    other.close()
    assert [entry_id for entry_id, _ in stored] == ours[:3] + theirs + ours[3:]
    assert log.size == len(stored)
    assert log.root() == merkle.root([merkle.leaf_hash(leaf) for _, leaf in stored])
