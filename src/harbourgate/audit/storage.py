"""The audit tables, as the log needs them: a writer connection and a few reads.

The writer owns one DB-API connection, outside the pool, in the writer thread, and speaks
plain SQL for the two engines, because group commit lives and dies by what happens inside
that one transaction:

* SQLite: `BEGIN IMMEDIATE` takes the file's write lock, so processes sharing the file
  (`serve --workers N`) serialise; inside it the writer first reads entries other processes
  integrated since it last looked (nothing to read while `PRAGMA data_version` says no
  other connection committed), then inserts its batch with the next leaf indices. The
  writer that commits is the integrator for that batch.
* PostgreSQL: writers insert their batch without an index and commit: that is all an
  answer waits for. One process at a time holds a session advisory lock and integrates:
  it gives waiting entries the next indices in `seq` order. The unique index on `idx`
  makes a second integrator impossible to go unnoticed.

Reads (entries, leaves by index, checkpoints) go through the SQLAlchemy engine's pool.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from harbourgate.audit.decisions_index import index_rows
from harbourgate.store import schema

ENTRIES = schema.audit_entries
INTEGRATOR_LOCK = int.from_bytes(
    hashlib.sha256(b"harbourgate/audit-integrator").digest()[:8], "big", signed=True)
_INTEGRATE_LIMIT = 50_000


class LogIntegrityError(RuntimeError):
    """The stored log contradicts itself (a gap in the indices): refuse to extend it."""


@dataclass(frozen=True, slots=True)
class Row:
    """One entry to insert: id, leaf bytes, timestamp (and the leaf decoded, if it was)."""

    id: str
    leaf: bytes
    created_at: str
    record: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    seq: int
    id: str
    index: int | None
    leaf: bytes


def _contiguous(start: int, rows: Sequence[Any]) -> list[bytes]:
    for offset, (idx, _) in enumerate(rows):
        if idx != start + offset:
            raise LogIntegrityError(
                f"audit_entries has no entry at index {start + offset} (the next is {idx}): "
                "entries were deleted; run `harbourgate audit verify`")
    return [bytes(leaf) for _, leaf in rows]


class Writer:
    """The writer thread's own connection; subclasses hold the engine-specific SQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._conn: Any = None

    def connect(self) -> None:
        self.close()
        raw = self._engine.raw_connection()
        self._conn = raw.driver_connection
        raw.detach()  # ours alone, for the writer's lifetime (and its advisory lock)
        self._setup()

    def _setup(self) -> None:
        pass

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                self._conn.close()
            self._conn = None

    def _sql(self, text: str) -> str:
        return _paramstyle(self._engine, text)

    def read_integrated(self, cur: Any, start: int) -> list[bytes]:
        cur.execute(self._sql("SELECT idx, leaf FROM audit_entries WHERE idx >= ? ORDER BY idx"),
                    (start,))
        return _contiguous(start, cur.fetchall())

    # the interface the log uses
    integrates_on_write = True

    def write(self, rows: Sequence[Row], tree_size: int) -> tuple[list[bytes], int]:
        """Commit `rows`; return leaves integrated by others since `tree_size`, and the
        index of the first row if this write integrated them (else -1)."""
        raise NotImplementedError

    def exists(self, entry_id: str) -> bytes | None:
        """The leaf already stored under `entry_id`, if any (to resolve retries)."""
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql("SELECT leaf FROM audit_entries WHERE id = ?"), (entry_id,))
            row = cur.fetchone()
            return None if row is None else bytes(row[0])
        finally:
            self._rollback_quietly()

    def _rollback_quietly(self) -> None:
        with contextlib.suppress(Exception):  # nothing to roll back, or no connection
            self._conn.rollback()

    def try_lock(self) -> bool:
        return True

    def integrate(self, tree_size: int) -> tuple[list[bytes], list[bytes]]:
        return [], []

    def checkpoint_wal(self) -> None:
        """Copy the write-ahead log into the database file, where the engine has one."""


class SqliteWriter(Writer):
    """`wait=False` is the event loop's own writer: it must never sleep on SQLite's busy
    handler, so a locked database fails at once and the batch goes to the writer thread."""

    def __init__(self, engine: sa.Engine, *, wait: bool = True) -> None:
        super().__init__(engine)
        self.wait = wait
        self._last: tuple[int, int] | None = None  # (data_version, next index) after our commit

    def _setup(self) -> None:
        self._conn.isolation_level = None  # we issue BEGIN IMMEDIATE / COMMIT ourselves
        self._last = None  # data_version is per connection
        if not self.wait:
            self._conn.execute("PRAGMA busy_timeout = 0")
            # Never checkpoint on the event loop: copying the WAL into the database and
            # syncing both stalls it for milliseconds, every ~1,000 pages (about every 150
            # commits of one entry): the writer thread does it (`checkpoint_wal`).
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint_wal(self) -> None:
        """A passive checkpoint: as much of the WAL as no reader still needs, without
        waiting for anyone (SQLite works without the GIL meanwhile)."""
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def write(self, rows: Sequence[Row], tree_size: int) -> tuple[list[bytes], int]:
        """`PRAGMA data_version` changes when any other connection (of this process or
        another) commits: while it has not since our last commit, the log ends where that
        commit left it, so there is nothing to read back."""
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            version = cur.execute("PRAGMA data_version").fetchone()[0]
            caught_up = [] if self._last == (version, tree_size) else \
                self.read_integrated(cur, tree_size)
            first = tree_size + len(caught_up)
            cur.executemany(
                "INSERT INTO audit_entries (id, idx, leaf, created_at) VALUES (?, ?, ?, ?)",
                [(r.id, first + i, r.leaf, r.created_at) for i, r in enumerate(rows)])
            index_rows(cur, [r.leaf for r in rows],  # same transaction: no leaf without its row
                       records=[r.record for r in rows])
            cur.execute("COMMIT")
        except BaseException:
            self._last = None
            if self._conn.in_transaction:
                cur.execute("ROLLBACK")
            raise
        self._last = (version, first + len(rows))  # our own commit leaves it unchanged
        return caught_up, first

    def _rollback_quietly(self) -> None:
        pass  # autocommit mode: the SELECT in exists() opened no transaction


class PostgresWriter(Writer):
    integrates_on_write = False

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self.holds_lock = False

    def connect(self) -> None:
        self.holds_lock = False
        super().connect()

    def close(self) -> None:
        self.holds_lock = False
        super().close()

    def write(self, rows: Sequence[Row], tree_size: int) -> tuple[list[bytes], int]:
        try:
            with self._conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO audit_entries (id, leaf, created_at) VALUES (%s, %s, %s)",
                    [(r.id, r.leaf, r.created_at) for r in rows])
                index_rows(cur, [r.leaf for r in rows], "%s",  # same transaction
                           records=[r.record for r in rows])
            self._conn.commit()
        except BaseException:
            self._rollback_quietly()
            raise
        return [], -1

    def try_lock(self) -> bool:
        if not self.holds_lock:
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (INTEGRATOR_LOCK,))
                self.holds_lock = bool(cur.fetchone()[0])
            self._conn.commit()  # the session lock outlives the transaction
        return self.holds_lock

    def integrate(self, tree_size: int) -> tuple[list[bytes], list[bytes]]:
        """As the integrator: catch up, then index waiting entries in `seq` order."""
        try:
            with self._conn.cursor() as cur:
                caught_up = self.read_integrated(cur, tree_size)
                first = tree_size + len(caught_up)
                cur.execute("SELECT seq, leaf FROM audit_entries WHERE idx IS NULL "
                            "ORDER BY seq LIMIT %s", (_INTEGRATE_LIMIT,))
                waiting = cur.fetchall()
                if waiting:
                    cur.execute(
                        "UPDATE audit_entries SET idx = v.idx FROM "
                        "(SELECT unnest(%s::bigint[]) AS seq, unnest(%s::bigint[]) AS idx) v "
                        "WHERE audit_entries.seq = v.seq",
                        ([s for s, _ in waiting], list(range(first, first + len(waiting)))))
            self._conn.commit()
        except BaseException:
            self._rollback_quietly()
            raise
        return caught_up, [bytes(leaf) for _, leaf in waiting]


def record_damage(engine: sa.Engine, damage: str, detected_at: str) -> None:
    """Keep the first damage found, for every process (`audit_state`)."""
    state = schema.audit_state
    try:
        with engine.begin() as conn:
            conn.execute(state.insert().values(id=1, damage=damage, detected_at=detected_at))
        return
    except sa.exc.IntegrityError:
        pass  # the row exists (another process recorded a damage, or it was cleared)
    with engine.begin() as conn:
        conn.execute(state.update().where(state.c.id == 1, state.c.damage.is_(None))
                     .values(damage=damage, detected_at=detected_at))


def recorded_damage(engine: sa.Engine) -> tuple[str, str] | None:
    """The damage some process recorded, and when; None while there is none."""
    rows = _fetch(engine, "SELECT damage, detected_at FROM audit_state WHERE id = 1")
    return None if not rows or rows[0][0] is None else (rows[0][0], rows[0][1])


def is_corruption(exc: BaseException) -> bool:
    """Whether a database error says the stored data is damaged (not merely unreachable):
    SQLite's malformed image or foreign file, PostgreSQL's class XX data/index corruption."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None)
    if code:
        return str(code) in ("XX001", "XX002")
    text = str(orig).lower()
    return "malformed" in text or "not a database" in text


def writer_for(engine: sa.Engine) -> Writer:
    return SqliteWriter(engine) if engine.dialect.name == "sqlite" else PostgresWriter(engine)


def inline_writer_for(engine: sa.Engine) -> SqliteWriter | None:
    """The writer an event loop may use itself: SQLite only, whose commit is a local write
    of microseconds; a network database stays on the writer thread."""
    return SqliteWriter(engine, wait=False) if engine.dialect.name == "sqlite" else None


def insert_entry(conn: sa.Connection, row: Row) -> int | None:
    """Insert one entry in the caller's transaction; its leaf index on SQLite (the next
    one: the insert holds the file's write lock), None on PostgreSQL (integrated later)."""
    if conn.dialect.name != "sqlite":
        conn.execute(ENTRIES.insert().values(id=row.id, leaf=row.leaf,
                                             created_at=row.created_at))
        return None
    conn.execute(sa.text(
        "INSERT INTO audit_entries (id, idx, leaf, created_at) "
        "SELECT :id, COALESCE(MAX(idx) + 1, 0), :leaf, :created_at FROM audit_entries"
    ).bindparams(sa.bindparam("leaf", type_=sa.LargeBinary)),
        {"id": row.id, "leaf": row.leaf, "created_at": row.created_at})
    index: int = conn.execute(sa.select(ENTRIES.c.idx).where(ENTRIES.c.id == row.id)).scalar_one()
    return index


# --- reads through the pool ----------------------------------------------------------------


def _fetch(engine: sa.Engine, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """The rows of a plain query (`?` parameters) on a pooled DB-API connection: a fifth of
    what a Core statement costs, for the small reads the writer thread repeats every
    second (the damage poll, the checks before each signature)."""
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute(_paramstyle(engine, sql), params)
        return cur.fetchall()
    finally:
        conn.close()


def _paramstyle(engine: sa.Engine, sql: str) -> str:
    """`sql` with `?` parameters as the engine's driver takes them."""
    return sql if engine.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def read_leaves(engine: sa.Engine, start: int, end: int) -> list[bytes]:
    """The leaf bytes at indices start..end-1, in order (fewer if the log is shorter)."""
    query = (sa.select(ENTRIES.c.idx, ENTRIES.c.leaf)
             .where(ENTRIES.c.idx >= start, ENTRIES.c.idx < end).order_by(ENTRIES.c.idx))
    with engine.connect() as conn:  # all rows at once: a tile row by row costs 3x as much
        return _contiguous(start, conn.execute(query).all())


def iter_leaves(engine: sa.Engine, start: int, chunk: int = 10_000) -> Iterator[list[bytes]]:
    """The integrated leaves from `start` on, in chunks, for catching up."""
    while True:
        leaves = read_leaves(engine, start, start + chunk)
        if leaves:
            yield leaves
        if len(leaves) < chunk:
            return
        start += chunk


def count_integrated(engine: sa.Engine, start: int, end: int) -> int:
    """How many entries hold a leaf index in start..end-1 (an index-only count)."""
    return int(_fetch(engine, "SELECT COUNT(*) FROM audit_entries WHERE idx >= ? AND idx < ?",
                      (start, end))[0][0])


def find_entry(engine: sa.Engine, entry_id: str) -> StoredEntry | None:
    query = sa.select(ENTRIES.c.seq, ENTRIES.c.id, ENTRIES.c.idx, ENTRIES.c.leaf).where(
        ENTRIES.c.id == entry_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else StoredEntry(row.seq, row.id, row.idx, bytes(row.leaf))


def latest_checkpoint(engine: sa.Engine) -> tuple[int, str] | None:
    rows = _fetch(engine, "SELECT tree_size, note FROM audit_checkpoints "
                          "ORDER BY tree_size DESC LIMIT 1")
    return None if not rows else (int(rows[0][0]), rows[0][1])


def store_checkpoint(engine: sa.Engine, size: int, root: bytes, note: str, created_at: str) -> None:
    """Keep a signed checkpoint, unless one as large is already stored (every second, on
    the writer thread: plain SQL on a DB-API connection, as `_fetch`)."""
    sql = ("INSERT INTO audit_checkpoints (tree_size, root_hash, note, created_at) "
           "SELECT ?, ?, ?, ? WHERE NOT EXISTS "
           "(SELECT 1 FROM audit_checkpoints WHERE tree_size >= ?)")
    conn = engine.raw_connection()
    try:
        conn.cursor().execute(_paramstyle(engine, sql), (size, root, note, created_at, size))
        conn.commit()
    except engine.dialect.dbapi.IntegrityError:  # type: ignore[union-attr]
        pass  # another process stored the same size at the same moment
    finally:
        conn.close()
