"""Shared fixtures: real PostgreSQL and Redis when the environment names them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ENV = "HARBOURGATE_TEST_POSTGRES_URL"
REDIS_ENV = "HARBOURGATE_TEST_REDIS_URL"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}, e.g. "
                    f"{POSTGRES_ENV}=postgresql://postgres@127.0.0.1:5432/test (.ci/run sets it)")
    import sqlalchemy as sa

    from harbourgate.store import normalise_url

    name = f"hg_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(normalise_url(base)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV}, e.g. {REDIS_ENV}=redis://127.0.0.1:6379/0 "
                    "(.ci/run sets it)")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Run a storage test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'harbourgate.db'}"
    return request.getfixturevalue("postgres_url")
