"""Policy decision benchmark: Harbourgate vs cedarpy on the shipped packs (PRODUCT.md §6).

One command: ``.venv/bin/python bench/policy.py`` (``--contexts N``, ``--rounds R``,
``--seed S``). It compiles the four shipped packs plus the June 2026 directive, exports
the same allow/deny logic to Cedar (`harbourgate policy export --cedar`), builds a
realistic, seeded mix of request contexts (mostly research and assistant traffic, some
approved and unapproved high-risk and a few prohibited applications; verified US, HK and
CN end users and unattested ones; HK, GBA-city, other mainland and unknown data origins;
the four demo routes) and measures, in one process:

- Harbourgate `snapshot.decide(ctx)`, per call (perf_counter_ns around each call, so the
  figures include ~50 ns of timer overhead), caches warm as on a running gateway;
- Harbourgate `snapshot.decide_each(ctx, 4 candidates)` per candidate (the fallback path);
- cedarpy `is_authorized` per call with a pre-parsed `PolicySet` and `Entities` handle
  and the request dicts built beforehand (its fastest single-request use), on the full
  export and on the forbid-only export (the smallest equivalent set: one permit plus the
  forbids; allow rules only carry obligations, which Cedar has no notion of). The
  headline speed-up is against the forbid-only set, the one most favourable to Cedar;
- cedarpy `is_authorized_batch` over the whole mix, per decision (amortised);
- for scale, cedarpy with a single `permit` on the same requests: its per-call floor.

Every context is decided by both engines and they must agree (the run fails otherwise).
Results go to stdout as a table and to ``bench/results/policy.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import cedarpy

from harbourgate import policy
from harbourgate.directives import load_directive_file
from harbourgate.policy import (
    ApplicationFacts,
    Context,
    DataFacts,
    EndUserFacts,
    ModelFacts,
    ParticipantFacts,
    RequestFacts,
)
from harbourgate.policy.bundle import PACKS_DIR
from harbourgate.policy.cedar import CedarExporter, cedar_request, export_policies

PACKS = ("hk-sandbox", "eu-ai-act", "cross-border", "export-directives")
DIRECTIVE = PACKS_DIR / "export-directives" / "directives" / "us-doc-2026-06-12.yaml"
RESULTS = Path(__file__).parent / "results" / "policy.json"

MODELS = (
    ModelFacts("fable-5", "US", "US", ("us-frontier",), "frontier-chat", "openai"),
    ModelFacts("mythos-5", "US", "US", ("us-frontier",), "frontier-chat", "anthropic"),
    ModelFacts("glm-5.2", "CN", "CN", (), "frontier-chat", "openai"),
    ModelFacts("qwen-local", "CN", "HK", (), "frontier-chat", "stand-in"),
)
T0 = datetime(2026, 8, 15, tzinfo=UTC)
# (weight, use cases, data categories, transfer mechanisms, approved?)
APPLICATIONS = (
    (40, ("research.b2b",), (), (), False),
    (20, ("assistant.general",), ("personal",), ("pdpo_model_clauses",), False),
    (8, ("customer_service", "translation"), ("personal",), (), False),
    (8, ("finance.credit_scoring",), ("financial",), ("pipl_standard_contract",), True),
    (4, ("employment.screening",), ("personal",), (), False),
    (5, ("research.b2b",), ("important_data",), ("gba_standard_contract",), False),
    (5, ("content.generation",), (), ("pipl_exemption_contract",), False),
    (3, ("surveillance.public_space", "law_enforcement.victim_search"), ("biometric",), (),
     True),
    (2, ("social_scoring",), (), (), False),
    (5, ("biometric.verification",), ("biometric",), (), False),
)
USERS = (
    (30, EndUserFacts(True, ("US",), "HK", "high", "verifier", "u1")),
    (25, EndUserFacts(True, ("HK",), "HK", "high", "verifier", "u2")),
    (10, EndUserFacts(True, ("CN", "HK"), "CN", "substantial", "verifier", "u3")),
    (35, EndUserFacts()),
)
ORIGINS = ((45, "HK", None), (15, "CN", "CN-GD-SZ"), (10, "CN", "CN-BJ"), (30, None, None))
CLASSES = ({}, {"phone": 1}, {"hk_id": 1, "person_name": 2}, {"email": 1, "cn_id": 1})


def pick(rng: random.Random, table: tuple) -> tuple:  # type: ignore[type-arg]
    return rng.choices(table, weights=[row[0] for row in table])[0]


def make_contexts(n: int, seed: int) -> list[Context]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        _, uses, cats, mechanisms, approved = pick(rng, APPLICATIONS)
        approval = T0 + timedelta(days=rng.choice((-1, 30))) if approved else None
        _, origin, region = pick(rng, ORIGINS)
        app = ApplicationFacts(f"app-{i % 50}", uses, cats, "HK", mechanisms,
                               approval_expires_at=approval)
        status = "suspended" if rng.random() < 0.01 else "admitted"
        screening = "match" if rng.random() < 0.02 else "clear"
        out.append(Context(
            app, rng.choice(MODELS),
            RequestFacts(T0 + timedelta(seconds=rng.randrange(86_400)),
                         rng.choice(("openai", "anthropic"))),
            ParticipantFacts(f"p-{i % 20}", "HK", status, screening),
            pick(rng, USERS)[1],
            DataFacts(origin, region, MappingProxyType(rng.choice(CLASSES)))))
    return out


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1000

    return {"p50_us": q(0.50), "p90_us": q(0.90), "p99_us": q(0.99),
            "mean_us": statistics.fmean(ordered) / 1000}


def time_calls(fn, items: list, rounds: int) -> list[int]:  # type: ignore[type-arg,no-untyped-def]
    clock = time.perf_counter_ns
    samples = []
    for _ in range(rounds):
        for item in items:
            start = clock()
            fn(item)
            samples.append(clock() - start)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=20, help="Harbourgate passes")
    parser.add_argument("--cedar-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    snapshot = policy.compile(policy.load_bundle(PACKS), [load_directive_file(DIRECTIVE)])
    contexts = make_contexts(args.contexts, args.seed)
    cedar_text = export_policies(snapshot)
    policies = cedarpy.PolicySet.from_str(cedar_text)
    entities = cedarpy.Entities.from_json_str("[]")
    requests = [cedar_request(ctx) for ctx in contexts]

    # Agreement first: the benchmark compares equivalent engines or nothing.
    ours = [snapshot.decide(ctx).effect for ctx in contexts]
    theirs = ["allow" if r.allowed else "deny"
              for r in cedarpy.is_authorized_batch(requests, policies, entities)]
    disagree = sum(a != b for a, b in zip(ours, theirs, strict=True))
    if disagree:
        print(f"engines disagree on {disagree} of {len(contexts)} contexts", file=sys.stderr)
        return 1

    hg = percentiles(time_calls(snapshot.decide, contexts, args.rounds))
    each = [ctx for ctx in contexts]
    per_candidate_ns = [s // len(MODELS) for s in time_calls(
        lambda c: snapshot.decide_each(c, MODELS), each, max(1, args.rounds // 4))]
    hg_each = percentiles(per_candidate_ns)
    exporter = CedarExporter(snapshot)
    forbids = cedarpy.PolicySet.from_str("permit(principal, action, resource);\n" + "\n".join(
        exporter.policy(r) for r in snapshot.rules if r.kind == "deny"))
    floor_set = cedarpy.PolicySet.from_str("permit(principal, action, resource);")
    cedar_full = percentiles(time_calls(
        lambda r: cedarpy.is_authorized(r, policies, entities), requests, args.cedar_rounds))
    cedar = percentiles(time_calls(
        lambda r: cedarpy.is_authorized(r, forbids, entities), requests, args.cedar_rounds))
    floor = percentiles(time_calls(
        lambda r: cedarpy.is_authorized(r, floor_set, entities), requests, args.cedar_rounds))
    start = time.perf_counter()
    for _ in range(args.cedar_rounds):
        cedarpy.is_authorized_batch(requests, forbids, entities)
    batch_us = (time.perf_counter() - start) / (args.cedar_rounds * len(requests)) * 1e6

    allow = ours.count("allow")
    result = {
        "contexts": len(contexts), "allow": allow, "deny": len(ours) - allow,
        "rules": len(snapshot.rules), "tier_rules": len(snapshot.bundle.rules) -
        len(snapshot.rules) + len(snapshot.directives),
        "cedar_policies": cedar_text.count(";"), "policy": str(snapshot.version),
        "harbourgate_decide": hg, "harbourgate_decide_each_per_candidate": hg_each,
        "cedarpy_is_authorized_forbid_only": cedar, "cedarpy_is_authorized_full": cedar_full,
        "cedarpy_single_permit_floor": floor, "cedarpy_batch_per_decision_us": batch_us,
        "speedup_p50_vs_cedarpy": cedar["p50_us"] / hg["p50_us"],
        "speedup_p50_vs_cedarpy_batch": batch_us / hg["p50_us"],
        "python": platform.python_version(), "machine": platform.machine(),
        "cedarpy": _version("cedarpy"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"policy {result['policy']}: {result['rules']} decision rules, "
          f"{result['tier_rules']} tier rules; {len(contexts)} contexts "
          f"({allow} allow, {len(ours) - allow} deny); engines agree on all")
    print()
    print("| engine | p50 µs | p90 µs | p99 µs | mean µs |")
    print("|---|---:|---:|---:|---:|")
    for name, row in (("Harbourgate decide", hg),
                      ("Harbourgate decide_each, per candidate", hg_each),
                      ("cedarpy is_authorized, forbid-only export", cedar),
                      ("cedarpy is_authorized, full export", cedar_full),
                      ("cedarpy is_authorized, one permit (floor)", floor)):
        print(f"| {name} | {row['p50_us']:.2f} | {row['p90_us']:.2f} | {row['p99_us']:.2f} | "
              f"{row['mean_us']:.2f} |")
    print(f"| cedarpy is_authorized_batch, forbid-only, per decision | | | | {batch_us:.2f} |")
    print()
    print(f"p50 speed-up vs cedarpy (forbid-only, pre-parsed): "
          f"{result['speedup_p50_vs_cedarpy']:.0f}x "
          f"(vs its batch API: {result['speedup_p50_vs_cedarpy_batch']:.0f}x); "
          f"target p50 <= 5 µs and >= 10x. Written to {RESULTS}")
    return 0


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
