"""Storage: one schema for SQLite (default) and PostgreSQL (replicas).

Only the admin plane, the audit writer and the snapshot loader touch the database; the
request hot path works from in-memory snapshots (`load_registry`). Registry functions
take an open connection so that a change and its state-version bump share a
transaction::

    store = Store(settings.effective_database_url)
    store.migrate()
    apply_seed(store.engine, settings.sandbox, route_names=..., source=settings.source)
    with store.change() as conn:          # one transaction, state version bumped
        app = register_application(conn, participant_id="acme", name="Research")
        issued = issue_key(conn, app.id)  # issued.key: shown once
    registry = load_registry(store.engine)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from harbourgate.store import schema
from harbourgate.store.applications import (
    get_application,
    list_applications,
    register_application,
    update_application,
)
from harbourgate.store.approvals import (
    get_approval,
    list_approvals,
    record_approval,
    revoke_approval,
)
from harbourgate.store.errors import Conflict, InvalidReference, NotFound, StoreError
from harbourgate.store.keys import IssuedKey, find_key, get_key, issue_key, list_keys, revoke_key
from harbourgate.store.migrate import MigrationError, current_revision, head_revision, migrate
from harbourgate.store.participants import (
    admit_participant,
    get_participant,
    list_participants,
    update_participant,
)
from harbourgate.store.seed import SeedResult, apply_seed
from harbourgate.store.snapshot import load_registry
from harbourgate.store.state import bump_state_version, state_version
from harbourgate.store.timestamps import format_timestamp, parse_timestamp, utc_now

__all__ = [
    "Conflict", "InvalidReference", "IssuedKey", "MigrationError", "NotFound", "SeedResult",
    "Store", "StoreError", "admit_participant", "apply_seed", "bump_state_version",
    "create_engine", "current_revision", "find_key", "format_timestamp", "get_application",
    "get_approval", "get_key", "get_participant", "head_revision", "issue_key",
    "list_applications", "list_approvals", "list_keys", "list_participants", "load_registry",
    "normalise_url", "parse_timestamp", "record_approval", "register_application",
    "revoke_approval", "revoke_key", "schema", "state_version", "update_application",
    "update_participant", "utc_now",
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
            cur = dbapi_conn.cursor()
            # WAL: readers never block the audit writer; NORMAL is durable against a
            # process crash (the case the audit rule is about), FULL would add an fsync.
            cur.execute("PRAGMA journal_mode=WAL")
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

    @contextmanager
    def change(self) -> Iterator[sa.Connection]:
        """A transaction for a change the data plane must see: bumps the state version.

        Commits when the block ends (rolls back on an exception); replicas polling
        `state_version` then know to reload.
        """
        with self.engine.begin() as conn:
            yield conn
            bump_state_version(conn)

    def read(self) -> sa.Connection:
        """A connection for reads: `with store.read() as conn: ...`."""
        return self.engine.connect()

    def state_version(self) -> int:
        return state_version(self.engine)

    def close(self) -> None:
        self.engine.dispose()
