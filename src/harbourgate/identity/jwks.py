"""The trusted identity verifiers' public keys: a JWKS, parsed strictly, reloaded without restart.

A JWKS is the only thing that makes an attestation trustworthy, so it is read with suspicion:
only Ed25519 (`OKP`) and P-256 (`EC`) signing keys are kept, every other key is skipped with
a log line, and a document that is malformed is refused as a whole rather than half-used.
The keys themselves are joserfc's (`OKPKey`, `ECKey`), which verify the signatures; what is
checked here is which keys to trust, and that their encoding has one spelling.

A source (`FileJWKS`, `URLJWKS`) holds the current `KeySet` and swaps it for a new one when
the file changes or the URL is re-fetched. When a reload fails, the last good keys stay in
force and the error is kept for `/readyz` (`status`): a typo in the JWKS must not lock every
verified end user out. Only an explicit `load()` raises, so the CLI can refuse to start on a
JWKS that was never good.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import re
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from joserfc.jwk import ECKey, OKPKey

log = logging.getLogger("harbourgate.identity.jwks")

EDDSA = "EdDSA"
ED25519 = "Ed25519"  # RFC 9864's fully specified name for EdDSA with Ed25519
ES256 = "ES256"
MAX_JWKS_BYTES = 1_000_000

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class JWKSError(Exception):
    """A JWKS that cannot be used, naming where it came from and what is wrong with it."""


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url strictly (RFC 7515 §2): one text, one meaning.

    Padding, characters outside the URL-safe alphabet and non-zero trailing bits are
    refused, so no two different strings decode to the same bytes.
    """
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url (only A-Z a-z 0-9 - _ without padding)")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url (truncated)") from exc
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise ValueError("not canonical base64url (non-zero trailing bits)")
    return data


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """One trusted public key (joserfc's) and the algorithms it may verify."""

    kid: str | None
    alg: str  # EDDSA for Ed25519 keys, ES256 for P-256 keys
    key: OKPKey | ECKey = field(repr=False)

    @property
    def kind(self) -> str:
        return "Ed25519" if self.alg == EDDSA else "P-256"

    @property
    def algs(self) -> tuple[str, ...]:
        """The `alg` values a token signed with this key may carry."""
        return (EDDSA, ED25519) if self.alg == EDDSA else (ES256,)


class KeySet:
    """An immutable set of trusted keys, looked up by `kid`."""

    __slots__ = ("_by_kid", "keys")

    def __init__(self, keys: tuple[VerifierKey, ...] = ()) -> None:
        self.keys = keys
        self._by_kid = {k.kid: k for k in keys if k.kid is not None}

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"KeySet(kids={self.kids!r})"

    @property
    def kids(self) -> tuple[str | None, ...]:
        return tuple(k.kid for k in self.keys)

    def get(self, kid: str | None) -> VerifierKey | None:
        """The key a token's `kid` names; without a kid (or an unnamed key), only a sole key."""
        if kid is not None and kid in self._by_kid:
            return self._by_kid[kid]
        if len(self.keys) == 1 and (kid is None or self.keys[0].kid is None):
            return self.keys[0]
        return None


EMPTY = KeySet()


def parse_jwks(document: bytes | str | Mapping[str, Any], *, source: str = "JWKS") -> KeySet:
    """Parse a JWKS (RFC 7517) into the keys that may verify attestations.

    Raises `JWKSError` for a malformed document or a malformed key of a supported type;
    keys of other types, curves, uses or algorithms are skipped with a log line.
    """
    if isinstance(document, bytes | str):
        try:
            document = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            raise JWKSError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(document, Mapping):
        raise JWKSError(f"{source}: must be a JSON object with a \"keys\" list")
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise JWKSError(f"{source}: must be a JSON object with a \"keys\" list")
    keys: list[VerifierKey] = []
    for i, entry in enumerate(entries):
        key = _parse_key(entry, f"{source}: keys[{i}]")
        if key is None:
            continue
        if key.kid is not None and any(k.kid == key.kid for k in keys):
            raise JWKSError(f"{source}: keys[{i}]: kid {key.kid!r} appears twice; "
                            "every key needs its own kid")
        keys.append(key)
    unnamed = sum(1 for k in keys if k.kid is None)
    if unnamed and len(keys) > 1:
        log.warning("%s: %d key(s) without kid among %d keys; tokens cannot select them",
                    source, unnamed, len(keys))
    return KeySet(tuple(keys))


def _parse_key(entry: Any, where: str) -> VerifierKey | None:
    if not isinstance(entry, Mapping):
        raise JWKSError(f"{where}: must be a JSON object (a JWK)")
    kid = entry.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise JWKSError(f"{where}: kid must be a non-empty string")
    kty, crv = entry.get("kty"), entry.get("crv")
    if not isinstance(kty, str):
        raise JWKSError(f"{where}: missing kty")
    if kty == "OKP" and crv == "Ed25519":
        alg = EDDSA
    elif kty == "EC" and crv == "P-256":
        alg = ES256
    else:
        log.info("%s: skipped a %s%s key: only Ed25519 (OKP) and P-256 (EC) keys are trusted",
                 where, kty, f"/{crv}" if isinstance(crv, str) else "")
        return None
    use, ops, declared = entry.get("use"), entry.get("key_ops"), entry.get("alg")
    if use is not None and use != "sig":
        log.info("%s: skipped a key with use %r: only signing keys (use: sig) verify", where, use)
        return None
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        log.info("%s: skipped a key whose key_ops %r do not include verify", where, ops)
        return None
    if declared is not None and declared not in ((EDDSA, ED25519) if alg == EDDSA else (alg,)):
        log.info("%s: skipped a %s key declared for alg %r (expected %s)",
                 where, crv, declared, alg)
        return None
    if "d" in entry:
        log.warning("%s: holds private key material (d); publish only public keys", where)
    _coordinate(entry, "x", where)
    public = {"kty": kty, "crv": crv, "x": entry["x"]}  # never the private part
    if alg == ES256:
        _coordinate(entry, "y", where)
        public["y"] = entry["y"]
    try:
        key: OKPKey | ECKey = (OKPKey if alg == EDDSA else ECKey).import_key(public)
    except ValueError as exc:
        raise JWKSError(f"{where}: not a valid {crv} public key ({exc})") from exc
    return VerifierKey(kid=kid, alg=alg, key=key)


def _coordinate(entry: Mapping[str, Any], name: str, where: str) -> bytes:
    """A key coordinate, strictly: present, canonical base64url, 32 bytes."""
    value = entry.get(name)
    if not isinstance(value, str):
        raise JWKSError(f"{where}: missing {name}")
    try:
        data = b64url_decode(value)
    except ValueError as exc:
        raise JWKSError(f"{where}: {name} is {exc}") from exc
    if len(data) != 32:
        raise JWKSError(f"{where}: {name} must be 32 bytes, not {len(data)}")
    return data


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class JWKSSource(ABC):
    """Where the trusted keys come from, holding the last good `KeySet`.

    `keys` is read on every verification; `maybe_reload()` is the only thing the verify
    path calls and must stay cheap. `load()` raises, `refresh()` never does.
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self._keys: KeySet = EMPTY
        self._loaded_at: float | None = None
        self._last_error: str | None = None
        self._last_attempt: float | None = None

    @property
    def keys(self) -> KeySet:
        return self._keys

    @property
    def loaded(self) -> bool:
        """Whether a good JWKS has ever been loaded."""
        return self._loaded_at is not None

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def status(self) -> dict[str, Any]:
        """What `/readyz` reports: key count, source, last error, when the keys were loaded."""
        return {"keys": len(self._keys), "source": self.description,
                "last_error": self._last_error, "loaded_at": _iso(self._loaded_at),
                "checked_at": _iso(self._last_attempt)}

    def maybe_reload(self) -> None:  # noqa: B027 - deliberately a no-op by default
        """Pick up a change if it is cheap to notice (a file's mtime); never raises."""

    def request_refresh(self) -> None:  # noqa: B027 - deliberately a no-op by default
        """Ask the background refresher to fetch soon (a token named an unknown kid)."""

    @abstractmethod
    def _fetch(self) -> KeySet | None:
        """Read and parse the JWKS; None when it is unchanged since the last good load."""

    def load(self) -> KeySet:
        """Read the JWKS now; on failure record it, keep the last good keys and raise."""
        self._last_attempt = time.time()
        try:
            fetched = self._fetch()
        except JWKSError as exc:
            self._fail(str(exc))
            raise
        if fetched is not None:
            if fetched.kids != self._keys.kids or not self.loaded:
                log.info("%s: %d trusted verifier key(s) loaded (kids: %s)", self.description,
                         len(fetched), ", ".join(str(k) for k in fetched.kids) or "none")
            self._keys = fetched
        if self._last_error is not None:
            log.info("%s: JWKS is good again", self.description)
        self._loaded_at = self._last_attempt
        self._last_error = None
        return self._keys

    def _fail(self, message: str) -> None:
        self._last_error = message
        if self.loaded:
            log.warning("%s; keeping the %d last good key(s)", message, len(self._keys))
        else:
            log.error("%s; no trusted verifier keys are loaded", message)

    async def refresh(self) -> None:
        """Reload off the event loop; errors are recorded in `status`, never raised."""
        with contextlib.suppress(JWKSError):
            await asyncio.to_thread(self.load)

    @abstractmethod
    async def run_refresher(self) -> None:
        """Keep the keys fresh until cancelled: run it as a background task."""


class StaticJWKS(JWKSSource):
    """Keys given in memory (tests, embedding): never reloaded."""

    def __init__(self, document: bytes | str | Mapping[str, Any] | KeySet,
                 description: str = "static JWKS") -> None:
        super().__init__(description)
        self._document = document
        self.load()

    def _fetch(self) -> KeySet:
        if isinstance(self._document, KeySet):
            return self._document
        return parse_jwks(self._document, source=self.description)

    async def run_refresher(self) -> None:
        await asyncio.Event().wait()


class FileJWKS(JWKSSource):
    """A JWKS file, re-read when its mtime, size or inode changes.

    The check is one `stat` at most every `check_interval` seconds, cheap enough for the
    verify path. A file that fails to parse is not re-read until it changes again.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path).expanduser()
        super().__init__(f"JWKS file {self.path}")
        self.check_interval = check_interval
        self._clock = clock
        self._signature: tuple[int, int, int] | None = None
        self._next_check = float("-inf")

    def _stat(self) -> tuple[int, int, int]:
        st = self.path.stat()
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _fetch(self) -> KeySet:
        try:
            signature = self._stat()
            data = self.path.read_bytes()
        except OSError as exc:
            raise JWKSError(f"{self.description}: cannot read it "
                            f"({exc.strerror or exc})") from exc
        self._signature = signature
        if len(data) > MAX_JWKS_BYTES:
            raise JWKSError(f"{self.description}: {len(data)} bytes is more than the "
                            f"{MAX_JWKS_BYTES} a JWKS may hold")
        return parse_jwks(data, source=self.description)

    def maybe_reload(self) -> None:
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self.check_interval
        try:
            signature = self._stat()
        except OSError as exc:
            if self._signature != (-1, -1, -1):  # report a vanished file once, not every second
                self._signature = (-1, -1, -1)
                self._last_attempt = time.time()
                self._fail(f"{self.description}: cannot read it ({exc.strerror or exc})")
            return
        if signature != self._signature:
            with contextlib.suppress(JWKSError):
                self.load()

    async def run_refresher(self) -> None:
        """Notice file changes even while no attestation arrives, so `/readyz` stays true."""
        while True:
            self.maybe_reload()
            await asyncio.sleep(max(self.check_interval, 0.05))


class URLJWKS(JWKSSource):
    """A JWKS served over http(s): fetched by `load()` at start, then by `run_refresher()`.

    The verify path never fetches. A token naming an unknown kid asks the refresher to
    fetch early (a verifier rotating its key), at most once per `min_interval` so forged
    kids cannot turn the gateway into a request amplifier. Failed fetches are retried
    every `min_interval`; `ETag` / `Last-Modified` make unchanged refreshes cheap.
    """

    def __init__(self, url: str, *, refresh_interval: float = 300.0, min_interval: float = 30.0,
                 timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise JWKSError(f"JWKS URL {url}: must start with http:// or https://")
        super().__init__(f"JWKS URL {url}")
        self.url = url
        self.refresh_interval = refresh_interval
        self.min_interval = min_interval
        self.timeout = timeout
        self._validators: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def _fetch(self) -> KeySet | None:
        request = urllib.request.Request(self.url, headers={
            "Accept": "application/jwk-set+json, application/json", **self._validators})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read(MAX_JWKS_BYTES + 1)
                etag, modified = response.headers.get("ETag"), response.headers.get(
                    "Last-Modified")
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and self.loaded:
                return None
            raise JWKSError(f"{self.description}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise JWKSError(f"{self.description}: unreachable ({reason})") from exc
        if len(data) > MAX_JWKS_BYTES:
            raise JWKSError(f"{self.description}: more than the {MAX_JWKS_BYTES} bytes "
                            "a JWKS may hold")
        keys = parse_jwks(data, source=self.description)
        self._validators = {}
        if etag:
            self._validators["If-None-Match"] = etag
        if modified:
            self._validators["If-Modified-Since"] = modified
        return keys

    def request_refresh(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        last = self._last_attempt
        if last is not None and time.time() - last < self.min_interval:
            return
        loop.call_soon_threadsafe(wake.set)

    async def run_refresher(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            while True:
                delay = self.refresh_interval if self._last_error is None else self.min_interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                self._wake.clear()
                await self.refresh()
        finally:
            self._loop = self._wake = None


def open_jwks(location: str, *, check_interval: float = 1.0, refresh_interval: float = 300.0,
              min_interval: float = 30.0, timeout: float = 5.0) -> JWKSSource:
    """The source for `verifiers.jwks`: an http(s) URL, or else a file path."""
    if location.startswith(("http://", "https://")):
        return URLJWKS(location, refresh_interval=refresh_interval, min_interval=min_interval,
                       timeout=timeout)
    if location.startswith("file://"):
        location = location.removeprefix("file://")
    return FileJWKS(location, check_interval=check_interval)
