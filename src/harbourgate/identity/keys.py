"""API keys: generated from `secrets`, stored only as a SHA-256 hash, shown once.

A key carries 256 bits of randomness, so a plain (unsalted, fast) SHA-256 is the right
hash: there is nothing to brute-force, and the data plane can look a key up by its hash
in a dictionary, in constant time per request.
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "hg_"
PREFIX_LENGTH = 11  # "hg_" + 8 characters: enough to tell keys apart in a list
KEY_PATTERN = re.compile(r"^hg_[A-Za-z0-9_-]{43}$")
KEY_ID_PATTERN = re.compile(r"^key_[0-9a-f]{16}$")


def generate_key() -> tuple[str, str, str]:
    """A new key: `(plain key, SHA-256 hex hash, display prefix)`."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 32 bytes -> 43 url-safe characters
    return key, hash_key(key), display_prefix(key)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored and looked up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """The first characters of a key, safe to show in lists and logs."""
    return key[:PREFIX_LENGTH]


def generate_key_id() -> str:
    """A key's public id, `key_` + 16 hex characters; unrelated to the key itself."""
    return "key_" + secrets.token_hex(8)


def looks_like_key(value: str) -> bool:
    """Whether `value` has the shape of a Harbourgate key (cheap pre-check, no lookup)."""
    return bool(KEY_PATTERN.fullmatch(value))
