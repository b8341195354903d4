"""A child process for the crash and replica tests: append, print each id once returned.

    python _appender.py URL KEY_PEM COUNT CONCURRENCY [BARRIER_FILE]

Prints `id <entry id>` after each `append` returns (flushed), `integrator <bool>` when done,
then waits for BARRIER_FILE to exist (if given) before closing the log.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from harbourgate.audit.keys import read_key
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.store import Store

ORIGIN = "test.harbourgate/audit"


async def main(url: str, key: str, count: int, concurrency: int, barrier: str | None) -> None:
    store = Store(url)
    log = AuditLog(store.engine, Signer(ORIGIN, read_key(Path(key))),
                   checkpoint_interval=0.05, poll_interval=0.05)
    log.start()
    per_worker = count // concurrency

    async def worker(k: int) -> None:
        for i in range(per_worker):
            entry_id = await log.append({"decision": "allow", "worker": k, "i": i})
            sys.stdout.write(f"id {entry_id}\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    await asyncio.sleep(0.2)  # let this process's writer try for the integrator lock
    sys.stdout.write(f"integrator {log.is_integrator}\n")
    sys.stdout.flush()
    if barrier:
        while not Path(barrier).exists():
            time.sleep(0.02)
    await log.aclose()
    sys.stdout.write("closed\n")
    sys.stdout.flush()


if __name__ == "__main__":
    url, key, count, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(url, key, count, concurrency, sys.argv[5] if len(sys.argv) > 5 else None))
