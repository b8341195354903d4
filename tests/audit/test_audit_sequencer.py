"""The sequencer of `serve --workers N`: its frames, and client logs appending through it.

Two client logs (each on its own thread and event loop, as two workers) append at once
through one sequencer: every id they get back is committed, the indices are contiguous
and the whole log verifies. Unhappy paths: malformed frames close only the connection
that sent them; an unreachable sequencer, a damaged log, a duplicate id and a closed
sequencer each reach the worker as the exception the gateway answers 503 for.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.audit import sequencer as seq
from harbourgate.audit.errors import (
    AuditLogClosedError,
    AuditWriteError,
    DuplicateEntryError,
    LogDamagedError,
)
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.audit.record import RecordError, encode, timestamp
from harbourgate.audit.verify import verify_log

MakeLog = Callable[..., AuditLog]
WAIT = 120  # seconds, for what a busy machine may take
DELETED = r"(changed or deleted|entries were deleted|no entry at index)"


# --- frames ------------------------------------------------------------------------------

frames = st.lists(st.tuples(st.sampled_from(sorted(seq.REQUESTS)),
                            st.integers(0, 0xFFFFFFFF), st.binary(max_size=300)), max_size=8)


@given(frames, st.lists(st.integers(1, 400), max_size=20))
def test_frames_survive_any_split(sent: list[tuple[int, int, bytes]],
                                  cuts: list[int]) -> None:
    wire = b"".join(seq.encode(kind, number, payload) for kind, number, payload in sent)
    reader = seq.FrameReader(seq.REQUESTS)
    got: list[seq.Frame] = []
    pos = 0
    for size in [*cuts, len(wire)]:
        reader.feed(wire[pos:pos + size])
        pos += size
        while (frame := reader.next()) is not None:
            got.append(frame)
    assert got == [seq.Frame(kind, number, payload) for kind, number, payload in sent]


@given(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
       st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
       st.binary(min_size=1, max_size=500))
def test_an_append_payload_round_trips(entry_id: str, ts: str, leaf: bytes) -> None:
    assert seq.decode_append(seq.append_payload(entry_id, ts, leaf)) == (entry_id, ts, leaf)


@given(st.binary(max_size=200))
def test_garbage_is_refused_never_crashes_the_reader(garbage: bytes) -> None:
    reader = seq.FrameReader(seq.REQUESTS, max_frame=100)
    reader.feed(garbage)
    try:
        while (frame := reader.next()) is not None:
            assert frame.kind in seq.REQUESTS and len(frame.payload) <= 100
    except seq.FrameError:
        pass
    with contextlib.suppress(seq.FrameError):
        seq.decode_append(garbage)


def test_oversized_short_and_unknown_frames_are_refused() -> None:
    for wire, what in ((struct.pack("!I", seq.MAX_FRAME + 1), "limit"),
                       (struct.pack("!I", 2) + b"\x01\x00", "limit"),
                       (struct.pack("!IBI", 5, 9, 1), "unknown kind")):
        reader = seq.FrameReader(seq.REQUESTS)
        reader.feed(wire)
        with pytest.raises(seq.FrameError, match=what):
            reader.next()
    truncated = seq.FrameReader(seq.REQUESTS)
    truncated.feed(seq.encode(seq.APPEND, 1, b"x" * 10)[:-1])
    assert truncated.next() is None  # waits for the rest
    with pytest.raises(seq.FrameError):
        seq.encode(seq.APPEND, 1, b"x" * seq.MAX_FRAME)
    for payload in (b"", b"\x00\x01t leaf", b"\x29" + b"a" * 41 + b"\x01tl", b"\x01a\x01t",
                    b"\x01\xff\x01tl"):
        with pytest.raises(seq.FrameError):
            seq.decode_append(payload)


# --- a sequencer and its clients ------------------------------------------------------------


@pytest.fixture
def sequencer_for(make_log: MakeLog) -> Iterator[Callable[..., seq.Sequencer]]:
    started: list[seq.Sequencer] = []

    def start(url: str, log_options: dict[str, object] | None = None,
              **options: object) -> seq.Sequencer:
        s = seq.Sequencer(make_log(url, start=False, checkpoint_interval=0.05,
                                   poll_interval=0.05, **(log_options or {})),
                          **options)  # type: ignore[arg-type]
        s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def _client(make_log: MakeLog, url: str, path: str) -> AuditLog:
    return make_log(url, sequencer=path, poll_interval=0.05)


def _append_many(log: AuditLog, n: int, concurrency: int, tag: str) -> list[str]:
    """`n` appends, `concurrency` at a time, on a fresh event loop of this thread."""
    async def go() -> list[str]:
        async def one(k: int) -> list[str]:
            return [await log.append({"decision": "allow", "worker": tag, "i": i})
                    for i in range(k, n, concurrency)]
        return [i for ids in await asyncio.gather(*(one(k) for k in range(concurrency)))
                for i in ids]
    return asyncio.run(go())


def _indices(log: AuditLog) -> dict[str, int | None]:
    with log.engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(sa.text("SELECT id, idx FROM audit_entries"))}


def test_two_workers_append_through_one_sequencer(database_url: str, make_log: MakeLog,
                                                  sequencer_for: Callable[..., seq.Sequencer],
                                                  signer: Signer) -> None:
    s = sequencer_for(database_url)
    workers = [_client(make_log, database_url, s.path) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda w: _append_many(w[1], 300, 16, str(w[0])),
                                enumerate(workers)))
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == 600
    stored = _indices(workers[0])
    assert set(ids) <= set(stored)  # every id handed back is committed
    deadline = time.monotonic() + WAIT  # PostgreSQL integrates after the commit
    while sorted(i for i in _indices(workers[0]).values() if i is not None) != list(range(600)):
        assert time.monotonic() < deadline, "the sequencer never integrated every entry"
        time.sleep(0.05)
    for worker in workers:
        assert not worker.is_integrator and worker.failure is None
    entry = workers[1].entry(ids[0])
    assert entry.record["worker"] == "0"
    signed = workers[1].checkpoint()  # asked of the sequencer: it signs the grown tree
    assert signed.size == 600
    proof = workers[0].inclusion_proof(ids[-1])
    assert proof.tree_size == 600
    assert s.entries == 600 and s.log.batches < 600  # it grouped the workers' entries
    s.close()
    report = verify_log(workers[0].engine, signer.verifier)
    assert report.ok and report.entries == 600, report.to_json()


def test_append_sync_and_a_duplicate_id_through_the_sequencer(
        tmp_path: Path, make_log: MakeLog,
        sequencer_for: Callable[..., seq.Sequencer]) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url)
    worker = _client(make_log, url, s.path)
    first = worker.append_sync({"decision": "allow"}, entry_id="fixed-id")
    assert first == "fixed-id"

    async def again() -> str:
        return await worker.append({"decision": "deny"}, entry_id="fixed-id")

    with pytest.raises(DuplicateEntryError):
        asyncio.run(again())
    assert worker.entry("fixed-id").record["decision"] == "allow"


def test_the_sequencer_checks_what_it_is_sent(tmp_path: Path, make_log: MakeLog,
                                              sequencer_for: Callable[..., seq.Sequencer]
                                              ) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url)
    control = seq.Control(s.path)
    ts = timestamp()
    leaf = encode({"decision": "allow"}, "id-one", ts)
    with pytest.raises(RecordError, match="does not carry"):
        control.append("id-two", ts, leaf)  # the leaf says another id
    with pytest.raises(RecordError):
        control.append("id-three", ts, b"not json")
    assert control.append("id-one", ts, leaf) == "id-one"
    control.close()


def _raw(path: str, data: bytes) -> bytes:
    """Send `data` on a fresh connection; what comes back before the sequencer closes it."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(WAIT)
        sock.connect(path)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65_536):
            received += chunk
        return received


def test_malformed_frames_close_that_connection_only(
        tmp_path: Path, make_log: MakeLog, sequencer_for: Callable[..., seq.Sequencer],
        caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url)
    worker = _client(make_log, url, s.path)
    assert _append_many(worker, 5, 5, "before")
    status = seq.encode(seq.STATUS, 7)
    assert _raw(s.path, status + struct.pack("!I", seq.MAX_FRAME + 1) + status) == \
        seq.encode(seq.OK, 7)  # answered what came before the oversized frame, then closed
    assert _raw(s.path, b"\x00\x00\x00\x09garbage!!") == b""  # unknown kind
    bad_append = seq.encode(seq.APPEND, 3, b"\x00\x00")
    assert _raw(s.path, bad_append) == b""
    assert _raw(s.path, status[:-2]) == b""  # truncated, then the worker went away
    assert "closing a worker connection" in caplog.text
    assert _append_many(worker, 5, 5, "after")  # the sequencer serves on
    assert seq.Control(s.path).request(seq.STATUS) == b""


def test_in_flight_is_bounded_per_connection(tmp_path: Path, make_log: MakeLog,
                                             sequencer_for: Callable[..., seq.Sequencer]
                                             ) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url, max_in_flight=3)
    worker = _client(make_log, url, s.path)
    ids = _append_many(worker, 200, 50, "bounded")  # 50 at once, 3 taken at a time
    assert len(set(ids)) == 200 and set(ids) <= set(_indices(worker))


def test_a_full_queue_makes_the_sequencer_wait_never_drop(
        database_url: str, make_log: MakeLog,
        sequencer_for: Callable[..., seq.Sequencer]) -> None:
    s = sequencer_for(database_url, log_options={"inline": False, "max_queue": 2})
    worker = _client(make_log, database_url, s.path)
    ids = _append_many(worker, 300, 64, "queued")
    assert len(set(ids)) == 300 and set(ids) <= set(_indices(worker))


def test_an_unreachable_sequencer_fails_appends_fast(tmp_path: Path, make_log: MakeLog,
                                                     sequencer_for: Callable[..., seq.Sequencer]
                                                     ) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url)
    worker = _client(make_log, url, s.path)

    async def appends(n: int) -> list[str | BaseException]:
        return await asyncio.gather(*(worker.append({"decision": "allow", "i": i})
                                      for i in range(n)), return_exceptions=True)

    async def scenario() -> tuple[list[str | BaseException], list[str | BaseException]]:
        before = await appends(3)
        await asyncio.to_thread(s.close)  # the sequencer goes (its process died, say)
        return before, await appends(3)

    before, after = asyncio.run(scenario())
    assert all(isinstance(i, str) for i in before)
    assert all(isinstance(e, AuditWriteError) and "unreachable" in str(e) for e in after)
    deadline = time.monotonic() + WAIT
    while worker.failure is None:  # /readyz: "writer stopped: ... unreachable"
        assert time.monotonic() < deadline, "the worker never noticed the sequencer gone"
        time.sleep(0.05)
    assert "unreachable" in worker.failure
    assert set(i for i in before if isinstance(i, str)) <= set(_indices(worker))

    nowhere = _client(make_log, url, str(tmp_path / "no.sock"))
    with pytest.raises(AuditWriteError, match="unreachable"):
        _append_many(nowhere, 1, 1, "x")


def test_a_damaged_log_reaches_every_worker(tmp_path: Path, make_log: MakeLog,
                                            sequencer_for: Callable[..., seq.Sequencer]
                                            ) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url)
    worker, idle = (_client(make_log, url, s.path) for _ in range(2))
    _append_many(worker, 300, 10, "w")
    assert worker.checkpoint().size == 300
    with worker.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_entries WHERE idx >= 290"))
    _append_many(worker, 1, 1, "late")  # may still land: it is not signed
    deadline = time.monotonic() + WAIT
    while True:  # the sequencer notices when it next signs (within its interval)
        try:
            _append_many(worker, 1, 1, "later")
        except LogDamagedError as exc:
            assert re.search(DELETED, str(exc)), exc
            break
        assert time.monotonic() < deadline, "the sequencer never noticed the damage"
        time.sleep(0.05)
    assert worker.damage is not None and re.search(DELETED, worker.damage)
    assert worker.checkpoint().size == 300  # the last good one; nothing signed since
    deadline = time.monotonic() + WAIT
    while idle.damage is None:  # a worker that appended nothing learns it by polling
        assert time.monotonic() < deadline, "the idle worker never learnt of the damage"
        time.sleep(0.05)
    with pytest.raises(LogDamagedError):
        idle.append_sync({"decision": "allow"})


def test_a_closed_client_log_refuses_appends(tmp_path: Path, make_log: MakeLog,
                                             sequencer_for: Callable[..., seq.Sequencer]
                                             ) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url)
    worker = _client(make_log, url, s.path)
    worker.close()
    with pytest.raises(AuditLogClosedError):
        _append_many(worker, 1, 1, "closed")


def test_a_lost_connection_fails_what_waits_and_the_next_append_reconnects(
        tmp_path: Path, make_log: MakeLog, sequencer_for: Callable[..., seq.Sequencer]) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url)
    worker = _client(make_log, url, s.path)

    def drop_connections() -> None:
        assert s._loop is not None
        asyncio.run_coroutine_threadsafe(_close_all(s), s._loop).result()

    async def scenario() -> tuple[str, list[str | BaseException], str]:
        first = await worker.append({"decision": "allow", "i": "first"})
        await asyncio.to_thread(drop_connections)
        outcomes: list[str | BaseException] = []
        while not outcomes or not isinstance(outcomes[-1], str):  # at most one is lost
            assert len(outcomes) < 3, outcomes
            try:
                outcomes.append(await worker.append({"decision": "allow", "i": "again"}))
            except AuditWriteError as exc:
                outcomes.append(exc)
        return first, outcomes, await worker.append({"decision": "allow", "i": "last"})

    first, outcomes, last = asyncio.run(scenario())
    for failed in outcomes[:-1]:
        assert isinstance(failed, AuditWriteError) and "lost" in str(failed)
    committed = set(_indices(worker))
    assert {first, outcomes[-1], last} <= committed  # type: ignore[arg-type]


async def _close_all(s: seq.Sequencer) -> None:
    for conn in list(s._connections):
        conn.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_stopped_sequencer_writer_reaches_every_worker(
        tmp_path: Path, make_log: MakeLog, sequencer_for: Callable[..., seq.Sequencer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    s = sequencer_for(url)
    worker = _client(make_log, url, s.path)
    assert _append_many(worker, 3, 3, "before")

    def broken(force: bool = False) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(s.log, "_integrate_and_checkpoint", broken)
    deadline = time.monotonic() + WAIT
    while worker.failure is None:  # /readyz: "writer stopped: the disk is on fire"
        assert time.monotonic() < deadline, "the worker never learnt the writer stopped"
        time.sleep(0.05)
    assert worker.failure == "the disk is on fire"
    with pytest.raises(AuditWriteError, match="the audit writer stopped: the disk is on fire"):
        _append_many(worker, 1, 1, "after")


def test_a_silent_sequencer_fails_the_append_after_its_timeout(tmp_path: Path) -> None:
    """A sequencer that takes the frame and never answers (hung, not dead): the request
    stops waiting, so the gateway answers 503 audit_unavailable instead of hanging."""
    path = str(tmp_path / "silent.sock")

    async def scenario() -> AuditWriteError:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(-1)  # reads everything, answers nothing

        server = await asyncio.start_unix_server(swallow, path)
        client = seq.Client(path, answer_timeout=0.3)
        try:
            with pytest.raises(AuditWriteError) as info:
                await client.append("01J0000000000000000000000A", "2026-11-26T00:00:00.000Z",
                                    b'{"id":"01J0000000000000000000000A"}')
            assert client.pending == 0  # nothing left waiting for an answer
            return info.value
        finally:
            client.close()
            server.close()

    error = asyncio.run(scenario())
    assert str(error) == (f"the audit sequencer at {path} did not answer within 0.3 s: the "
                          "entry may or may not be committed")
