"""`AuditLog`: the group-commit writer, the integrator and the proof server of one process.

    log = AuditLog.open(settings)          # or AuditLog(store.engine, signer)
    log.start()
    entry_id = await log.append({"decision": "allow", ...})   # returns once COMMITTED
    ...
    await log.aclose()                      # drains the queue, signs a last checkpoint

Group commit: `append` puts the encoded entry on a bounded queue and waits. A dedicated
thread with its own connection takes everything queued while its previous commit ran and
writes it in one transaction — no fixed delay, so a lone entry is written at once and a
burst shares a commit. Only then are the callers' ids handed back: an id a client sees is
always durable. When the queue is full, `append` waits; it never drops an entry.

Integration (leaf indices, tree, signed checkpoints) happens in the same thread under an
exclusive lock (see `storage`): on SQLite in the write transaction itself, on PostgreSQL
in whichever process holds the advisory lock. A checkpoint is signed after integration
when the last one is `checkpoint_interval` seconds or `checkpoint_every` entries old, and
on demand by `checkpoint()`.

The log never contradicts itself: on start, and before every signature, the stored tree is
checked against the last signed checkpoint (`_check_consistency`). On any mismatch (entries
deleted, rewritten, unreadable) the log is *damaged*: it signs nothing, appends nothing
(`append` raises `LogDamagedError`, which the gateway answers as 503 audit_unavailable),
and `damage` says what was found, for /readyz, until an operator restores the database and
restarts (`harbourgate audit verify` says how).

Client mode (`sequencer=<socket path>`, the workers of `serve --workers N`): the serve
process's `Sequencer` holds the deployment's one writing log; `append` sends it the encoded
entry and returns once it answers that the entry committed. The client has no writer: it
reads (entries, proofs) and records admin changes in their own transaction as ever, asks
the sequencer for fresh checkpoints, and polls the damage recorded in the database and the
sequencer's state every `poll_interval`, for /readyz.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from harbourgate.audit import merkle, record, storage
from harbourgate.audit.errors import (
    AuditLogClosedError,
    AuditWriteError,
    DuplicateEntryError,
    EntryNotFoundError,
    EntryNotIntegratedError,
    InvalidProofRequestError,
    LogDamagedError,
)
from harbourgate.audit.model import ConsistencyProof, Entry, InclusionProof
from harbourgate.audit.note import Checkpoint, SignedCheckpoint, Signer, open_checkpoint
from harbourgate.audit.sequencer import CHECKPOINT, STATUS, Client, Control
from harbourgate.audit.tree import TreeCache, TreeCorruptionError

log = logging.getLogger("harbourgate.audit")

_RETRIES = (0.05, 0.2, 0.5, 1.0, 2.0)  # backoff before giving a batch up as failed
WAL_CHECKPOINT_COMMITS = 100


@dataclass(slots=True)
class _Pending:
    id: str
    leaf: bytes
    hash: bytes
    ts: str
    ticket: Any = None  # (loop, asyncio.Future) or concurrent.futures.Future
    error: BaseException | None = field(default=None)
    record: dict[str, Any] | None = None  # the leaf decoded, where it already was


class AuditLog:
    """The audit log of one process: append entries, serve entries, proofs, checkpoints."""

    def __init__(self, engine: sa.Engine, signer: Signer, *, max_queue: int = 65_536,
                 max_batch: int = 8_192, checkpoint_interval: float = 1.0,
                 checkpoint_every: int = 100_000, poll_interval: float = 0.25,
                 inline: bool = True, sequencer: str | None = None) -> None:
        self.engine = engine
        self.signer = signer
        self.origin = signer.name
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_every = checkpoint_every
        self.poll_interval = poll_interval
        self.sequencer = sequencer
        self._writer = storage.writer_for(engine)
        self._inline = storage.inline_writer_for(engine) if inline and not sequencer else None
        self._client: dict[asyncio.AbstractEventLoop, Client] = {}
        self._control = Control(sequencer) if sequencer else None
        self._remote_failure: str | None = None  # client mode: why the sequencer cannot append
        self._inline_batch: list[_Pending] = []
        self._tree = TreeCache(lambda start, end: storage.read_leaves(engine, start, end))
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._in_flight = 0
        self._space_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._thread: threading.Thread | None = None
        self._closing = False
        self._failed: BaseException | None = None
        self._damage: str | None = None
        self._verified = 0  # stored leaves below this index were checked against the tree
        self._damage_checked_at = 0.0
        self._sign_lock = threading.Lock()
        self._last_checkpoint: SignedCheckpoint | None = None
        self._last_checkpoint_at = 0.0
        self.batches = 0  # transactions committed, for tests and metrics
        self._checkpointed_at = 0  # `batches` at the last WAL checkpoint

    @classmethod
    def open(cls, settings: Any, store: Any = None, **options: Any) -> AuditLog:
        """The log of a deployment: its database (migrated) and signing key (created
        in data_dir on first start)."""
        from harbourgate.audit.keys import load_signer
        from harbourgate.store import Store

        if store is None:
            if not settings.database_url:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            store = Store(settings.effective_database_url)
            store.migrate()
        return cls(store.engine, load_signer(settings), **options)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Connect, rebuild the tree from storage, and start the writer thread (in client
        mode: the thread that polls for damage and the sequencer's state)."""
        if self._thread is not None:
            return
        if self.sequencer:
            with contextlib.suppress(LogDamagedError):
                self._check_consistency(start=True)
            self._thread = threading.Thread(target=self._poll, name="harbourgate-audit-poll",
                                            daemon=True)
            self._thread.start()
            return
        self._writer.connect()
        if self._inline is not None:
            self._inline.connect()
        with contextlib.suppress(LogDamagedError):  # kept in self.damage: the log starts,
            self._check_consistency(start=True)    # refusing to sign or append
        self._last_checkpoint_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="harbourgate-audit-writer",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write everything queued, integrate, sign a last checkpoint, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._writer.close()
        if self._inline is not None:
            self._inline.close()
        if self._control is not None:
            self._control.close()
        for loop, client in list(self._client.items()):
            with contextlib.suppress(RuntimeError):  # that loop is closed: so is its socket
                loop.call_soon_threadsafe(client.close)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    @property
    def failure(self) -> str | None:
        """Why the writer stopped (nothing can be recorded), or None while it runs; in
        client mode, why the sequencer cannot append (its writer stopped, unreachable)."""
        if self.sequencer:
            return self._remote_failure
        return None if self._failed is None else str(self._failed)

    @property
    def damage(self) -> str | None:
        """What contradicts the last signed checkpoint (nothing is signed or appended
        until an operator restores the database), or None while the log is consistent."""
        return self._damage

    def _damaged(self, what: str) -> LogDamagedError:
        """Record the damage (the first one found stays), in this process and in the
        database for every other (`audit_state`), and return the error to raise."""
        if self._damage is None:
            self._damage = (f"{what}; nothing is signed or recorded until the database is "
                            "restored: run `harbourgate audit verify` for what to do")
            with contextlib.suppress(Exception):  # a corrupt database may refuse it too
                storage.record_damage(self.engine, self._damage, record.timestamp())
        return LogDamagedError(self._damage)

    def _check_recorded_damage(self) -> None:
        """Adopt a damage another process found (read at start and on every idle turn of
        the writer thread, so every process stops within `poll_interval`)."""
        if self._damage is not None:
            return
        with contextlib.suppress(Exception):  # unreachable: the writer reports that itself
            found = storage.recorded_damage(self.engine)
            if found is not None:
                self._damage = f"{found[0]} (found at {found[1]})"

    def _check_consistency(self, *, start: bool = False) -> None:
        """Raise `LogDamagedError` unless the stored tree extends the latest signed
        checkpoint: every leaf it signed is still stored, unchanged, and no other
        checkpoint of a different tree was stored since.

        Cheap on purpose (it runs before every signature; a few ms at any size):
        the entries integrated since the last check are counted (an index-only query), the
        tile of the last leaf is read back and compared with the tree in memory, and the
        checkpoint's root is compared with the tree's. At `start` the whole tree is read
        from storage first. A leaf rewritten while running, below the last tile, cannot
        make a signed checkpoint wrong (the tree in memory is what is signed); it is
        caught by the next start, by a proof that reads its tile, or by `audit verify`.
        """
        self._check_recorded_damage()
        if self._damage is not None:
            raise LogDamagedError(self._damage)
        corrupt: tuple[type[BaseException], ...] = (
            sa.exc.DatabaseError, self.engine.dialect.dbapi.DatabaseError)  # type: ignore[union-attr]
        try:
            if start:
                self._refresh()
                self._verified = self._tree.size
            latest = storage.latest_checkpoint(self.engine)
            held = self._last_checkpoint  # already verified: not again (~0.4 ms a signature)
            if latest is not None and (held is None or (latest[0] >= held.size
                                                       and latest[1] != held.note)):
                try:
                    self._last_checkpoint = open_checkpoint(
                        latest[1], self.signer.verifier, self.origin)
                except ValueError as exc:
                    raise self._damaged(
                        f"the latest stored checkpoint (size {latest[0]}) does not verify "
                        f"with this log's key {self.verifier_key}: {exc}") from None
            size = self._tree.size
            low = min(self._verified, size)
            stored = storage.count_integrated(self.engine, low, size)
            if stored != size - low:
                raise self._damaged(
                    f"entries were deleted: indices {low}..{size - 1} held {size - low} "
                    f"entries, the database has {stored} of them")
            self._tree.verify_tail(size)
            self._verified = size
            last = self._last_checkpoint
            if last is None:
                return
            if last.size > size:
                self._refresh()
                if last.size > self._tree.size:
                    raise self._damaged(
                        f"entries were deleted: checkpoint {last.size} was signed, the "
                        f"database holds {self._tree.size} entries")
            if self._tree.root(last.size) != last.checkpoint.root:
                raise self._damaged(
                    f"the stored entries do not hash to the root of signed checkpoint "
                    f"{last.size}: entries below index {last.size} were changed")
        except LogDamagedError:
            raise
        except (TreeCorruptionError, storage.LogIntegrityError) as exc:
            raise self._damaged(str(exc).split("; run")[0]) from None
        except corrupt as exc:
            if storage.is_corruption(exc):
                raise self._damaged(f"the database is corrupt ({exc})") from None
            raise

    @property
    def queue_depth(self) -> int:
        """Entries appended but not yet committed (the metric for /metrics)."""
        with self._cond:
            waiting = sum(client.pending for client in list(self._client.values()))
            return len(self._queue) + self._in_flight + len(self._inline_batch) + waiting

    @property
    def size(self) -> int:
        """Integrated entries this process knows of."""
        return self._tree.size

    @property
    def is_integrator(self) -> bool:
        if self.sequencer:
            return False
        return self._writer.integrates_on_write or getattr(self._writer, "holds_lock", False)

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier.vkey

    # --- appending -----------------------------------------------------------------------

    def _prepare(self, rec: Mapping[str, Any], entry_id: str | None) -> _Pending:
        entry_id = entry_id or record.new_entry_id()
        if not isinstance(entry_id, str) or not 0 < len(entry_id) <= 40:
            raise record.RecordError("an entry id is a string of 1 to 40 characters")
        ts = record.timestamp()
        leaf = record.encode(rec, entry_id, ts)
        # The decisions index reads the record, not the leaf decoded again (~8 µs a leaf):
        # the leaf is the JSON of exactly this mapping.
        return _Pending(entry_id, leaf, merkle.leaf_hash(leaf), ts,
                        record={**rec, "id": entry_id, "ts": ts})

    def _offer(self, item: _Pending) -> bool:
        """Queue `item` unless the queue is full (caller holds the condition)."""
        if self._closing or self._thread is None:
            raise AuditLogClosedError("the audit log is closed: nothing can be recorded")
        if self._failed is not None:
            raise AuditWriteError(f"the audit writer stopped: {self._failed}")
        if self._damage is not None:
            raise LogDamagedError(self._damage)
        if len(self._queue) >= self.max_queue:
            return False
        self._queue.append(item)
        if len(self._queue) == 1:
            self._cond.notify_all()
        return True

    async def append(self, rec: Mapping[str, Any], entry_id: str | None = None) -> str:
        """Record `rec`; return its entry id once the transaction holding it has committed.

        Raises `RecordError` for a record that cannot be encoded, `AuditWriteError` if
        it could not be committed (the caller must then not answer as if it was).
        """
        item = self._prepare(rec, entry_id)
        if self.sequencer:
            return await self._append_remote(item)
        return await self._enqueue(item)

    def submit(self, entry_id: str, ts: str, leaf: bytes,
               decoded: dict[str, Any] | None = None) -> asyncio.Future[str]:
        """Append a leaf another process encoded (the sequencer's path); the future holds
        its id once committed. Everything submitted in one loop iteration shares a commit.
        Raises at once, as `append` would, when the log is closed, stopped or damaged.
        `decoded`: the leaf already decoded (the decisions index need not decode it again)."""
        return self._enqueue(_Pending(entry_id, leaf, merkle.leaf_hash(leaf), ts,
                                      record=decoded))

    def _enqueue(self, item: _Pending) -> asyncio.Future[str]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        item.ticket = (loop, done)
        if self._inline is not None and self._thread is not None and not self._closing \
                and self._failed is None and self._damage is None:
            self._inline_batch.append(item)
            if len(self._inline_batch) == 1:  # everything appended until then joins it
                loop.call_soon(self._flush_inline)
            return done
        with self._cond:
            if self._offer(item):
                return done
        return loop.create_task(self._wait_for_room(item, done))

    async def _wait_for_room(self, item: _Pending, done: asyncio.Future[str]) -> str:
        """The queue was full: wait for room (never drop an entry), then for the commit."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._offer(item):
                    break
                space: asyncio.Future[None] = loop.create_future()
                self._space_waiters.append((loop, space))
            await space
        return await done

    async def _append_remote(self, item: _Pending) -> str:
        """Client mode: the sequencer commits it; a damage it reports is this log's too."""
        if self._thread is None:
            raise AuditLogClosedError("the audit log is closed: nothing can be recorded")
        if self._damage is not None:
            raise LogDamagedError(self._damage)
        loop = asyncio.get_running_loop()
        client = self._client.get(loop)
        if client is None:  # one connection per event loop (a worker has one)
            self._client = {lp: c for lp, c in self._client.items() if not lp.is_closed()}
            client = self._client[loop] = Client(self.sequencer)
        try:
            return await client.append(item.id, item.ts, item.leaf)
        except LogDamagedError as exc:
            self._damage = self._damage or str(exc)
            raise

    def append_sync(self, rec: Mapping[str, Any], entry_id: str | None = None,
                    timeout: float | None = None) -> str:
        """`append` for threads that are not an event loop (admin plane, CLI)."""
        item = self._prepare(rec, entry_id)
        if self._control is not None:
            if self._damage is not None:
                raise LogDamagedError(self._damage)
            return self._control.append(item.id, item.ts, item.leaf)
        done: concurrent.futures.Future[str] = concurrent.futures.Future()
        item.ticket = done
        with self._cond:
            while not self._offer(item):
                self._cond.wait()
        return done.result(timeout)

    def record_in(self, conn: sa.Connection, rec: Mapping[str, Any]) -> str:
        """Record `rec` inside the caller's open transaction and return its entry id: the
        entry commits with the change it describes, or neither does (admin changes).

        On SQLite the entry takes the next leaf index at once (the transaction holds the
        write lock); on PostgreSQL the integrator indexes it after the commit, as any
        other. `LogDamagedError` (and no entry) when the log is damaged or stopped, and
        `LogIntegrityError`, recording the damage, if the index it would take was
        already handed out: then the caller's transaction must roll back.
        """
        if self._damage is not None:
            raise LogDamagedError(self._damage)
        if self.failure is not None:
            raise AuditWriteError(f"the audit writer stopped: {self.failure}")
        item = self._prepare(rec, None)
        index = storage.insert_entry(conn, storage.Row(item.id, item.leaf, item.ts))
        if index is not None and index < self._tree.size:
            raise self._damaged(f"the database's last leaf index is {index - 1} but this "
                                f"process integrated {self._tree.size} entries: entries "
                                "were deleted")
        return item.id

    # --- the event loop's own group commit (SQLite) --------------------------------------

    def _flush_inline(self) -> None:
        """Commit what this loop appended since the last flush, in one transaction, on the
        loop itself: on SQLite that costs microseconds, where the round trip through the
        writer thread cost ~80 µs of wake-ups per request. A locked database (another
        worker is writing) or any error hands the batch to the writer thread, which waits
        and retries as usual; nothing is resolved before its commit either way."""
        batch, self._inline_batch = self._inline_batch, []
        batch = self._unique(batch)
        if not batch:
            return
        if self._damage is not None:
            for item in batch:
                item.error = LogDamagedError(self._damage)
            _resolve_all(batch)
            return
        assert self._inline is not None
        size = self._tree.size
        try:
            caught_up, first = self._inline.write(
                [storage.Row(p.id, p.leaf, p.ts, p.record) for p in batch], size)
        except Exception:
            with self._cond:
                self._queue.extend(batch)
                self._cond.notify_all()
            return
        self.batches += 1
        if caught_up:
            self._tree.extend([merkle.leaf_hash(leaf) for leaf in caught_up], size)
        self._tree.extend([p.hash for p in batch], first)
        _resolve_all(batch)

    # --- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if not self._queue and not self._closing:
                        self._cond.wait(self._idle_timeout())
                    batch = [self._queue.popleft()
                             for _ in range(min(len(self._queue), self.max_batch))]
                    self._in_flight = len(batch)
                    closing = self._closing and not self._queue
                    self._wake_space_waiters()
                if time.monotonic() - self._damage_checked_at >= self.poll_interval:
                    self._damage_checked_at = time.monotonic()
                    self._check_recorded_damage()
                    if self._inline is not None:  # the loop's commits never checkpoint
                        self._checkpoint_wal()
                if batch:
                    self._write(batch)
                self._integrate_and_checkpoint(force=closing)
                if closing and not batch:
                    return
        except BaseException as exc:  # never leave a caller waiting forever
            log.error("the audit writer stopped; every pending entry fails: %s", exc)
            with self._cond:
                self._failed = exc
                pending = list(self._queue)
                self._queue.clear()
                self._wake_space_waiters()
            for item in pending:
                item.error = AuditWriteError(f"the audit writer stopped: {exc}")
            self._settle(pending)
            raise

    def _poll(self) -> None:
        """Client mode: adopt a damage recorded in the database, and learn whether the
        sequencer can append, every `poll_interval` until closed."""
        assert self._control is not None
        while True:
            with self._cond:
                if not self._closing:
                    self._cond.wait(self.poll_interval)
                if self._closing:
                    return
            self._check_recorded_damage()
            try:
                self._control.request(STATUS)
            except LogDamagedError as exc:
                self._damage = self._damage or str(exc)
            except Exception as exc:
                self._remote_failure = str(exc)
            else:
                self._remote_failure = None

    def _checkpoint_wal(self) -> None:
        """Checkpoint once the loop has committed `WAL_CHECKPOINT_COMMITS` transactions
        since the last time: about as often as SQLite's own 1,000-page default would (a
        transaction of one entry writes ~7 pages), but on this thread."""
        if self.batches - self._checkpointed_at < WAL_CHECKPOINT_COMMITS:
            return
        self._checkpointed_at = self.batches
        try:
            self._writer.checkpoint_wal()
        except Exception as exc:  # busy or unreachable: a later turn tries again
            log.debug("WAL checkpoint skipped: %s", exc)

    def _idle_timeout(self) -> float:
        due = self._last_checkpoint_at + self.checkpoint_interval - time.monotonic()
        return max(0.01, min(self.poll_interval, due if self._unsigned() else self.poll_interval))

    def _unsigned(self) -> bool:
        signed = self._last_checkpoint.size if self._last_checkpoint else 0
        return self._tree.size > signed

    def _wake_space_waiters(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        self._cond.notify_all()
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is gone
                loop.call_soon_threadsafe(_resolve, fut, None)

    def _write(self, batch: list[_Pending]) -> None:
        batch = self._unique(batch)
        if self._damage is not None:
            for item in batch:
                item.error = LogDamagedError(self._damage)
            self._settle(batch)
            return
        integrity_error = self.engine.dialect.dbapi.IntegrityError  # type: ignore[union-attr]
        attempts = iter(_RETRIES)
        while batch:
            rows = [storage.Row(p.id, p.leaf, p.ts, p.record) for p in batch]
            size = self._tree.size
            try:
                caught_up, first = self._writer.write(rows, size)
            except integrity_error:
                batch = self._drop_stored(batch)  # an id already in the log
                continue
            except storage.LogIntegrityError as exc:
                error = self._damaged(str(exc).split("; run")[0])
                for item in batch:
                    item.error = error
                self._settle(batch)
                return
            except Exception as exc:
                delay = next(attempts, None)
                if delay is None:
                    log.error("%d audit entr%s not committed after retries: %s", len(batch),
                              "y" if len(batch) == 1 else "ies", exc)
                    for item in batch:
                        item.error = AuditWriteError(
                            f"the audit entry could not be committed: {exc}")
                    self._settle(batch)
                    return
                time.sleep(delay)
                with contextlib.suppress(Exception):
                    self._writer.connect()
                continue
            self.batches += 1
            if caught_up:
                self._tree.extend([merkle.leaf_hash(leaf) for leaf in caught_up], size)
            if first >= 0:
                self._tree.extend([p.hash for p in batch], first)
            self._settle(batch)
            return

    def _unique(self, batch: list[_Pending]) -> list[_Pending]:
        """Refuse a second entry with an id already in the same batch."""
        seen: set[str] = set()
        keep: list[_Pending] = []
        for item in batch:
            if item.id in seen:
                item.error = DuplicateEntryError(f"an audit entry with id {item.id} was "
                                                 "appended twice")
                self._settle([item])
            else:
                seen.add(item.id)
                keep.append(item)
        return keep

    def _drop_stored(self, batch: list[_Pending]) -> list[_Pending]:
        """After a unique-id violation: settle the entries already stored, keep the rest.

        An entry stored with the very same leaf is a commit whose acknowledgement was
        lost (a retry after a dropped connection): it succeeded. Another leaf under the
        same id is refused.
        """
        keep: list[_Pending] = []
        for item in batch:
            stored = self._writer.exists(item.id)
            if stored is None:
                keep.append(item)
                continue
            if stored != item.leaf:
                item.error = DuplicateEntryError(f"an audit entry with id {item.id} already "
                                                 "exists")
            self._settle([item])
        if len(keep) == len(batch):  # the violation was not about ids: give up on the batch
            for item in keep:
                item.error = AuditWriteError("the audit entries violate a constraint of "
                                             "audit_entries")
            self._settle(keep)
            return []
        return keep

    def _settle(self, batch: list[_Pending]) -> None:
        """Hand each caller its id (or error); one wake-up per event loop for the batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for item in batch:
            if isinstance(item.ticket, tuple):
                by_loop.setdefault(item.ticket[0], []).append(item)
            elif item.error is not None:
                item.ticket.set_exception(item.error)
            else:
                item.ticket.set_result(item.id)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_all, items)
        with self._cond:
            self._in_flight = max(0, self._in_flight - len(batch))

    def _integrate_and_checkpoint(self, force: bool = False) -> None:
        if self._damage is not None:
            return  # no index is handed out on a log that contradicts its checkpoints
        if not self._writer.integrates_on_write:
            try:
                if self._writer.try_lock():
                    while True:
                        size = self._tree.size
                        caught_up, new = self._writer.integrate(size)
                        hashes = [merkle.leaf_hash(leaf) for leaf in (*caught_up, *new)]
                        self._tree.extend(hashes, size)
                        if len(new) < storage._INTEGRATE_LIMIT:
                            break
            except Exception as exc:
                # lost the connection (and with it the lock): reconnect, try next round
                log.warning("audit integration interrupted, retrying: %s", exc)
                with contextlib.suppress(Exception):
                    self._writer.connect()
                return
        if not self.is_integrator or not self._unsigned() or self._damage is not None:
            return
        signed = self._last_checkpoint.size if self._last_checkpoint else 0
        due = (time.monotonic() - self._last_checkpoint_at >= self.checkpoint_interval
               or self._tree.size - signed >= self.checkpoint_every)
        if due or force:
            with contextlib.suppress(LogDamagedError):  # kept in self.damage; nothing signed
                self._sign()

    # --- checkpoints ---------------------------------------------------------------------

    def _sign(self) -> SignedCheckpoint:
        """Sign the tree as it stands, after checking it extends the last checkpoint
        (`LogDamagedError` otherwise, and nothing is signed)."""
        with self._sign_lock:
            self._check_consistency()
            size = self._tree.size
            last = self._last_checkpoint
            if last is not None and last.size >= size:
                return last
            cp = Checkpoint(self.origin, size, self._tree.root(size))
            signed = SignedCheckpoint(cp, self.signer.sign(cp.body()))
            storage.store_checkpoint(self.engine, size, cp.root, signed.note, record.timestamp())
            self._last_checkpoint = signed
            self._last_checkpoint_at = time.monotonic()
            return signed

    def checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint; an integrator signs a fresh one if the tree grew.

        `EntryNotFoundError` when the log has no checkpoint yet (nothing integrated).
        """
        if self._damage is None and self._control is not None:
            with contextlib.suppress(AuditWriteError):  # damaged, unreachable: the last one
                note = self._control.request(CHECKPOINT).decode()
                signed = open_checkpoint(note, self.signer.verifier, self.origin)
                if self._last_checkpoint is None or signed.size >= self._last_checkpoint.size:
                    self._last_checkpoint = signed
                return self._last_checkpoint
        elif self._damage is None:
            with contextlib.suppress(LogDamagedError):  # then the last good one is served
                self._refresh()
                if self.is_integrator and self._unsigned():
                    return self._sign()
        latest = storage.latest_checkpoint(self.engine)
        if latest is not None and (self._last_checkpoint is None
                                   or latest[0] > self._last_checkpoint.size):
            self._last_checkpoint = open_checkpoint(latest[1], self.signer.verifier, self.origin)
        if self._last_checkpoint is None:
            if self.is_integrator and self._damage is None:
                return self._sign()  # the empty tree
            raise EntryNotFoundError("the log has no signed checkpoint yet; retry in a second")
        return self._last_checkpoint

    # --- entries and proofs --------------------------------------------------------------

    def _refresh(self) -> None:
        """Catch up with entries other processes integrated."""
        start = self._tree.size
        for leaves in storage.iter_leaves(self.engine, start):
            self._tree.extend([merkle.leaf_hash(leaf) for leaf in leaves], start)
            start += len(leaves)

    def entry(self, entry_id: str) -> Entry:
        """The integrated entry `entry_id`; `EntryNotFoundError` if unknown or not yet indexed."""
        stored = storage.find_entry(self.engine, entry_id)
        if stored is None:
            raise EntryNotFoundError(f"no audit entry with id {entry_id!r}")
        if stored.index is None:
            raise EntryNotIntegratedError(
                f"audit entry {entry_id} is recorded but not yet integrated into the tree; "
                "retry in a second")
        return Entry(stored.id, stored.index, stored.leaf, record.decode(stored.leaf))

    def inclusion_proof(self, entry_id: str, tree_size: int | None = None) -> InclusionProof:
        """The inclusion proof of `entry_id` in the tree of `tree_size` (default: the latest
        signed checkpoint)."""
        entry = self.entry(entry_id)
        if tree_size is None:
            tree_size = self.checkpoint().size
            if entry.index >= tree_size:
                raise EntryNotIntegratedError(
                    f"audit entry {entry_id} (index {entry.index}) is not yet covered by a "
                    f"signed checkpoint (size {tree_size}); retry in a second")
        self._check_size(tree_size, "tree_size")
        if entry.index >= tree_size:
            raise InvalidProofRequestError(
                f"audit entry {entry_id} has index {entry.index}, so a tree of size "
                f"{tree_size} does not contain it; ask for tree_size > {entry.index}",
                "tree_size")
        return InclusionProof(entry.index, tree_size,
                              tuple(self._tree.inclusion_proof(entry.index, tree_size)))

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        """The proof that the tree of size `first` is a prefix of the tree of size `second`."""
        if first < 1:
            raise InvalidProofRequestError(
                "first must be at least 1: every tree extends the empty one", "first")
        if first > second:
            raise InvalidProofRequestError(
                f"first ({first}) must not be greater than second ({second})", "first")
        self._check_size(second, "second")
        return ConsistencyProof(first, second, tuple(self._tree.consistency_proof(first, second)))

    def _check_size(self, size: int, param: str) -> None:
        if size < 1:
            raise InvalidProofRequestError(f"{param} must be at least 1", param)
        if size > self._tree.size:
            self._refresh()
        if size > self._tree.size:
            raise InvalidProofRequestError(
                f"{param}={size} is beyond the tree, which has {self._tree.size} entries",
                param)

    def root(self, size: int | None = None) -> bytes:
        return self._tree.root(size)


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _resolve_all(items: list[_Pending]) -> None:
    for item in items:
        fut = item.ticket[1]
        if fut.done():
            continue
        if item.error is not None:
            fut.set_exception(item.error)
        else:
            fut.set_result(item.id)
