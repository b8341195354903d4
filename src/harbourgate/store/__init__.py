"""Storage: one schema for SQLite (default) and PostgreSQL (replicas).

Only the admin plane, the audit writer and the snapshot loader touch the database; the
request hot path works from in-memory snapshots (`registry.load_registry`). Registry
functions take an open connection so that a change and its state-version bump share a
transaction::

    from harbourgate.store import Store, registry

    store = Store(settings.effective_database_url)
    store.migrate()
    registry.apply_seed(store.engine, settings.sandbox, source=settings.source)
    with store.change() as conn:          # one transaction, state version bumped
        app = registry.register_application(conn, participant_id="acme", name="Research",
                                            use_cases=["research.b2b"])
        issued = registry.issue_key(conn, app.id)  # issued.key: shown once, never stored
    snapshot = registry.load_registry(store.engine)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import sqlalchemy as sa

from harbourgate.store import registry, schema
from harbourgate.store.errors import Conflict, InvalidReference, NotFound, StoreError
from harbourgate.store.migrate import MigrationError, migrate
from harbourgate.store.sqlite import ensure_wal
from harbourgate.store.state import bump_state_version, state_version

__all__ = [
    "Conflict", "InvalidReference", "MigrationError", "NotFound", "Store", "StoreError",
    "create_engine", "normalise_url", "registry", "schema",
]


def normalise_url(url: str) -> str:
    """Accept postgres://, postgresql:// and sqlite:/// URLs; use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def create_engine(url: str) -> sa.Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL: readers never block the audit writer; NORMAL is durable against a
            # process crash (the case the audit rule is about), FULL would add an fsync.
            ensure_wal(dbapi_conn)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Store:
    """The database behind a deployment: an engine plus the schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"

    def migrate(self) -> None:
        """Bring the schema up to date (idempotent; safe when replicas start together)."""
        migrate(self.engine)

    def ping(self) -> None:
        """Raise unless the database answers (for readiness checks)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    @contextmanager
    def change(self) -> Iterator[sa.Connection]:
        """A transaction for a change the data plane must see: bumps the state version.

        Commits when the block ends (rolls back on an exception); replicas polling
        `state_version` then know to reload.
        """
        with self.engine.begin() as conn:
            yield conn
            bump_state_version(conn)

    def transaction(self) -> AbstractContextManager[sa.Connection]:
        """A plain transaction; call `registry.bump_state_version(conn)` if it changes state."""
        return self.engine.begin()

    def read(self) -> sa.Connection:
        """A connection for reads: `with store.read() as conn: ...`."""
        return self.engine.connect()

    def state_version(self) -> int:
        return state_version(self.engine)

    def close(self) -> None:
        self.engine.dispose()
