"""Signed notes (against the Go reference vectors), checkpoints, ids and leaf encoding."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.audit import record
from harbourgate.audit.note import (
    Checkpoint,
    NoteError,
    SignatureError,
    Signer,
    Verifier,
    key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
)

# golang.org/x/mod/sumdb/note note_test.go
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
          "qdngotpRZb6KE6RyyBwJnAM=\n")


def _go_signer() -> Signer:
    return Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED))


def test_signing_reproduces_the_go_note_byte_for_byte() -> None:
    assert _go_signer().sign(GO_TEXT) == GO_TEXT + "\n" + GO_SIG


def test_verifier_key_text_and_key_id_match_the_go_vector() -> None:
    signer = _go_signer()
    assert signer.verifier.vkey == GO_VKEY
    raw = base64.b64decode(GO_VKEY.split("+")[2])[1:]
    assert key_id("PeterNeumann", raw) == hashlib.sha256(
        b"PeterNeumann\n\x01" + raw).digest()[:4]
    assert key_id("PeterNeumann", raw).hex() == "c74f20a3"


def test_the_go_note_opens_with_the_go_key() -> None:
    assert open_note(GO_TEXT + "\n" + GO_SIG, Verifier.from_vkey(GO_VKEY)) == GO_TEXT


@pytest.mark.parametrize(("vkey", "message"), [
    ("PeterNeumann+c74f20a3", "three parts"),
    ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
    ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
    ("PeterNeumann+c74f20a3+AhpczQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", r"0x01 \(Ed25519\)"),
    ("PeterNeumann+c74f20a3+!!!", "not valid base64"),
    ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "invalid key name"),
])
def test_malformed_verifier_keys_are_refused(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Verifier.from_vkey(vkey)


def test_verifier_keys_whose_base64_holds_a_plus_round_trip() -> None:
    while "+" not in (signer := Signer("log.example", Ed25519PrivateKey.generate())
                      ).verifier.vkey.split("+", 2)[2]:
        pass
    parsed = Verifier.from_vkey(signer.verifier.vkey)
    assert parsed.vkey == signer.verifier.vkey
    assert open_note(signer.sign("hello\n"), parsed) == "hello\n"


def test_a_note_signed_by_another_key_is_refused_naming_both_keys() -> None:
    other = Signer("PeterNeumann", Ed25519PrivateKey.generate())
    note = other.sign(GO_TEXT)
    with pytest.raises(SignatureError) as err:
        open_note(note, Verifier.from_vkey(GO_VKEY))
    assert str(err.value) == (f"not signed by PeterNeumann+c74f20a3; it is signed by "
                              f"PeterNeumann+{other.verifier.key_id.hex()}")


def test_a_modified_note_is_refused() -> None:
    note = (GO_TEXT + "\n" + GO_SIG).replace("answer", "ANSWER")
    with pytest.raises(SignatureError, match="does not match the note's text"):
        open_note(note, Verifier.from_vkey(GO_VKEY))


@pytest.mark.parametrize(("note", "message"), [
    (GO_TEXT + GO_SIG, "no signature block"),
    (GO_TEXT + "\n" + GO_SIG.rstrip("\n"), "must end with a newline"),
    (GO_TEXT + "\n" + GO_SIG.replace("— ", "-- "), "must start with '— '"),
    (GO_TEXT + "\n— PeterNeumann AAAA\n", "malformed signature line"),
    (GO_TEXT.replace("\n", "\r\n", 1) + "\n" + GO_SIG, "control character"),
])
def test_malformed_notes_are_refused(note: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_note(note, Verifier.from_vkey(GO_VKEY))


def test_checkpoint_round_trip_and_body_format() -> None:
    signer = Signer("example.org/log", Ed25519PrivateKey.generate())
    cp = Checkpoint("example.org/log", 8, bytes(range(32)))
    assert cp.body() == ("example.org/log\n8\n" + base64.b64encode(bytes(range(32))).decode()
                         + "\n")
    signed = sign_checkpoint(cp, signer)
    assert open_checkpoint(signed.note, signer.verifier, "example.org/log").checkpoint == cp
    with pytest.raises(SignatureError, match=r"for log 'example\.org/log', not 'other/log'"):
        open_checkpoint(signed.note, signer.verifier, "other/log")


@pytest.mark.parametrize(("body", "message"), [
    ("origin\n8\n", "at least three lines"),
    ("origin\n08\n" + base64.b64encode(b"x" * 32).decode() + "\n", "tree size in decimal"),
    ("origin\n8\n" + base64.b64encode(b"x" * 31).decode() + "\n", "32-byte root hash"),
    ("\n8\n" + base64.b64encode(b"x" * 32).decode() + "\n", "origin\\) is empty"),
])
def test_malformed_checkpoints_are_refused(body: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(body)


def test_entry_ids_are_unique_time_ordered_ulids() -> None:
    ids = [record.new_entry_id() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)
    assert all(record.is_entry_id(i) for i in ids)


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1))
def test_entry_ids_spell_their_130_bits_in_crockford_base32(ms: int, rand: int) -> None:
    """The two-character table spells what one character per 5 bits spells."""
    value = (ms << 80) | rand
    plain = "".join("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(value >> shift) & 31]
                    for shift in range(125, -1, -5))
    assert record._ulid(ms, rand) == plain


def test_leaf_encoding_is_canonical_and_adds_id_and_ts() -> None:
    leaf = record.encode({"b": [1, 2], "a": {"z": "香港", "y": None}}, "ID1", "T")
    assert leaf == '{"a":{"y":null,"z":"香港"},"b":[1,2],"id":"ID1","ts":"T"}'.encode()
    rec = record.decode(leaf)
    assert record.is_canonical(leaf, rec)
    assert not record.is_canonical(b'{"id": "ID1"}', record.decode(b'{"id": "ID1"}'))


def test_records_may_not_set_id_or_ts() -> None:
    with pytest.raises(record.RecordError,
                       match="must not set 'id': the log adds 'id' and 'ts'"):
        record.encode({"id": "x"}, "ID", "T")


def test_unserialisable_records_are_refused() -> None:
    with pytest.raises(record.RecordError, match="not JSON-serialisable"):
        record.encode({"x": object()}, "ID", "T")


def test_decode_refuses_non_records() -> None:
    with pytest.raises(record.RecordError, match="not a JSON object"):
        record.decode(b"[1]")
    with pytest.raises(record.RecordError, match="not valid JSON"):
        record.decode(b"{")


@given(st.integers(0, 4_102_444_800_000))  # milliseconds until 2100
def test_the_current_timestamp_reads_as_the_clock_said(ms: int) -> None:
    """The fast path (the second's text kept for the next call) agrees with formatting
    the same instant in full, across second boundaries."""
    for tick in (ms, ms + 1, ms + 999, ms + 1000):
        when = datetime.fromtimestamp(tick // 1000, UTC).replace(
            microsecond=(tick % 1000) * 1000)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(record.time, "time_ns", lambda tick=tick: tick * 1_000_000)
            assert record.timestamp() == record.timestamp(when)

