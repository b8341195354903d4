"""API keys of applications: issued (the plain key returned once), listed, revoked, found.

Only the SHA-256 hash is stored (`harbourgate.identity.keys`); the plain key exists in
the `IssuedKey` handed back by `issue_key` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from harbourgate.identity.keys import generate_key, generate_key_id
from harbourgate.identity.model import ApiKey
from harbourgate.store.applications import require_application
from harbourgate.store.errors import NotFound
from harbourgate.store.schema import api_keys as _table
from harbourgate.store.timestamps import utc_now

KIND = "key"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly issued key: `key` is the plain key, to show the caller once."""

    key: str
    record: ApiKey

    def __repr__(self) -> str:  # keep the plain key out of logs and tracebacks
        return f"IssuedKey(key='{self.record.prefix}…', record={self.record!r})"


def issue_key(conn: sa.Connection, application_id: str) -> IssuedKey:
    """A new key for an existing application."""
    require_application(conn, application_id)
    key, key_hash, prefix = generate_key()
    record = ApiKey(id=generate_key_id(), application_id=application_id, key_hash=key_hash,
                    prefix=prefix, created_at=utc_now())
    conn.execute(_table.insert().values(
        id=record.id, application_id=record.application_id, key_hash=record.key_hash,
        prefix=record.prefix, created_at=record.created_at, revoked_at=None))
    return IssuedKey(key=key, record=record)


def get_key(conn: sa.Connection, key_id: str) -> ApiKey:
    row = conn.execute(sa.select(_table).where(_table.c.id == key_id)).first()
    if row is None:
        raise NotFound(KIND, key_id)
    return to_api_key(row)


def list_keys(conn: sa.Connection, application_id: str) -> list[ApiKey]:
    """An application's keys, revoked ones included, oldest first."""
    require_application(conn, application_id)
    query = (sa.select(_table).where(_table.c.application_id == application_id)
             .order_by(_table.c.created_at, _table.c.id))
    return [to_api_key(row) for row in conn.execute(query)]


def revoke_key(conn: sa.Connection, key_id: str) -> tuple[ApiKey, bool]:
    """Revoke a key: `(the key, True)`, or `(the key, False)` if it already was revoked."""
    result = conn.execute(
        _table.update().where(_table.c.id == key_id, _table.c.revoked_at.is_(None))
        .values(revoked_at=utc_now()))
    return get_key(conn, key_id), result.rowcount == 1


def find_key(conn: sa.Connection, key_hash: str) -> ApiKey | None:
    """The key stored under this hash, revoked or not; None if there is none."""
    row = conn.execute(sa.select(_table).where(_table.c.key_hash == key_hash)).first()
    return None if row is None else to_api_key(row)


def to_api_key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(id=row.id, application_id=row.application_id, key_hash=row.key_hash,
                  prefix=row.prefix, created_at=row.created_at, revoked_at=row.revoked_at)
