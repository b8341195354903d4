"""`directive simulate` over a large recorded log: locally vs on Ray (PRODUCT.md §4.3).

    .venv/bin/python bench/simulate.py [--entries 1000000] [--cpus 1 2] [--keep DIR]

Generates a deployment (SQLite, the demo routes, three applications) and a log of
`--entries` recorded chat requests of varied end users, models and times (written through
the audit log itself, group commit, so the log verifies), then replays them under the June
directive (fable-5 and mythos-5 for US nationals only): once locally, then on a local Ray
with each `--cpus`, and checks that every result equals the local one. `--keep DIR` keeps
(and reuses) the generated deployment, since generating 1,000,000 entries takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harbourgate import config
from harbourgate.admin.records import recorded_requests
from harbourgate.audit.keys import load_signer
from harbourgate.audit.log import AuditLog
from harbourgate.cluster import connect
from harbourgate.directives import Directive
from harbourgate.directives.simulate import simulate
from harbourgate.runtime import build_snapshot, load_bundle
from harbourgate.store import Store, registry

DEPLOYMENT = """
data_dir: {data}
sandbox:
  participants:
    - {{id: acme, name: Acme, jurisdiction: HK}}
    - {{id: beta, name: Beta, jurisdiction: HK}}
  applications:
    - {{id: acme-research, participant: acme, name: Research, use_cases: [research.b2b],
       data_origin: HK, model_preference: [fable-5, mythos-5, glm-5.2, qwen-local]}}
    - {{id: beta-us-only, participant: beta, name: US only, use_cases: [research.b2b],
       data_origin: HK, model_preference: [fable-5, mythos-5]}}
    - {{id: acme-scoring, participant: acme, name: Scoring, use_cases: [social_scoring],
       data_origin: HK, model_preference: [fable-5, glm-5.2]}}
"""
JUNE = {
    "id": "us-doc", "authority": "US Department of Commerce",
    "citation": "Order to Anthropic of 2026-06-12",
    "title": "Frontier models for US nationals only", "models": ["fable-5", "mythos-5"],
    "permit_only": {"nationality": ["US"]}, "effective_from": "2026-06-12T00:00:00Z",
    "effective_until": None,
}
FACTS = {
    "fable-5": {"origin": "US", "hosting": "US", "export_tags": ["us-frontier"],
                "class": "frontier-chat", "provider": "stand-in"},
    "mythos-5": {"origin": "US", "hosting": "US", "export_tags": ["us-frontier"],
                 "class": "frontier-chat", "provider": "stand-in"},
    "glm-5.2": {"origin": "CN", "hosting": "CN", "export_tags": [], "class": "frontier-chat",
                "provider": "stand-in"},
}
APPLICATIONS = [("acme-research", "acme", ["research.b2b"]),
                ("beta-us-only", "beta", ["research.b2b"]),
                ("acme-scoring", "acme", ["social_scoring"])]
NATIONALITIES = [None, ["HK"], ["US"], ["US", "HK"], ["CN"], ["GB"]]


def request(i: int, rng: random.Random) -> dict[str, Any]:
    """One recorded chat request, as the gateway writes it."""
    app, participant, use_cases = APPLICATIONS[rng.randrange(10) % 3 if rng.random() < .3
                                               else 0]
    model = rng.choice(list(FACTS))
    nationality = rng.choice(NATIONALITIES)
    verified = nationality is not None
    day, second = 1 + i % 11, i % 86_400
    ctx = {
        "application": {"id": app, "use_cases": use_cases, "data_categories": [],
                        "data_origin": "HK", "transfer_mechanisms": [], "status": "active",
                        "approval_expires_at": None},
        "participant": {"id": participant, "jurisdiction": "HK", "status": "admitted",
                        "screening": "clear"},
        "end_user": {"verified": verified, "nationality": nationality, "residence": None,
                     "verification_level": "document" if verified else None,
                     "issuer": "https://verifier.example" if verified else None,
                     "sub": f"sha256:{rng.randrange(5000):016x}" if verified else None},
        "model": {"name": model, **FACTS[model]},
        "data": {"origin": None, "region": None, "classes": {}},
        "request": {"time": f"2026-06-{day:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:"
                            f"{second % 60:02d}Z", "api": "openai", "endpoint": "chat",
                    "fallback": "none" if rng.random() < .05 else "auto"},
    }
    return {"kind": "request", "api": "openai", "endpoint": "chat", "participant": participant,
            "application": app, "key": "key_bench", "model_requested": model,
            "model_served": model, "decision": "allow", "status": 200, "code": None,
            "rule": None, "citation": None, "reasons": [], "tier": "minimal",
            "obligations": {}, "policy": "bench", "directives": [], "data_profile": {},
            "pseudonymised": {}, "failover": [], "stream": False, "timing_ms": {},
            "context": ctx}


def deployment(root: Path) -> tuple[Path, config.Settings]:
    path = root / "harbourgate.yaml"
    if not path.exists():
        path.write_text(DEPLOYMENT.format(data=root / "data"), encoding="utf-8")
    settings = config.load(path, environ={})
    settings.data_dir.mkdir(exist_ok=True)
    return path, settings


def fill(settings: config.Settings, entries: int, seed: int = 16) -> int:
    """Append request records until the log holds `entries` of them; returns how many
    were appended now."""
    store = Store(settings.effective_database_url)
    store.migrate()
    registry.apply_seed(store.engine, settings.sandbox,
                        route_names=[r.name for r in settings.routes], source=settings.source)
    log = AuditLog(store.engine, load_signer(settings))
    log.start()
    have = log.size
    missing = max(0, entries - have)
    rng = random.Random(seed + have)

    async def append_all() -> None:
        step = 20_000
        for start in range(have, have + missing, step):
            batch = [request(i, rng) for i in range(start, min(start + step, have + missing))]
            await asyncio.gather(*(log.append(r) for r in batch))
            print(f"\r  appended {start + len(batch) - have:,} / {missing:,}", end="",
                  file=sys.stderr, flush=True)

    try:
        asyncio.run(append_all())
    finally:
        log.close()
        store.close()
    if missing:
        print(file=sys.stderr)
    return missing


def main() -> None:
    from harbourgate.directives.simulate_ray import simulate_on_ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--cpus", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep and reuse the generated deployment in this directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        _, settings = deployment(root)
        started = time.perf_counter()
        added = fill(settings, args.entries)
        if added:
            print(f"generated {added:,} entries in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
        store = Store(settings.effective_database_url)
        snapshot = build_snapshot(settings, store, load_bundle(settings))
        proposed = Directive.from_dict(JUNE)
        rows = []
        started = time.perf_counter()
        local = simulate(recorded_requests(store.engine), snapshot, proposed).to_dict()
        seconds = time.perf_counter() - started
        records = local["totals"]["records"]
        rows.append(("local, one process", seconds, records / seconds, "-"))
        for cpus in args.cpus:
            with connect(None, cpus=cpus):
                started = time.perf_counter()
                result = simulate_on_ray(store.engine, snapshot, proposed).to_dict()
                seconds = time.perf_counter() - started
            rows.append((f"Ray, local, {cpus} CPU{'s' if cpus > 1 else ''}", seconds,
                         records / seconds, "yes" if result == local else "NO"))
        store.close()
    print(f"\ndirective simulate over {records:,} recorded requests "
          f"({local['totals']['affected']:,} affected)")
    print(f"{'mode':<24} {'seconds':>8} {'requests/s':>12}  same result")
    for mode, seconds, rate, same in rows:
        print(f"{mode:<24} {seconds:>8.1f} {rate:>12,.0f}  {same}")


if __name__ == "__main__":
    main()
