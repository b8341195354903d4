"""Approvals of high-risk applications: who approved, on what conditions, until when.

The policy decides which applications need one (tier `high`) and checks validity at
decision time with `Approval.valid_at`; this module only records and lists them.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from harbourgate.identity.model import Approval
from harbourgate.store.applications import require_application
from harbourgate.store.errors import NotFound
from harbourgate.store.schema import approvals as _table
from harbourgate.store.timestamps import utc_now

KIND = "approval"


def record_approval(conn: sa.Connection, application_id: str, *, approver: str,
                    expires_at: str, conditions: str = "") -> Approval:
    """Record an approval of an existing application (`expires_at`: ISO-8601 UTC, Z)."""
    require_application(conn, application_id)
    approval = Approval(id="apr_" + secrets.token_hex(8), application_id=application_id,
                        approver=approver, conditions=conditions, expires_at=expires_at,
                        created_at=utc_now())
    conn.execute(_table.insert().values(
        id=approval.id, application_id=application_id, approver=approver,
        conditions=conditions, expires_at=expires_at, created_at=approval.created_at))
    return approval


def get_approval(conn: sa.Connection, approval_id: str) -> Approval:
    row = conn.execute(sa.select(_table).where(_table.c.id == approval_id)).first()
    if row is None:
        raise NotFound(KIND, approval_id)
    return to_approval(row)


def list_approvals(conn: sa.Connection, application_id: str) -> list[Approval]:
    """An application's approvals, revoked and expired ones included, oldest first."""
    require_application(conn, application_id)
    query = (sa.select(_table).where(_table.c.application_id == application_id)
             .order_by(_table.c.created_at, _table.c.id))
    return [to_approval(row) for row in conn.execute(query)]


def revoke_approval(conn: sa.Connection, approval_id: str) -> tuple[Approval, bool]:
    """Withdraw an approval: `(it, True)`, or `(it, False)` if it already was withdrawn."""
    result = conn.execute(
        _table.update().where(_table.c.id == approval_id, _table.c.revoked_at.is_(None))
        .values(revoked_at=utc_now()))
    return get_approval(conn, approval_id), result.rowcount == 1


def to_approval(row: sa.Row[Any]) -> Approval:
    return Approval(id=row.id, application_id=row.application_id, approver=row.approver,
                    conditions=row.conditions, expires_at=row.expires_at,
                    created_at=row.created_at, revoked_at=row.revoked_at)
