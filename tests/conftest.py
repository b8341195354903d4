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


@pytest.fixture(scope="session")
def ray_auth() -> Iterator[None]:
    """Ray's token authentication with a token of this session's own, in the environment
    (never the shared ~/.ray/auth_token)."""
    import secrets

    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                                                     "RAY_AUTH_TOKEN_PATH")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def ray_address(ray_auth: None) -> Iterator[str]:
    """A real local Ray cluster for the session (`ray start --head --block` on 127.0.0.1, 2
    CPUs, no dashboard) in its own process group; its address, for the code under test to
    join. Stopped by signalling that group only (never `ray stop`, which would stop every
    Ray on the machine)."""
    import contextlib
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("Ray tests need Ray: pip install -e '.[test]' (it brings ray[data]); "
                    "deselect them with -m 'not ray'")
    ray_cli = Path(sys.executable).with_name("ray")
    command = str(ray_cli) if ray_cli.exists() else shutil.which("ray")
    if command is None:
        pytest.skip("Ray tests need the `ray` command next to the Python that runs them")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="hgray")
    log = Path(temp) / "head.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    with log.open("wb") as out:
        head = subprocess.Popen(
            [command, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={temp}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and head.poll() is None:
        if "Ray runtime started" in log.read_text(errors="replace"):
            break
        time.sleep(0.5)
    else:
        os.killpg(head.pid, signal.SIGKILL)
        pytest.skip("Ray cannot start here (`ray start --head` said: "
                    f"{log.read_text(errors='replace').strip()[-400:]}); the Ray tests need a "
                    "machine where it can, or deselect them with -m 'not ray'")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # workers left in the group
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
