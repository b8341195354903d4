"""The audit rule, shown the hard way: SIGKILL the server under load, restart it, and find
every X-Harbourgate-Audit id a client received in the log; then verify the whole log."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, Process, gateway_config, start_gateway

pytestmark = pytest.mark.e2e


def test_every_answered_request_survives_a_crash(standin: Process, tmp_path: Path) -> None:
    config = gateway_config(standin.url, tmp_path / "data")
    gw = start_gateway(config, tmp_path)
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    key = httpx.post(gw.url + "/admin/v1/applications/acme-research/keys",
                     headers=admin).json()["key"]
    received: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    r = client.post(gw.url + "/v1/chat/completions",
                                    headers={"authorization": f"Bearer {key}"},
                                    json={"model": "fable-5",
                                          "messages": [{"role": "user", "content": "load"}]})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    received.append(r.headers["x-harbourgate-audit"])

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120  # a generous bound on a busy machine, not a speed test
    while len(received) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    gw.stop(signal.SIGKILL)  # no shutdown hook runs: nothing gets flushed on the way out
    stop.set()
    for t in threads:
        t.join()
    assert len(received) >= 300

    restarted = start_gateway(config, tmp_path)
    try:
        missing = []
        for entry_id in received:
            r = httpx.get(restarted.url + f"/admin/v1/audit/entries/{entry_id}", headers=admin)
            for _ in range(50):  # integration after restart may take a moment
                if r.status_code != 404:
                    break
                time.sleep(0.1)
                r = httpx.get(restarted.url + f"/admin/v1/audit/entries/{entry_id}",
                              headers=admin)
            if r.status_code != 200:
                missing.append((entry_id, r.status_code))
            else:
                assert r.json()["record"]["decision"] == "allow"
        assert missing == []
    finally:
        restarted.stop()
    verify = subprocess.run([sys.executable, "-m", "harbourgate", "audit", "verify",
                             "--config", str(tmp_path / "harbourgate.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
