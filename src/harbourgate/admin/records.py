"""Recorded request decisions, read back from the audit log (no HTTP here).

The gateway writes one `kind: request` record per data-plane request; the decisions
endpoint and `directive simulate` read them back. The log's leaves are the only copy, so
filtering by application or decision happens after decoding; the scan walks the table in
primary-key pages from the newest entry back and stops at `since`, so its cost is bounded
by the window asked for, not by the size of the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa

from harbourgate.audit import record
from harbourgate.audit.storage import ENTRIES
from harbourgate.policy.timeutil import parse_instant

REQUEST = "request"
DECISIONS = ("allow", "reroute", "deny")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PAGE = 1000


def parse_since(text: str) -> datetime:
    """An ISO-8601 instant with a zone, or a bare date (`2026-06-01`, midnight UTC).

    A bare time without a zone is refused: replicas and auditors in different zones
    would read it differently. `ValueError` carries a message fit for the user.
    """
    text = text.strip()
    if _DATE.fullmatch(text):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"{text!r} is not a calendar date") from None
    return parse_instant(text)


def recorded_requests(engine: sa.Engine, *, since: datetime | None = None,
                      application: str | None = None, decision: str | None = None,
                      page: int = _PAGE) -> Iterator[dict[str, object]]:
    """The request records of the log, newest first, optionally filtered.

    Records are yielded as the log holds them (`id` and `ts` included); leaves that are
    not request records (admin actions, interrupted streams) are skipped.
    """
    floor = record.timestamp(since) if since is not None else None
    before: int | None = None
    while True:
        query = sa.select(ENTRIES.c.seq, ENTRIES.c.leaf).order_by(ENTRIES.c.seq.desc()).limit(page)
        if before is not None:
            query = query.where(ENTRIES.c.seq < before)
        if floor is not None:
            query = query.where(ENTRIES.c.created_at >= floor)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            try:
                found = record.decode(bytes(row.leaf))
            except record.RecordError:
                continue  # `harbourgate audit verify` reports a malformed leaf
            if found.get("kind") != REQUEST:
                continue
            if application is not None and found.get("application") != application:
                continue
            if decision is not None and found.get("decision") != decision:
                continue
            yield found
        if len(rows) < page:
            return
        before = rows[-1].seq
