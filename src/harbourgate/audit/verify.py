"""Verify a stored log from scratch: every leaf, every index, every signed checkpoint.

What is checked, and what a failure says:

* the database itself (SQLite `quick_check`): a corrupt or truncated file;
* leaf indices run 0, 1, 2, ... without gaps (a gap: entries deleted);
* each leaf is a canonical JSON record whose `id` is the row's id (otherwise the leaf was
  edited by hand, or moved to another row);
* on SQLite, leaf order equals write order (`seq`): rows reordered or inserted;
* every stored checkpoint is signed by the log's key, for this origin, and its root equals
  the root recomputed from the leaves. The first checkpoint that does not match, with the
  last one that does, brackets the entries that were modified, inserted or reordered; a
  checkpoint larger than the log shows entries deleted at the end;
* with a checkpoint saved earlier (by an auditor), the log must still contain that tree:
  the first `size` leaves must hash to its root (consistency, checked on all the leaves).

The leaves are streamed in chunks (O(log n) memory for the tree) and hashed in bulk.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from harbourgate.audit import merkle
from harbourgate.audit.note import NoteError, SignatureError, Verifier, open_checkpoint
from harbourgate.audit.storage import recorded_damage

_CHUNK = 20_000


class VerifyInputError(ValueError):
    """Verification could not start (no log there, an unreadable checkpoint file): exit 2."""


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the log: what, where, and in words."""

    kind: str  # corrupt | deleted | modified | reordered | inserted | root_mismatch | signature
    #            | recorded_damage (a gateway found damage while running; it stays closed)
    message: str
    entry_id: str | None = None
    index: int | None = None


@dataclass
class Report:
    """The outcome of a verification; `ok` when there are no findings."""

    entries: int = 0
    root: bytes = merkle.EMPTY_ROOT
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    saved_checkpoint: int | None = None
    pending: int = 0  # recorded, not yet integrated (normal on PostgreSQL)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def unsigned(self) -> int:
        """Integrated entries after the latest checkpoint (signed within a second)."""
        return max(0, self.entries - (self.latest_checkpoint or 0))

    @property
    def what_to_do(self) -> list[str]:
        """The operator's next steps for a failed verification (empty when ok)."""
        if self.ok:
            return []
        signed = self.latest_checkpoint
        return [
            "The gateway refuses to sign checkpoints or record answers while the log "
            "contradicts its signed checkpoints: it answers 503 audit_unavailable and "
            "/readyz names the damage. Nothing is lost by waiting.",
            "1. Stop every replica, and keep a copy of the damaged database (with its -wal "
            "file on SQLite) for the investigation.",
            "2. Restore the database from the latest backup "
            + (f"that holds at least the {signed} entries of checkpoint {signed}"
               if signed else "") + "; `harbourgate audit verify` on the restored copy must "
            "say OK.",
            "3. Start the gateway again: it checks the log against the last signed checkpoint "
            "before it signs or records anything.",
            "4. With no such backup, the log cannot be continued: move the database aside, "
            "start a new log (a new database and signing key), and publish this report with "
            "the last good checkpoint, so that witnesses know why the log restarted.",
        ]

    def add(self, kind: str, message: str, entry_id: str | None = None,
            index: int | None = None) -> None:
        self.findings.append(Finding(kind, message, entry_id, index))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries,
                "root": base64.b64encode(self.root).decode(),
                "checkpoints": self.checkpoints, "latest_checkpoint": self.latest_checkpoint,
                "saved_checkpoint": self.saved_checkpoint, "pending": self.pending,
                "unsigned": self.unsigned, "findings": [asdict(f) for f in self.findings],
                "what_to_do": self.what_to_do}


@dataclass(frozen=True)
class _Signed:
    size: int
    root: bytes
    label: str


def _cursor_rows(engine: sa.Engine, sql: str) -> Iterator[list[tuple[Any, ...]]]:
    """Stream a query in chunks through a raw cursor (server-side on PostgreSQL)."""
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            cur = raw.cursor()
        else:
            cur = raw.driver_connection.cursor(name="harbourgate_audit_verify")  # type: ignore[union-attr]
        cur.execute(sql)
        while rows := cur.fetchmany(_CHUNK):
            yield rows
        cur.close()
    finally:
        raw.close()


Progress = Callable[[int, int], None]  # (entries done, entries in all)


def verify_log(engine: sa.Engine, verifier: Verifier, *, origin: str | None = None,
               saved_checkpoint: str | None = None, progress: Progress | None = None) -> Report:
    """Verify the whole log in `engine`'s database against the log key `verifier`;
    `progress` is told how far it is after each batch of entries."""
    report = Report()
    saved = _open_saved(saved_checkpoint, verifier, origin, report)
    dbapi_error = engine.dialect.dbapi.DatabaseError  # type: ignore[union-attr]
    try:
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                problems = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check")]
            if problems != ["ok"]:
                report.add("corrupt", "the SQLite file is damaged (" + "; ".join(problems[:3])
                           + "): restore it from a backup")
                return report
        tables = set(sa.inspect(engine).get_table_names())
        if not {"audit_entries", "audit_checkpoints"} <= tables:
            raise VerifyInputError("this database holds no audit log (no audit_entries "
                                   "table); check --config or the database URL")
        if "audit_state" in tables:
            found = recorded_damage(engine)
            if found is not None:
                report.add("recorded_damage", f"a running gateway found the log damaged at "
                           f"{found[1]} and stopped signing and recording: {found[0]}")
        signed = _stored_checkpoints(engine, verifier, origin, report)
        if saved is not None:
            signed.append(saved)
        _check_entries(engine, signed, report, progress)
    except (dbapi_error, sa.exc.DBAPIError) as exc:
        reason = getattr(exc, "orig", None) or exc
        if engine.dialect.name != "sqlite":
            raise VerifyInputError(f"cannot read the database: {reason}") from None
        report.add("corrupt", f"the SQLite file is corrupt or truncated ({reason}): restore "
                   "it from a backup")
    return report


def _open_saved(text: str | None, verifier: Verifier, origin: str | None,
                report: Report) -> _Signed | None:
    if text is None:
        return None
    try:
        cp = open_checkpoint(text, verifier, origin)
    except NoteError as exc:
        raise VerifyInputError(f"the saved checkpoint is not a signed checkpoint note ({exc}); "
                               "pass the text GET /admin/v1/audit/checkpoint returned") from None
    except SignatureError as exc:
        report.add("signature", f"the saved checkpoint does not verify: {exc}")
        return None
    report.saved_checkpoint = cp.size
    return _Signed(cp.size, cp.root, f"your saved checkpoint (size {cp.size})")


def _stored_checkpoints(engine: sa.Engine, verifier: Verifier, origin: str | None,
                        report: Report) -> list[_Signed]:
    table = sa.table("audit_checkpoints", sa.column("tree_size"), sa.column("root_hash"),
                     sa.column("note"))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.tree_size, table.c.root_hash, table.c.note)
                            .order_by(table.c.tree_size)).all()
    out = []
    for size, root, note in rows:
        label = f"the stored checkpoint of size {size}"
        try:
            cp = open_checkpoint(note, verifier, origin)
        except (NoteError, SignatureError) as exc:
            report.add("signature", f"{label} does not verify: {exc}")
            continue
        if cp.size != size or cp.root != bytes(root):
            report.add("signature", f"{label}: its row (size {size}) does not match its signed "
                       f"note (size {cp.size}): the checkpoint row was modified")
            continue
        out.append(_Signed(size, cp.root, label))
        report.checkpoints += 1
        report.latest_checkpoint = size
    return out


def _check_entries(engine: sa.Engine, signed: list[_Signed], report: Report,
                   progress: Progress | None = None) -> None:
    total = 0
    if progress is not None:
        with engine.connect() as conn:
            total = conn.exec_driver_sql("SELECT count(*) FROM audit_entries "
                                         "WHERE idx IS NOT NULL").scalar_one()
    sizes = sorted({s.size for s in signed})
    roots: dict[int, bytes] = {}
    boundary_ids: dict[int, str] = {}  # ids at checkpoint boundaries, to name a bracket
    tree = merkle.CompactRange()
    expected, prev_seq, broken = 0, None, False
    sqlite = engine.dialect.name == "sqlite"
    if 0 in sizes:
        roots[0] = merkle.EMPTY_ROOT
    sql = ("SELECT seq, id, idx, leaf FROM audit_entries WHERE idx IS NOT NULL ORDER BY idx")
    loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    sha = merkle._sha256
    for rows in _cursor_rows(engine, sql):
        hashes: list[bytes] = []
        for seq, entry_id, idx, leaf in rows:
            leaf = bytes(leaf)
            if idx != expected:
                missing = idx - expected
                report.add("deleted", f"indices {expected}..{idx - 1} are missing: {missing} "
                           f"entr{'y' if missing == 1 else 'ies'} deleted before entry "
                           f"{entry_id} (index {idx}); the tree cannot be recomputed past "
                           "the gap", entry_id, expected)
                broken, expected = True, idx
            try:
                rec = loads(leaf)
            except orjson.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict):
                report.add("modified", f"entry {entry_id} (index {idx}): the leaf is not a JSON "
                           "record: it was modified", entry_id, idx)
            elif rec.get("id") != entry_id:
                report.add("reordered", f"entry {entry_id} (index {idx}): the leaf holds the "
                           f"record of entry {rec.get('id')!r}: leaves were moved between rows "
                           "or replaced", entry_id, idx)
            elif dumps(rec, option=sort_keys) != leaf:
                report.add("modified", f"entry {entry_id} (index {idx}): the leaf is not in the "
                           "canonical encoding the log writes: it was edited", entry_id, idx)
            if sqlite and prev_seq is not None and seq < prev_seq:
                report.add("reordered", f"entry {entry_id} (index {idx}) was written before the "
                           f"entry at index {idx - 1} (seq {seq} < {prev_seq}): entries were "
                           "reordered or inserted", entry_id, idx)
            prev_seq = seq
            hashes.append(sha(b"\x00" + leaf).digest())
            expected += 1
            pos = bisect.bisect_left(sizes, idx)
            if idx == 0 or (pos < len(sizes) and sizes[pos] in (idx, idx + 1)):
                boundary_ids[idx] = entry_id
        if not broken:
            _extend(tree, hashes, sizes, roots)
        if progress is not None:
            progress(expected, max(total, expected))
    if not broken:
        report.root = tree.root()
    report.entries = expected
    _compare(signed, roots, report, boundary_ids, broken)
    _pending(engine, report, sqlite)
    if report.entries and report.latest_checkpoint is None and not any(
            f.kind == "signature" for f in report.findings):
        report.add("signature", f"the log has {report.entries} entries but no signed "
                   "checkpoint vouches for them")


def _extend(tree: merkle.CompactRange, hashes: list[bytes], sizes: list[int],
            roots: dict[int, bytes]) -> None:
    """Add a chunk of leaf hashes, taking the root at each checkpoint size inside it."""
    start = tree.size
    pos = bisect.bisect_right(sizes, start)
    for size in sizes[pos:]:
        if size > start + len(hashes):
            break
        tree.extend(hashes[tree.size - start:size - start])
        roots[size] = tree.root()
    tree.extend(hashes[tree.size - start:])


def _compare(signed: list[_Signed], roots: dict[int, bytes], report: Report,
             boundary_ids: dict[int, str], broken: bool) -> None:
    last_good = 0
    reported = False
    for cp in sorted(signed, key=lambda s: s.size):
        if cp.size > report.entries:
            if not broken:
                missing = cp.size - report.entries
                report.add("deleted", f"{cp.label} covers {cp.size} entries but the log has "
                           f"{report.entries}: the last {missing} entr"
                           f"{'y was' if missing == 1 else 'ies were'} deleted",
                           None, report.entries)
            continue
        if broken or cp.size not in roots:
            continue
        if roots[cp.size] == cp.root:
            if not reported:
                last_good = max(last_good, cp.size)
            continue
        if reported:
            continue
        reported = True
        first, last = last_good, cp.size - 1
        where = (f"entry {boundary_ids.get(last, '?')} (index {last})" if first == last else
                 f"the entries at indices {first}..{last} (from {boundary_ids.get(first, '?')} "
                 f"to {boundary_ids.get(last, '?')})")
        report.add("root_mismatch", f"the log does not match {cp.label}: its first {cp.size} "
                   f"entries hash to {base64.b64encode(roots[cp.size]).decode()}, the signed "
                   f"root is {base64.b64encode(cp.root).decode()}; {where} "
                   f"{'was' if first == last else 'were'} modified, inserted or reordered "
                   f"(the log matches every checkpoint up to size {last_good})",
                   boundary_ids.get(first), first)


def _pending(engine: sa.Engine, report: Report, sqlite: bool) -> None:
    table = sa.table("audit_entries", sa.column("id"), sa.column("idx"), sa.column("seq"))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id).where(table.c.idx.is_(None))
                            .order_by(table.c.seq)).scalars().all()
    report.pending = len(rows)
    if sqlite:  # SQLite writers index every entry in the transaction that inserts it
        for entry_id in rows:
            report.add("inserted", f"entry {entry_id} has no leaf index: it was inserted "
                       "outside the log writer", entry_id)
