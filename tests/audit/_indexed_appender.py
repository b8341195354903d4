"""A child process for the index crash test: append request records (and usage follow-ups)
as fast as it can until it is killed.

    python _indexed_appender.py URL KEY_PEM
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from harbourgate.audit.keys import read_key
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.store import Store

ORIGIN = "test.harbourgate/audit"


async def main(url: str, key: str) -> None:
    store = Store(url)
    log = AuditLog(store.engine, Signer(ORIGIN, read_key(Path(key))))
    log.start()

    async def worker(k: int) -> None:
        i = 0
        while True:
            request_id = await log.append({"kind": "request", "participant": "acme",
                                           "application": f"app-{k}", "decision": "allow",
                                           "model_requested": "fable-5", "status": 200})
            await log.append({"kind": "usage", "request_id": request_id,
                              "usage": {"input_tokens": i, "output_tokens": 1}, "cost": 0.5})
            if i == 0 and k == 0:
                sys.stdout.write("appending\n")
                sys.stdout.flush()
            i += 1

    await asyncio.gather(*(worker(k) for k in range(8)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
