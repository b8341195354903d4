"""The audit log's state: a damage found by any process, kept for every process.

One row (id 1) at most. The integrator that finds the stored log contradicting its last
signed checkpoint writes what it found here; every process reads it at start and while it
runs, and then signs and records nothing. Restoring the database from a backup taken
before the damage removes it with the rest.

Revision ID: 0004_audit_state
Revises: 0003_quotas
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_audit_state"
down_revision = "0003_quotas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("damage", sa.Text(), nullable=True),
        sa.Column("detected_at", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_state"),
    )


def downgrade() -> None:
    op.drop_table("audit_state")
