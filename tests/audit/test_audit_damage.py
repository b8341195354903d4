"""A damaged log never contradicts itself: it signs nothing and records nothing more.

Each test writes and signs a log, damages the database the way an accident or a careless
hand would (a leaf rewritten, the tail deleted, the file truncated, a page corrupted), and
checks that the log, started again or still running, names the damage, refuses every
append (the gateway's 503 audit_unavailable), signs no new checkpoint and hands out no
leaf index twice.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from harbourgate.audit import merkle, storage
from harbourgate.audit.errors import LogDamagedError
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import open_checkpoint
from harbourgate.audit.verify import verify_log

MakeLog = Callable[..., AuditLog]
ENTRIES = 600  # two complete tiles of 256 and part of a third


def _fill(log: AuditLog, n: int = ENTRIES) -> list[str]:
    async def go() -> list[str]:
        return [await log.append({"decision": "allow", "i": i}) for i in range(n)]

    before = log.size
    ids = asyncio.run(go())
    for _ in range(1200):  # PostgreSQL integrates after the commit: wait for it (generously)
        if log.checkpoint().size == before + n:
            return ids
        time.sleep(0.1)
    raise AssertionError(f"the log never integrated and signed {before + n} entries")


def _checkpoints(log: AuditLog) -> list[tuple[int, str]]:
    with log.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(  # type: ignore[misc]
            "SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size"))]


def _indices(log: AuditLog) -> list[int]:
    with log.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text(
            "SELECT idx FROM audit_entries WHERE idx IS NOT NULL ORDER BY idx"))]


def _execute(log: AuditLog, sql: str) -> None:
    with log.engine.begin() as conn:
        conn.execute(sa.text(sql))


def _assert_fails_closed(log: AuditLog, damage: str) -> None:
    """Refuses to record or sign, names the damage, still serves the last good checkpoint."""
    assert log.damage is not None and re.search(damage, log.damage), log.damage
    assert "harbourgate audit verify" in log.damage
    before = _checkpoints(log)
    with pytest.raises(LogDamagedError, match=damage):
        log.append_sync({"decision": "allow", "after": "damage"})

    async def appended() -> str:
        return await log.append({"decision": "allow", "after": "damage"})

    with pytest.raises(LogDamagedError):
        asyncio.run(appended())
    if before:
        assert log.checkpoint().note == before[-1][1]
    log.close()  # closing signs a last checkpoint when it can: here it must not
    assert _checkpoints(log) == before


def test_a_rewritten_leaf_is_caught_at_start(database_url: str, make_log: MakeLog) -> None:
    log = make_log(database_url)
    _fill(log)
    log.close()
    signed = _checkpoints(log)
    _execute(log, "UPDATE audit_entries SET leaf = "
                  f"{_replace(database_url, 'allow', 'deny!')} WHERE idx = 300")
    again = make_log(database_url)
    _assert_fails_closed(again, r"do not hash to the root of signed checkpoint 600: entries "
                                r"below index 600 were changed")
    assert _checkpoints(again) == signed


def test_a_deleted_tail_is_caught_at_start_and_no_index_is_reused(
        database_url: str, make_log: MakeLog) -> None:
    log = make_log(database_url)
    _fill(log)
    log.close()
    signed = _checkpoints(log)
    _execute(log, "DELETE FROM audit_entries WHERE idx >= 590")
    again = make_log(database_url)
    _assert_fails_closed(again, r"entries were deleted: checkpoint 600 was signed, the "
                                r"database holds 590 entries")
    assert _indices(again) == list(range(590))  # nothing written at 590..599 again
    assert _checkpoints(again) == signed


def test_damage_while_running_stops_signing_and_recording(
        database_url: str, make_log: MakeLog) -> None:
    """A running log checks the stored entries against its tree before every signature."""
    log = make_log(database_url)
    _fill(log)
    _execute(log, "DELETE FROM audit_entries WHERE idx >= 590")
    log.append_sync({"decision": "allow", "i": "late"})  # may still land: it is not signed
    with pytest.raises(LogDamagedError):
        for _ in range(50):  # the writer notices when it next signs
            log.checkpoint()
            log.append_sync({"decision": "allow", "i": "later"})
    _assert_fails_closed(log, r"(changed or deleted|entries were deleted|no entry at index)")
    assert max(c for c, _ in _checkpoints(log)) == 600
    indices = _indices(log)
    assert len(indices) == len(set(indices))


def test_a_rewritten_leaf_while_running_is_not_signed(tmp_path: Path,
                                                      make_log: MakeLog) -> None:
    log = make_log(f"sqlite:///{tmp_path / 'a.db'}")
    _fill(log)
    log.append_sync({"decision": "allow", "i": "unsigned"})
    _execute(log, "UPDATE audit_entries SET leaf = CAST(replace(leaf, 'unsigned', 'UNSIGNED')"
                  " AS BLOB) WHERE idx = 600")
    with pytest.raises(LogDamagedError):
        log._sign()
    _assert_fails_closed(log, r"the stored entry at index 600 no longer hashes to the tree")
    assert max(c for c, _ in _checkpoints(log)) == 600


def _sqlite_file(tmp_path: Path, make_log: MakeLog) -> tuple[str, Path, list[tuple[int, str]]]:
    path = tmp_path / "a.db"
    url = f"sqlite:///{path}"
    log = make_log(url)
    _fill(log, 3000)
    log.close()
    with log.engine.begin() as conn:
        conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
    signed = _checkpoints(log)
    log.engine.dispose()
    return url, path, signed


def test_a_truncated_file_is_caught_at_start(tmp_path: Path, make_log: MakeLog) -> None:
    url, path, signed = _sqlite_file(tmp_path, make_log)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size * 3 // 4)
    # SQLite refuses the file at once: nothing can start on it, so nothing is signed
    with pytest.raises(sa.exc.DatabaseError, match="malformed") as refused:
        make_log(url)
    assert storage.is_corruption(refused.value)
    assert path.stat().st_size == size * 3 // 4 and signed != []


def test_a_corrupted_page_is_caught_at_start(tmp_path: Path, make_log: MakeLog) -> None:
    url, path, signed = _sqlite_file(tmp_path, make_log)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    at = data.index(b'"i":1500')  # a page holding entries, well inside the file
    start = at - at % page
    data[start:start + 64] = b"\xa5" * 64  # its b-tree page header and cell pointers
    path.write_bytes(bytes(data))
    again = make_log(url)
    _assert_fails_closed(again, r"(database is corrupt|do not hash|no entry at index|deleted)")
    assert _checkpoints(again) == signed


def test_a_healthy_log_restarts_and_keeps_one_tree(database_url: str,
                                                   make_log: MakeLog) -> None:
    """The checks do not cry wolf: restarts of an undamaged log extend the same tree."""
    log = make_log(database_url)
    _fill(log, 300)
    log.close()
    for _ in range(2):
        again = make_log(database_url)
        assert again.damage is None
        _fill(again, 300)
        again.close()
    assert _indices(again) == list(range(900))
    reopened = make_log(database_url)
    notes = [open_checkpoint(note, again.signer.verifier, again.origin)
             for _, note in _checkpoints(again)]
    latest = notes[-1]
    assert latest.size == 900 and len(notes) >= 3
    for older in notes[:-1]:  # every checkpoint signed is a prefix of the latest: one tree
        proof = reopened.consistency_proof(older.size, latest.size)
        merkle.verify_consistency(older.size, latest.size, older.root, latest.root,
                                  list(proof.hashes))


def _replace(url: str, old: str, new: str) -> str:
    if url.startswith("sqlite"):
        return f"CAST(replace(leaf, '{old}', '{new}') AS BLOB)"
    return f"convert_to(replace(convert_from(leaf, 'UTF8'), '{old}', '{new}'), 'UTF8')"


def test_damage_found_by_one_process_stops_the_others_and_outlives_a_restart(
        database_url: str, make_log: MakeLog) -> None:
    """The entries and checkpoint signed last are deleted together: the stored log looks
    whole again, but the process that signed them knows. It records the damage in the
    database, every other process adopts it, and a restart does not forget it; a database
    restored from before the damage holds no such record."""
    a = make_log(database_url)
    b = make_log(database_url, poll_interval=0.05)
    _fill(a, 300)
    _fill(a, 1)
    _execute(a, "DELETE FROM audit_entries WHERE idx >= 300")
    _execute(a, "DELETE FROM audit_checkpoints WHERE tree_size > 300")
    with pytest.raises(LogDamagedError):
        a._sign()
    found = a.damage
    assert found is not None
    for _ in range(1200):  # b's writer reads the record within its poll interval
        if b.damage is not None:
            break
        time.sleep(0.1)
    assert b.damage is not None and b.damage.startswith(found)
    with pytest.raises(LogDamagedError):
        b.append_sync({"decision": "allow"})
    a.close()
    b.close()
    again = make_log(database_url)
    assert again.damage is not None and again.damage.startswith(found)
    report = verify_log(again.engine, again.signer.verifier, origin=again.origin)
    assert [f.kind for f in report.findings] == ["recorded_damage"]
    assert report.findings[0].message.startswith("a running gateway found the log damaged at ")
    again.close()
    _execute(again, "DELETE FROM audit_state")  # as a restored backup would be
    restored = make_log(database_url)
    assert restored.damage is None
    restored.append_sync({"decision": "allow", "after": "restore"})
