"""Quotas set through the admin API or seeded from the config.

Revision ID: 0003_quotas
Revises: 0002_decisions
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_quotas"
down_revision = "0002_decisions"
branch_labels = None
depends_on = None

Timestamp = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "quotas",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quotas"),
    )


def downgrade() -> None:
    op.drop_table("quotas")
