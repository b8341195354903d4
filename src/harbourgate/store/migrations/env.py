"""Alembic environment: migrate the connection `Store.migrate()` hands over.

`harbourgate.store.migrate` opens the connection, takes the cross-process lock and
passes the connection in `config.attributes["connection"]`; this file only runs the
revisions on it. Offline mode (`--sql`) renders the SQL for a DBA to review.
"""

from __future__ import annotations

from alembic import context

from harbourgate.store.schema import metadata

config = context.config


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through harbourgate.store.Store.migrate()")
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
