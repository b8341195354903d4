"""The log's Ed25519 signing key: configured, or created in data_dir on first start.

Creation is atomic (write a temporary file, then hard-link it into place), so several
worker processes starting at once all end up with the same key.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from harbourgate.audit.note import Signer
from harbourgate.config import Settings

KEY_FILE = "audit-key.pem"


class SigningKeyError(ValueError):
    """The signing key cannot be read; the message names the file and the fix."""


def key_path(settings: Settings) -> Path:
    """Where the signing key lives: `audit.signing_key`, or data_dir/audit-key.pem."""
    if settings.audit.signing_key:
        return Path(settings.audit.signing_key)
    return settings.data_dir / KEY_FILE


def read_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file at `path`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the audit signing key "
                              f"({exc.strerror})") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: the audit signing key must be Ed25519, "
                        f"not {type(key).__name__}")
    return key


def create_key(path: Path) -> Ed25519PrivateKey:
    """Create an Ed25519 key at `path` (mode 0600) unless one appeared there meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return read_key(path)  # another process won the race: use its key
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return key


def load_signer(settings: Settings, *, create: bool = True) -> Signer:
    """The log's signer, named by `audit.origin`.

    A configured key must exist; the default one in data_dir is created when missing
    (unless `create` is false, as for read-only commands).
    """
    path = key_path(settings)
    if not path.exists() and create and not settings.audit.signing_key:
        key = create_key(path)
    else:
        if not path.exists():
            where = "audit.signing_key" if settings.audit.signing_key else "data_dir"
            raise SigningKeyError(f"{path}: no audit signing key there; check {where} in the "
                            "configuration")
        key = read_key(path)
    return Signer(settings.audit.origin, key)
