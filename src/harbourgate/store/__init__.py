"""Storage: one schema for SQLite (default) and PostgreSQL (replicas).

Only the admin plane, the audit writer and the snapshot loader touch the database; the
request hot path works from in-memory snapshots.
"""

from __future__ import annotations

import sqlalchemy as sa

from harbourgate.store import schema


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
        """Bring the schema up to date (idempotent)."""
        schema.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()
