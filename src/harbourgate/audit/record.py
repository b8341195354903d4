"""Audit records: entry ids and the canonical leaf encoding.

A leaf is the record as JSON with sorted keys, no insignificant whitespace, UTF-8 (orjson
with OPT_SORT_KEYS). It is deterministic, so anyone holding the record can rebuild the
exact bytes and hash them; `is_canonical` lets a verifier tell a hand-edited leaf from one
the log wrote.

Entry ids are ULIDs (26 characters of Crockford base32: 48 bits of milliseconds, 80
random bits), monotonic within a process, so the gateway can allocate one before the
upstream call and ids sort by time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

RESERVED_KEYS = ("id", "ts")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits as two characters
_ID_LENGTH = 26
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the last id, for monotonicity
_second = (-1, "")  # (epoch second, its formatted date and time) of the last timestamp


class RecordError(ValueError):
    """A record that cannot be written to the log; the message names the problem."""


def new_entry_id() -> str:
    """A fresh, unique, time-ordered entry id (ULID, 26 characters)."""
    global _last
    now = time.time_ns() // 1_000_000
    with _lock:
        last_ms, last_rand = _last
        if now <= last_ms:  # same millisecond (or a clock step back): count up, stay ordered
            now, rand = last_ms, last_rand + 1
            if rand >> 80:
                now, rand = last_ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for counting up
        _last = (now, rand)
    return _ulid(now, rand)


def _ulid(ms: int, rand: int) -> str:
    """The 26 characters of (48 bits of `ms`, 80 of `rand`): 130 bits with two leading
    zeros, two characters per table lookup (half the time of one per character)."""
    value = (ms << 80) | rand
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])


def is_entry_id(text: str) -> bool:
    """Whether `text` has the shape of an entry id."""
    return len(text) == _ID_LENGTH and all(c in _CROCKFORD for c in text) and text[0] <= "7"


def timestamp(when: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds, as records and tables carry it."""
    if when is not None:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
            f"{when.microsecond // 1000:03d}Z"
    return timestamp_ms(time.time_ns() // 1_000_000)


def timestamp_ms(epoch_ms: int) -> str:
    """`timestamp` of an instant in milliseconds since the epoch (records and log lines
    ask many times a second: the date and time are formatted once per second)."""
    global _second
    second, ms = divmod(epoch_ms, 1000)
    formatted = _second  # one read: another thread may replace it meanwhile
    if formatted[0] != second:
        formatted = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.",
                                                     time.gmtime(second)))
    return f"{formatted[1]}{ms:03d}Z"


def encode(record: Mapping[str, Any], entry_id: str, ts: str) -> bytes:
    """The leaf bytes of `record` with its id and timestamp added."""
    clash = [k for k in RESERVED_KEYS if k in record]
    if clash:
        raise RecordError(f"the record must not set {clash[0]!r}: the log adds 'id' and 'ts'")
    try:
        return orjson.dumps({**record, "id": entry_id, "ts": ts}, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise RecordError(f"the record is not JSON-serialisable: {exc}") from None


def decode(leaf: bytes) -> dict[str, Any]:
    """The record held in `leaf`; `RecordError` if it is not a JSON object."""
    try:
        value = orjson.loads(leaf)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"the leaf is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RecordError("the leaf is not a JSON object")
    return value


def is_canonical(leaf: bytes, record: Mapping[str, Any]) -> bool:
    """Whether `leaf` is exactly the canonical encoding of `record` (its decoded form)."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS) == leaf
