"""`directive simulate --ray` on a real local Ray cluster: the same result as the local mode
on a generated log of many partitions (the 1,000,000-entry run is bench/simulate.py: too
slow to generate on a 2-core CI machine), and clear errors."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harbourgate import config
from harbourgate.admin.records import recorded_requests
from harbourgate.audit.keys import load_signer
from harbourgate.audit.log import AuditLog
from harbourgate.cli.directive import directive
from harbourgate.cluster import connect
from harbourgate.directives import Directive
from harbourgate.directives.simulate import simulate
from harbourgate.directives.simulate_ray import (
    count_entries,
    export_partitions,
    replay_partition,
    simulate_on_ray,
)
from harbourgate.runtime import Snapshot, build_snapshot, load_bundle
from harbourgate.store import Store, registry
from tests.admin.admin_support import JUNE, request_record

ENTRIES = 6000
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
"""
JUNE_YAML = """\
authority: US Department of Commerce
citation: "Order to Anthropic of 2026-06-12"
title: Frontier models for US nationals only
models: [fable-5, mythos-5]
permit_only: {nationality: [US]}
effective_from: 2026-06-12T00:00:00Z
"""


def traffic(count: int, seed: int = 16) -> Iterator[dict[str, Any]]:
    """Recorded requests of varied users, models and times, and some that cannot be
    replayed (an application since removed, no context, an admin action)."""
    rng = random.Random(seed)
    for i in range(count):
        kind = rng.random()
        time = f"2026-06-{1 + i % 20:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z"
        if kind < 0.01:
            yield {"kind": "admin", "action": "key.issue"}
        elif kind < 0.02:
            yield request_record(with_context=False, time=time)
        elif kind < 0.03:
            yield request_record(application="gone", time=time)
        else:
            app = "beta-us-only" if rng.random() < 0.2 else "acme-research"
            yield request_record(
                application=app, participant="beta" if app == "beta-us-only" else "acme",
                model=rng.choice(["fable-5", "mythos-5", "glm-5.2"]),
                nationality=rng.choice([None, ["HK"], ["US"], ["US", "HK"], ["CN"]]),
                sub=f"sha256:{rng.randrange(300):016x}", time=time,
                fallback="none" if rng.random() < 0.05 else "auto")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Store,
                                                                         Snapshot]]:
    """A deployment with `ENTRIES` entries appended through the audit log itself."""
    root = tmp_path_factory.mktemp("simulate-ray")
    path = root / "harbourgate.yaml"
    path.write_text(DEPLOYMENT.format(data=root / "data"), encoding="utf-8")
    settings = config.load(path, environ={})
    settings.data_dir.mkdir()
    store = Store(settings.effective_database_url)
    store.migrate()
    registry.apply_seed(store.engine, settings.sandbox,
                        route_names=[r.name for r in settings.routes], source=settings.source)
    log = AuditLog(store.engine, load_signer(settings))
    log.start()

    async def append_all() -> None:
        await asyncio.gather(*(log.append(r) for r in traffic(ENTRIES)))

    try:
        asyncio.run(append_all())
    finally:
        log.close()
    yield path, store, build_snapshot(settings, store, load_bundle(settings))
    store.close()


def june() -> Directive:
    return Directive.from_dict({**JUNE, "id": "us-doc"})


def test_partitions_replayed_apart_merge_into_the_local_result(
        recorded: tuple[Path, Store, Snapshot]) -> None:
    _, store, snapshot = recorded
    local = simulate(recorded_requests(store.engine), snapshot, june())
    parts = list(export_partitions(store.engine, rows=700))
    assert [len(p) for p in parts] == [700] * (ENTRIES // 700) + [ENTRIES % 700]
    merged = replay_partition(parts[-1], snapshot, june())
    for part in reversed(parts[:-1]):  # in another order than the log's
        merged.merge(replay_partition(part, snapshot, june()))
    assert merged.to_dict() == local.to_dict()
    totals = local.to_dict()["totals"]
    admin = sum(1 for r in traffic(ENTRIES) if r["kind"] != "request")
    assert count_entries(store.engine) == ENTRIES
    assert totals["records"] == ENTRIES - admin  # the request records, all of them
    assert totals["affected"] > 1000 and totals["no_permitted_model"] > 100
    assert set(local.to_dict()["skipped"]) == {"no_context", "unknown_application"}


@pytest.mark.ray
def test_the_cli_on_a_joined_cluster_prints_the_local_result(
        ray_address: str, recorded: tuple[Path, Store, Snapshot], tmp_path: Path) -> None:
    path, _, _ = recorded
    june_file = tmp_path / "june.yaml"
    june_file.write_text(JUNE_YAML, encoding="utf-8")
    args = ["simulate", str(june_file), "--since", "2026-06-01", "--config", str(path),
            "--json"]
    local = CliRunner().invoke(directive, args)
    assert local.exit_code == 0, local.output
    on_ray = CliRunner().invoke(directive, [*args, "--ray", ray_address])
    assert on_ray.exit_code == 0, on_ray.output
    assert json.loads(on_ray.stdout) == json.loads(local.stdout)


@pytest.mark.ray
def test_simulate_on_ray_in_many_partitions(
        ray_address: str, recorded: tuple[Path, Store, Snapshot]) -> None:
    _, store, snapshot = recorded
    local = simulate(recorded_requests(store.engine), snapshot, june()).to_dict()
    seen: list[int] = []
    with connect(ray_address):
        on_ray = simulate_on_ray(store.engine, snapshot, june(), rows=500,
                                 progress=seen.append).to_dict()
    assert on_ray == local
    assert seen[-1] == ENTRIES and seen == sorted(seen) and len(seen) == ENTRIES // 500


def test_an_address_that_does_not_answer(recorded: tuple[Path, Store, Snapshot],
                                         tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="pip install -e '.[test]' brings ray[data]")
    path, _, _ = recorded
    june_file = tmp_path / "june.yaml"
    june_file.write_text(JUNE_YAML, encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(directive, [
        "simulate", str(june_file), "--since", "2026-06-01", "--config", str(path),
        "--ray", f"127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert f"Error: no Ray cluster answers at 127.0.0.1:{port} (Connection refused)" in \
        result.output


class DiesOnceOnAWorker:
    """The deployment, except that the first worker process to read its policy dies (a
    marker file says it has happened); the driver reads it as usual."""

    def __init__(self, inner: Snapshot, marker: Path) -> None:
        self.inner, self.marker, self.driver = inner, marker, os.getpid()
        self.routes, self.facts, self.registry = inner.routes, inner.facts, inner.registry
        self.candidates = inner.candidates

    @property
    def policy(self) -> Any:
        if os.getpid() != self.driver:
            try:
                self.marker.touch(exist_ok=False)
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return self.inner.policy


@pytest.mark.ray
def test_a_worker_that_dies_mid_job_is_retried_and_the_result_is_complete(
        ray_address: str, recorded: tuple[Path, Store, Snapshot], tmp_path: Path) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    _, store, snapshot = recorded
    local = simulate(recorded_requests(store.engine), snapshot, june()).to_dict()
    marker = tmp_path / "died"
    with connect(ray_address):
        on_ray = simulate_on_ray(store.engine, DiesOnceOnAWorker(snapshot, marker), june(),
                                 rows=1500).to_dict()
    assert marker.exists()  # a worker did die
    assert on_ray == local
