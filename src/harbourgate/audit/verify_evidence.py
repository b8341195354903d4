#!/usr/bin/env python3
"""Verify a Harbourgate evidence bundle with nothing but hashlib and cryptography.

    python verify_evidence.py BUNDLE_DIR [--key 'name+keyid+base64key']

BUNDLE_DIR is what `harbourgate audit export --out BUNDLE_DIR` wrote. Pass --key with the
log's verifier key obtained independently (from the operator, a publication, or
GET /admin/v1/audit/key at an earlier date): without it the script trusts the key.vkey
inside the bundle, which proves integrity but not origin.

Checks: the verifier key is well formed (its key id matches); the checkpoint is a C2SP
signed note carrying a valid Ed25519 signature by that key; entries are numbered 0..n-1
with n the checkpoint's tree size; each leaf is a JSON record whose "id" is the entry's
id; the RFC 6962 Merkle root of the leaves equals the signed root.
Exit 0 when everything holds, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Invalid(Exception):
    pass


def parse_vkey(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """name+hex(keyid)+base64(0x01 || public key), key id = SHA-256(name\\n 0x01 key)[:4]."""
    try:
        name, key_id_hex, b64 = vkey.strip().split("+", 2)
        raw = base64.b64decode(b64, validate=True)
    except ValueError as exc:
        raise Invalid(f"malformed verifier key: {exc}") from None
    if len(raw) != 33 or raw[0] != 0x01:
        raise Invalid("the verifier key is not an Ed25519 key (0x01 + 32 bytes)")
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_id.hex() != key_id_hex:
        raise Invalid(f"the verifier key's id {key_id_hex} does not match the key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note: str, name: str, key_id: bytes, key: Ed25519PublicKey) -> str:
    """The note's text, if it carries a valid signature by (name, key_id)."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise Invalid("the checkpoint is not a signed note (text, blank line, signatures)")
    text, lines = note[:split + 1], note[split + 2:-1].split("\n")
    found = False
    for line in lines:
        if not line.startswith("— "):
            raise Invalid(f"malformed signature line {line!r}")
        signer, _, b64 = line[2:].partition(" ")
        sig = base64.b64decode(b64)
        if signer != name or sig[:4] != key_id:
            continue
        try:
            key.verify(sig[4:], text.encode())
        except InvalidSignature:
            raise Invalid("the checkpoint's signature is invalid: the checkpoint was "
                          "modified") from None
        found = True
    if not found:
        raise Invalid(f"the checkpoint is not signed by {name}+{key_id.hex()}")
    return text


def merkle_root(hashes: list[bytes]) -> bytes:
    """RFC 6962 root: pair neighbours level by level; an odd last node moves up as is."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    while len(hashes) > 1:
        paired = [hashlib.sha256(b"\x01" + hashes[i] + hashes[i + 1]).digest()
                  for i in range(0, len(hashes) - 1, 2)]
        if len(hashes) % 2:
            paired.append(hashes[-1])
        hashes = paired
    return hashes[0]


def verify(bundle: Path, pinned_key: str | None) -> str:
    vkey = pinned_key or (bundle / "key.vkey").read_text(encoding="utf-8")
    name, key_id, key = parse_vkey(vkey)
    text = open_note((bundle / "checkpoint.txt").read_text(encoding="utf-8"), name, key_id, key)
    lines = text.split("\n")
    if len(lines) < 4:
        raise Invalid("the checkpoint body needs origin, size and root lines")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    leaf_hashes = []
    with (bundle / "entries.jsonl").open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            entry = json.loads(line)
            if entry["index"] != n:
                raise Invalid(f"entry {entry['id']} has index {entry['index']}, expected {n}: "
                              "entries missing or out of order")
            leaf = base64.b64decode(entry["leaf"])
            if json.loads(leaf).get("id") != entry["id"]:
                raise Invalid(f"entry {entry['id']} (index {n}): the leaf holds another record")
            leaf_hashes.append(hashlib.sha256(b"\x00" + leaf).digest())
    if len(leaf_hashes) != size:
        raise Invalid(f"the checkpoint covers {size} entries, the bundle holds "
                      f"{len(leaf_hashes)}")
    computed = merkle_root(leaf_hashes)
    if computed != root:
        raise Invalid(f"the entries hash to {base64.b64encode(computed).decode()}, the signed "
                      f"root is {base64.b64encode(root).decode()}: an entry was modified")
    return f"OK: {size} entries of log {origin} match the checkpoint signed by {name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the directory `harbourgate audit export` wrote")
    parser.add_argument("--key", help="the log's verifier key, obtained independently")
    args = parser.parse_args(argv)
    try:
        print(verify(args.bundle, args.key))
    except (Invalid, OSError, ValueError, KeyError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
