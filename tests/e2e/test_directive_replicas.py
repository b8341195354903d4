"""The product's reason to exist, under load on two replicas (PostgreSQL + Redis): a
directive cuts off exactly the users it names — they fail over to a permitted model, or
get a cited 451 where none exists — and nobody else notices."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.e2e.conftest import (
    ADMIN_TOKEN,
    ISSUER,
    Process,
    attestation,
    free_port,
    start,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

DIRECTIVE = {
    "authority": "US Department of Commerce",
    "citation": "Order to Anthropic of 2026-06-12",
    "title": "Frontier models for US nationals only",
    "models": ["fable-5", "mythos-5"],
    "permit_only": {"nationality": ["US"]},
    "effective_from": "2026-06-12T00:00:00Z",
    "effective_until": None,
}


@dataclass(frozen=True)
class Client:
    name: str
    app: str
    model: str
    nationality: list[str] | None  # None: no attestation
    affected: str  # "no" | "reroute" | "refuse"


CLIENTS = [
    Client("us-user", "lab", "fable-5", ["US"], "no"),
    Client("dual-us-hk", "lab", "mythos-5", ["HK", "US"], "no"),
    Client("hk-user", "lab", "fable-5", ["HK"], "reroute"),
    Client("anonymous", "lab", "mythos-5", None, "reroute"),
    Client("hk-on-fable-only", "fable-only", "fable-5", ["HK"], "refuse"),
    Client("glm-user", "lab", "glm-5.2", ["HK"], "no"),
    Client("local-user", "mainland", "qwen-local", None, "no"),
]


def config(standin: Process, data_dir: Path, jwks: Path, postgres_url: str,
           redis_url: str) -> dict:
    v1 = standin.url + "/v1"

    def route(name: str, origin: str, hosting: str, **kw: object) -> dict:
        return {"name": name, "provider": "openai", "base_url": v1, "origin": origin,
                "hosting": hosting, "class": "frontier-chat", **kw}

    return {
        "data_dir": str(data_dir), "database_url": postgres_url, "redis_url": redis_url,
        "verifiers": {"jwks": str(jwks), "issuers": [ISSUER]},
        "routes": [route("fable-5", "US", "US", export_tags=["us-frontier"]),
                   route("mythos-5", "US", "US", export_tags=["us-frontier"]),
                   route("glm-5.2", "CN", "CN"), route("qwen-local", "CN", "HK")],
        "sandbox": {
            "participants": [{"id": "lantau", "name": "Lantau Labs", "jurisdiction": "HK"},
                             {"id": "pearl", "name": "Pearl River Mfg", "jurisdiction": "CN"}],
            "applications": [
                {"id": "lab", "participant": "lantau", "name": "Research assistant",
                 "use_cases": ["research.b2b"], "data_origin": "HK",
                 "model_preference": ["fable-5", "mythos-5", "glm-5.2", "qwen-local"]},
                {"id": "fable-only", "participant": "lantau", "name": "Fable pinned",
                 "use_cases": ["research.b2b"], "data_origin": "HK",
                 "model_preference": ["fable-5", "mythos-5"]},
                {"id": "mainland", "participant": "pearl", "name": "Factory QA",
                 "use_cases": ["research.b2b"], "data_origin": "HK",
                 "model_preference": ["qwen-local", "glm-5.2"]},
            ]},
    }


def test_directive_under_load_on_two_replicas(standin: Process, verifier_key: Ed25519PrivateKey,
                                              postgres_url: str, redis_url: str,
                                              tmp_path: Path) -> None:
    from tests.e2e import conftest

    assert conftest.JWKS_PATH is not None
    cfg = config(standin, tmp_path / "data", conftest.JWKS_PATH, postgres_url, redis_url)
    path = tmp_path / "harbourgate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    replicas: list[Process] = []
    try:
        for name in ("a", "b"):  # one after the other: the first creates the signing key
            port = free_port()
            replicas.append(start(
                [*conftest.HARBOURGATE, "serve", "--config", str(path), "--port", str(port)],
                port=port, ready_path="/readyz", log=tmp_path / f"replica-{name}.log",
                env={"HARBOURGATE_ADMIN_TOKEN": ADMIN_TOKEN}))
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        keys = {app: httpx.post(f"{replicas[0].url}/admin/v1/applications/{app}/keys",
                                headers=admin).json()["key"]
                for app in ("lab", "fable-only", "mainland")}
        tokens = {c.name: attestation(verifier_key, c.nationality, sub=c.name, ttl=3600)
                  for c in CLIENTS if c.nationality}
        time.sleep(1.0)  # the keys reach replica b (polling/announcement)

        results: list[tuple[float, str, str, int, str, str]] = []
        stop = threading.Event()

        def drive(client: Client) -> None:
            headers = {"authorization": f"Bearer {keys[client.app]}"}
            if client.name in tokens:
                headers["x-harbourgate-attestation"] = tokens[client.name]
            with httpx.Client(timeout=10) as http:
                i = 0
                while not stop.is_set():
                    replica = replicas[i % 2]
                    i += 1
                    sent = time.monotonic()
                    r = http.post(replica.url + "/v1/chat/completions", headers=headers, json={
                        "model": client.model,
                        "messages": [{"role": "user", "content": f"{client.name} {i}"}]})
                    results.append((sent, client.name, "ab"[(i - 1) % 2], r.status_code,
                                    r.headers.get("x-harbourgate-model", ""),
                                    r.headers.get("x-harbourgate-policy", "")))
                    time.sleep(0.005)

        threads = [threading.Thread(target=drive, args=(c,)) for c in CLIENTS]
        for t in threads:
            t.start()
        time.sleep(2.0)
        issued = httpx.post(f"{replicas[0].url}/admin/v1/directives", headers=admin,
                            json=DIRECTIVE, timeout=10)
        assert issued.status_code in (200, 201), issued.text
        issued_at = time.monotonic()
        directive_id = issued.json()["id"]
        seen: dict[str, float] = {}
        while len(seen) < 2 and time.monotonic() - issued_at < 120:  # generous, not a speed test
            for name, replica in zip("ab", replicas, strict=True):
                if name not in seen and directive_id in httpx.get(
                        replica.url + "/readyz").json()["policy"]:
                    seen[name] = time.monotonic() - issued_at
            time.sleep(0.002)
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join()
    finally:
        for p in replicas:
            p.stop()

    print(f"\npropagation after POST returned: replica a {seen.get('a', -1) * 1000:.1f} ms, "
          f"replica b {seen.get('b', -1) * 1000:.1f} ms; {len(results)} requests")
    assert set(seen) == {"a", "b"}, "the directive never reached a replica"
    by = {c.name: c for c in CLIENTS}
    for sent, name, _replica, status, model, policy_header in results:
        client = by[name]
        in_force = directive_id in policy_header
        if client.affected == "no" or not in_force:
            assert status == 200, (name, status)  # zero failures for those not named
            assert model == client.model, (name, model)
        elif client.affected == "reroute":
            assert status == 200 and model in ("glm-5.2", "qwen-local"), (name, status, model)
        else:
            assert status == 451, (name, status)
        if sent > issued_at + max(seen.values()):  # sent once both replicas had it
            assert in_force or status == 451, (name, policy_header)
    for client in CLIENTS:
        assert any(r[1] == client.name for r in results)
    refused = [r for r in results if r[3] == 451]
    rerouted = [r for r in results if r[3] == 200 and r[4] != by[r[1]].model]
    assert refused and rerouted
    assert {r[1] for r in refused} == {"hk-on-fable-only"}
    assert {r[1] for r in rerouted} == {"hk-user", "anonymous"}
