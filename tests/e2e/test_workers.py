"""`--workers N`: every worker serves, and a revoked key stops working on all of them
within a second (each worker polls the state version)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    ADMIN_TOKEN,
    HARBOURGATE,
    Process,
    free_port,
    gateway_config,
    start_gateway,
)

pytestmark = pytest.mark.e2e


WAIT = 120  # seconds: a generous bound for a busy machine; the speed is printed, not asserted
SHIPPED = (Path(__file__).resolve().parents[2] / "src/harbourgate/policy/packs/"
           "export-directives/directives/us-doc-2026-06-12.yaml")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*HARBOURGATE, *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "HARBOURGATE_ADMIN_TOKEN": ADMIN_TOKEN})
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def chat(url: str, key: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "fable-5", "messages": [{"role": "user", "content": "w"}]},
                      timeout=10)


def test_revocation_reaches_every_worker(standin: Process, tmp_path: Path) -> None:
    gw = start_gateway(gateway_config(standin.url, tmp_path / "data"), tmp_path, workers=2)
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        issued = httpx.post(gw.url + "/admin/v1/applications/acme-research/keys",
                            headers=admin).json()
        # A fresh connection per request spreads requests over both workers.
        issued_at = time.monotonic()
        while {chat(gw.url, issued["key"]).status_code for _ in range(20)} != {200}:
            assert time.monotonic() - issued_at < WAIT, "the new key never reached every worker"
            time.sleep(0.05)

        revoked_at = time.monotonic()
        assert httpx.delete(gw.url + f"/admin/v1/keys/{issued['id']}",
                            headers=admin).status_code == 200
        while True:
            statuses = {chat(gw.url, issued["key"]).status_code for _ in range(20)}
            if statuses == {401}:
                break
            assert time.monotonic() - revoked_at < WAIT, f"still served: {statuses}"
            time.sleep(0.05)
        metrics = httpx.get(gw.url + "/metrics").text
        assert "harbourgate_requests_total" in metrics

        pids: set[int] = set()
        while len(pids) < 2:  # learn both workers' process ids
            pids.add(httpx.get(gw.url + "/readyz").json()["process"])
            assert time.monotonic() - revoked_at < WAIT, "a worker never answered /readyz"
        issued = cli("directive", "issue", str(SHIPPED), "--url", gw.url, "--json")
        issued_at = time.monotonic()
        ident = json.loads(issued.stdout)["id"]
        seen: dict[int, float] = {}
        while set(seen) != pids:
            ready = httpx.get(gw.url + "/readyz").json()
            if ident in ready["policy"] and ready["process"] not in seen:
                seen[ready["process"]] = time.monotonic() - issued_at
            assert time.monotonic() - issued_at < WAIT, "the directive never reached every worker"
        print("\ndirective in force per worker after the POST returned: " + ", ".join(
            f"{1000 * t:.1f} ms" for t in sorted(seen.values())))

        listed = json.loads(cli("directive", "list", "--url", gw.url, "--json").stdout)["data"]
        assert [d["id"] for d in listed if d["status"] == "issued"] == [ident]
        cli("directive", "revoke", ident, "--url", gw.url)
        refused = cli("directive", "revoke", "dir_unknown", "--url", gw.url, check=False)
        assert refused.returncode == 2 and "dir_unknown" in refused.stderr
        gone = cli("directive", "list", "--url", f"http://127.0.0.1:{free_port()}",
                   check=False)
        assert gone.returncode == 2 and "cannot reach" in gone.stderr.lower()
    finally:
        gw.stop()
