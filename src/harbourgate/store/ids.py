"""Readable ids for participants and applications that were admitted without one."""

from __future__ import annotations

import re
import secrets
import unicodedata

import sqlalchemy as sa

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_SLUG = 48  # leaves room for the "-xxxxxx" suffix within the 64-character limit


def slugify(name: str) -> str:
    """`Acme Research Ltd.` -> `acme-research-ltd`; a name with no Latin letters -> ``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_name.lower()).strip("-")[:MAX_SLUG].strip("-")


def new_id(conn: sa.Connection, table: sa.Table, name: str, *, fallback: str) -> str:
    """The slug of `name` if free in `table`, else the slug with a random suffix.

    `fallback` (e.g. `participant`) stands in for a name that has no usable letters, so
    the id still says what it is.
    """
    base = slugify(name) or fallback
    candidate = base
    while conn.execute(sa.select(table.c.id).where(table.c.id == candidate)).first():
        candidate = f"{base}-{secrets.token_hex(3)}"
    return candidate
