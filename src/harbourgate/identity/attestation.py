"""Verified end users: attestations from trusted identity verifiers, checked and cached.

An attestation is a compact JWS (Ed25519, as `EdDSA` or RFC 9864's `Ed25519`, or ES256),
verified by joserfc, whose claims state who the
end user is: `sub`, `nationality`, `residence`, `verification_level`, `iss`, `iat`, `exp`.
`AttestationVerifier.verify()` turns one into an `EndUser` or raises `AttestationError`
with a message that says exactly what is wrong, because the participant reading a 401 has
to fix it without our help.

What is refused and why:
- anything but EdDSA and ES256: `none` and HMAC would let anyone who knows (or guesses)
  the algorithm mint users; RSA and others are simply not offered by the verifiers.
- keys that are not in the configured JWKS: `jwk`, `jku` and `x5u` headers are ignored.
- non-canonical base64url and high-S ES256 signatures `(r, n - s)`, so a token has
  exactly one spelling and one cache entry.
- claims are only read after the signature verifies.

The hot path pays for a signature check once per token: verified tokens are cached by
SHA-256 digest until `exp` (a hit still checks `exp` against `now`), and failures that
cannot change with time are cached for a few seconds, so a flood of one forged token costs
a hash and a dictionary lookup. Both caches are bounded LRUs and are emptied whenever the
trusted keys change, so removing a verifier's key takes effect at once.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import SecurityWarning

from harbourgate import geo
from harbourgate.config import VerifierSettings
from harbourgate.identity.jwks import (
    ED25519,
    EDDSA,
    ES256,
    JWKSError,
    JWKSSource,
    KeySet,
    VerifierKey,
    b64url_decode,
    open_jwks,
)

__all__ = [
    "ISO_3166_ALPHA2",
    "UNKNOWN",
    "AttestationError",
    "AttestationVerifier",
    "EndUser",
    "JWKSError",
    "JWKSSource",
    "KeySet",
]

MAX_TOKEN_BYTES: Final = 8192
DEFAULT_LEEWAY: Final = 60.0

ISO_3166_ALPHA2: Final = geo.COUNTRIES  # the one list (`harbourgate.geo`)

_ACCEPTED_ALGS: Final = (EDDSA, ED25519, ES256)
# joserfc verifies; its registry knows no other algorithm, so nothing else can slip through.
# Unknown header parameters are ignored as RFC 7515 says (`crit` is refused before).
_REGISTRY: Final = jws.JWSRegistry(algorithms=_ACCEPTED_ALGS, strict_check_header=False)
_P256_N: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# `EdDSA` is deprecated by RFC 9864 in favour of `Ed25519`; verifiers still send it.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
_LATEST_TIME: Final = 253402300799  # 9999-12-31T23:59:59Z

# Failures that do not depend on the clock: safe to answer from the negative cache.
_STABLE_REASONS: Final = frozenset({
    "malformed", "alg_refused", "unsupported_alg", "unknown_kid", "bad_signature",
    "untrusted_issuer", "invalid_claims", "no_keys"})


class AttestationError(Exception):
    """An attestation that cannot be accepted; `str()` is the message for the 401 answer.

    `reason` is a stable slug for logs and metrics: malformed, alg_refused, unsupported_alg,
    unknown_kid, bad_signature, untrusted_issuer, expired, not_yet_valid, invalid_claims,
    no_keys.
    """

    code: Final = "invalid_attestation"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class EndUser:
    """Who the end user is, as a trusted verifier attested it (or `UNKNOWN`)."""

    sub: str | None
    nationality: tuple[str, ...] = ()  # ISO 3166-1 alpha-2, upper-case, no duplicates
    residence: str | None = None
    verification_level: str | None = None
    issuer: str | None = None
    issued_at: float | None = None
    expires_at: float | None = None

    @property
    def verified(self) -> bool:
        """Whether a trusted verifier vouches for this user (False for `UNKNOWN`)."""
        return self.issuer is not None


UNKNOWN: Final = EndUser(sub=None)
"""The end user of a request without an attestation: nationality unknown, never satisfies
a rule that requires one."""


def _key_name(key: VerifierKey) -> str:
    return f"key {key.kid!r}" if key.kid is not None else "the sole trusted key"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fail(reason: str, message: str) -> AttestationError:
    return AttestationError(reason, f"attestation {message}")


def _claim_error(name: str, problem: str) -> AttestationError:
    return _fail("invalid_claims", f"claim {name!r} is invalid: {problem}")


class AttestationVerifier:
    """Checks attestations against the trusted verifiers' keys and accepted issuers.

    Build it with `from_settings(settings.verifiers)`, call `load()` once at start (it
    raises `JWKSError` when the JWKS has never been good), run `run_refresher()` as a
    background task, then call `verify()` or `end_user()` per request.
    """

    def __init__(self, source: JWKSSource | None, *, issuers: Iterable[str] = (),
                 leeway: float = DEFAULT_LEEWAY, cache_size: int = 10_000,
                 negative_cache_size: int = 1_000, negative_ttl: float = 5.0) -> None:
        if leeway < 0:
            raise ValueError("leeway must not be negative")
        if cache_size < 1 or negative_cache_size < 0:
            raise ValueError("cache sizes must be positive")
        self.source = source
        self.issuers = frozenset(issuers)
        self.leeway = leeway
        self.cache_size = cache_size
        self.negative_cache_size = negative_cache_size
        self.negative_ttl = negative_ttl
        self._good: OrderedDict[bytes, EndUser] = OrderedDict()
        self._bad: OrderedDict[bytes, tuple[float, str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._keys_seen: KeySet | None = None
        self.cache_hits = 0
        self.signature_checks = 0

    @classmethod
    def from_settings(cls, settings: VerifierSettings, *, leeway: float = DEFAULT_LEEWAY,
                      check_interval: float = 1.0, refresh_interval: float = 300.0,
                      cache_size: int = 10_000) -> AttestationVerifier:
        """The verifier for a `verifiers:` config section (no keys when `jwks` is unset)."""
        source = (open_jwks(settings.jwks, check_interval=check_interval,
                            refresh_interval=refresh_interval) if settings.jwks else None)
        return cls(source, issuers=settings.issuers, leeway=leeway, cache_size=cache_size)

    # -- keys -------------------------------------------------------------------------------

    @property
    def status(self) -> dict[str, Any]:
        """For `/readyz`: `{"keys", "source", "last_error", "loaded_at", "checked_at"}`."""
        if self.source is None:
            return {"keys": 0, "source": None, "last_error": None, "loaded_at": None,
                    "checked_at": None}
        return self.source.status

    def load(self) -> None:
        """Load the JWKS now; raises `JWKSError` if it fails (the last good keys stay)."""
        if self.source is not None:
            self.source.load()

    async def refresh(self) -> None:
        """Reload the JWKS off the event loop; failures are recorded in `status`, not raised."""
        if self.source is not None:
            await self.source.refresh()

    async def run_refresher(self) -> None:
        """Keep the keys fresh until cancelled; run it as a background task per process."""
        if self.source is not None:
            await self.source.run_refresher()

    # -- verification -----------------------------------------------------------------------

    def end_user(self, attestation: str | None, now: float | None = None) -> EndUser:
        """The end user of a request: `UNKNOWN` without an attestation, else `verify()`."""
        if attestation is None:
            return UNKNOWN
        return self.verify(attestation, now)

    def verify(self, token: str, now: float | None = None) -> EndUser:
        """The `EndUser` a compact JWS attests, or `AttestationError` saying what is wrong."""
        if now is None:
            now = time.time()
        keys = self._current_keys()
        if not token:
            raise _fail("malformed", "is empty")
        if len(token) > MAX_TOKEN_BYTES:
            raise _fail("malformed", f"is {len(token)} bytes long; the limit is "
                                     f"{MAX_TOKEN_BYTES}")
        if not token.isascii():
            raise _fail("malformed", "contains non-ASCII characters; a compact JWS is "
                                     "three base64url parts separated by '.'")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        bad: tuple[float, str, str] | None = None
        with self._lock:
            user = self._good.get(digest)
            if user is not None:
                self._good.move_to_end(digest)
                self.cache_hits += 1
            else:
                bad = self._bad.get(digest)
        if user is not None:
            assert user.expires_at is not None
            if now > user.expires_at + self.leeway:
                with self._lock:
                    self._good.pop(digest, None)
                raise _fail("expired", f"expired at {_utc(user.expires_at)}")
            return user
        if bad is not None:
            until, reason, message = bad
            if time.monotonic() < until:
                raise AttestationError(reason, message)
        try:
            user = self._verify(token, keys, now)
        except AttestationError as error:
            if error.reason in _STABLE_REASONS and self.negative_cache_size:
                with self._lock:
                    self._bad[digest] = (time.monotonic() + self.negative_ttl, error.reason,
                                         error.message)
                    self._bad.move_to_end(digest)
                    while len(self._bad) > self.negative_cache_size:
                        self._bad.popitem(last=False)
            if error.reason == "unknown_kid" and self.source is not None:
                self.source.request_refresh()
            raise
        with self._lock:
            self._good[digest] = user
            while len(self._good) > self.cache_size:
                self._good.popitem(last=False)
        return user

    def cache_clear(self) -> None:
        """Forget every cached result (the keys changed, or a test wants a cold cache)."""
        with self._lock:
            self._good.clear()
            self._bad.clear()

    def _current_keys(self) -> KeySet:
        if self.source is None:
            raise _fail("no_keys", "cannot be verified: no identity verifiers are configured "
                                   "(set verifiers.jwks)")
        self.source.maybe_reload()
        keys = self.source.keys
        if keys is not self._keys_seen:
            self.cache_clear()
            self._keys_seen = keys
        return keys

    def _verify(self, token: str, keys: KeySet, now: float) -> EndUser:
        header, payload, signature = _split(token)
        key = self._select_key(header, keys)
        if key.alg == ES256 and len(signature) == 64 \
                and int.from_bytes(signature[32:], "big") > _P256_N // 2:
            raise _fail("bad_signature", "ES256 signature has a high S (the twin (r, n - s) of "
                                         "another): sign with low S, so a token has one "
                                         "spelling")
        self.signature_checks += 1
        try:
            jws.deserialize_compact(token, key.key, algorithms=[header["alg"]],
                                    registry=_REGISTRY)
        except BadSignatureError:
            size = ("" if len(signature) == 64 else
                    f" ({len(signature)} bytes; {key.alg} signatures are 64 bytes"
                    f"{', raw r||s, not DER' if key.alg == ES256 else ''})")
            raise _fail("bad_signature", f"signature does not verify with {_key_name(key)}"
                                         f"{size}") from None
        except (JoseError, ValueError) as exc:
            raise _fail("malformed", f"is not a JWS joserfc accepts ({exc})") from None
        try:
            claims = orjson.loads(payload)
        except orjson.JSONDecodeError:
            claims = None
        if not isinstance(claims, dict):
            raise _fail("invalid_claims", "payload is not a JSON object of claims")
        return self._end_user(claims, now)

    def _select_key(self, header: Mapping[str, Any], keys: KeySet) -> VerifierKey:
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise _fail("malformed", "header has no alg")
        if alg.lower() == "none":
            raise _fail("alg_refused", f"uses alg {alg!r}: unsigned tokens are refused")
        if alg.upper().startswith("HS"):
            raise _fail("alg_refused", f"uses alg {alg!r}: HMAC (shared-secret) algorithms "
                                       "are refused; sign with EdDSA (Ed25519) or ES256")
        if alg not in _ACCEPTED_ALGS:
            raise _fail("unsupported_alg", f"uses unsupported alg {alg!r}; only EdDSA "
                                           "(Ed25519) and ES256 are accepted")
        crit = header.get("crit")
        if crit is not None:
            raise _fail("malformed", f"header marks {crit!r} as critical; no JWS extensions "
                                     "are supported")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _fail("malformed", "header kid must be a string")
        if not keys:
            detail = f" ({self.source.last_error})" if self.source and self.source.last_error \
                else ""
            raise _fail("no_keys", f"cannot be verified: no trusted verifier keys are "
                                   f"loaded{detail}")
        key = keys.get(kid)
        if key is None:
            if kid is None:
                raise _fail("unknown_kid", f"header has no kid and the trusted JWKS holds "
                                           f"{len(keys)} keys; the verifier must set kid")
            known = ", ".join(repr(k) for k in keys.kids if k is not None)
            raise _fail("unknown_kid", f"is signed with unknown kid {kid!r}; the trusted "
                                       f"JWKS holds {known or 'no named keys'}")
        if alg not in key.algs:
            raise _fail("unsupported_alg", f"uses {alg} but {_key_name(key)} is a {key.kind} "
                                           f"key, which verifies only {key.alg}")
        return key

    def _end_user(self, claims: dict[str, Any], now: float) -> EndUser:
        """Claims → `EndUser`: everything about the token first, the clock last.

        Checking the clock last makes every other refusal independent of time, which is
        what lets the negative cache answer them.
        """
        iss = claims.get("iss")
        if iss is None:
            raise _fail("invalid_claims", "is missing the required claim 'iss'")
        if not isinstance(iss, str) or not iss:
            raise _claim_error("iss", "must be a non-empty string")
        if self.issuers and iss not in self.issuers:
            raise _fail("untrusted_issuer", f"issuer {iss!r} is not trusted; accepted "
                                            f"issuers: {', '.join(sorted(self.issuers))}")
        exp = _time_claim(claims, "exp", required=True)
        nbf = _time_claim(claims, "nbf")
        iat = _time_claim(claims, "iat")
        sub = claims.get("sub")
        if sub is None:
            raise _fail("invalid_claims", "is missing the required claim 'sub'")
        if not isinstance(sub, str) or not sub:
            raise _claim_error("sub", "must be a non-empty string")
        if "nationality" not in claims:
            raise _fail("invalid_claims", "is missing the required claim 'nationality'")
        nationality = _nationality(claims["nationality"])
        residence = claims.get("residence")
        if residence is not None:
            residence = _country(residence, "residence")
        level = claims.get("verification_level")
        if level is not None:
            if isinstance(level, bool) or not isinstance(level, str | int) or level == "":
                raise _claim_error("verification_level", "must be a non-empty string")
            level = str(level)
        assert exp is not None
        if now > exp + self.leeway:
            raise _fail("expired", f"expired at {_utc(exp)}")
        if nbf is not None and now + self.leeway < nbf:
            raise _fail("not_yet_valid", f"is not valid before {_utc(nbf)} (nbf)")
        if iat is not None and now + self.leeway < iat:
            raise _fail("not_yet_valid", f"was issued in the future, at {_utc(iat)} (iat)")
        return EndUser(sub=sub, nationality=nationality, residence=residence,
                       verification_level=level, issuer=iss, issued_at=iat, expires_at=exp)


def _split(token: str) -> tuple[dict[str, Any], bytes, bytes]:
    """Header, payload and signature of a compact JWS, strictly decoded (one spelling)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _fail("malformed", f"is not a compact JWS: expected three base64url parts "
                                 f"separated by '.', found {len(parts)}")
    header_b64, payload_b64, signature_b64 = parts
    if not payload_b64:
        raise _fail("malformed", "has an empty payload (detached payloads are not accepted)")
    try:
        header = orjson.loads(b64url_decode(header_b64))
    except (ValueError, orjson.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise _fail("malformed", "header is not a base64url-encoded JSON object")
    decoded: list[bytes] = []
    for name, text in (("payload", payload_b64), ("signature", signature_b64)):
        try:
            decoded.append(b64url_decode(text))
        except ValueError as exc:
            raise _fail("malformed", f"{name} is {exc}") from exc
    return header, decoded[0], decoded[1]


def _time_claim(claims: Mapping[str, Any], name: str, required: bool = False) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise _fail("invalid_claims", f"is missing the required claim {name!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _claim_error(name, "must be a number of seconds since 1970-01-01T00:00:00Z")
    if not 0 <= value <= _LATEST_TIME:
        raise _claim_error(name, f"{value} is out of range")
    return float(value)


def _country(value: Any, name: str) -> str:
    """Exactly an assigned code: `uſ` and `ıs`, which `str.upper()` turns into US and IS,
    are refused like any other string that is not one."""
    try:
        return geo.normalise_country(value)
    except ValueError as exc:
        raise _claim_error(name, str(exc)) from None


def _nationality(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _claim_error("nationality", "must be a list of ISO 3166-1 alpha-2 codes such "
                                          f"as [\"US\"], not {type(value).__name__}")
    codes: list[str] = []
    for item in value:
        code = _country(item, "nationality")
        if code not in codes:
            codes.append(code)
    return tuple(codes)

