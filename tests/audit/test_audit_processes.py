"""Real processes: SIGKILL under load loses no returned id; two replicas build one tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from harbourgate.audit.keys import create_key
from harbourgate.audit.note import Signer
from harbourgate.audit.verify import verify_log
from harbourgate.store import Store

APPENDER = Path(__file__).with_name("_appender.py")
ORIGIN = "test.harbourgate/audit"


def _spawn(url: str, key: Path, count: int, concurrency: int,
           barrier: Path | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, str(APPENDER), url, str(key), str(count), str(concurrency)]
    if barrier:
        args.append(str(barrier))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _ids_in_db(url: str) -> set[str]:
    store = Store(url)
    with store.engine.connect() as conn:
        ids = set(conn.execute(sa.text("SELECT id FROM audit_entries")).scalars())
    store.close()
    return ids


def test_sigkill_under_load_loses_no_id_a_client_received(database_url: str,
                                                           tmp_path: Path) -> None:
    Store(database_url).migrate()
    key = tmp_path / "key.pem"
    create_key(key)
    child = _spawn(database_url, key, count=1_000_000, concurrency=32)
    assert child.stdout is not None
    received: list[str] = []
    for line in child.stdout:
        if line.startswith("id "):
            received.append(line.split()[1])
        if len(received) >= 3000:
            break
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    received += [line.split()[1] for line in rest.splitlines() if line.startswith("id ")]
    assert child.returncode == -signal.SIGKILL
    missing = set(received) - _ids_in_db(database_url)
    assert not missing, f"{len(missing)} ids returned to clients are not in the log"


def test_two_replicas_on_postgres_write_one_consistent_tree(postgres_url: str,
                                                            tmp_path: Path) -> None:
    Store(postgres_url).migrate()
    key = tmp_path / "key.pem"
    private = create_key(key)
    barrier = tmp_path / "close-now"
    children = [_spawn(postgres_url, key, count=600, concurrency=12, barrier=barrier)
                for _ in range(2)]
    ids: list[str] = []
    roles: list[str] = []
    for child in children:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("id "):
                ids.append(line.split()[1])
            elif line.startswith("integrator "):
                roles.append(line.split()[1])
                break
    assert sorted(roles) == ["False", "True"]  # both running: exactly one integrator
    barrier.touch()
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    assert len(ids) == 1200 and set(ids) == _ids_in_db(postgres_url)
    store = Store(postgres_url)
    report = verify_log(store.engine, Signer(ORIGIN, private).verifier, origin=ORIGIN)
    store.close()
    assert report.ok, report.findings
    assert report.entries == 1200 and report.pending == 0
    assert report.latest_checkpoint == 1200
    assert report.checkpoints >= 2


@pytest.mark.parametrize("workers", [2])
def test_two_processes_sharing_a_sqlite_file_write_one_tree(tmp_path: Path,
                                                            workers: int) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Store(url).migrate()
    key = tmp_path / "key.pem"
    private = create_key(key)
    children = [_spawn(url, key, count=400, concurrency=8) for _ in range(workers)]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    store = Store(url)
    report = verify_log(store.engine, Signer(ORIGIN, private).verifier, origin=ORIGIN)
    store.close()
    assert report.ok, report.findings
    assert report.entries == 800 and report.latest_checkpoint == 800
