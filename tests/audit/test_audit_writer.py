"""The SQLite writer's transaction: what it reads back of other connections' commits."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.audit import storage
from harbourgate.store import Store

WRITERS = 2  # writers with their own connection and tree size, as two processes have
OTHER = WRITERS  # a commit through the pool: `record_in`, another tool


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, OTHER), st.integers(1, 3), st.integers(0, 2)),
                max_size=25))
def test_every_write_integrates_what_others_committed_first_in_order(
        steps: list[tuple[int, int, int]]) -> None:
    """Whoever commits, and however stale the tree a writer is given (`behind` its own
    last commit), each write returns exactly the leaves committed since that tree's size,
    in index order, and indexes its rows next: the read-back, skipped when nobody else
    committed, must never skip one."""
    with tempfile.TemporaryDirectory() as work:
        store = Store(f"sqlite:///{Path(work) / 'audit.db'}")
        store.migrate()
        writers = [storage.SqliteWriter(store.engine, wait=k == 0) for k in range(WRITERS)]
        for writer in writers:
            writer.connect()
        log: list[bytes] = []  # the leaves by index, as committed
        known = [0] * WRITERS  # how many of them each writer's tree holds
        try:
            for step, (who, count, behind) in enumerate(steps):
                rows = [storage.Row(f"{step}-{i}", f"leaf {step}-{i}".encode(), "ts")
                        for i in range(count)]
                if who == OTHER:
                    with store.engine.begin() as conn:
                        for row in rows:
                            assert storage.insert_entry(conn, row) == len(log)
                            log.append(row.leaf)
                    continue
                size = max(0, known[who] - behind)
                caught_up, first = writers[who].write(rows, size)
                assert caught_up == log[size:] and first == len(log)
                log.extend(row.leaf for row in rows)
                known[who] = len(log)
        finally:
            for writer in writers:
                writer.close()
            store.close()
