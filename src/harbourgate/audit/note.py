"""C2SP signed notes and tlog checkpoints, with Ed25519 keys.

    key id        = SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)[:4]
    verifier key  = name+hex(key id)+base64(0x01 ‖ public key)
    signed note   = text (ends in "\\n"), a blank line, then lines "— name base64(key id ‖ sig)"
    checkpoint    = origin "\\n" decimal size "\\n" base64(root) "\\n" [extension lines]

Parsing follows golang.org/x/mod/sumdb/note (and is tested against its vectors), so any
Go-ecosystem witness or verifier reads our checkpoints, and we read theirs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
_SIG_PREFIX = "— "
_MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed; the message says what is wrong."""


class SignatureError(ValueError):
    """A well-formed note that this verifier does not accept (another key, a bad signature)."""


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 key under `name`."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{text!r} is not valid base64") from None


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    public_key: Ed25519PublicKey

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse verifier key text `name+hexid+base64key`; `NoteError` says what is wrong."""
        parts = vkey.strip().split("+", 2)  # the base64 key may itself hold '+'
        if len(parts) != 3:
            raise NoteError("a verifier key has three parts, name+keyid+key, "
                            f"separated by '+': got {vkey.strip()!r}")
        name, hex_id, b64 = parts
        if not _valid_name(name):
            raise NoteError(f"invalid key name {name!r}")
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise NoteError(f"the key id {hex_id!r} must be 8 lowercase hex digits")
        raw = _b64decode(b64)
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("the key must be 0x01 (Ed25519) followed by 32 bytes")
        if key_id(name, raw[1:]).hex() != hex_id:
            raise NoteError(f"the key id {hex_id} does not match the key")
        return cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, _raw_public(self.public_key))

    @property
    def vkey(self) -> str:
        """The verifier key text an auditor pins."""
        raw = bytes([ALG_ED25519]) + _raw_public(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 private key that signs notes."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise NoteError(f"invalid key name {self.name!r}: it must be non-empty, "
                            "without spaces or '+'")

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.private_key.public_key())

    def sign(self, text: str) -> str:
        """The signed note: `text` plus this key's signature line."""
        if not text.endswith("\n"):
            raise NoteError("a note's text must end with a newline")
        data = text.encode()
        sig = self.verifier.key_id + self.private_key.sign(data)
        return f"{text}\n{_SIG_PREFIX}{self.name} {base64.b64encode(sig).decode()}\n"


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes

    @property
    def key(self) -> str:
        return f"{self.name}+{self.key_id.hex()}"


def parse_note(note: str) -> tuple[str, list[SignatureLine]]:
    """Split a signed note into its text and signature lines, without verifying."""
    for ch in note:
        if ch < " " and ch != "\n":
            raise NoteError(f"the note holds a control character {ch!r}")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("no signature block: a note is its text, a blank line, then "
                        "signature lines")
    text, block = note[:split + 1], note[split + 2:]
    if not block or not block.endswith("\n"):
        raise NoteError("the signature block must end with a newline")
    sigs = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"a signature line must start with '— ': got {line[:40]!r}")
        name, _, b64 = line[len(_SIG_PREFIX):].partition(" ")
        raw = _b64decode(b64) if b64 else b""
        if not _valid_name(name) or len(raw) < 5:
            raise NoteError(f"malformed signature line {line[:60]!r}")
        sigs.append(SignatureLine(name, raw[:4], raw[4:]))
        if len(sigs) > _MAX_SIGNATURES:
            raise NoteError(f"more than {_MAX_SIGNATURES} signatures")
    return text, sigs


def open_note(note: str, verifier: Verifier) -> str:
    """The text of `note` once `verifier`'s signature on it checks out.

    `SignatureError` if the note carries no signature by this key (naming the keys it
    does carry) or if this key's signature does not match the text (a modified note).
    """
    text, sigs = parse_note(note)
    mine = [s for s in sigs if s.name == verifier.name and s.key_id == verifier.key_id]
    if not mine:
        others = ", ".join(sorted({s.key for s in sigs}))
        raise SignatureError(f"not signed by {verifier.name}+{verifier.key_id.hex()}; "
                             f"it is signed by {others}")
    for sig in mine:
        if not verifier.verify(text.encode(), sig.signature):
            raise SignatureError(f"the signature by {sig.key} does not match the note's text: "
                                 "the note was modified or the signature is forged")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and its root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(),
                 *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body; `NoteError` names the line that is wrong."""
        if not text.endswith("\n"):
            raise NoteError("a checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("a checkpoint has at least three lines: origin, size, root hash")
        origin, size, root_b64, *ext = lines
        if not origin:
            raise NoteError("line 1 of the checkpoint (the origin) is empty")
        if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size):
            raise NoteError(f"line 2 of the checkpoint must be the tree size in decimal, "
                            f"got {size!r}")
        root = _b64decode(root_b64)
        if len(root) != 32:
            raise NoteError(f"line 3 of the checkpoint must be a 32-byte root hash in base64, "
                            f"got {len(root)} bytes")
        if any(not e for e in ext):
            raise NoteError("a checkpoint extension line is empty")
        return cls(origin, int(size), root, tuple(ext))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and the signed note that carries it."""

    checkpoint: Checkpoint
    note: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> SignedCheckpoint:
    return SignedCheckpoint(checkpoint, signer.sign(checkpoint.body()))


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> SignedCheckpoint:
    """Verify a signed checkpoint note and parse it; the origin must match when given."""
    checkpoint = Checkpoint.parse(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise SignatureError(f"the checkpoint is for log {checkpoint.origin!r}, "
                             f"not {origin!r}")
    return SignedCheckpoint(checkpoint, note)
