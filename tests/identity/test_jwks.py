"""JWKS parsing and sources: strict parsing, reload without restart, last good keys kept."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk, jws

from harbourgate.identity.attestation import AttestationError, AttestationVerifier
from harbourgate.identity.jwks import (
    EDDSA,
    ES256,
    URLJWKS,
    FileJWKS,
    JWKSError,
    KeySet,
    StaticJWKS,
    b64url_decode,
    open_jwks,
    parse_jwks,
)

NOW = 1_781_222_400


def public(key: jwk.JWK) -> dict[str, Any]:
    return json.loads(key.export_public())


def okp(kid: str | None = "ed-1") -> dict[str, Any]:
    doc = public(jwk.JWK.generate(kty="OKP", crv="Ed25519"))
    doc.pop("kid", None)
    return {**doc, "kid": kid} if kid else doc


def p256(kid: str | None = "ec-1") -> dict[str, Any]:
    doc = public(jwk.JWK.generate(kty="EC", crv="P-256"))
    doc.pop("kid", None)
    return {**doc, "kid": kid} if kid else doc


def token(key: jwk.JWK, **claims: Any) -> str:
    body = {"iss": "https://id.example", "sub": "u", "nationality": ["US"], "exp": NOW + 600,
            **claims}
    alg = "EdDSA" if key["kty"] == "OKP" else "ES256"
    signed = jws.JWS(json.dumps(body).encode())
    signed.add_signature(key, alg=alg, protected=json.dumps({"alg": alg, "kid": key["kid"]}))
    return signed.serialize(compact=True)


def write_atomically(path: Path, content: str) -> None:
    staging = path.with_suffix(".tmp")
    staging.write_text(content)
    os.replace(staging, path)


# -- parsing -----------------------------------------------------------------------------------


def test_ed25519_and_p256_keys_are_parsed() -> None:
    keys = parse_jwks(json.dumps({"keys": [okp("a"), p256("b")]}))
    assert keys.kids == ("a", "b")
    assert [(k.alg, k.kind) for k in keys.keys] == [(EDDSA, "Ed25519"), (ES256, "P-256")]
    assert keys.get("b") is keys.keys[1]
    assert keys.get("c") is None and keys.get(None) is None


def test_an_ed25519_key_may_declare_either_name_of_its_algorithm() -> None:
    """RFC 9864 names EdDSA with Ed25519 `Ed25519`; older JWKS say `EdDSA`."""
    for declared in ("EdDSA", "Ed25519"):
        [key] = parse_jwks({"keys": [{**okp(), "alg": declared}]}).keys
        assert (key.alg, key.algs) == (EDDSA, ("EdDSA", "Ed25519"))


def test_a_parsed_mapping_and_an_empty_key_list_are_accepted() -> None:
    assert parse_jwks({"keys": [okp()]}).kids == ("ed-1",)
    assert len(parse_jwks(b'{"keys": []}')) == 0


@pytest.mark.parametrize(("entry", "logged"), [
    (public(jwk.JWK.generate(kty="RSA", size=2048)), "skipped a RSA key"),
    ({"kty": "oct", "k": "c2VjcmV0"}, "skipped a oct key"),
    (public(jwk.JWK.generate(kty="OKP", crv="X25519")), "skipped a OKP/X25519 key"),
    (public(jwk.JWK.generate(kty="EC", crv="P-384")), "skipped a EC/P-384 key"),
    ({**okp(), "use": "enc"}, "skipped a key with use 'enc'"),
    ({**okp(), "key_ops": ["sign"]}, "skipped a key whose key_ops ['sign'] do not include verify"),
    ({**okp(), "alg": "ES256"}, "skipped a Ed25519 key declared for alg 'ES256'"),
    ({**p256(), "alg": "ES384"}, "skipped a P-256 key declared for alg 'ES384'"),
])
def test_unsupported_keys_are_skipped_with_a_log_line(
        entry: dict[str, Any], logged: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="harbourgate.identity.jwks"):
        keys = parse_jwks({"keys": [entry, okp("good")]}, source="jwks.json")
    assert keys.kids == ("good",)
    assert f"jwks.json: keys[0]: {logged}" in caplog.text


def test_declared_use_ops_and_alg_that_fit_are_accepted() -> None:
    entry = {**okp(), "use": "sig", "key_ops": ["verify"], "alg": "EdDSA"}
    assert parse_jwks({"keys": [entry, {**p256(), "alg": "ES256"}]}).kids == ("ed-1", "ec-1")


def test_private_key_material_is_used_only_for_its_public_part(
        caplog: pytest.LogCaptureFixture) -> None:
    private = json.loads(jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="k").export_private())
    keys = parse_jwks({"keys": [private]}, source="jwks.json")
    assert keys.kids == ("k",)
    assert "jwks.json: keys[0]: holds private key material (d); publish only public keys" \
        in caplog.text


def test_unnamed_keys_among_several_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    keys = parse_jwks({"keys": [okp(None), okp("named")]}, source="jwks.json")
    assert keys.get(None) is None and keys.get("named") is keys.keys[1]
    assert "jwks.json: 1 key(s) without kid among 2 keys; tokens cannot select them" \
        in caplog.text


def test_a_sole_unnamed_key_answers_any_kid_a_sole_named_key_only_its_own() -> None:
    unnamed = parse_jwks({"keys": [okp(None)]})
    assert unnamed.get(None) is unnamed.get("anything") is unnamed.keys[0]
    named = parse_jwks({"keys": [okp("k")]})
    assert named.get(None) is named.get("k") is named.keys[0]
    assert named.get("other") is None


_BAD_POINT = {"kty": "EC", "crv": "P-256", "kid": "bad",
              "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
              "y": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}


@pytest.mark.parametrize(("document", "message"), [
    ("{not json", "jwks.json: not valid JSON (unexpected character"),
    ("[]", 'jwks.json: must be a JSON object with a "keys" list'),
    ('{"keys": {}}', 'jwks.json: must be a JSON object with a "keys" list'),
    ('{"kty": "OKP"}', 'jwks.json: must be a JSON object with a "keys" list'),
    ('{"keys": ["ed-1"]}', "jwks.json: keys[0]: must be a JSON object (a JWK)"),
    ('{"keys": [{"crv": "Ed25519"}]}', "jwks.json: keys[0]: missing kty"),
    (json.dumps({"keys": [{**okp(), "kid": 3}]}), "jwks.json: keys[0]: kid must be a non-empty "
                                                  "string"),
    (json.dumps({"keys": [okp("same"), p256("same")]}),
     "jwks.json: keys[1]: kid 'same' appears twice; every key needs its own kid"),
    (json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519"}]}), "jwks.json: keys[0]: missing x"),
    (json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc="}]}),
     "jwks.json: keys[0]: x is not base64url (only A-Z a-z 0-9 - _ without padding)"),
    (json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}),
     "jwks.json: keys[0]: x must be 32 bytes, not 3"),
    (json.dumps({"keys": [{**p256(), "y": None}]}), "jwks.json: keys[0]: missing y"),
    (json.dumps({"keys": [_BAD_POINT]}), "jwks.json: keys[0]: not a valid P-256 public key"),
])
def test_a_malformed_jwks_is_refused_whole(document: str, message: str) -> None:
    with pytest.raises(JWKSError) as info:
        parse_jwks(document, source="jwks.json")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(("text", "problem"), [
    ("YQ==", "not base64url (only A-Z a-z 0-9 - _ without padding)"),
    ("a+b/", "not base64url (only A-Z a-z 0-9 - _ without padding)"),
    ("YR", "not canonical base64url (non-zero trailing bits)"),
    ("YWJjZ", "not base64url (truncated)"),
])
def test_base64url_is_decoded_strictly(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        b64url_decode(text)


def test_base64url_round_trips() -> None:
    assert b64url_decode("YQ") == b"a"
    assert b64url_decode("") == b""
    assert b64url_decode("-_8") == b"\xfb\xff"


# -- sources -----------------------------------------------------------------------------------


def test_open_jwks_picks_the_source_from_the_location(tmp_path: Path) -> None:
    assert isinstance(open_jwks("http://127.0.0.1:1/jwks"), URLJWKS)
    assert isinstance(open_jwks("https://id.example/jwks"), URLJWKS)
    source = open_jwks(f"file://{tmp_path}/jwks.json")
    assert isinstance(source, FileJWKS) and source.path == tmp_path / "jwks.json"
    assert isinstance(open_jwks(str(tmp_path / "jwks.json")), FileJWKS)
    with pytest.raises(JWKSError, match="JWKS URL ftp://x: must start with http:// or https://"):
        URLJWKS("ftp://x")


def test_a_static_source_holds_its_keys() -> None:
    keys = KeySet(parse_jwks({"keys": [okp()]}).keys)
    source = StaticJWKS(keys)
    assert source.keys is keys and source.loaded
    assert source.status["keys"] == 1 and source.status["last_error"] is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_jwks_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [okp("v1")]}))
    source = FileJWKS(path, check_interval=0)
    first = source.load()
    assert first.kids == ("v1",)
    source.maybe_reload()
    assert source.keys is first  # unchanged file: not re-read
    write_atomically(path, json.dumps({"keys": [okp("v1"), okp("v2")]}))
    source.maybe_reload()
    assert source.keys.kids == ("v1", "v2")
    assert source.status["source"] == f"JWKS file {path}"


def test_the_file_is_checked_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [okp("v1")]}))
    clock = Clock()
    source = FileJWKS(path, check_interval=1.0, clock=clock)
    source.maybe_reload()
    assert source.keys.kids == ("v1",)
    write_atomically(path, json.dumps({"keys": [okp("v2")]}))
    clock.now = 0.5
    source.maybe_reload()
    assert source.keys.kids == ("v1",)
    clock.now = 1.0
    source.maybe_reload()
    assert source.keys.kids == ("v2",)


def test_a_malformed_rewrite_keeps_the_last_good_keys(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [okp("v1")]}))
    source = FileJWKS(path, check_interval=0)
    good = source.load()
    loaded_at = source.status["loaded_at"]
    write_atomically(path, '{"keys": [')
    source.maybe_reload()
    assert source.keys is good
    status = source.status
    assert status["keys"] == 1 and status["loaded_at"] == loaded_at
    assert status["last_error"].startswith(f"JWKS file {path}: not valid JSON")
    assert f"JWKS file {path}: not valid JSON" in caplog.text
    assert "keeping the 1 last good key(s)" in caplog.text
    with pytest.raises(JWKSError, match="not valid JSON"):
        source.load()  # an explicit load says so
    write_atomically(path, json.dumps({"keys": [okp("v2")]}))
    source.maybe_reload()
    assert source.keys.kids == ("v2",) and source.status["last_error"] is None


def test_a_vanished_file_keeps_the_last_good_keys_and_is_reported_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [okp("v1")]}))
    source = FileJWKS(path, check_interval=0)
    source.load()
    path.unlink()
    caplog.clear()
    for _ in range(3):
        source.maybe_reload()
    assert source.keys.kids == ("v1",)
    message = f"JWKS file {path}: cannot read it (No such file or directory)"
    assert source.status["last_error"] == message
    assert caplog.text.count(message) == 1
    path.write_text(json.dumps({"keys": [okp("v3")]}))
    source.maybe_reload()
    assert source.keys.kids == ("v3",) and source.status["last_error"] is None


def test_a_jwks_that_was_never_good_fails_load_with_a_clear_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "jwks.json"
    path.write_text('{"keys": "none"}')
    source = FileJWKS(path)
    with pytest.raises(JWKSError) as info:
        source.load()
    assert str(info.value) == f'JWKS file {path}: must be a JSON object with a "keys" list'
    assert source.status["keys"] == 0 and source.status["loaded_at"] is None
    assert "no trusted verifier keys are loaded" in caplog.text
    missing = FileJWKS(tmp_path / "absent.json")
    with pytest.raises(JWKSError, match=r"absent.json: cannot read it \(No such file"):
        missing.load()


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(b" " * 1_000_001)
    with pytest.raises(JWKSError, match="1000001 bytes is more than the 1000000 a JWKS may hold"):
        FileJWKS(path).load()


def test_the_file_refresher_notices_changes_without_traffic(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [okp("v1")]}))
    source = FileJWKS(path, check_interval=0.01)

    async def scenario() -> None:
        task = asyncio.create_task(source.run_refresher())
        await asyncio.sleep(0)
        write_atomically(path, json.dumps({"keys": [okp("v2")]}))
        for _ in range(200):
            if source.keys.kids == ("v2",):
                break
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert source.keys.kids == ("v2",)


def test_the_verifier_picks_up_a_new_key_written_to_the_file(tmp_path: Path) -> None:
    old, new = (jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=k) for k in ("old", "new"))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public(old)]}))
    verifier = AttestationVerifier(FileJWKS(path, check_interval=0))
    with pytest.raises(AttestationError, match="unknown kid 'new'"):
        verifier.verify(token(new), now=NOW)
    write_atomically(path, json.dumps({"keys": [public(old), public(new)]}))
    assert verifier.verify(token(new), now=NOW).verified


# -- URL source --------------------------------------------------------------------------------


class JWKSServer:
    """A tiny JWKS endpoint on 127.0.0.1 whose answer a test can change."""

    def __init__(self) -> None:
        self.body = json.dumps({"keys": []}).encode()
        self.status = 200
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(dict(self.headers))
                etag = f'"{hash(server.body) & 0xFFFFFFFF:x}"'
                if server.status == 200 and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(server.status)
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)

    def serve(self, keys: list[dict[str, Any]]) -> None:
        self.body = json.dumps({"keys": keys}).encode()


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_a_url_source_loads_and_revalidates_with_etag(jwks_server: JWKSServer) -> None:
    jwks_server.serve([okp("v1")])
    source = URLJWKS(jwks_server.url)
    first = source.load()
    assert first.kids == ("v1",)
    assert source.load() is first  # 304 Not Modified: the same keys, no parsing
    assert "If-None-Match" in jwks_server.requests[1]
    assert source.status == {"keys": 1, "source": f"JWKS URL {jwks_server.url}",
                             "last_error": None, "loaded_at": source.status["loaded_at"],
                             "checked_at": source.status["checked_at"]}


def test_a_failing_url_keeps_the_last_good_keys(jwks_server: JWKSServer) -> None:
    jwks_server.serve([okp("v1")])
    source = URLJWKS(jwks_server.url)
    source.load()
    jwks_server.status = 500
    asyncio.run(source.refresh())
    assert source.keys.kids == ("v1",)
    assert source.status["last_error"] == (f"JWKS URL {jwks_server.url}: HTTP 500 "
                                           "Internal Server Error")
    jwks_server.status = 200
    jwks_server.body = b"<html>maintenance</html>"
    asyncio.run(source.refresh())
    assert source.keys.kids == ("v1",)
    assert source.status["last_error"].startswith(f"JWKS URL {jwks_server.url}: not valid JSON")
    jwks_server.serve([okp("v2")])
    asyncio.run(source.refresh())
    assert source.keys.kids == ("v2",) and source.status["last_error"] is None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_url_is_a_clear_error_at_start() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/jwks.json"
    source = URLJWKS(url, timeout=2)
    with pytest.raises(JWKSError) as info:
        source.load()
    assert str(info.value).startswith(f"JWKS URL {url}: unreachable (")
    assert "refused" in str(info.value).lower()
    assert source.status["keys"] == 0 and source.status["last_error"] == str(info.value)
    asyncio.run(source.refresh())  # the background refresh records, never raises
    assert source.status["last_error"].startswith(f"JWKS URL {url}: unreachable (")


def test_the_url_refresher_refetches_periodically(jwks_server: JWKSServer) -> None:
    jwks_server.serve([okp("v1")])
    source = URLJWKS(jwks_server.url, refresh_interval=0.02)
    source.load()

    async def scenario() -> None:
        task = asyncio.create_task(source.run_refresher())
        jwks_server.serve([okp("v2")])
        for _ in range(300):
            if source.keys.kids == ("v2",):
                break
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert source.keys.kids == ("v2",)


def test_an_unknown_kid_asks_the_refresher_to_fetch_early(jwks_server: JWKSServer) -> None:
    old, new = (jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=k) for k in ("old", "new"))
    jwks_server.serve([public(old)])
    verifier = AttestationVerifier(URLJWKS(jwks_server.url, refresh_interval=3600,
                                           min_interval=0))
    verifier.load()

    async def scenario() -> None:
        task = asyncio.create_task(verifier.run_refresher())
        await asyncio.sleep(0)
        jwks_server.serve([public(old), public(new)])
        with pytest.raises(AttestationError, match="unknown kid 'new'"):
            verifier.verify(token(new), now=NOW)
        for _ in range(300):
            if verifier.status["keys"] == 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert verifier.verify(token(new), now=NOW).verified


def test_early_fetches_are_rate_limited(jwks_server: JWKSServer) -> None:
    jwks_server.serve([okp("v1")])
    source = URLJWKS(jwks_server.url, refresh_interval=3600, min_interval=3600)
    source.load()

    async def scenario() -> None:
        task = asyncio.create_task(source.run_refresher())
        await asyncio.sleep(0)
        for _ in range(20):
            source.request_refresh()
            await asyncio.sleep(0.005)
        task.cancel()

    asyncio.run(scenario())
    assert len(jwks_server.requests) == 1
