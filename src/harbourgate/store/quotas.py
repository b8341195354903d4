"""Quotas as stored: the validated document by id, set (created or replaced) and removed.

A change happens inside the caller's transaction, which bumps the state version, so every
replica reloads its snapshot (and with it the quotas it enforces) within a second.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from harbourgate.quotas.model import Quota, QuotaError, parse_quota
from harbourgate.store import schema
from harbourgate.store.errors import InvalidReference, NotFound
from harbourgate.store.timestamps import utc_now

log = logging.getLogger("harbourgate.quotas")
_table = schema.quotas
KIND = "quota"


def check_scope(conn: sa.Connection, quota: Quota) -> None:
    """`InvalidReference` naming `scope.<key>` when the scope names an unknown id."""
    for key, kind, column in (("participant", "participant", schema.participants.c.id),
                              ("application", "application", schema.applications.c.id),
                              ("key", "api key", schema.api_keys.c.id)):
        ident = getattr(quota.scope, key)
        if ident is not None and conn.execute(
                sa.select(column).where(column == ident)).first() is None:
            raise InvalidReference(f"scope.{key}", kind, ident)


def set_quota(conn: sa.Connection, quota: Quota) -> tuple[dict[str, Any], bool]:
    """Create or replace the quota with this id; (stored document, created?)."""
    now = utc_now()
    body = quota.to_dict()
    found = conn.execute(sa.select(_table.c.created_at).where(_table.c.id == quota.id)).first()
    if found is None:
        conn.execute(_table.insert().values(id=quota.id, body=body, created_at=now,
                                            updated_at=now))
        return _out(body, now, now), True
    conn.execute(_table.update().where(_table.c.id == quota.id).values(body=body,
                                                                       updated_at=now))
    return _out(body, found.created_at, now), False


def insert_missing(conn: sa.Connection, quotas: Iterable[Quota]) -> list[str]:
    """Insert the quotas whose id is not stored yet (the config seed); their ids."""
    added: list[str] = []
    for quota in quotas:
        if conn.execute(sa.select(_table.c.id).where(_table.c.id == quota.id)).first() is None:
            now = utc_now()
            conn.execute(_table.insert().values(id=quota.id, body=quota.to_dict(),
                                                created_at=now, updated_at=now))
            added.append(quota.id)
    return added


def get_quota(conn: sa.Connection, quota_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(_table).where(_table.c.id == quota_id)).first()
    if row is None:
        raise NotFound(KIND, quota_id)
    return _out(row.body, row.created_at, row.updated_at)


def delete_quota(conn: sa.Connection, quota_id: str) -> dict[str, Any]:
    """Remove a quota; `NotFound` if there is none. Returns what was removed."""
    row = conn.execute(sa.select(_table).where(_table.c.id == quota_id)).first()
    if row is None:
        raise NotFound(KIND, quota_id)
    conn.execute(_table.delete().where(_table.c.id == quota_id))
    return _out(row.body, row.created_at, row.updated_at)


def list_quotas(conn: sa.Connection, *, after: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
    """Stored quotas by id (from `after` on, at most `limit`)."""
    query = sa.select(_table).order_by(_table.c.id)
    if after is not None:
        query = query.where(_table.c.id > after)
    if limit is not None:
        query = query.limit(limit)
    return [_out(r.body, r.created_at, r.updated_at) for r in conn.execute(query)]


def load_quotas(conn: sa.Connection) -> tuple[Quota, ...]:
    """The quotas in force, parsed (a row that no longer validates is skipped, loudly:
    it was valid when stored, so only a hand edit of the table gets here)."""
    out: list[Quota] = []
    for row in conn.execute(sa.select(_table.c.id, _table.c.body).order_by(_table.c.id)):
        try:
            out.append(parse_quota(row.body, default_id=row.id))
        except QuotaError as exc:
            log.error(
                "stored quota %s is invalid and not enforced: %s", row.id, exc)
    return tuple(out)


def _out(body: dict[str, Any], created_at: str, updated_at: str) -> dict[str, Any]:
    return {**body, "created_at": created_at, "updated_at": updated_at}
