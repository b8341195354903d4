"""One sequencer for every worker of `serve --workers N` (the Tessera shape).

With one worker the gateway's own `AuditLog` commits its entries inline. With N workers,
N logs committing to one database serialise on its lock and each re-reads and re-hashes
what the others wrote; so the serve process hosts ONE `Sequencer` instead: the
deployment's real `AuditLog` (group commit, integration, signing, damage checks) behind a
Unix socket in a private (0700) folder, served by its own thread and event loop. Workers
open their log in client mode (`AuditLog(..., sequencer=path)`): `append` encodes the
record and sends (entry id, timestamp, leaf); the sequencer checks the leaf, recomputes its
hash, appends it, and answers once it is committed, with the id or a typed error that the
worker raises as the same exception class (`audit.errors`). Everything the sequencer
receives in one loop iteration is appended as one batch (on SQLite the log's inline group
commit on the sequencer's loop; on PostgreSQL its writer thread takes what queued).

Frames are length-prefixed binary (struct): a 4-byte big-endian length of what follows,
a kind byte, a 4-byte request number the answer repeats, and the payload. A frame over
`MAX_FRAME` bytes, an unknown kind or a malformed payload closes that connection (logged);
the sequencer itself never stops for one. A connection has at most `max_in_flight`
requests unanswered; beyond that the sequencer stops reading it until answers go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harbourgate.audit import record
from harbourgate.audit.errors import (
    AuditLogClosedError,
    AuditWriteError,
    DuplicateEntryError,
    EntryNotFoundError,
    LogDamagedError,
)

if TYPE_CHECKING:
    from harbourgate.audit.log import AuditLog

log = logging.getLogger("harbourgate.audit")

ENV = "HARBOURGATE_AUDIT_SEQUENCER"  # the socket path serve gives its workers
MAX_FRAME = 16 << 20  # a frame's bytes after its length prefix
MAX_IN_FLIGHT = 4096
ANSWER_TIMEOUT_S = 30.0  # a worker's longest wait for the sequencer to answer an append

# kinds: requests, then answers
APPEND, CHECKPOINT, STATUS = 1, 2, 3
OK, ERROR = 0x81, 0x82
REQUESTS = frozenset({APPEND, CHECKPOINT, STATUS})
ANSWERS = frozenset({OK, ERROR})

# error codes, and the exception each is raised as in the worker
DAMAGED, WRITE, DUPLICATE, CLOSED, NOT_FOUND, FAILED, INVALID = range(1, 8)
_RAISED: dict[int, Callable[[str], Exception]] = {
    DAMAGED: LogDamagedError, WRITE: AuditWriteError, DUPLICATE: DuplicateEntryError,
    CLOSED: AuditLogClosedError, NOT_FOUND: EntryNotFoundError, FAILED: AuditWriteError,
    INVALID: record.RecordError,
}

_LENGTH = struct.Struct("!I")
_HEAD = struct.Struct("!IBI")  # length, kind, request number
_HEAD_SIZE = _HEAD.size - _LENGTH.size  # what the length counts besides the payload


class FrameError(ValueError):
    """A frame that breaks the protocol: the connection that sent it is closed."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    number: int
    payload: bytes = b""


def encode(kind: int, number: int, payload: bytes = b"") -> bytes:
    """One frame on the wire."""
    if len(payload) + _HEAD_SIZE > MAX_FRAME:
        raise FrameError(f"a frame of {len(payload) + _HEAD_SIZE} bytes is over "
                         f"the limit of {MAX_FRAME}")
    return _HEAD.pack(len(payload) + _HEAD_SIZE, kind, number) + payload


def append_payload(entry_id: str, ts: str, leaf: bytes) -> bytes:
    """An APPEND payload: the entry's id and timestamp (ASCII, each after a length byte),
    then its leaf bytes."""
    eid, when = entry_id.encode("ascii"), ts.encode("ascii")
    return bytes((len(eid),)) + eid + bytes((len(when),)) + when + leaf


def decode_append(payload: bytes) -> tuple[str, str, bytes]:
    """(entry id, timestamp, leaf) of an APPEND payload; `FrameError` if malformed."""
    try:
        n = payload[0]
        entry_id = payload[1:1 + n].decode("ascii")
        m = payload[1 + n]
        ts = payload[2 + n:2 + n + m].decode("ascii")
    except (IndexError, UnicodeDecodeError):
        raise FrameError("a malformed APPEND payload") from None
    leaf = payload[2 + n + m:]
    if not 0 < n <= 40 or len(entry_id) != n or not 0 < m == len(ts) or not leaf:
        raise FrameError("an APPEND payload needs an id of 1 to 40 characters, a "
                         "timestamp and a leaf")
    return entry_id, ts, leaf


def encode_error(number: int, code: int, message: str) -> bytes:
    return encode(ERROR, number, bytes((code,)) + message.encode()[:65_536])


def raised(payload: bytes) -> Exception:
    """The exception an ERROR payload stands for."""
    code, message = (payload[0], payload[1:].decode(errors="replace")) if payload else (0, "")
    return _RAISED.get(code, AuditWriteError)(message or "the audit sequencer refused")


def error_code(exc: BaseException, failed: bool) -> int:
    """The code for what the sequencer's log raised (`failed`: its writer stopped)."""
    for kind, code in ((LogDamagedError, DAMAGED), (DuplicateEntryError, DUPLICATE),
                       (AuditLogClosedError, CLOSED), (EntryNotFoundError, NOT_FOUND),
                       (record.RecordError, INVALID)):
        if isinstance(exc, kind):
            return code
    return FAILED if failed else WRITE


class FrameReader:
    """Frames out of a byte stream, however it was split; `FrameError` on a frame that
    breaks the protocol (the stream cannot be trusted after it)."""

    def __init__(self, kinds: frozenset[int], max_frame: int = MAX_FRAME) -> None:
        self._kinds = kinds
        self._max = max_frame
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def next(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(buf, pos)
        if not _HEAD_SIZE <= length <= self._max:
            raise FrameError(f"a frame of {length} bytes (the limit is {self._max})")
        end = pos + _LENGTH.size + length
        if len(buf) < end:
            return None
        _, kind, number = _HEAD.unpack_from(buf, pos)
        if kind not in self._kinds:
            raise FrameError(f"a frame of unknown kind {kind}")
        self._pos = end
        return Frame(kind, number, bytes(buf[pos + _HEAD.size:end]))


# --- the sequencer (in the serve process) ---------------------------------------------------


class Sequencer:
    """The deployment's `AuditLog` behind a Unix socket, on its own thread and loop.

        sequencer = Sequencer(audit_log)       # not started: start() starts it
        sequencer.start()                      # the socket is sequencer.path
        ...                                    # workers run
        sequencer.close()                      # drains, signs, removes the folder
    """

    def __init__(self, audit_log: AuditLog, *, max_in_flight: int = MAX_IN_FLIGHT,
                 max_frame: int = MAX_FRAME) -> None:
        self.log = audit_log
        self.max_in_flight = max_in_flight
        self.max_frame = max_frame
        self._dir = tempfile.mkdtemp(prefix="harbourgate-audit-")  # mode 0700
        self.path = os.path.join(self._dir, "sequencer.sock")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._error: BaseException | None = None
        self.entries = 0  # appended for workers (with log.batches: the mean batch size)

    def start(self) -> None:
        """Start the log and serve the socket; returns once it accepts connections."""
        import uvloop  # here: only serve needs it, and it is not on every platform

        self.log.start()
        self._loop = uvloop.new_event_loop()
        listening = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(listening,),
                                        name="harbourgate-audit-sequencer", daemon=True)
        self._thread.start()
        listening.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            self.close()
            raise self._error

    def _run(self, listening: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                loop.create_unix_server(lambda: _Connection(self), self.path))
            os.chmod(self.path, 0o600)
        except BaseException as exc:
            self._error = exc
            loop.close()
            return
        finally:
            listening.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    def close(self) -> None:
        """Stop accepting, answer what was received, close the log (it writes what is
        queued and signs a last checkpoint), stop the thread and remove the folder."""
        try:
            if self._loop is not None and self._thread is not None:
                asyncio.run_coroutine_threadsafe(self._drain(), self._loop).result()
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join()
                self._thread = None
            else:
                self.log.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def _drain(self) -> None:
        if self._server is not None:
            self._server.close()
        for _ in range(3):  # let inline batches scheduled by the last reads commit
            await asyncio.sleep(0)
        await asyncio.to_thread(self.log.close)
        for conn in list(self._connections):
            conn.close()
        log.info("audit sequencer: %d entries committed in %d transactions", self.entries,
                 self.log.batches)


class _Connection(asyncio.Protocol):
    """One worker's connection: frames in, answers out (one write per loop iteration)."""

    def __init__(self, sequencer: Sequencer) -> None:
        self.seq = sequencer
        self.log = sequencer.log
        self.reader = FrameReader(REQUESTS, sequencer.max_frame)
        self.transport: asyncio.Transport | None = None
        self.in_flight = 0
        self.paused = False
        self.out: list[bytes] = []
        self.tasks: set[asyncio.Task[None]] = set()  # checkpoints being signed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.seq._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.seq._connections.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        self._take()

    def _take(self) -> None:
        """Handle the frames received while under the in-flight bound; stop reading the
        socket at the bound, until answers free room."""
        try:
            while self.in_flight < self.seq.max_in_flight and self.transport is not None:
                frame = self.reader.next()
                if frame is None:
                    break
                self._handle(frame)
        except FrameError as exc:
            log.error("audit sequencer: closing a worker connection that sent %s", exc)
            if self.transport is not None:
                self._flush()  # what came before it is answered; nothing after
                self.transport.close()
                self.transport = None
            return
        if self.transport is None:
            return
        blocked = self.in_flight >= self.seq.max_in_flight
        if blocked and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        elif not blocked and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def _handle(self, frame: Frame) -> None:
        if frame.kind == APPEND:
            entry_id, ts, leaf = decode_append(frame.payload)
            try:
                done = self.log.submit(entry_id, ts, leaf, _check_leaf(entry_id, ts, leaf))
            except Exception as exc:
                self._fail(frame.number, exc)
                return
            self.in_flight += 1
            self.seq.entries += 1
            done.add_done_callback(functools.partial(self._appended, frame.number))
        elif frame.kind == CHECKPOINT:
            self.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._checkpoint(frame.number))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:  # STATUS: why nothing can be appended now, if anything
            if self.log.damage is not None:
                self._send(encode_error(frame.number, DAMAGED, self.log.damage))
            elif self.log.failure is not None:
                self._send(encode_error(frame.number, FAILED, self.log.failure))
            else:
                self._send(encode(OK, frame.number))

    def _appended(self, number: int, done: asyncio.Future[str]) -> None:
        exc = (AuditLogClosedError("the audit sequencer is stopping") if done.cancelled()
               else done.exception())
        if exc is None:
            self._send(encode(OK, number, done.result().encode("ascii")))
        else:
            self._fail(number, exc)
        self._answered()

    async def _checkpoint(self, number: int) -> None:
        try:
            signed = await asyncio.to_thread(self.log.checkpoint)
        except Exception as exc:
            self._fail(number, exc)
        else:
            self._send(encode(OK, number, signed.note.encode()))
        self._answered()

    def _answered(self) -> None:
        self.in_flight -= 1
        if self.paused:
            self._take()

    def _fail(self, number: int, exc: BaseException) -> None:
        self._send(encode_error(number, error_code(exc, self.log.failure is not None),
                                str(exc)))

    def _send(self, frame: bytes) -> None:
        if self.transport is None:
            return  # the worker left; what it asked for is committed all the same
        self.out.append(frame)
        if len(self.out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        out, self.out = self.out, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))


def _check_leaf(entry_id: str, ts: str, leaf: bytes) -> dict[str, Any]:
    """The leaf decoded, once it is known to be a record carrying the id and timestamp it
    is sent with (the sequencer stores what it is given; it must not take a worker's word
    for what that is)."""
    held = record.decode(leaf)
    if held.get("id") != entry_id or held.get("ts") != ts:
        raise record.RecordError("the leaf does not carry the entry id and timestamp "
                                 "it was sent with")
    return held


# --- the worker's side ----------------------------------------------------------------------


def _unreachable(path: str, exc: BaseException) -> AuditWriteError:
    return AuditWriteError(f"the audit sequencer at {path} is unreachable: {exc}")


class Client:
    """A worker's connection to the sequencer, on the worker's event loop: appends from
    one loop iteration leave in one write; each waits for its own answer. A lost
    connection fails what is waiting (`AuditWriteError`); the next append reconnects."""

    def __init__(self, path: str, answer_timeout: float = ANSWER_TIMEOUT_S) -> None:
        self.path = path
        self.answer_timeout = answer_timeout
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._out: list[bytes] = []
        self._number = 0
        self._reader = FrameReader(ANSWERS)

    @property
    def pending(self) -> int:
        return len(self._waiting)

    async def append(self, entry_id: str, ts: str, leaf: bytes) -> str:
        """Send the entry; return its id once the sequencer says it is committed."""
        if self._transport is None:
            await self._connect()
            if self._transport is None:
                raise AuditWriteError("the connection to the audit sequencer closed at once")
        self._number = number = (self._number + 1) & 0xFFFFFFFF
        frame = encode(APPEND, number, append_payload(entry_id, ts, leaf))
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()
        self._waiting[number] = answer
        self._out.append(frame)
        if len(self._out) == 1:
            loop.call_soon(self._flush)
        timer = loop.call_later(self.answer_timeout, self._give_up, number)
        try:
            returned = (await answer).decode("ascii")
        finally:
            timer.cancel()
        if returned != entry_id:
            raise AuditWriteError(f"the audit sequencer answered {returned} for {entry_id}")
        return returned

    async def _connect(self) -> None:
        """Connect once for every append waiting for it; each raises what failed."""
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        loop = asyncio.get_running_loop()
        self._connecting = connecting = loop.create_future()
        try:
            await loop.create_unix_connection(lambda: _ClientProtocol(self), self.path)
            connecting.set_result(None)
        except BaseException as exc:
            connecting.set_exception(_unreachable(self.path, exc))
            connecting.exception()  # retrieved: whoever waits raises it
            if not isinstance(exc, Exception):
                raise
        finally:
            self._connecting = None
        await connecting

    def _give_up(self, number: int) -> None:
        """A sequencer alive but silent: the request stops waiting (and gets no answer)."""
        answer = self._waiting.pop(number, None)
        if answer is not None and not answer.done():
            answer.set_exception(AuditWriteError(
                f"the audit sequencer at {self.path} did not answer within "
                f"{self.answer_timeout:g} s: the entry may or may not be committed"))

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is None or self._transport.is_closing():
            return  # connection_lost failed what these frames were for
        self._transport.write(b"".join(out))

    def _received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (frame := self._reader.next()) is not None:
            answer = self._waiting.pop(frame.number, None)
            if answer is None or answer.done():
                continue
            if frame.kind == OK:
                answer.set_result(frame.payload)
            else:
                answer.set_exception(raised(frame.payload))

    def _lost(self, reason: BaseException | str) -> None:
        self._transport = None
        self._reader = FrameReader(ANSWERS)
        self._out = []
        waiting, self._waiting = self._waiting, {}
        for answer in waiting.values():
            if not answer.done():
                answer.set_exception(AuditWriteError(
                    f"the connection to the audit sequencer was lost ({reason}): the entry "
                    "may or may not be committed"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _ClientProtocol(asyncio.Protocol):
    """One connection of a `Client`; a connection the client replaced says nothing."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self.client._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.client._transport is not self.transport:
            return
        try:
            self.client._received(data)
        except FrameError as exc:
            log.error("the audit sequencer sent %s; reconnecting", exc)
            self.client._lost(exc)
            assert self.transport is not None
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client._transport is self.transport:
            self.client._lost(exc or "closed by the sequencer")


class Control:
    """Blocking requests to the sequencer from threads (checkpoints, status, and appends
    from `append_sync`), one at a time over one connection."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._number = 0

    def request(self, kind: int, payload: bytes = b"") -> bytes:
        """The OK answer's payload; the typed error the sequencer answered, raised; or
        `AuditWriteError` when it cannot be reached."""
        with self._lock:
            self._number = number = (self._number + 1) & 0xFFFFFFFF
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    self._sock.settimeout(self.timeout)
                    self._sock.connect(self.path)
                self._sock.sendall(encode(kind, number, payload))
                frame = self._receive()
            except (OSError, FrameError) as exc:
                self._close()
                raise _unreachable(self.path, exc) from None
            if frame.number != number:
                self._close()
                raise AuditWriteError(f"the audit sequencer answered request {frame.number} "
                                      f"to request {number}")
        if frame.kind == ERROR:
            raise raised(frame.payload)
        return frame.payload

    def append(self, entry_id: str, ts: str, leaf: bytes) -> str:
        return self.request(APPEND, append_payload(entry_id, ts, leaf)).decode("ascii")

    def _receive(self) -> Frame:
        assert self._sock is not None
        reader = FrameReader(ANSWERS)
        while (frame := reader.next()) is None:
            data = self._sock.recv(65_536)
            if not data:
                raise ConnectionError("closed by the sequencer")
            reader.feed(data)
        return frame

    def _close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self._close()

