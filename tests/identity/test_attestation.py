"""Attestation verification, with tokens minted by independent code (jwcrypto, cryptography)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk, jws

from harbourgate.config import VerifierSettings
from harbourgate.identity.attestation import (
    ISO_3166_ALPHA2,
    UNKNOWN,
    AttestationError,
    AttestationVerifier,
    EndUser,
)
from harbourgate.identity.jwks import URLJWKS, FileJWKS, StaticJWKS

JOSE = Path(__file__).resolve().parents[1] / "vectors" / "jose"  # RFC 8037 / RFC 7515 vectors
ISSUER = "https://id.example"
NOW = 1_781_222_400  # 2026-06-12T00:00:00Z


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISSUER, "sub": "user-7", "nationality": ["US", "hk"],
                            "residence": "hk", "verification_level": "document",
                            "iat": NOW - 60, "exp": NOW + 3600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: jwk.JWK, body: dict[str, Any] | bytes, alg: str | None = None,
         **header: Any) -> str:
    """A compact JWS minted by jwcrypto, the independent implementation."""
    alg = alg or ("EdDSA" if key["kty"] == "OKP" else "ES256")
    protected = {"alg": alg, "kid": key.get("kid"), **header}
    protected = {k: v for k, v in protected.items() if v is not None}
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    token = jws.JWS(payload)
    token.add_signature(key, alg=alg, protected=json.dumps(protected))
    return low_s(token.serialize(compact=True))


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def low_s(token: str, *, high: bool = False) -> str:
    """The ES256 token with its signature's S in the low (or, `high`, the other) half:
    `(r, s)` and `(r, n - s)` both verify; Harbourgate accepts only the low one, as a
    conforming verifier signs. Other tokens are returned unchanged."""
    head, payload, sig_b64 = token.split(".")
    if json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["alg"] != "ES256":
        return token
    sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    s = int.from_bytes(sig[32:], "big")
    if (s > P256_N // 2) != high:
        s = P256_N - s
    return f"{head}.{payload}.{b64(sig[:32] + s.to_bytes(32, 'big'))}"


def mint_raw(private: Any, header: dict[str, Any], body: dict[str, Any] | bytes) -> str:
    """A compact JWS built by hand with `cryptography`, for the tokens libraries won't make."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}"
    if isinstance(private, Ed25519PrivateKey):
        signature = private.sign(signing_input.encode())
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(signing_input.encode(),
                                                 ec.ECDSA(hashes.SHA256())))
        s = min(s, P256_N - s)  # low S, as a conforming verifier signs
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = private
    return f"{signing_input}.{b64(signature)}"


def public_jwk(private: Any, kid: str | None) -> dict[str, Any]:
    key = jwk.JWK.from_pyca(private.public_key())
    doc = json.loads(key.export_public())
    doc.pop("kid", None)
    return {**doc, "kid": kid} if kid else doc


@pytest.fixture(scope="module")
def ed_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed-1")


@pytest.fixture(scope="module")
def ec_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="EC", crv="P-256", kid="ec-1")


@pytest.fixture
def verifier(ed_key: jwk.JWK, ec_key: jwk.JWK) -> AttestationVerifier:
    keys = {"keys": [json.loads(ed_key.export_public()), json.loads(ec_key.export_public())]}
    return AttestationVerifier(StaticJWKS(keys), issuers=[ISSUER, "https://other.example"])


def refused(verifier: AttestationVerifier, token: str, now: float = NOW) -> AttestationError:
    with pytest.raises(AttestationError) as info:
        verifier.verify(token, now=now)
    assert info.value.code == "invalid_attestation"
    return info.value


# -- accepted tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["ed_key", "ec_key"])
def test_a_valid_token_from_jwcrypto_becomes_an_end_user(
        which: str, request: pytest.FixtureRequest, verifier: AttestationVerifier) -> None:
    token = mint(request.getfixturevalue(which), claims(nationality=["us", "HK", "US"]))
    user = verifier.verify(token, now=NOW)
    assert user == EndUser(sub="user-7", nationality=("US", "HK"), residence="HK",
                           verification_level="document", issuer=ISSUER,
                           issued_at=NOW - 60, expires_at=NOW + 3600)
    assert user.verified


def test_tokens_signed_with_cryptography_directly_verify() -> None:
    ed, p256 = Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())
    verifier = AttestationVerifier(StaticJWKS(
        {"keys": [public_jwk(ed, "a"), public_jwk(p256, "b")]}))
    ed_token = mint_raw(ed, {"alg": "EdDSA", "kid": "a"}, claims())
    ec_token = mint_raw(p256, {"alg": "ES256", "kid": "b", "typ": "JWT"}, claims(sub="u-9"))
    assert verifier.verify(ed_token, now=NOW).sub == "user-7"
    assert verifier.verify(ec_token, now=NOW).sub == "u-9"


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
def test_ed25519_tokens_verify_under_either_alg_name(alg: str) -> None:
    """`Ed25519` is RFC 9864's fully specified name for what `EdDSA` meant with this key."""
    ed = Ed25519PrivateKey.generate()
    verifier = AttestationVerifier(StaticJWKS({"keys": [public_jwk(ed, "a")]}))
    assert verifier.verify(mint_raw(ed, {"alg": alg, "kid": "a"}, claims()), now=NOW).verified


@pytest.mark.parametrize("alg", ["ES384", "ES512", "ES256K", "Ed448", "RS256", "PS256",
                                 "EdDSA25519", "es256", "eddsa"])
def test_every_other_alg_is_refused(alg: str) -> None:
    ed = Ed25519PrivateKey.generate()
    verifier = AttestationVerifier(StaticJWKS({"keys": [public_jwk(ed, "a")]}))
    error = refused(verifier, mint_raw(ed, {"alg": alg, "kid": "a"}, claims()))
    assert (error.reason, error.message) == (
        "unsupported_alg", f"attestation uses unsupported alg {alg!r}; only EdDSA (Ed25519) "
                           "and ES256 are accepted")
    assert verifier.signature_checks == 0


def test_a_sole_key_without_kid_verifies_tokens_with_or_without_kid() -> None:
    ed = Ed25519PrivateKey.generate()
    verifier = AttestationVerifier(StaticJWKS({"keys": [public_jwk(ed, None)]}))
    assert verifier.verify(mint_raw(ed, {"alg": "EdDSA"}, claims()), now=NOW).verified
    assert verifier.verify(mint_raw(ed, {"alg": "EdDSA", "kid": "x"}, claims()), now=NOW)


def test_minimal_claims_and_an_empty_nationality_list(ed_key: jwk.JWK,
                                                      verifier: AttestationVerifier) -> None:
    token = mint(ed_key, {"iss": ISSUER, "sub": "s", "nationality": [], "exp": NOW + 10})
    assert verifier.verify(token, now=NOW) == EndUser(
        sub="s", nationality=(), issuer=ISSUER, expires_at=NOW + 10)


def test_any_issuer_is_accepted_when_none_are_configured(ed_key: jwk.JWK) -> None:
    verifier = AttestationVerifier(StaticJWKS({"keys": [json.loads(ed_key.export_public())]}))
    user = verifier.verify(mint(ed_key, claims(iss="https://anyone.example")), now=NOW)
    assert user.issuer == "https://anyone.example"


def test_clock_skew_is_tolerated_within_the_leeway(ed_key: jwk.JWK,
                                                   verifier: AttestationVerifier) -> None:
    token = mint(ed_key, claims(iat=NOW + 50, nbf=NOW + 50, exp=NOW - 50))
    assert verifier.verify(token, now=NOW).expires_at == NOW - 50
    strict = AttestationVerifier(verifier.source, leeway=0)
    assert refused(strict, token).message == "attestation expired at 2026-06-11T23:59:10Z"


def test_no_attestation_is_the_unknown_end_user(verifier: AttestationVerifier) -> None:
    assert verifier.end_user(None) is UNKNOWN
    assert UNKNOWN.nationality == () and UNKNOWN.sub is None and not UNKNOWN.verified


def test_end_user_verifies_a_present_attestation(ed_key: jwk.JWK,
                                                 verifier: AttestationVerifier) -> None:
    assert verifier.end_user(mint(ed_key, claims()), now=NOW).sub == "user-7"
    assert refused(verifier, "").message == "attestation is empty"


# -- RFC test vectors --------------------------------------------------------------------------


def test_rfc8037_a4_signature_verifies_and_its_text_payload_is_refused_as_claims() -> None:
    vector = json.loads((JOSE / "rfc8037-a4-ed25519-jws.json").read_text())
    key = {k: v for k, v in vector["input"]["key"].items() if k != "d"}
    verifier = AttestationVerifier(StaticJWKS({"keys": [key]}))
    error = refused(verifier, vector["output"]["compact"])
    assert (error.reason, error.message) == (
        "invalid_claims", "attestation payload is not a JSON object of claims")
    assert verifier.signature_checks == 1
    header, payload, signature = vector["output"]["compact"].split(".")
    forged = bytearray(base64.urlsafe_b64decode(signature + "=="))
    forged[0] ^= 1
    error = refused(verifier, f"{header}.{payload}.{b64(bytes(forged))}")
    assert error.message == "attestation signature does not verify with the sole trusted key"


def test_rfc7515_a3_es256_signature_verifies_and_its_claims_are_refused() -> None:
    vector = json.loads((JOSE / "rfc7515-a3-es256.json").read_text())
    verifier = AttestationVerifier(StaticJWKS({"keys": [vector["key"]]}))
    # the RFC's example signature has a high S: refused as such, before any verification
    error = refused(verifier, vector["compact"], now=1300819000)
    assert (error.reason, error.message) == ("bad_signature", HIGH_S)
    assert verifier.signature_checks == 0
    token = low_s(vector["compact"])  # its low-S twin: the same signature, one spelling
    error = refused(verifier, token, now=1300819000)
    assert (error.reason, error.message) == (
        "invalid_claims", "attestation is missing the required claim 'sub'")
    assert verifier.signature_checks == 1
    picky = AttestationVerifier(verifier.source, issuers=[ISSUER])
    assert refused(picky, token).message == (
        "attestation issuer 'joe' is not trusted; accepted issuers: https://id.example")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert refused(verifier, tampered).reason in {"bad_signature", "malformed"}


HIGH_S = ("attestation ES256 signature has a high S (the twin (r, n - s) of another): sign "
          "with low S, so a token has one spelling")


def test_a_high_s_twin_is_refused_and_its_low_s_form_verifies(ec_key: jwk.JWK,
                                                             verifier: AttestationVerifier
                                                             ) -> None:
    token = mint(ec_key, claims())
    assert verifier.verify(token, now=NOW).sub == "user-7"
    twin = low_s(token, high=True)
    assert twin != token
    error = refused(verifier, twin)
    assert (error.reason, error.message) == ("bad_signature", HIGH_S)


# -- refused tokens: algorithms and keys -------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg: str, verifier: AttestationVerifier) -> None:
    token = f"{b64(json.dumps({'alg': alg}).encode())}.{b64(json.dumps(claims()).encode())}."
    error = refused(verifier, token)
    assert (error.reason, error.message) == (
        "alg_refused", f"attestation uses alg {alg!r}: unsigned tokens are refused")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_is_refused(alg: str, verifier: AttestationVerifier) -> None:
    secret = jwk.JWK.generate(kty="oct", size=512, kid="ed-1")
    error = refused(verifier, mint(secret, claims(), alg=alg))
    assert (error.reason, error.message) == (
        "alg_refused", f"attestation uses alg {alg!r}: HMAC (shared-secret) algorithms are "
                       "refused; sign with EdDSA (Ed25519) or ES256")


def test_hmac_keyed_with_the_trusted_public_key_is_refused(
        ed_key: jwk.JWK, verifier: AttestationVerifier) -> None:
    """The classic confusion attack: the public key, which everyone has, as an HMAC secret."""
    alg = "HS256"
    secret = jwk.JWK(kty="oct", k=json.loads(ed_key.export_public())["x"], kid="ed-1")
    error = refused(verifier, mint(secret, claims(), alg=alg))
    assert (error.reason, error.message) == (
        "alg_refused", f"attestation uses alg {alg!r}: HMAC (shared-secret) algorithms are "
                       "refused; sign with EdDSA (Ed25519) or ES256")


def test_rsa_and_other_curves_are_unsupported(verifier: AttestationVerifier) -> None:
    rsa = jwk.JWK.generate(kty="RSA", size=2048, kid="ed-1")
    assert refused(verifier, mint(rsa, claims(), alg="RS256")).message == (
        "attestation uses unsupported alg 'RS256'; only EdDSA (Ed25519) and ES256 are accepted")
    p384 = jwk.JWK.generate(kty="EC", crv="P-384", kid="ec-1")
    error = refused(verifier, mint(p384, claims(), alg="ES384"))
    assert (error.reason, error.message) == (
        "unsupported_alg",
        "attestation uses unsupported alg 'ES384'; only EdDSA (Ed25519) and ES256 are accepted")


def test_an_alg_that_does_not_match_the_key_is_refused(verifier: AttestationVerifier) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    token = mint_raw(p256, {"alg": "ES256", "kid": "ed-1"}, claims())
    assert refused(verifier, token).message == (
        "attestation uses ES256 but key 'ed-1' is a Ed25519 key, which verifies only EdDSA")


def test_an_unknown_kid_is_refused_naming_the_known_ones(verifier: AttestationVerifier) -> None:
    stranger = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="mallory")
    error = refused(verifier, mint(stranger, claims()))
    assert (error.reason, error.message) == (
        "unknown_kid", "attestation is signed with unknown kid 'mallory'; the trusted JWKS "
                       "holds 'ed-1', 'ec-1'")


def test_a_token_without_kid_is_refused_when_several_keys_are_trusted(
        ed_key: jwk.JWK, verifier: AttestationVerifier) -> None:
    error = refused(verifier, mint(ed_key, claims(), kid=None))
    assert error.message == ("attestation header has no kid and the trusted JWKS holds 2 keys; "
                             "the verifier must set kid")


def test_a_signature_by_another_key_is_refused(verifier: AttestationVerifier) -> None:
    impostor = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed-1")
    error = refused(verifier, mint(impostor, claims()))
    assert (error.reason, error.message) == (
        "bad_signature", "attestation signature does not verify with key 'ed-1'")


def test_an_embedded_jwk_header_is_never_trusted(verifier: AttestationVerifier) -> None:
    attacker = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed-1")
    token = mint(attacker, claims(), jwk=json.loads(attacker.export_public()),
                 jku="https://evil.example/jwks")
    assert refused(verifier, token).reason == "bad_signature"


def test_a_der_encoded_es256_signature_is_explained(verifier: AttestationVerifier) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    header = b64(json.dumps({"alg": "ES256", "kid": "ec-1"}).encode())
    body = b64(json.dumps(claims()).encode())
    der = p256.sign(f"{header}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    error = refused(verifier, f"{header}.{body}.{b64(der)}")
    assert error.message == (f"attestation signature does not verify with key 'ec-1' "
                             f"({len(der)} bytes; ES256 signatures are 64 bytes, raw r||s, "
                             "not DER)")


# -- refused tokens: shape ---------------------------------------------------------------------


def _header(**fields: Any) -> str:
    return b64(json.dumps(fields).encode())


PAYLOAD = b64(json.dumps({"sub": "x"}).encode())
SIG = b64(bytes(64))


@pytest.mark.parametrize(("token", "message"), [
    ("a.b", "attestation is not a compact JWS: expected three base64url parts separated by "
            "'.', found 2"),
    ("a.b.c.d.e", "attestation is not a compact JWS: expected three base64url parts "
                  "separated by '.', found 5"),
    (f"{_header(alg='EdDSA')}..{SIG}",
     "attestation has an empty payload (detached payloads are not accepted)"),
    (f"{b64(b'not json')}.{PAYLOAD}.{SIG}",
     "attestation header is not a base64url-encoded JSON object"),
    (f"{b64(b'[1]')}.{PAYLOAD}.{SIG}",
     "attestation header is not a base64url-encoded JSON object"),
    (f"{_header(alg='EdDSA')}=.{PAYLOAD}.{SIG}",
     "attestation header is not a base64url-encoded JSON object"),
    (f"{_header(alg='EdDSA')}.{PAYLOAD}=.{SIG}",
     "attestation payload is not base64url (only A-Z a-z 0-9 - _ without padding)"),
    (f"{_header(alg='EdDSA')}.{PAYLOAD}.{SIG[:-1]}+",
     "attestation signature is not base64url (only A-Z a-z 0-9 - _ without padding)"),
    (f"{_header(alg='EdDSA')}.{PAYLOAD}.{SIG[:-1]}B",
     "attestation signature is not canonical base64url (non-zero trailing bits)"),
    (f"{_header(alg='EdDSA')}.{PAYLOAD}.{SIG}AAA",
     "attestation signature is not base64url (truncated)"),
    (f"{_header(typ='JWT')}.{PAYLOAD}.{SIG}", "attestation header has no alg"),
    (f"{_header(alg='EdDSA', kid=7)}.{PAYLOAD}.{SIG}", "attestation header kid must be a string"),
    (f"{_header(alg='EdDSA', kid='ed-1', crit=['b64'], b64=False)}.{PAYLOAD}.{SIG}",
     "attestation header marks ['b64'] as critical; no JWS extensions are supported"),
    ("eyJhbGciOiJFZERTQSJ9.é.x",
     "attestation contains non-ASCII characters; a compact JWS is three base64url parts "
     "separated by '.'"),
    ("a" * 8193, "attestation is 8193 bytes long; the limit is 8192"),
])
def test_malformed_tokens_are_refused_with_what_is_wrong(
        token: str, message: str, verifier: AttestationVerifier) -> None:
    error = refused(verifier, token)
    assert (error.reason, error.message) == ("malformed", message)
    assert str(error) == message


# -- refused tokens: claims and time -----------------------------------------------------------


@pytest.mark.parametrize(("overrides", "reason", "message"), [
    ({"exp": NOW - 61}, "expired", "attestation expired at 2026-06-11T23:58:59Z"),
    ({"nbf": NOW + 61}, "not_yet_valid",
     "attestation is not valid before 2026-06-12T00:01:01Z (nbf)"),
    ({"iat": NOW + 3000}, "not_yet_valid",
     "attestation was issued in the future, at 2026-06-12T00:50:00Z (iat)"),
    ({"iss": "https://evil.example"}, "untrusted_issuer",
     "attestation issuer 'https://evil.example' is not trusted; accepted issuers: "
     "https://id.example, https://other.example"),
    ({"iss": None}, "invalid_claims", "attestation is missing the required claim 'iss'"),
    ({"iss": 5}, "invalid_claims", "attestation claim 'iss' is invalid: must be a non-empty "
                                   "string"),
    ({"exp": None}, "invalid_claims", "attestation is missing the required claim 'exp'"),
    ({"exp": "tomorrow"}, "invalid_claims", "attestation claim 'exp' is invalid: must be a "
                                            "number of seconds since 1970-01-01T00:00:00Z"),
    ({"exp": True}, "invalid_claims", "attestation claim 'exp' is invalid: must be a number of "
                                      "seconds since 1970-01-01T00:00:00Z"),
    ({"exp": 10**13}, "invalid_claims", "attestation claim 'exp' is invalid: 10000000000000 is "
                                        "out of range"),
    ({"nbf": -1}, "invalid_claims", "attestation claim 'nbf' is invalid: -1 is out of range"),
    ({"sub": None}, "invalid_claims", "attestation is missing the required claim 'sub'"),
    ({"sub": ""}, "invalid_claims", "attestation claim 'sub' is invalid: must be a non-empty "
                                    "string"),
    ({"nationality": None}, "invalid_claims",
     "attestation is missing the required claim 'nationality'"),
    ({"nationality": "US"}, "invalid_claims",
     "attestation claim 'nationality' is invalid: must be a list of ISO 3166-1 alpha-2 codes "
     "such as [\"US\"], not str"),
    ({"nationality": ["US", "UK"]}, "invalid_claims",
     "attestation claim 'nationality' is invalid: 'UK' is not an ISO 3166-1 alpha-2 code "
     "(use GB)"),
    ({"nationality": ["EU"]}, "invalid_claims",
     "attestation claim 'nationality' is invalid: 'EU' is not an ISO 3166-1 alpha-2 code "
     "(it is not a country)"),
    ({"nationality": ["USA"]}, "invalid_claims",
     "attestation claim 'nationality' is invalid: 'USA' is not an ISO 3166-1 alpha-2 code"),
    ({"nationality": [840]}, "invalid_claims",
     "attestation claim 'nationality' is invalid: must be an ISO 3166-1 alpha-2 code such as "
     "\"HK\", not int"),
    ({"residence": "Hong Kong"}, "invalid_claims",
     "attestation claim 'residence' is invalid: 'Hong Kong' is not an ISO 3166-1 alpha-2 code"),
    ({"verification_level": False}, "invalid_claims",
     "attestation claim 'verification_level' is invalid: must be a non-empty string"),
])
def test_claims_are_checked_with_exact_messages(
        overrides: dict[str, Any], reason: str, message: str, ed_key: jwk.JWK,
        verifier: AttestationVerifier) -> None:
    error = refused(verifier, mint(ed_key, claims(**overrides)))
    assert (error.reason, error.message) == (reason, message)


def test_a_numeric_verification_level_is_kept_as_text(ed_key: jwk.JWK,
                                                      verifier: AttestationVerifier) -> None:
    assert verifier.verify(mint(ed_key, claims(verification_level=2)),
                           now=NOW).verification_level == "2"


def test_the_country_list_is_iso_3166_1_plus_kosovo() -> None:
    assert len(ISO_3166_ALPHA2) == 250
    assert {"US", "HK", "CN", "MO", "TW", "GB", "XK"} <= ISO_3166_ALPHA2
    assert not {"UK", "EU", "EL", "ZZ"} & ISO_3166_ALPHA2


# -- configuration and key sources -------------------------------------------------------------


def test_without_a_configured_jwks_every_attestation_is_refused(ed_key: jwk.JWK) -> None:
    verifier = AttestationVerifier.from_settings(VerifierSettings())
    assert verifier.end_user(None) is UNKNOWN
    error = refused(verifier, mint(ed_key, claims()))
    assert (error.reason, error.message) == (
        "no_keys", "attestation cannot be verified: no identity verifiers are configured "
                   "(set verifiers.jwks)")
    assert verifier.status == {"keys": 0, "source": None, "last_error": None,
                               "loaded_at": None, "checked_at": None}


def test_from_settings_reads_a_jwks_file_and_the_issuers(tmp_path: Path,
                                                         ed_key: jwk.JWK) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [json.loads(ed_key.export_public())]}))
    verifier = AttestationVerifier.from_settings(
        VerifierSettings(jwks=str(path), issuers=("https://other.example",)))
    assert isinstance(verifier.source, FileJWKS)
    verifier.load()
    assert verifier.status["keys"] == 1
    assert refused(verifier, mint(ed_key, claims())).reason == "untrusted_issuer"
    assert verifier.verify(mint(ed_key, claims(iss="https://other.example")), now=NOW)


def test_from_settings_with_a_url_makes_a_url_source() -> None:
    verifier = AttestationVerifier.from_settings(
        VerifierSettings(jwks="https://id.example/.well-known/jwks.json"))
    assert isinstance(verifier.source, URLJWKS)
    assert verifier.status["source"] == "JWKS URL https://id.example/.well-known/jwks.json"


def test_a_jwks_that_never_loaded_is_named_in_the_refusal(tmp_path: Path,
                                                          ed_key: jwk.JWK) -> None:
    path = tmp_path / "jwks.json"
    path.write_text("{not json")
    verifier = AttestationVerifier(FileJWKS(path, check_interval=0))
    error = refused(verifier, mint(ed_key, claims()))
    assert error.reason == "no_keys"
    assert error.message.startswith(
        f"attestation cannot be verified: no trusted verifier keys are loaded (JWKS file {path}"
        ": not valid JSON")


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="leeway must not be negative"):
        AttestationVerifier(None, leeway=-1)
    with pytest.raises(ValueError, match="cache sizes must be positive"):
        AttestationVerifier(None, cache_size=0)


# -- caching -----------------------------------------------------------------------------------


def test_a_verified_token_is_served_from_the_cache(ed_key: jwk.JWK,
                                                   verifier: AttestationVerifier) -> None:
    token = mint(ed_key, claims())
    first = verifier.verify(token, now=NOW)
    second = verifier.verify(token, now=NOW + 10)
    assert second is first
    assert (verifier.signature_checks, verifier.cache_hits) == (1, 1)


def test_a_cached_token_is_still_refused_once_expired(ed_key: jwk.JWK,
                                                      verifier: AttestationVerifier) -> None:
    token = mint(ed_key, claims(exp=NOW + 100))
    verifier.verify(token, now=NOW)
    assert verifier.verify(token, now=NOW + 160).sub == "user-7"  # within the leeway
    error = refused(verifier, token, now=NOW + 161)
    assert (error.reason, error.message) == ("expired", "attestation expired at "
                                                        "2026-06-12T00:01:40Z")
    assert verifier.signature_checks == 1


def test_the_cache_is_bounded_least_recently_used_first(ed_key: jwk.JWK) -> None:
    verifier = AttestationVerifier(StaticJWKS({"keys": [json.loads(ed_key.export_public())]}),
                                   cache_size=2)
    a, b, c = (mint(ed_key, claims(sub=s)) for s in "abc")
    for token in (a, b, a, c):  # c evicts b, the least recently used
        verifier.verify(token, now=NOW)
    assert verifier.signature_checks == 3
    verifier.verify(a, now=NOW)
    assert verifier.signature_checks == 3
    verifier.verify(b, now=NOW)
    assert verifier.signature_checks == 4


def test_a_forged_token_is_refused_from_the_negative_cache(verifier: AttestationVerifier) -> None:
    forged = mint(jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed-1"), claims())
    messages = {refused(verifier, forged).message for _ in range(5)}
    assert messages == {"attestation signature does not verify with key 'ed-1'"}
    assert verifier.signature_checks == 1


def test_the_negative_cache_expires(verifier: AttestationVerifier) -> None:
    verifier.negative_ttl = 0
    forged = mint(jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed-1"), claims())
    refused(verifier, forged)
    refused(verifier, forged)
    assert verifier.signature_checks == 2


def test_a_not_yet_valid_token_is_not_cached_as_a_failure(ed_key: jwk.JWK,
                                                          verifier: AttestationVerifier) -> None:
    token = mint(ed_key, claims(nbf=NOW + 600))
    assert refused(verifier, token).reason == "not_yet_valid"
    assert verifier.verify(token, now=NOW + 600).sub == "user-7"


def test_removing_a_key_from_the_jwks_revokes_its_cached_tokens(
        tmp_path: Path, ed_key: jwk.JWK, ec_key: jwk.JWK) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [json.loads(ed_key.export_public()),
                                         json.loads(ec_key.export_public())]}))
    verifier = AttestationVerifier(FileJWKS(path, check_interval=0))
    token = mint(ed_key, claims())
    verifier.verify(token, now=NOW)
    verifier.verify(token, now=NOW)
    assert verifier.cache_hits == 1
    replacement = tmp_path / "next.json"
    replacement.write_text(json.dumps({"keys": [json.loads(ec_key.export_public())]}))
    os.replace(replacement, path)
    error = refused(verifier, token)
    assert error.message == ("attestation is signed with unknown kid 'ed-1'; the trusted JWKS "
                             "holds 'ec-1'")
    assert verifier.verify(mint(ec_key, claims()), now=NOW).verified


# -- property: any change to a valid token is refused ------------------------------------------

_ED = Ed25519PrivateKey.generate()
_EC = ec.generate_private_key(ec.SECP256R1())
_PROPERTY_VERIFIER = AttestationVerifier(
    StaticJWKS({"keys": [public_jwk(_ED, "ed"), public_jwk(_EC, "ec")]}), issuers=[ISSUER])
_TOKENS = {
    "EdDSA": mint_raw(_ED, {"alg": "EdDSA", "kid": "ed"}, claims()),
    "ES256": mint_raw(_EC, {"alg": "ES256", "kid": "ec"}, claims()),
}


def _decoded_parts(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]


@given(alg=st.sampled_from(sorted(_TOKENS)), part=st.sampled_from([1, 2]),
       position=st.integers(min_value=0), delta=st.integers(min_value=1, max_value=255))
@settings(max_examples=300, deadline=None)
def test_any_single_byte_change_to_payload_or_signature_is_refused(
        alg: str, part: int, position: int, delta: int) -> None:
    token = _TOKENS[alg]
    assert _PROPERTY_VERIFIER.verify(token, now=NOW).sub == "user-7"
    parts = _decoded_parts(token)
    changed = bytearray(parts[part])
    changed[position % len(changed)] ^= delta
    parts[part] = bytes(changed)
    with pytest.raises(AttestationError):
        _PROPERTY_VERIFIER.verify(".".join(b64(p) for p in parts), now=NOW)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@given(alg=st.sampled_from(sorted(_TOKENS)), position=st.integers(min_value=0),
       char=st.sampled_from(_ALPHABET))
@settings(max_examples=300, deadline=None)
def test_any_single_character_change_to_the_token_text_is_refused(
        alg: str, position: int, char: str) -> None:
    token = _TOKENS[alg]
    index = position % len(token)
    if token[index] == char:
        char = "A" if char != "A" else "B"
    with pytest.raises(AttestationError):
        _PROPERTY_VERIFIER.verify(token[:index] + char + token[index + 1:], now=NOW)
