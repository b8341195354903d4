"""The runtime snapshot: what the hot path reads, rebuilt and swapped whole."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from harbourgate import config
from harbourgate.directives import Directive
from harbourgate.runtime import Runtime
from harbourgate.store import Store, registry
from harbourgate.store.directives import issue_directive
from harbourgate.store.state import VersionProbe

EXTRA = """\
bundle: local-extra
version: "{version}"
effective_from: 2025-01-01T00:00:00Z
rules:
  - id: local.no-embeddings-for-scoring
    effect: deny
    code: legal_restriction
    when:
      application.use_cases: [finance.credit_scoring]
      model.class: [embedding-small]
    citation: "Local sandbox notice 1/2026"
    message: no embeddings for credit scoring
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    bundle = tmp_path / "extra.yaml"
    bundle.write_text(EXTRA.format(version="1"))
    settings = config.load(None, environ={})
    settings = config.Settings(
        data_dir=tmp_path, routes=settings.routes, sandbox=settings.sandbox,
        policy=config.PolicySettings(bundles=(str(bundle),)))
    store = Store(settings.effective_database_url)
    store.migrate()
    registry.apply_seed(store.engine, settings.sandbox)
    with store.change() as conn:
        registry.issue_key(conn, "acme-research")
    return Runtime(settings, store)


def test_snapshot_indexes_callers_routes_and_policy(runtime: Runtime) -> None:
    snap = runtime.snapshot
    (caller,) = snap.callers.values()
    assert caller.application.id == "acme-research" and caller.participant.id == "acme"
    assert caller.app_facts.use_cases == ("research.b2b",)
    assert set(snap.facts) == set(snap.routes)
    assert snap.policy_header.startswith("1/2026.06+sha256:")  # declared versions, joined
    assert snap.policy.classify(caller.app_facts).tier == "minimal"


def test_candidates_follow_preference_within_the_class(runtime: Runtime) -> None:
    snap = runtime.snapshot
    app = snap.registry.applications["acme-research"]
    names = [r.name for r in snap.candidates(snap.routes["glm-5.2"], app)]
    assert names == ["glm-5.2", "fable-5", "mythos-5", "qwen-local"]
    assert [r.name for r in snap.candidates(snap.routes["embed-small"], app)] == ["embed-small"]
    assert len(snap.candidates(snap.routes["fable-5"], app, fallback=False)) == 1


def test_a_change_in_the_database_is_picked_up_by_polling(runtime: Runtime) -> None:
    before = runtime.snapshot
    with runtime.store.change() as conn:
        registry.issue_key(conn, "acme-research")
    runtime._poll()
    assert runtime.snapshot is not before and len(runtime.snapshot.callers) == 2


def test_the_probe_reads_each_commit_and_holds_no_read_transaction(runtime: Runtime) -> None:
    probe = VersionProbe(runtime.store.engine)
    try:
        version = probe.read()
        assert version == runtime.snapshot.version
        with runtime.store.change() as conn:
            registry.issue_key(conn, "acme-research")
        assert probe.read() == version + 1
        # A reader left inside a statement would pin the WAL: a truncating checkpoint from
        # another connection would then report itself busy (its first column).
        other = sqlite3.connect(runtime.store.engine.url.database)
        try:
            assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        finally:
            other.close()
    finally:
        probe.close()


def test_the_watcher_reloads_after_a_commit_elsewhere(runtime: Runtime) -> None:
    async def scenario() -> int:
        watcher = asyncio.create_task(runtime.watch())
        try:
            with runtime.store.change() as conn:  # as another process would
                registry.issue_key(conn, "acme-research")
            for _ in range(400):  # 50 ms polls: generous, and no bound on the time taken
                if len(runtime.snapshot.callers) == 2:
                    break
                await asyncio.sleep(0.05)
            return len(runtime.snapshot.callers)
        finally:
            watcher.cancel()

    assert asyncio.run(scenario()) == 2


def test_a_directive_is_compiled_into_the_policy(runtime: Runtime,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="harbourgate.runtime")
    with runtime.store.change() as conn:
        stored = issue_directive(conn, Directive.from_dict({
            "authority": "US Department of Commerce", "citation": "Order of 2026-06-12",
            "title": "US only", "models": ["fable-5"], "permit_only": {"nationality": ["US"]},
            "effective_from": "2026-06-12T00:00:00Z", "effective_until": None}))
    runtime.changed()
    assert f"directives={stored.id}" in runtime.snapshot.policy_header
    assert [d.id for d in runtime.snapshot.directives] == [stored.id]
    changed = [r.getMessage() for r in caplog.records if "policy in force" in r.getMessage()]
    assert len(changed) == 1 and f"directives={stored.id}" in changed[0]  # logged, with why


def _touch(path: Path, text: str) -> None:
    path.write_text(text)
    stamp = time.time() + 2  # a distinct mtime even on coarse filesystems
    os.utime(path, (stamp, stamp))


def test_a_changed_bundle_swaps_in_and_a_broken_one_is_refused(runtime: Runtime,
                                                               tmp_path: Path) -> None:
    bundle = tmp_path / "extra.yaml"
    header = runtime.snapshot.policy_header
    _touch(bundle, "bundle: local-extra\nversion: 2\nrules: [{id: x, effect: deny}]\n")
    runtime._poll()
    assert runtime.snapshot.policy_header == header  # the old policy keeps serving
    assert runtime.bundle_error is not None and "extra.yaml" in runtime.bundle_error

    _touch(bundle, EXTRA.format(version="2").replace("notice 1/2026", "notice 2/2026"))
    runtime._poll()
    assert runtime.bundle_error is None
    assert runtime.snapshot.policy_header != header
