"""Alembic migrations, run programmatically by `Store.migrate()` (no alembic.ini needed)."""
