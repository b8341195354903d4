"""Migrations: an empty database migrates to exactly `schema.metadata`, idempotently, and
safely when several processes start at once."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from harbourgate.store import MigrationError, Store, schema
from harbourgate.store.migrate import ADVISORY_LOCK, current_revision, head_revision
from harbourgate.store.state import state_version


def differences(store: Store, metadata: sa.MetaData = schema.metadata) -> list[object]:
    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_an_empty_database_migrates_to_exactly_the_schema(database_url: str) -> None:
    store = Store(database_url)
    try:
        assert current_revision(store.engine) is None
        store.migrate()
        assert differences(store) == []
        assert current_revision(store.engine) == head_revision() == "0004_audit_state"
        assert state_version(store.engine) == 0
    finally:
        store.close()


def test_the_comparison_would_see_a_difference(store: Store) -> None:
    """Guard for the test above: compare_metadata does notice a column the database lacks."""
    changed = sa.MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["participants"].append_column(sa.Column("website", sa.String(200)))
    diffs = differences(store, changed)
    assert any(d[0] == "add_column" and d[3].name == "website" for d in diffs)  # type: ignore[index]


def test_migrating_twice_changes_nothing(store: Store) -> None:
    with store.change() as conn:
        conn.execute(schema.participants.insert().values(
            id="acme", name="Acme", jurisdiction="HK", created_at="2026-06-01T00:00:00Z",
            updated_at="2026-06-01T00:00:00Z"))
    store.migrate()
    store.migrate()
    assert differences(store) == []
    assert current_revision(store.engine) == head_revision()
    assert state_version(store.engine) == 1
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM state_version")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM participants")).scalar() == 1


def test_a_database_with_tables_but_no_history_is_refused(database_url: str) -> None:
    store = Store(database_url)
    try:
        schema.metadata.create_all(store.engine)
        with pytest.raises(MigrationError) as caught:
            store.migrate()
        assert "no migration history" in str(caught.value)
        assert "participants" in str(caught.value)
    finally:
        store.close()


def test_threads_migrating_at_once_all_succeed(database_url: str) -> None:
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        store = Store(database_url)
        try:
            start.wait()
            store.migrate()
        except BaseException as exc:  # collected, asserted below
            failures.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    store = Store(database_url)
    try:
        assert differences(store) == []
        assert state_version(store.engine) == 0
    finally:
        store.close()


def test_processes_migrating_at_once_all_succeed(database_url: str) -> None:
    code = ("import sys; from harbourgate.store import Store; s = Store(sys.argv[1]); "
            "s.migrate(); s.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, database_url],
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(proc.wait(timeout=60), proc.stderr.read() if proc.stderr else "")
               for proc in procs]
    assert [rc for rc, _ in results] == [0, 0, 0], [err for _, err in results]
    store = Store(database_url)
    try:
        assert differences(store) == []
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM state_version")).scalar() == 1
    finally:
        store.close()


def test_postgres_migration_waits_for_the_advisory_lock(postgres_url: str) -> None:
    holder = Store(postgres_url)
    store = Store(postgres_url)
    try:
        with holder.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK})
            migration = threading.Thread(target=store.migrate)
            migration.start()
            migration.join(timeout=1.0)
            assert migration.is_alive(), "migrate() ran while another process held the lock"
            assert current_revision(store.engine) is None
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK})
            conn.commit()
        migration.join(timeout=60)
        assert not migration.is_alive()
        assert current_revision(store.engine) == head_revision()
    finally:
        store.close()
        holder.close()


def test_sqlite_migration_waits_for_the_write_lock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    store = Store(url)
    holder = sa.create_engine(url, poolclass=sa.pool.NullPool,
                              connect_args={"isolation_level": None})
    try:
        store.ping()  # the database now exists, in WAL mode: readers would not wait
        with holder.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            migration = threading.Thread(target=store.migrate)
            migration.start()
            migration.join(timeout=1.0)
            assert migration.is_alive(), "migrate() ran while another writer held the lock"
            conn.exec_driver_sql("COMMIT")
        migration.join(timeout=60)
        assert not migration.is_alive()
        assert current_revision(store.engine) == head_revision()
        assert differences(store) == []
    finally:
        store.close()
        holder.dispose()


def test_an_in_memory_sqlite_database_migrates_too() -> None:
    store = Store("sqlite://")
    try:
        store.migrate()
        assert current_revision(store.engine) == head_revision()
    finally:
        store.close()
