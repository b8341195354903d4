"""API keys: shape, hashing, prefixes and ids."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given
from hypothesis import strategies as st

from harbourgate.identity.keys import (
    KEY_ID_PATTERN,
    display_prefix,
    generate_key,
    generate_key_id,
    hash_key,
    looks_like_key,
)


def test_a_generated_key_is_hg_plus_43_url_safe_characters() -> None:
    key, key_hash, prefix = generate_key()
    assert re.fullmatch(r"hg_[A-Za-z0-9_-]{43}", key)
    assert key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert prefix == key[:11]
    assert looks_like_key(key)


def test_keys_and_ids_do_not_repeat() -> None:
    keys = {generate_key()[0] for _ in range(2000)}
    ids = {generate_key_id() for _ in range(2000)}
    assert len(keys) == 2000
    assert len(ids) == 2000


def test_a_key_id_is_key_plus_16_hex() -> None:
    assert KEY_ID_PATTERN.fullmatch(generate_key_id())


def test_the_hash_is_the_sha256_hex_of_the_key() -> None:
    # known answer: printf 'hg_abc' | sha256sum
    assert hash_key("hg_abc") == "2f734d398a87288be1448be292b4cc44e8a6ccc64bfe05414a4e378102a3c9ef"


@given(st.text(min_size=1, max_size=80))
def test_hashing_is_deterministic_and_64_hex(text: str) -> None:
    assert hash_key(text) == hash_key(text)
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(text))


@given(st.text(max_size=60))
def test_only_the_key_shape_looks_like_a_key(text: str) -> None:
    expected = bool(re.fullmatch(r"hg_[A-Za-z0-9_-]{43}", text)) and "\n" not in text
    assert looks_like_key(text) is expected


def test_a_key_with_a_character_more_or_less_does_not_look_like_one() -> None:
    key = generate_key()[0]
    assert not looks_like_key(key + "a")
    assert not looks_like_key(key[:-1])
    assert not looks_like_key("sk" + key[2:])


def test_the_display_prefix_does_not_reveal_the_key() -> None:
    key = generate_key()[0]
    assert display_prefix(key) == key[:11]
    assert len(key) - len(display_prefix(key)) == 35  # 210 bits stay secret
