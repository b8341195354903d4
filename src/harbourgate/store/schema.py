"""The one schema definition, for SQLite and PostgreSQL alike.

Migrations (Alembic, in `store/migrations`) are written against these tables; a test
checks that migrating an empty database yields exactly this metadata.
"""

from __future__ import annotations

import sqlalchemy as sa

# Deterministic constraint and index names, identical on SQLite and PostgreSQL, so the
# migrations can name what they create and later ones can drop or alter it.
metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# Timestamps are stored as ISO-8601 UTC text ("2026-06-12T00:00:00Z"): identical on both
# engines, sortable, and what the audit records carry anyway.
Timestamp = sa.String(32)

participants = sa.Table(
    "participants", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("jurisdiction", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="admitted"),
    sa.Column("screening", sa.String(32), nullable=False, server_default="clear"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

applications = sa.Table(
    "applications", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("participant_id", sa.String(64), sa.ForeignKey("participants.id"), nullable=False,
              index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("use_cases", sa.JSON, nullable=False),
    sa.Column("data_categories", sa.JSON, nullable=False),
    sa.Column("data_origin", sa.String(8), nullable=True),
    sa.Column("model_preference", sa.JSON, nullable=False),
    sa.Column("transfer_mechanisms", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("application_id", sa.String(64), sa.ForeignKey("applications.id"), nullable=False,
              index=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

approvals = sa.Table(
    "approvals", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("application_id", sa.String(64), sa.ForeignKey("applications.id"), nullable=False,
              index=True),
    sa.Column("approver", sa.String(200), nullable=False),
    sa.Column("conditions", sa.Text, nullable=False, server_default=""),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

directives = sa.Table(
    "directives", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("issued_at", Timestamp, nullable=False, index=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

# Bumped by every change the data plane must see (keys, applications, directives, ...):
# replicas poll it cheaply as the safety net under the Redis / NOTIFY announcements.
state_version = sa.Table(
    "state_version", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # one row, id 1
    sa.Column("version", sa.BigInteger, nullable=False),
)

# Audit entries: written by any replica (seq orders them), integrated by exactly one
# integrator, which assigns `idx` (the leaf index) and signs checkpoints.
audit_entries = sa.Table(
    "audit_entries", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("idx", sa.BigInteger, nullable=True, unique=True),
    sa.Column("leaf", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints", metadata,
    sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

# The decisions index: one row per request record of the audit log, written in the same
# transaction as the leaf (so no answered request lacks its row), for the console's
# filters, paging and plots, and for usage. The leaves remain the record; this is a copy of
# a few fields, rebuilt by the migration from the leaves. Two indexes only, because every
# row is written on the audit writer's hot path (measured: each (column, ts) index adds
# ~10-15 µs a row): time order for paging and the plots, and the application filter (the
# narrowest one); other filters walk the time index newest first until a page is full.
decisions = sa.Table(
    "decisions", metadata,
    sa.Column("audit_id", sa.String(40), primary_key=True),
    sa.Column("ts", Timestamp, nullable=False),
    sa.Column("participant", sa.String(64), nullable=True),
    sa.Column("application", sa.String(64), nullable=True),
    sa.Column("key", sa.String(64), nullable=True),
    sa.Column("endpoint", sa.String(64), nullable=True),
    sa.Column("model_requested", sa.String(200), nullable=True),
    sa.Column("model_served", sa.String(200), nullable=True),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(200), nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("code", sa.String(64), nullable=True),
    sa.Column("quota", sa.String(64), nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost", sa.Float, nullable=False, server_default="0"),
    sa.Index("ix_decisions_ts", "ts", "audit_id"),
    sa.Index("ix_decisions_application_ts", "application", "ts"),
)

# Quotas set through the admin API or seeded from the config's `quotas:`; `body` is the
# quota as `POST /admin/v1/quotas` takes it (with its id).
quotas = sa.Table(
    "quotas", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# The audit log's damage, once any process found the stored log contradicting its last
# signed checkpoint: one row (id 1); every process reads it and then signs and records
# nothing, until the database is restored (which removes the row with the damage).
audit_state = sa.Table(
    "audit_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("damage", sa.Text, nullable=True),
    sa.Column("detected_at", Timestamp, nullable=True),
)
