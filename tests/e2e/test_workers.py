"""`--workers N`: every worker serves, and a revoked key stops working on all of them
within a second (each worker polls the state version)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, Process, gateway_config, start_gateway

pytestmark = pytest.mark.e2e


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
            assert time.monotonic() - issued_at < 5, "the new key never reached every worker"
            time.sleep(0.05)

        revoked_at = time.monotonic()
        assert httpx.delete(gw.url + f"/admin/v1/keys/{issued['id']}",
                            headers=admin).status_code == 200
        while True:
            statuses = {chat(gw.url, issued["key"]).status_code for _ in range(20)}
            if statuses == {401}:
                break
            assert time.monotonic() - revoked_at < 5, f"still served: {statuses}"
            time.sleep(0.05)
        metrics = httpx.get(gw.url + "/metrics").text
        assert "harbourgate_requests_total" in metrics
    finally:
        gw.stop()
