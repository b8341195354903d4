"""Evidence bundles: what an auditor takes away and verifies without Harbourgate.

    OUT/checkpoint.txt   the latest signed checkpoint (C2SP signed note)
    OUT/key.vkey         the log's verifier key (name+keyid+base64 key)
    OUT/entries.jsonl    one line per entry covered by that checkpoint, in leaf order:
                         {"index": i, "id": ..., "leaf": base64 of the exact leaf bytes}
    OUT/manifest.json    origin, tree size, root, when, and how to verify
    OUT/verify_evidence.py  the standalone verifier (`harbourgate.audit.verify_evidence`):
                         it checks the bundle with hashlib and cryptography alone
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import sqlalchemy as sa

from harbourgate.audit import record
from harbourgate.audit.note import NoteError, SignatureError, SignedCheckpoint, Verifier
from harbourgate.audit.note import open_checkpoint as _open
from harbourgate.audit.verify import _cursor_rows

FILES = ("checkpoint.txt", "key.vkey", "entries.jsonl", "manifest.json", "verify_evidence.py")
VERIFIER = Path(__file__).with_name("verify_evidence.py")


class ExportError(ValueError):
    """Nothing to export, or the output directory is not usable; the message says why."""


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    checkpoint: SignedCheckpoint
    entries: int


def latest_verified_checkpoint(engine: sa.Engine, verifier: Verifier,
                               origin: str | None = None) -> SignedCheckpoint | None:
    """The largest stored checkpoint that verifies with the log's key."""
    with engine.connect() as conn:
        notes = conn.exec_driver_sql(
            "SELECT note FROM audit_checkpoints ORDER BY tree_size DESC").scalars()
        for note in notes:
            try:
                return _open(note, verifier, origin)
            except (NoteError, SignatureError):
                continue
    return None


def export_bundle(engine: sa.Engine, verifier: Verifier, out: Path,
                  origin: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Write the evidence bundle for the latest signed checkpoint into directory `out`;
    `progress` is told (entries written, entries in all) after each batch."""
    checkpoint = latest_verified_checkpoint(engine, verifier, origin)
    if checkpoint is None:
        raise ExportError("the log has no signed checkpoint to export yet; a running gateway "
                          "signs one within a second of its first entry")
    out.mkdir(parents=True, exist_ok=True)
    clash = [name for name in FILES if (out / name).exists()]
    if clash:
        raise ExportError(f"{out / clash[0]} already exists; choose an empty --out directory")
    size = checkpoint.size
    count = 0
    with (out / "entries.jsonl").open("wb") as f:
        sql = ("SELECT idx, id, leaf FROM audit_entries WHERE idx IS NOT NULL AND idx < "
               f"{int(size)} ORDER BY idx")
        for rows in _cursor_rows(engine, sql):
            for idx, entry_id, leaf in rows:
                f.write(orjson.dumps({"index": idx, "id": entry_id,
                                      "leaf": base64.b64encode(bytes(leaf)).decode()}) + b"\n")
                count += 1
            if progress is not None:
                progress(count, size)
    (out / "checkpoint.txt").write_text(checkpoint.note, encoding="utf-8")
    (out / "key.vkey").write_text(verifier.vkey + "\n", encoding="utf-8")
    manifest = {
        "origin": checkpoint.checkpoint.origin,
        "tree_size": size,
        "root": base64.b64encode(checkpoint.root).decode(),
        "entries": count,
        "verifier_key": verifier.vkey,
        "exported_at": record.timestamp(),
        "verify": "python verify_evidence.py . --key 'VERIFIER KEY FROM AN INDEPENDENT SOURCE'",
        "hashing": "RFC 6962: leaf = SHA-256(0x00 || leaf), node = SHA-256(0x01 || l || r)",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out / "verify_evidence.py").write_bytes(VERIFIER.read_bytes())
    return ExportResult(out, checkpoint, count)
