"""Applications: what a participant registers, and what its keys act as.

Same conventions as `participants`: an open connection in, frozen values out, values
validated by the caller, existence and uniqueness enforced here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from harbourgate.identity.model import Application
from harbourgate.store.errors import Conflict, InvalidReference, NotFound
from harbourgate.store.ids import new_id
from harbourgate.store.participants import participant_exists
from harbourgate.store.schema import applications as _table
from harbourgate.store.timestamps import utc_now

KIND = "application"
LISTS = ("use_cases", "data_categories", "model_preference", "transfer_mechanisms")
UPDATABLE = ("name", "data_origin", "status", *LISTS)


def register_application(conn: sa.Connection, *, participant_id: str, name: str,
                         use_cases: Iterable[str] = (), data_categories: Iterable[str] = (),
                         data_origin: str | None = None, model_preference: Iterable[str] = (),
                         transfer_mechanisms: Iterable[str] = (), id: str | None = None,
                         status: str = "active") -> Application:
    """Insert an application of an existing participant; without `id`, one from the name."""
    if not participant_exists(conn, participant_id):
        raise InvalidReference("participant_id", "participant", participant_id)
    if id is None:
        id = new_id(conn, _table, name, fallback=KIND)
    elif application_exists(conn, id):
        raise Conflict(KIND, id)
    now = utc_now()
    values: dict[str, Any] = {
        "id": id, "participant_id": participant_id, "name": name,
        "use_cases": list(use_cases), "data_categories": list(data_categories),
        "data_origin": data_origin, "model_preference": list(model_preference),
        "transfer_mechanisms": list(transfer_mechanisms), "status": status,
        "created_at": now, "updated_at": now,
    }
    try:
        conn.execute(_table.insert().values(**values))
    except sa.exc.IntegrityError as exc:  # registered concurrently under the same id
        raise Conflict(KIND, id) from exc
    return _to_application(values)


def get_application(conn: sa.Connection, id: str) -> Application:
    row = conn.execute(sa.select(_table).where(_table.c.id == id)).first()
    if row is None:
        raise NotFound(KIND, id)
    return to_application(row)


def list_applications(conn: sa.Connection, *,
                      participant_id: str | None = None) -> list[Application]:
    """All applications (or one participant's), oldest first."""
    query = sa.select(_table).order_by(_table.c.created_at, _table.c.id)
    if participant_id is not None:
        query = query.where(_table.c.participant_id == participant_id)
    return [to_application(row) for row in conn.execute(query)]


def update_application(conn: sa.Connection, id: str, /, **changes: Any) -> Application:
    """Change some of the declared fields (not the owner); return the result."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise TypeError(f"update_application() cannot change {', '.join(unknown)}")
    if not changes:
        return get_application(conn, id)
    values = {k: list(v) if k in LISTS else v for k, v in changes.items()}
    result = conn.execute(_table.update().where(_table.c.id == id)
                          .values(**values, updated_at=utc_now()))
    if result.rowcount == 0:
        raise NotFound(KIND, id)
    return get_application(conn, id)


def application_exists(conn: sa.Connection, id: str) -> bool:
    return conn.execute(sa.select(_table.c.id).where(_table.c.id == id)).first() is not None


def require_application(conn: sa.Connection, id: str) -> None:
    """Raise `NotFound` unless the application exists."""
    if not application_exists(conn, id):
        raise NotFound(KIND, id)


def to_application(row: sa.Row[Any]) -> Application:
    return _to_application(row._mapping)


def _to_application(values: Any) -> Application:
    return Application(
        id=values["id"], participant_id=values["participant_id"], name=values["name"],
        use_cases=tuple(values["use_cases"]), data_categories=tuple(values["data_categories"]),
        data_origin=values["data_origin"], model_preference=tuple(values["model_preference"]),
        transfer_mechanisms=tuple(values["transfer_mechanisms"]), status=values["status"],
        created_at=values["created_at"], updated_at=values["updated_at"],
    )
