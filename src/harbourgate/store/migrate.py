"""Schema migrations: Alembic, driven from code, safe when replicas start together.

Every process runs `migrate` at start. The upgrade happens inside one transaction that
first takes a database-wide lock, so when two processes start at once the second waits,
then finds the schema at head and does nothing:

- PostgreSQL: `pg_advisory_xact_lock`, released when the transaction ends;
- SQLite: `BEGIN IMMEDIATE` on a dedicated connection (the write lock, taken before the
  version is read); SQLite DDL is transactional, so a failed upgrade leaves no trace.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from harbourgate.store.schema import metadata
from harbourgate.store.sqlite import ensure_wal

MIGRATIONS = Path(__file__).with_name("migrations")
ADVISORY_LOCK = 0x48_47_4D_49_47  # "HGMIG": any fixed 64-bit number, the same in every process


class MigrationError(Exception):
    """The database cannot be brought to the current schema; the message says why."""


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """The Alembic configuration of the shipped migrations, optionally bound to `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: sa.Engine) -> None:
    """Upgrade the database to the head revision (idempotent, concurrency-safe)."""
    if engine.dialect.name == "sqlite" and not _in_memory(engine):
        locking = _sqlite_locking_engine(engine)
        try:
            _upgrade(locking)
        finally:
            locking.dispose()
    else:
        _upgrade(engine)


def _upgrade(engine: sa.Engine) -> None:
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        context = MigrationContext.configure(conn)
        if context.get_current_revision() is None:
            existing = set(sa.inspect(conn).get_table_names()) & set(metadata.tables)
            if existing:
                raise MigrationError(
                    f"the database already has Harbourgate tables ({', '.join(sorted(existing))}) "
                    "but no migration history (alembic_version); it was not created by "
                    "`Store.migrate()`. Point database_url at an empty database, or move "
                    "this one aside.")
        # The transaction is already open, so Alembic runs inside it and does not commit.
        command.upgrade(alembic_config(conn), "head")


def _in_memory(engine: sa.Engine) -> bool:
    return engine.url.database in (None, "", ":memory:") or "mode=memory" in str(engine.url)


def _sqlite_locking_engine(engine: sa.Engine) -> sa.Engine:
    """A one-connection engine whose transactions start with `BEGIN IMMEDIATE`.

    The driver's own transaction handling is switched off (it would not begin before
    DDL, nor take the write lock before the first read); SQLAlchemy's recipe for that.
    """
    locking = sa.create_engine(engine.url, poolclass=sa.pool.NullPool,
                               connect_args={"timeout": 60})

    @sa.event.listens_for(locking, "connect")
    def _autocommit_driver(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        ensure_wal(dbapi_conn)
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(locking, "begin")
    def _begin_immediate(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return locking
