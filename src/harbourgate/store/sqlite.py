"""SQLite specifics the engines share."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

WAL_WAIT_S = 30.0


def ensure_wal(dbapi_conn: Any, *, wait_s: float = WAL_WAIT_S) -> None:
    """Put the database in WAL mode (persistent, so this is a no-op once done).

    Switching needs a moment with no writer, and SQLite reports "locked" at once instead
    of waiting out its busy timeout; on a brand-new database another process may be
    creating the schema, so retry until `wait_s` has passed.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            mode = dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() in ("wal", "memory"):
                return
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
