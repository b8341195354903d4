"""Decisions index benchmark (PRODUCT.md §6: the console's first page in ≤ 1 s at 100,000
decisions): recorded decisions, then the admin API's reads of them.

    .venv/bin/python bench/decisions.py [--decisions 100000] [--database-url URL]

Writes `--decisions` request records (of 50 participants, 200 applications, three effects,
with usage) through the real `AuditLog` (so the index rows are written as the gateway
writes them, in the leaves' transaction), then times each query through the admin API
in-process (FastAPI TestClient: routing, auth, validation, JSON included), best of 5 and
median of 5. Default: SQLite in a temporary directory. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from harbourgate.admin import AdminServices, create_admin_app
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.config import AdminToken
from harbourgate.store import Store, registry

TOKEN = "bench-" + "t" * 26
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODELS = ("fable-5", "glm-5.2", "qwen-local", "mythos-5")


def record(i: int) -> dict[str, object]:
    effect = ("allow", "allow", "allow", "reroute", "deny")[i % 5]
    requested = MODELS[i % 4]
    return {"kind": "request", "api": "openai", "endpoint": "/v1/chat/completions",
            "participant": f"p{i % 50:02d}", "application": f"app{i % 200:03d}",
            "key": f"key_{i % 400:03d}", "model_requested": requested,
            "model_served": None if effect == "deny" else
            ("glm-5.2" if effect == "reroute" else requested),
            "decision": effect, "status": 451 if effect == "deny" else 200,
            "code": "legal_restriction" if effect == "deny" else None,
            "rule": "export.us_only" if effect != "allow" else "hk.minimal.default",
            "citation": "Order of 2026-06-12", "policy": "2026.06.1", "directives": ["dir_1"],
            "obligations": {"log": "metadata"}, "data_profile": {"phone": i % 3},
            "usage": {"input_tokens": 400 + i % 97, "output_tokens": 120 + i % 31},
            "cost": 0.0021, "stream": False, "failover": [], "timing_ms": {"gateway": 0.4}}


async def write(log: AuditLog, total: int, writers: int = 64) -> float:
    per = total // writers

    async def worker(w: int) -> None:
        for i in range(per):
            await log.append(record(w * per + i))

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(writers)))
    return time.perf_counter() - start


def timed(client: TestClient, path: str) -> tuple[float, float, int]:
    samples = []
    size = 0
    for _ in range(5):
        start = time.perf_counter()
        response = client.get(path, headers=AUTH)
        samples.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
        size = len(response.content)
    return min(samples), statistics.median(samples), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--database-url", help="an empty database (default: SQLite in a "
                                               "temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.migrate()
        with store.change() as conn:
            for p in range(50):
                registry.admit_participant(conn, id=f"p{p:02d}", name=f"P{p}",
                                           jurisdiction="HK")
            for a in range(200):
                registry.register_application(conn, id=f"app{a:03d}",
                                              participant_id=f"p{a % 50:02d}", name=f"A{a}",
                                              use_cases=["research.b2b"])
        log = AuditLog(store.engine, Signer("bench.harbourgate/audit",
                                            Ed25519PrivateKey.generate()))
        log.start()
        seconds = asyncio.run(write(log, args.decisions))
        log.close()
        services = AdminServices(store=store, tokens=(AdminToken(TOKEN, "auditor"),),
                                 route_names=lambda: MODELS, on_change=lambda: None,
                                 audit=lambda _a, _d: None)
        client = TestClient(create_admin_app(services))
        engine = "SQLite" if store.is_sqlite else "PostgreSQL"
        print(f"{args.decisions:,} decisions written through the audit log in {seconds:.1f} s "
              f"({args.decisions / seconds:,.0f}/s, index rows in the same transactions); "
              f"{engine}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print()
        print("| query (first page, 100 records unless said) | best ms | median ms | bytes |")
        print("|---|---|---|---|")
        first = client.get("/admin/v1/decisions", headers=AUTH).json()
        queries = [
            ("/admin/v1/decisions", "newest 100"),
            (f"/admin/v1/decisions?cursor={first['next_cursor']}", "second page (cursor)"),
            ("/admin/v1/decisions?application=app007", "one application (0.5%)"),
            ("/admin/v1/decisions?decision=reroute&participant=p03", "reroute, one participant"),
            ("/admin/v1/decisions?model=mythos-5&rule=export.us_only", "model and rule"),
            ("/admin/v1/decisions?since=2000-01-01&until=2999-01-01&limit=1000",
             "1,000 in a window"),
            ("/admin/v1/decisions/stats?bucket=minute&by=decision", "stats: minute, by effect"),
            ("/admin/v1/decisions/stats?bucket=hour&by=model", "stats: hour, by model"),
            ("/admin/v1/usage?by=participant&period=day", "usage: by participant, per day"),
            ("/admin/v1/usage?by=route&period=month", "usage: by route, per month"),
        ]
        for path, name in queries:
            best, median, size = timed(client, path)
            print(f"| {name} | {best * 1000:.1f} | {median * 1000:.1f} | {size:,} |", flush=True)
        client.close()
        store.close()


if __name__ == "__main__":
    main()
