"""A pool of real stand-in processes behind a real `harbourgate serve`.

Four servers form the pool `qwen-local`: a quick one, a slow one, one that fails every
request, and one that is killed under load and later comes back. A second pool whose
servers are all dead shows the route failing over to the next permitted model.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import HARBOURGATE, Process, free_port, start, start_gateway

ASK = {"messages": [{"role": "user", "content": "hello pool"}], "max_tokens": 20}
WAIT_S = 120.0


def standin(workdir: Path, name: str, *args: str, port: int | None = None) -> Process:
    port = port or free_port()
    return start([*HARBOURGATE, "stand-in", "--port", str(port), *args], port=port,
                 ready_path="/health", log=workdir / f"{name}-{port}.log", timeout=WAIT_S)


@dataclass
class Cluster:
    quick: Process
    slow: Process
    failing: Process
    mortal: Process
    gateway: Process
    keys: dict[str, str]
    workdir: Path
    processes: list[Process]  # every process started, tests' own included: stopped at the end

    def admin(self, path: str) -> Any:
        r = httpx.get(self.gateway.url + "/admin/v1" + path, timeout=30,
                      headers={"Authorization": "Bearer e2e-auditor-token-0123456789"})
        assert r.status_code == 200, r.text
        return r.json()

    def servers(self, model: str = "qwen-local") -> dict[str, dict[str, Any]]:
        pool = next(p for p in self.admin("/pools")["data"] if p["model"] == model)
        return {s["base_url"]: s for s in pool["servers"]}

    def server(self, process: Process, model: str = "qwen-local") -> dict[str, Any]:
        return self.servers(model)[process.url + "/v1"]

    def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not check():
            assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}"
            time.sleep(0.1)


def chats(process: Process) -> int:
    records = httpx.get(process.url + "/_standin/requests", timeout=30).json()
    return sum(1 for r in records if r["path"] == "/v1/chat/completions")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("pool")
    processes: list[Process] = []
    try:
        quick = standin(workdir, "quick")
        slow = standin(workdir, "slow", "--latency-ms", "1000")
        failing = standin(workdir, "failing", "--fail-rate", "1")
        mortal = standin(workdir, "mortal", "--latency-ms", "200")
        processes += [quick, slow, failing, mortal]
        dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]

        def route(name: str, **kw: Any) -> dict[str, Any]:
            return {"name": name, "origin": "HK", "hosting": "HK", "class": "frontier-chat",
                    "timeout_s": 10, **kw}

        config = {
            "data_dir": str(workdir / "data"),
            "admin_tokens": [{"token_env": "HARBOURGATE_ADMIN_TOKEN", "role": "operator"},
                             {"token": "e2e-auditor-token-0123456789", "role": "auditor"}],
            "routes": [
                route("qwen-local", provider="openai",
                      endpoints=[{"base_url": p.url + "/v1", "max_concurrency": 16}
                                 for p in (quick, slow, failing, mortal)],
                      health={"path": "/health", "interval_s": 0.3},
                      capacity={"requests_per_second": 40}),
                route("qwen-dead", provider="openai", endpoints=dead,
                      health={"interval_s": 0}),
                route("lantau-7", provider="stand-in"),
            ],
            "sandbox": {
                "participants": [{"id": "acme", "name": "Acme", "jurisdiction": "HK"}],
                "applications": [
                    {"id": "local-app", "participant": "acme", "name": "Local",
                     "use_cases": ["research.b2b"], "data_origin": "HK",
                     "model_preference": ["qwen-local", "lantau-7"]},
                    {"id": "dead-app", "participant": "acme", "name": "Dead pool",
                     "use_cases": ["research.b2b"], "data_origin": "HK",
                     "model_preference": ["qwen-dead", "lantau-7"]},
                ],
            },
        }
        gateway = start_gateway(config, workdir)
        processes.append(gateway)
        keys = {}
        for app in ("local-app", "dead-app"):
            r = httpx.post(f"{gateway.url}/admin/v1/applications/{app}/keys", timeout=30,
                           headers={"Authorization": "Bearer e2e-operator-token-0123456789"})
            assert r.status_code in (200, 201), r.text
            keys[app] = r.json()["key"]
        yield Cluster(quick, slow, failing, mortal, gateway, keys, workdir, processes)
    finally:
        for p in reversed(processes):
            p.stop()


async def _send(cluster: Cluster, n: int, *, app: str = "local-app",
                model: str = "qwen-local", concurrency: int = 12) -> list[httpx.Response]:
    limit = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {cluster.keys[app]}"}
    async with httpx.AsyncClient(base_url=cluster.gateway.url, timeout=120,
                                 headers=headers) as client:
        async def one(i: int) -> httpx.Response:
            async with limit:
                body = {**ASK, "model": model,
                        "messages": [{"role": "user", "content": f"request {i}"}]}
                return await client.post("/v1/chat/completions", json=body)

        return await asyncio.gather(*(one(i) for i in range(n)))


def send(cluster: Cluster, n: int, **kw: Any) -> list[httpx.Response]:
    return asyncio.run(_send(cluster, n, **kw))


def audited(cluster: Cluster, responses: list[httpx.Response]) -> list[dict[str, Any]]:
    """The audit record of every response (each must have one)."""
    records = []
    for r in responses:
        entry = cluster.admin(f"/audit/entries/{r.headers['x-harbourgate-audit']}")
        records.append(entry["record"])
    return records


def test_the_pool_spreads_load_and_ejects_the_failing_server(cluster: Cluster) -> None:
    responses = send(cluster, 60)
    assert [r.status_code for r in responses] == [200] * 60
    assert {r.headers["x-harbourgate-model"] for r in responses} == {"qwen-local"}
    answers = sorted(r.json()["choices"][0]["message"]["content"] for r in responses)
    assert answers == sorted(f"[qwen-local] You said: request {i}" for i in range(60))
    quick, slow, failing_n, mortal = (chats(p) for p in (
        cluster.quick, cluster.slow, cluster.failing, cluster.mortal))
    assert quick + slow + mortal == 60  # every request answered once by a healthy server
    assert slow >= 1 and quick >= 1
    assert slow < quick  # least outstanding keeps away from the slow server
    failing = cluster.server(cluster.failing)
    assert failing["reason"] == "http_5xx" and failing["state"] in ("ejected", "half_open",
                                                                   "probing")
    assert "HTTP 500" in failing["last_error"]
    assert failing_n == failing["requests"] == failing["errors"] >= 3
    metrics = httpx.get(cluster.gateway.url + "/metrics", timeout=30).text
    assert ('harbourgate_pool_endpoint_ejections_total{endpoint="' + cluster.failing.url
            + '/v1",model="qwen-local",reason="http_5xx"}') in metrics
    assert "harbourgate_pool_endpoint_in_flight" in metrics
    assert "harbourgate_pool_endpoint_duration_seconds_bucket" in metrics
    for record in audited(cluster, responses[:10]):
        assert record["model_served"] == "qwen-local" and record["status"] == 200


def test_a_server_dies_under_load_and_comes_back(cluster: Cluster) -> None:
    mortal = cluster.mortal
    before = chats(mortal)

    async def load_and_kill() -> list[httpx.Response]:
        traffic = asyncio.create_task(_send(cluster, 80, concurrency=16))
        deadline = time.monotonic() + WAIT_S
        while chats(mortal) < before + 4:  # the server is carrying requests
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        mortal.stop(signal.SIGKILL)
        return await traffic

    responses = asyncio.run(load_and_kill())
    # Nothing lost: every request answered (by the pool or, failing that, the fallback),
    # and every answer has its audit record.
    assert [r.status_code for r in responses] == [200] * 80
    records = audited(cluster, responses)
    assert all(rec["status"] == 200 and rec["model_served"] in ("qwen-local", "lantau-7")
               for rec in records)
    assert sorted(r.headers["x-harbourgate-audit"] for r in responses) == sorted(
        {r.headers["x-harbourgate-audit"] for r in responses})

    # The health check sees it dead; from then on no request goes there.
    cluster.until(lambda: cluster.server(mortal)["state"] == "down", "the health check")
    seen = cluster.server(mortal)
    responses = send(cluster, 30)
    assert [r.status_code for r in responses] == [200] * 30
    assert {r.headers["x-harbourgate-model"] for r in responses} == {"qwen-local"}
    after = cluster.server(mortal)
    assert (after["requests"], after["errors"]) == (seen["requests"], seen["errors"])
    ready = httpx.get(cluster.gateway.url + "/readyz", timeout=30).json()
    pool = ready["pools"]["qwen-local"]
    assert {s["base_url"]: s["state"] for s in pool["servers"]}[mortal.url + "/v1"] == "down"

    # It comes back on the same address, passes the health check, and gets traffic again.
    back = standin(cluster.workdir, "mortal-again", "--latency-ms", "200", port=mortal.port)
    cluster.processes.append(back)
    cluster.mortal = back
    cluster.until(lambda: cluster.server(back)["state"] == "healthy", "the server's return")
    responses = send(cluster, 40)
    assert [r.status_code for r in responses] == [200] * 40
    assert chats(back) >= 1


def test_a_pool_with_no_healthy_server_fails_over(cluster: Cluster) -> None:
    responses = send(cluster, 4, app="dead-app", model="qwen-dead", concurrency=1)
    assert [r.status_code for r in responses] == [200] * 4
    for r in responses:
        assert r.headers["x-harbourgate-model"] == "lantau-7"
        assert r.headers["x-harbourgate-rerouted-from"] == "qwen-dead"
    records = audited(cluster, responses)
    assert records[0]["failover"] == [{"model": "qwen-dead", "code": "upstream_error"}]
    assert all(rec["model_served"] == "lantau-7" for rec in records)
    servers = cluster.servers("qwen-dead")
    assert {s["reason"] for s in servers.values()} == {"connect"}
    assert all(s["state"] != "healthy" for s in servers.values())


def test_pools_endpoint_needs_an_admin_token(cluster: Cluster) -> None:
    r = httpx.get(cluster.gateway.url + "/admin/v1/pools", timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_admin_token"
    listing = cluster.admin("/pools")
    assert {p["model"] for p in listing["data"]} == {"qwen-local", "qwen-dead"}
    local = next(p for p in listing["data"] if p["model"] == "qwen-local")
    assert local["balance"] == "least_outstanding" and local["health"]["interval_s"] == 0.3
    assert [s["max_concurrency"] for s in local["servers"]] == [16] * 4
