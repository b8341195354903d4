"""The verifiers' JWKS file is re-read without a restart; a broken one keeps the last good
keys, and /readyz says so."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.e2e.conftest import (
    ADMIN_TOKEN,
    ISSUER,
    Process,
    attestation,
    gateway_config,
    start_gateway,
)

pytestmark = pytest.mark.e2e


def write_jwks(path: Path, key: Ed25519PrivateKey, kid: str) -> None:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    path.write_text(json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": kid,
                                          "x": x}]}))
    bump(path)


def bump(path: Path) -> None:
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))


def test_jwks_rotation_and_a_broken_file(standin: Process, tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    write_jwks(jwks, old, "k1")
    config = gateway_config(standin.url, tmp_path / "data",
                            verifiers={"jwks": str(jwks), "issuers": [ISSUER]})
    gw = start_gateway(config, tmp_path)
    try:
        key = httpx.post(gw.url + "/admin/v1/applications/acme-research/keys",
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()["key"]

        def call(token: str) -> httpx.Response:
            return httpx.post(gw.url + "/v1/chat/completions", headers={
                "authorization": f"Bearer {key}", "x-harbourgate-attestation": token},
                json={"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]})

        assert call(attestation(old, ["HK"], kid="k1")).status_code == 200

        jwks.write_text("{not json")
        bump(jwks)
        deadline = time.monotonic() + 120
        while not httpx.get(gw.url + "/readyz").json()["verifiers"]["last_error"]:
            assert time.monotonic() < deadline, "the broken JWKS was never noticed"
            time.sleep(0.2)
        ready = httpx.get(gw.url + "/readyz").json()
        assert ready["status"] == "ready" and ready["verifiers"]["keys"] == 1
        assert call(attestation(old, ["HK"], kid="k1")).status_code == 200  # last good keys

        write_jwks(jwks, new, "k2")
        while call(attestation(new, ["HK"], kid="k2")).status_code != 200:
            assert time.monotonic() < deadline + 120, "the rotated key was never loaded"
            time.sleep(0.2)
        refused = call(attestation(old, ["HK"], kid="k1"))
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_attestation"
        assert httpx.get(gw.url + "/readyz").json()["verifiers"]["last_error"] is None
    finally:
        gw.stop()
