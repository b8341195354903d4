"""Counter stores: where the quota gate keeps its window counters.

A store does one thing atomically: given checks (counter key, limit, amount), either add
every amount (all fit under their limits) or add none, and report the counters' values.
`adjust` adds signed amounts afterwards (settling a reservation with the real usage).
Counters carry the end of their window and disappear after it.

- `MemoryStore`: one process; for tests and the per-process fallback when Redis is down.
- `SqliteStore`: every worker process of one server; a small SQLite file in WAL mode,
  each reservation one `BEGIN IMMEDIATE` transaction (the file's write lock serialises
  the workers).
- `RedisStore`: every replica; one Lua script per request checks and reserves all the
  counters covering it, so no interleaving of replicas can admit more than a limit.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

_GRACE_S = 3600  # counters outlive their window this long (a late settle still lands)


class StoreUnavailable(Exception):
    """The shared counter store cannot be reached."""


class Check(NamedTuple):
    """Add `amount` to counter `key` if it stays within `limit`; the window ends at `ends`."""

    key: str
    limit: int
    amount: int
    ends: int


class CounterStore(Protocol):
    name: str
    blocking: bool  # a network round trip: callers on an event loop use a thread

    def reserve(self, checks: Sequence[Check]) -> tuple[bool, list[int]]:
        """All or nothing: (True, values after adding) or (False, values as they are)."""

    def adjust(self, changes: Sequence[tuple[str, int, int]]) -> None:
        """Add signed amounts to counters: (key, delta, window end)."""

    def read(self, keys: Sequence[str]) -> list[int]:
        """The counters' values (0 for one never touched or expired)."""

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""

    def close(self) -> None: ...


class MemoryStore:
    """Counters in this process only."""

    name = "memory"
    blocking = False

    def __init__(self, clock: Any = time.time) -> None:
        self._values: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._ops = 0

    def reserve(self, checks: Sequence[Check]) -> tuple[bool, list[int]]:
        with self._lock:
            self._expire()
            values = [self._values.get(c.key, (0, 0))[0] for c in checks]
            if any(v + c.amount > c.limit for v, c in zip(values, checks, strict=True)):
                return False, values
            for c, v in zip(checks, values, strict=True):
                self._values[c.key] = (v + c.amount, c.ends)
            return True, [v + c.amount for v, c in zip(values, checks, strict=True)]

    def adjust(self, changes: Sequence[tuple[str, int, int]]) -> None:
        with self._lock:
            for key, delta, ends in changes:
                value = self._values.get(key, (0, ends))[0]
                self._values[key] = (value + delta, ends)

    def read(self, keys: Sequence[str]) -> list[int]:
        with self._lock:
            return [self._values.get(k, (0, 0))[0] for k in keys]

    def ping(self) -> None:
        pass

    def _expire(self) -> None:
        self._ops += 1
        if self._ops % 1024:
            return
        now = self._clock()
        for key in [k for k, (_, ends) in self._values.items() if ends + _GRACE_S < now]:
            del self._values[key]

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=64)
def _upsert(rows: int) -> str:
    """One statement adding to `rows` counters (one statement is ~8x faster than
    executemany of one-row statements, measured)."""
    return ("INSERT INTO quota_counters (key, value, ends) VALUES "
            + ", ".join(["(?, ?, ?)"] * rows)
            + " ON CONFLICT(key) DO UPDATE SET value = value + excluded.value")


class SqliteStore:
    """Counters in a SQLite file shared by the worker processes of one server.

    `synchronous=OFF`: counters survive a process crash (WAL), and losing the last
    moments of counts to a power cut only errs in the callers' favour.
    """

    name = "local"
    blocking = False

    def __init__(self, path: str | Path, clock: Any = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._local = threading.local()
        self._ops = 0
        conn = self._conn()
        conn.execute("CREATE TABLE IF NOT EXISTS quota_counters (key TEXT PRIMARY KEY, "
                     "value INTEGER NOT NULL, ends INTEGER NOT NULL) WITHOUT ROWID")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            self._local.conn = conn
        return conn

    def reserve(self, checks: Sequence[Check]) -> tuple[bool, list[int]]:
        try:
            return self._reserve(checks)
        except sqlite3.Error as exc:  # locked past the timeout, disk full, file gone
            raise StoreUnavailable(f"the local quota file {self.path}: {exc}") from exc

    def _reserve(self, checks: Sequence[Check]) -> tuple[bool, list[int]]:
        conn = self._conn()
        keys = [c.key for c in checks]
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = dict(conn.execute(
                f"SELECT key, value FROM quota_counters WHERE key IN "
                f"({','.join('?' * len(keys))})", keys).fetchall())
            values = [found.get(k, 0) for k in keys]
            if any(v + c.amount > c.limit for v, c in zip(values, checks, strict=True)):
                conn.execute("COMMIT")
                return False, values
            conn.execute(_upsert(len(checks)),
                         [x for c in checks for x in (c.key, c.amount, c.ends)])
            self._expire(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return True, [v + c.amount for v, c in zip(values, checks, strict=True)]

    def adjust(self, changes: Sequence[tuple[str, int, int]]) -> None:
        if not changes:
            return
        try:
            self._adjust(changes)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the local quota file {self.path}: {exc}") from exc

    def _adjust(self, changes: Sequence[tuple[str, int, int]]) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_upsert(len(changes)), [x for change in changes for x in change])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def read(self, keys: Sequence[str]) -> list[int]:
        found = dict(self._conn().execute(
            f"SELECT key, value FROM quota_counters WHERE key IN ({','.join('?' * len(keys))})",
            list(keys)).fetchall())
        return [found.get(k, 0) for k in keys]

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1 FROM quota_counters LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the local quota file {self.path}: {exc}") from exc

    def _expire(self, conn: sqlite3.Connection) -> None:
        self._ops += 1
        if self._ops % 1024 == 0:
            conn.execute("DELETE FROM quota_counters WHERE ends < ?",
                         (int(self._clock()) - _GRACE_S,))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# KEYS: counter keys; ARGV: for each key, limit, amount, seconds to live. All or nothing.
_RESERVE = """
local values = {}
local fits = 1
for i, key in ipairs(KEYS) do
  values[i] = tonumber(redis.call('GET', key) or '0')
  if values[i] + tonumber(ARGV[3 * i - 1]) > tonumber(ARGV[3 * i - 2]) then
    fits = 0
  end
end
if fits == 0 then
  table.insert(values, 1, 0)
  return values
end
for i, key in ipairs(KEYS) do
  values[i] = redis.call('INCRBY', key, ARGV[3 * i - 1])
  redis.call('EXPIRE', key, ARGV[3 * i])
end
table.insert(values, 1, 1)
return values
"""

_ADJUST = """
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[2 * i - 1])
  redis.call('EXPIRE', key, ARGV[2 * i])
end
return 1
"""


def _ttl(ends: int, now: int) -> int:
    """Seconds a counter lives: to its window's end, plus the grace for late settlements
    (a window in the past, as under a test's clock, still gets the grace)."""
    return max(ends - now, 0) + _GRACE_S


class RedisStore:
    """Counters in Redis, shared by every replica; `prefix` namespaces the keys."""

    name = "redis"
    blocking = True

    def __init__(self, url: str, *, prefix: str = "harbourgate:quota:",
                 timeout_s: float = 0.5) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                           socket_connect_timeout=timeout_s)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.prefix = prefix
        self._reserve = self._redis.register_script(_RESERVE)
        self._adjust = self._redis.register_script(_ADJUST)

    def reserve(self, checks: Sequence[Check]) -> tuple[bool, list[int]]:
        args: list[int] = []
        now = int(time.time())
        for c in checks:
            args += (c.limit, c.amount, _ttl(c.ends, now))
        try:
            out = self._reserve(keys=[self.prefix + c.key for c in checks], args=args)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc
        return bool(out[0]), [int(v) for v in out[1:]]

    def adjust(self, changes: Sequence[tuple[str, int, int]]) -> None:
        if not changes:
            return
        args: list[int] = []
        now = int(time.time())
        for _, delta, ends in changes:
            args += (delta, _ttl(ends, now))
        try:
            self._adjust(keys=[self.prefix + k for k, _, _ in changes], args=args)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    def read(self, keys: Sequence[str]) -> list[int]:
        try:
            values = self._redis.mget([self.prefix + k for k in keys])
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc
        return [int(v) if v is not None else 0 for v in values]

    def ping(self) -> None:
        try:
            self._redis.ping()
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    def close(self) -> None:
        self._redis.close()
