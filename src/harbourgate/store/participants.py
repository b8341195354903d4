"""Participants: the organisations admitted to the sandbox.

Functions take an open connection, so a caller composes several of them (and the state
version bump) into one transaction: `with store.change() as conn: admit_participant(...)`.
Values are validated by the caller (admin schemas, config seed); these functions enforce
what only the database can: existence and uniqueness.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from harbourgate.identity.model import Participant
from harbourgate.store.errors import Conflict, NotFound
from harbourgate.store.ids import new_id
from harbourgate.store.schema import participants as _table
from harbourgate.store.timestamps import utc_now

KIND = "participant"
UPDATABLE = ("name", "jurisdiction", "status", "screening")


def admit_participant(conn: sa.Connection, *, name: str, jurisdiction: str,
                      id: str | None = None, status: str = "admitted",
                      screening: str = "clear") -> Participant:
    """Insert a participant; without `id`, one is made from the name."""
    if id is None:
        id = new_id(conn, _table, name, fallback=KIND)
    elif _exists(conn, id):
        raise Conflict(KIND, id)
    now = utc_now()
    values = {"id": id, "name": name, "jurisdiction": jurisdiction, "status": status,
              "screening": screening, "created_at": now, "updated_at": now}
    try:
        conn.execute(_table.insert().values(**values))
    except sa.exc.IntegrityError as exc:  # admitted concurrently under the same id; the
        raise Conflict(KIND, id) from exc  # caller's transaction rolls back
    return Participant(**values)


def get_participant(conn: sa.Connection, id: str) -> Participant:
    row = conn.execute(sa.select(_table).where(_table.c.id == id)).first()
    if row is None:
        raise NotFound(KIND, id)
    return to_participant(row)


def list_participants(conn: sa.Connection, *, status: str | None = None) -> list[Participant]:
    """All participants (or those with `status`), oldest first."""
    query = sa.select(_table).order_by(_table.c.created_at, _table.c.id)
    if status is not None:
        query = query.where(_table.c.status == status)
    return [to_participant(row) for row in conn.execute(query)]


def update_participant(conn: sa.Connection, id: str, /, **changes: Any) -> Participant:
    """Change some of `name`, `jurisdiction`, `status`, `screening`; return the result."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise TypeError(f"update_participant() cannot change {', '.join(unknown)}")
    if not changes:
        return get_participant(conn, id)
    result = conn.execute(_table.update().where(_table.c.id == id)
                          .values(**changes, updated_at=utc_now()))
    if result.rowcount == 0:
        raise NotFound(KIND, id)
    return get_participant(conn, id)


def participant_exists(conn: sa.Connection, id: str) -> bool:
    return _exists(conn, id)


def _exists(conn: sa.Connection, id: str) -> bool:
    return conn.execute(sa.select(_table.c.id).where(_table.c.id == id)).first() is not None


def to_participant(row: sa.Row[Any]) -> Participant:
    return Participant(id=row.id, name=row.name, jurisdiction=row.jurisdiction,
                       status=row.status, screening=row.screening,
                       created_at=row.created_at, updated_at=row.updated_at)
