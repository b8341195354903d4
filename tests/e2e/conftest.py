"""Real processes for end-to-end tests: a stand-in provider and `harbourgate serve`.

Both run as subprocesses on ephemeral 127.0.0.1 ports, exactly as a user starts them, and
the tests drive them with the official `openai` and `anthropic` SDKs.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ADMIN_TOKEN = "e2e-operator-token-0123456789"
ISSUER = "https://verifier.example.hk"
JWKS_PATH: Path | None = None  # written by the `verifier_key` fixture before the gateway starts
HARBOURGATE = [sys.executable, "-m", "harbourgate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start(args: list[str], *, port: int, ready_path: str, log: Path,
          env: dict[str, str] | None = None, timeout: float = 120.0) -> Process:
    """Start a process and wait until GET ready_path answers."""
    handle = log.open("wb")
    proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args} exited with {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')}")
        try:
            if httpx.get(url + ready_path, timeout=1).status_code < 500:
                return Process(url, proc, log, port)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{args} did not become ready:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    port = free_port()
    logdir = tmp_path_factory.mktemp("standin")
    p = start([*HARBOURGATE, "stand-in", "--port", str(port)], port=port,
              ready_path="/v1/models", log=logdir / "standin.log")
    yield p
    p.stop()


def gateway_config(standin_url: str, data_dir: Path, **overrides: object) -> dict:
    """Routes over every provider kind and failure mode the tests need."""
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    v1 = standin_url + "/v1"

    def route(name: str, provider: str, base: str | None, **kw: object) -> dict:
        r = {"name": name, "provider": provider, "origin": "US", "hosting": "US",
             "class": "frontier-chat", "timeout_s": 5, **kw}
        if base:
            r["base_url"] = base
        return r

    config = {
        "data_dir": str(data_dir),
        "admin_tokens": [{"token_env": "HARBOURGATE_ADMIN_TOKEN", "role": "operator"},
                         {"token": "e2e-auditor-token-0123456789", "role": "auditor"}],
        "routes": [
            route("fable-5", "openai", v1, export_tags=["us-frontier"]),
            route("mythos-5", "anthropic", standin_url, export_tags=["us-frontier"]),
            route("glm-5.2", "openai", v1, origin="CN", hosting="CN"),
            route("qwen-local", "stand-in", None, origin="CN", hosting="HK"),
            route("broken-5", "openai", dead + "/v1"),
            route("slow-5", "openai", v1, upstream_model="standin-hang", timeout_s=1),
            route("garbage-5", "anthropic", standin_url, upstream_model="standin-garbage"),
            route("cut-5", "openai", v1, upstream_model="standin-cut"),
            route("embed-small", "openai", v1, **{"class": "embedding-small"}),
            route("lantau-7", "openai", v1, origin="HK", hosting="HK"),
        ],
        "verifiers": {"jwks": str(JWKS_PATH) if JWKS_PATH else None,
                      "issuers": [ISSUER]},
        "sandbox": {
            "participants": [{"id": "acme", "name": "Acme Research", "jurisdiction": "HK"}],
            "applications": [
                {"id": "acme-research", "participant": "acme", "name": "Acme research",
                 "use_cases": ["research.b2b"], "data_origin": "HK",
                 "model_preference": ["fable-5", "mythos-5", "glm-5.2", "qwen-local"]},
                {"id": "acme-failover", "participant": "acme", "name": "Failover app",
                 "use_cases": ["research.b2b"], "data_origin": "HK",
                 "model_preference": ["broken-5", "slow-5", "fable-5", "garbage-5"]},
                {"id": "acme-cn", "participant": "acme", "name": "Mainland CRM assistant",
                 "use_cases": ["research.b2b"], "data_origin": "CN",
                 "model_preference": ["fable-5", "mythos-5", "glm-5.2"]},
                {"id": "acme-important", "participant": "acme", "name": "Grid telemetry",
                 "use_cases": ["research.b2b"], "data_origin": "CN",
                 "data_categories": ["important_data"],
                 "model_preference": ["fable-5", "glm-5.2"]},
                {"id": "gba-app", "participant": "acme", "name": "Shenzhen to HK CRM",
                 "use_cases": ["research.b2b"], "data_origin": "CN",
                 "transfer_mechanisms": ["gba_standard_contract"],
                 "model_preference": ["lantau-7", "fable-5"]},
                {"id": "face-app", "participant": "acme", "name": "Door face matcher",
                 "use_cases": ["biometric.identification_remote"], "data_origin": "HK",
                 "model_preference": ["fable-5"]},
                {"id": "scoring-app", "participant": "acme", "name": "Citizen score",
                 "use_cases": ["social_scoring"], "data_origin": "HK",
                 "model_preference": ["fable-5"]},
            ],
        },
        "limits": {"max_body_bytes": 100_000},
    }
    config.update(overrides)
    return config


@dataclass
class Gateway:
    process: Process
    config_path: Path
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.process.url

    def admin(self, method: str, path: str, **kw: object) -> httpx.Response:
        return httpx.request(method, self.url + "/admin/v1" + path,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10,
                             **kw)  # type: ignore[arg-type]


def start_gateway(config: dict, workdir: Path, *, workers: int = 1) -> Process:
    config_path = workdir / "harbourgate.yaml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    p = start([*HARBOURGATE, "serve", "--config", str(config_path), "--port", str(port),
               "--workers", str(workers)], port=port, ready_path="/readyz",
              log=workdir / "serve.log", env={"HARBOURGATE_ADMIN_TOKEN": ADMIN_TOKEN})
    p.extra["config"] = str(config_path)
    return p


@pytest.fixture(scope="session")
def verifier_key(tmp_path_factory: pytest.TempPathFactory) -> Ed25519PrivateKey:
    """The trusted identity verifier's signing key; its JWKS file is what the gateway trusts."""
    global JWKS_PATH
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    path = tmp_path_factory.mktemp("verifier") / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "v1",
                                          "alg": "EdDSA", "use": "sig",
                                          "x": _b64(raw)}]}))
    JWKS_PATH = path
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def attestation(key: Ed25519PrivateKey, nationality: list[str], *, sub: str = "user-1",
                issuer: str = ISSUER, ttl: int = 600, kid: str = "v1") -> str:
    """A compact EdDSA JWS as an identity verifier issues it."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "EdDSA", "kid": kid, "typ": "JWT"}).encode())
    claims = {"sub": sub, "iss": issuer, "nationality": nationality, "residence": "HK",
              "verification_level": "document", "iat": now, "exp": now + ttl}
    payload = _b64(json.dumps(claims).encode())
    signature = _b64(key.sign(f"{header}.{payload}".encode()))
    return f"{header}.{payload}.{signature}"


@pytest.fixture(scope="session")
def gateway(standin: Process, verifier_key: Ed25519PrivateKey,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("gateway")
    process = start_gateway(gateway_config(standin.url, workdir / "data"), workdir)
    gw = Gateway(process, Path(process.extra["config"]), {})
    for app in ("acme-research", "acme-failover", "acme-cn", "acme-important", "gba-app",
                "face-app", "scoring-app"):
        r = gw.admin("POST", f"/applications/{app}/keys")
        assert r.status_code in (200, 201), r.text
        gw.keys[app] = r.json()["key"]
    yield gw
    process.stop()
