"""Audit log benchmark (PRODUCT.md §6): group-commit appends/s, and verifying 1M entries.

    .venv/bin/python bench/audit.py [--appends 100000] [--writers 64] [--verify 1000000]

Appends: `--writers` asyncio tasks append realistic decision records (~350 bytes) through
one `AuditLog` on a fresh SQLite file, each waiting for its commit as the gateway does.
Verify: a log of `--verify` entries (written through the same log) is verified from
scratch with `verify_log` (every leaf rehashed and parsed, every checkpoint checked).
Bounded: a fixed number of entries, nothing on the network. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.audit.verify import verify_log
from harbourgate.store import Store

ORIGIN = "bench.harbourgate/audit"


def decision(i: int) -> dict[str, object]:
    return {"kind": "decision", "decision": "reroute" if i % 7 == 0 else "allow",
            "application": "acme-research", "participant": "acme", "model_requested": "fable-5",
            "model_served": "glm-5.2" if i % 7 == 0 else "fable-5",
            "rules": ["export-directives/us-only"], "citations": ["Order of 2026-06-12"],
            "obligations": {"log": "metadata"}, "data_profile": {"phone": 1, "hk_id": 0},
            "directives": ["dir_01"], "policy": "2026.06.1", "timing_ms": {"decide": 0.004}}


async def append_many(log: AuditLog, total: int, writers: int) -> float:
    per = total // writers

    async def worker(w: int) -> None:
        for i in range(per):
            await log.append(decision(w * per + i))

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(writers)))
    return time.perf_counter() - start


def open_log(path: Path, signer: Signer) -> tuple[AuditLog, Store]:
    store = Store(f"sqlite:///{path}")
    store.migrate()
    log = AuditLog(store.engine, signer)
    log.start()
    return log, store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--verify", type=int, default=1_000_000)
    args = parser.parse_args()
    signer = Signer(ORIGIN, Ed25519PrivateKey.generate())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        log, store = open_log(Path(tmp) / "appends.db", signer)
        seconds = asyncio.run(append_many(log, args.appends, args.writers))
        batches = log.batches
        log.close()
        store.close()
        rate = args.appends / seconds
        rows.append((f"append, SQLite group commit, {args.writers} concurrent writers",
                     f"{rate:,.0f} entries/s ({batches} commits for {args.appends:,})",
                     ">= 20,000/s"))
        if args.verify:
            path = Path(tmp) / "verify.db"
            log, store = open_log(path, signer)
            fill = asyncio.run(append_many(log, args.verify, args.writers))
            log.close()
            start = time.perf_counter()
            report = verify_log(store.engine, signer.verifier, origin=ORIGIN)
            seconds = time.perf_counter() - start
            store.close()
            assert report.ok and report.entries == args.verify, report.findings
            size_mb = os.path.getsize(path) / 1e6
            rows.append((f"verify {args.verify:,} entries ({size_mb:,.0f} MB SQLite, "
                         f"{report.checkpoints} checkpoints)", f"{seconds:.2f} s", "<= 5 s"))
            rows.append((f"append {args.verify:,} entries (filling the log above)",
                         f"{args.verify / fill:,.0f} entries/s", ""))
    print("| figure | measured | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
