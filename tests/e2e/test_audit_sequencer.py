"""`serve --workers 2`: every worker's audit entries go through the serve process's one
sequencer; each answered request's audit id is in the log, the log verifies, and /metrics
counts the time each request waited for its record to commit."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.conftest import ADMIN_TOKEN, Process, gateway_config, start_gateway

pytestmark = pytest.mark.e2e

REQUESTS = 64
WAIT = 120  # seconds: generous for a busy machine


async def _chat_all(url: str, key: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=WAIT, limits=limits) as client:
        return await asyncio.gather(*(client.post(
            url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
            json={"model": "fable-5", "messages": [{"role": "user", "content": f"n{i}"}]})
            for i in range(REQUESTS)))


def _chat(url: str, key: str) -> int:
    """One request on a fresh connection (so requests spread over the workers)."""
    return httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "fable-5", "messages": [{"role": "user", "content": "w"}]},
                      timeout=WAIT).status_code


def _sequencer_of(pid: int) -> str | None:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"HARBOURGATE_AUDIT_SEQUENCER=")]
    return found[0].decode() if found else None


def _commit_waits(url: str) -> float:
    """How many commit waits /metrics counted."""
    metrics = httpx.get(url + "/metrics").text
    count = re.search(r"^harbourgate_audit_commit_wait_seconds_count (\S+)$", metrics,
                      re.MULTILINE)
    assert count is not None, metrics
    return float(count.group(1))


def _serve_through_the_sequencer(standin: Process, tmp_path: Path, database: str) -> None:
    config = gateway_config(standin.url, tmp_path / "data",
                            **({"database_url": database} if database else {}))
    gw = start_gateway(config, tmp_path, workers=2)
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        key = httpx.post(gw.url + "/admin/v1/applications/acme-research/keys",
                         headers=admin).json()["key"]
        pids: set[int] = set()
        deadline = time.monotonic() + WAIT
        while len(pids) < 2:  # both workers up, each a client of the one sequencer
            ready = httpx.get(gw.url + "/readyz", timeout=WAIT).json()
            assert ready["audit"] == "ok", ready
            pids.add(ready["process"])
            assert time.monotonic() < deadline, "a worker never answered /readyz"
        sockets = {_sequencer_of(pid) for pid in pids}
        assert len(sockets) == 1 and None not in sockets
        (socket_path,) = sockets
        assert socket_path is not None and Path(socket_path).exists()
        while {_chat(gw.url, key) for _ in range(10)} != {200}:  # the key reached both
            assert time.monotonic() < deadline, "the new key never reached every worker"
            time.sleep(0.05)

        answers = asyncio.run(_chat_all(gw.url, key))
        assert [r.status_code for r in answers] == [200] * REQUESTS
        ids = [r.headers["x-harbourgate-audit"] for r in answers]
        assert len(set(ids)) == REQUESTS
        for entry_id in ids[:5]:  # a worker serves it (entry reads stay in the workers)
            r = httpx.get(gw.url + f"/admin/v1/audit/entries/{entry_id}", headers=admin)
            assert r.status_code == 200 and r.json()["record"]["decision"] == "allow"

        assert _commit_waits(gw.url) >= REQUESTS
    finally:
        gw.stop()
    assert gw.proc.returncode == 0, gw.output()
    assert not Path(socket_path).parent.exists()  # the private folder went with the server

    engine = sa.create_engine(database if database.startswith("postgresql")
                              else f"sqlite:///{tmp_path / 'data' / 'harbourgate.db'}")
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT id FROM audit_entries")).scalars())
    engine.dispose()
    assert set(ids) <= stored
    verify = subprocess.run([sys.executable, "-m", "harbourgate", "audit", "verify",
                             "--config", str(tmp_path / "harbourgate.yaml")],
                            capture_output=True, text=True, timeout=WAIT,
                            env={**os.environ, "HARBOURGATE_ADMIN_TOKEN": ADMIN_TOKEN})
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_two_workers_on_sqlite_record_through_one_sequencer(standin: Process,
                                                            tmp_path: Path) -> None:
    _serve_through_the_sequencer(standin, tmp_path, "")


def test_two_workers_on_postgres_record_through_one_sequencer(
        standin: Process, tmp_path: Path, postgres_url: str) -> None:
    _serve_through_the_sequencer(standin, tmp_path, postgres_url)


def test_one_worker_counts_its_commit_waits_too(standin: Process, tmp_path: Path) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR the histogram lives in the process's registry."""
    gw = start_gateway(gateway_config(standin.url, tmp_path / "data"), tmp_path, workers=1)
    try:
        key = httpx.post(gw.url + "/admin/v1/applications/acme-research/keys",
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()["key"]
        assert _chat(gw.url, key) == 200
        assert _commit_waits(gw.url) >= 1
    finally:
        gw.stop()
