"""The decisions index, built from the audit log's existing leaves.

Revision ID: 0002_decisions
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from harbourgate.audit.decisions_index import index_rows

revision = "0002_decisions"
down_revision = "0001"
branch_labels = None
depends_on = None

Timestamp = sa.String(32)
_CHUNK = 5000


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("audit_id", sa.String(40), nullable=False),
        sa.Column("ts", Timestamp, nullable=False),
        sa.Column("participant", sa.String(64), nullable=True),
        sa.Column("application", sa.String(64), nullable=True),
        sa.Column("key", sa.String(64), nullable=True),
        sa.Column("endpoint", sa.String(64), nullable=True),
        sa.Column("model_requested", sa.String(200), nullable=True),
        sa.Column("model_served", sa.String(200), nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(200), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("quota", sa.String(64), nullable=True),
        *(sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
          for name in ("input_tokens", "output_tokens", "cache_read_tokens",
                       "cache_write_tokens", "reasoning_tokens")),
        sa.Column("cost", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("audit_id", name="pk_decisions"),
    )
    for name, columns in (("ix_decisions_ts", ["ts", "audit_id"]),
                          ("ix_decisions_application_ts", ["application", "ts"])):
        op.create_index(name, "decisions", columns)
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """Index the leaves already in the log, in `seq` order (usage follow-ups after their
    requests), a chunk at a time."""
    raw = conn.connection.driver_connection
    paramstyle = "?" if conn.dialect.name == "sqlite" else "%s"
    after = 0
    while True:
        rows = conn.execute(sa.text("SELECT seq, leaf FROM audit_entries WHERE seq > :after "
                                    "ORDER BY seq LIMIT :n"), {"after": after, "n": _CHUNK}).all()
        if not rows:
            return
        cursor = raw.cursor()
        try:
            index_rows(cursor, [bytes(r.leaf) for r in rows], paramstyle)
        finally:
            cursor.close()
        after = rows[-1].seq


def downgrade() -> None:
    op.drop_table("decisions")
