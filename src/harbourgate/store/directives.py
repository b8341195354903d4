"""Directives as issued: the document, when it was issued, and when (if) it was revoked.

The stored body is the validated document (`Directive.to_dict()`, id included), so what
the data plane compiles is exactly what the authority's text said.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from harbourgate.directives.model import Directive
from harbourgate.store.errors import Conflict, NotFound
from harbourgate.store.schema import directives as _table
from harbourgate.store.timestamps import utc_now

KIND = "directive"


@dataclass(frozen=True, slots=True)
class StoredDirective:
    directive: Directive
    issued_at: str
    revoked_at: str | None = None

    @property
    def id(self) -> str:
        assert self.directive.id is not None
        return self.directive.id

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at else "issued"

    def to_dict(self) -> dict[str, Any]:
        """The directive document plus `id`, `issued_at`, `revoked_at` and `status`."""
        return {**self.directive.to_dict(), "id": self.id, "issued_at": self.issued_at,
                "revoked_at": self.revoked_at, "status": self.status}


def new_directive_id() -> str:
    return "dir_" + secrets.token_hex(8)


def issue_directive(conn: sa.Connection, directive: Directive) -> StoredDirective:
    """Store a validated directive; it gets an id unless its document carried one."""
    ident = directive.id or new_directive_id()
    if conn.execute(sa.select(_table.c.id).where(_table.c.id == ident)).first():
        raise Conflict(KIND, ident)
    stored = Directive.from_dict({**directive.to_dict(), "id": ident})
    issued_at = utc_now()
    conn.execute(_table.insert().values(id=ident, body=stored.to_dict(), issued_at=issued_at,
                                        revoked_at=None))
    return StoredDirective(stored, issued_at)


def get_directive(conn: sa.Connection, directive_id: str) -> StoredDirective:
    row = conn.execute(sa.select(_table).where(_table.c.id == directive_id)).first()
    if row is None:
        raise NotFound(KIND, directive_id)
    return _to_stored(row)


def list_directives(conn: sa.Connection, *, include_revoked: bool = True
                    ) -> list[StoredDirective]:
    """Directives in the order they were issued."""
    query = sa.select(_table).order_by(_table.c.issued_at, _table.c.id)
    if not include_revoked:
        query = query.where(_table.c.revoked_at.is_(None))
    return [_to_stored(row) for row in conn.execute(query)]


def revoke_directive(conn: sa.Connection, directive_id: str) -> tuple[StoredDirective, bool]:
    """Revoke; returns the directive and whether this call revoked it (idempotent)."""
    current = get_directive(conn, directive_id)
    if current.revoked_at:
        return current, False
    revoked_at = utc_now()
    conn.execute(_table.update().where(_table.c.id == directive_id)
                 .values(revoked_at=revoked_at))
    return StoredDirective(current.directive, current.issued_at, revoked_at), True


def _to_stored(row: sa.Row[Any]) -> StoredDirective:
    return StoredDirective(Directive.from_dict(row.body, source=f"directive {row.id}"),
                           row.issued_at, row.revoked_at)
