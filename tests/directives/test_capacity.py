"""`directive simulate` weighs the traffic a directive moves against the receiving routes'
declared capacity (the local GPU pool's requests and tokens per second)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from harbourgate import config
from harbourgate.directives import Directive
from harbourgate.directives.capacity import Load, tokens_of
from harbourgate.directives.simulate import render, simulate
from harbourgate.runtime import Snapshot, build_snapshot, load_bundle
from harbourgate.store import Store, registry
from tests.admin.admin_support import JUNE, request_record

CONFIG = """
data_dir: {data}
routes:
  - {{name: fable-5, provider: stand-in, origin: US, hosting: US, export_tags: [us-frontier]}}
  - name: qwen-local
    provider: openai
    endpoints: [http://gpu-1.cluster.local:8000/v1, http://gpu-2.cluster.local:8000/v1]
    capacity: {{requests_per_second: {rps}, tokens_per_second: 10}}
    origin: CN
    hosting: HK
  - {{name: embed-small, provider: stand-in, origin: HK, hosting: HK, class: embedding-small}}
sandbox:
  participants: [{{id: acme, name: Acme, jurisdiction: HK}}]
  applications:
    - {{id: acme-research, participant: acme, name: Research, use_cases: [research.b2b],
       data_origin: HK, model_preference: [fable-5, qwen-local]}}
"""
USAGE = {"input_tokens": 100, "output_tokens": 50}


def deployment(tmp_path: Path, rps: float) -> Snapshot:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(CONFIG.format(data=tmp_path, rps=rps), encoding="utf-8")
    conf = config.load(path, environ={})
    store = Store(f"sqlite:///{tmp_path / 'harbourgate.db'}")
    store.migrate()
    registry.apply_seed(store.engine, conf.sandbox, route_names=[r.name for r in conf.routes],
                        source=conf.source)
    try:
        return build_snapshot(conf, store, load_bundle(conf))
    finally:
        store.close()


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshot]:
    yield deployment(tmp_path_factory.mktemp("tight"), 0.04)


def rec(at: str, usage: dict[str, int] | None = None, **kw: Any) -> dict[str, Any]:
    record = request_record(time=f"2026-06-01T09:{at}Z", **kw)
    if usage is not None:
        record["usage"] = usage
    return record


RECORDS = [
    rec("00:00", USAGE, nationality=["HK"]),  # moved to the pool, minute 0
    rec("00:10", USAGE, nationality=["HK"]),
    rec("00:20", USAGE),                      # unverified: moved too
    rec("01:00", nationality=["HK"]),         # moved, minute 1, no usage recorded
    rec("02:00", nationality=["US"]),         # stays on fable-5
    rec("03:00", {"input_tokens": 30, "output_tokens": 0}, model="qwen-local",
        served="qwen-local"),                 # the pool's own traffic today
    rec("04:30", nationality=["HK"]),         # moved, minute 4
]


def june() -> Directive:
    return Directive.from_dict({**JUNE, "id": "us-doc"})


def test_the_pool_receiving_moved_traffic_is_weighed_against_its_capacity(
        tight: Snapshot) -> None:
    result = simulate(RECORDS, tight, june()).to_dict()
    assert result["totals"]["rerouted"] == 5
    [row] = result["capacity"]
    assert row["route"] == "qwen-local" and row["pool_servers"] == 2
    assert (row["moved_in_requests"], row["window_s"], row["usage_recorded"]) == (5, 300, 4)
    assert row["requests_per_second"] == {
        "now_average": round(1 / 300, 4), "now_peak_minute": round(1 / 60, 4),
        "then_average": round(6 / 300, 4), "then_peak_minute": 0.05,  # 3 in minute 0
        "capacity": 0.04, "exceeds": True}
    assert row["tokens_per_second"] == {
        "now_average": 0.1, "now_peak_minute": 0.5,
        "then_average": round(480 / 300, 4), "then_peak_minute": 7.5,
        "capacity": 10.0, "exceeds": False}
    assert row["moved_in_tokens"] == 450
    assert row["verdict"] == "exceeds capacity"


def test_within_capacity(tmp_path: Path) -> None:
    roomy = deployment(tmp_path, 40)
    [row] = simulate(RECORDS, roomy, june()).to_dict()["capacity"]
    assert row["requests_per_second"]["exceeds"] is False
    assert row["verdict"] == "within capacity"


def test_no_capacity_declared_and_no_usage(tmp_path: Path) -> None:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(CONFIG.format(data=tmp_path, rps=1).replace(
        "capacity: {requests_per_second: 1, tokens_per_second: 10}", ""), encoding="utf-8")
    conf = config.load(path, environ={})
    store = Store(f"sqlite:///{tmp_path / 'harbourgate.db'}")
    store.migrate()
    registry.apply_seed(store.engine, conf.sandbox, route_names=[r.name for r in conf.routes],
                        source=conf.source)
    snapshot = build_snapshot(conf, store, load_bundle(conf))
    store.close()
    records = [rec("00:00", nationality=["HK"]), rec("00:30", nationality=["HK"])]
    [row] = simulate(records, snapshot, june()).to_dict()["capacity"]
    assert row["verdict"] == "no capacity declared"
    assert row["tokens_per_second"] is None and row["usage_recorded"] == 0
    assert row["requests_per_second"]["capacity"] is None
    assert row["requests_per_second"]["exceeds"] is None
    assert row["window_s"] == 60


def test_nothing_moves_nothing_reported(tight: Snapshot) -> None:
    result = simulate([rec("00:00", nationality=["US"])], tight, june()).to_dict()
    assert result["capacity"] == []
    assert simulate([], tight, june()).to_dict()["capacity"] == []


def test_render_shows_the_verdict(tight: Snapshot) -> None:
    console = Console(record=True, width=200)
    console.print(render(simulate(RECORDS, tight, june()).to_dict()))
    text = console.export_text()
    assert "Load on the routes that would receive traffic" in text
    assert "qwen-local (pool of 2)" in text
    assert "0.0167 → 0.05" in text and "exceeds capacity" in text and "7.5" in text


def test_cli_json_reports_capacity(tmp_path: Path) -> None:
    """`harbourgate directive simulate --json` on a deployment's own data."""
    from harbourgate.audit.log import AuditLog
    from harbourgate.cli import main

    path = tmp_path / "harbourgate.yaml"
    path.write_text(CONFIG.format(data=tmp_path, rps=0.04), encoding="utf-8")
    conf = config.load(path, environ={})
    store = Store(conf.effective_database_url)
    store.migrate()
    registry.apply_seed(store.engine, conf.sandbox, route_names=[r.name for r in conf.routes],
                        source=conf.source)
    audit = AuditLog.open(conf, store)
    audit.start()
    for record in RECORDS:
        audit.append_sync(record)
    audit.close()
    store.close()
    directive = tmp_path / "june.yaml"
    directive.write_text(yaml.safe_dump({**JUNE, "models": ["fable-5"]}))
    result = CliRunner().invoke(main, ["directive", "simulate", str(directive), "--since",
                                       "2026-01-01", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    import json

    [row] = json.loads(result.output)["capacity"]
    assert (row["route"], row["verdict"], row["moved_in_requests"]) == (
        "qwen-local", "exceeds capacity", 5)


@pytest.mark.parametrize(("usage", "tokens"), [
    ({"input_tokens": 3, "output_tokens": 4, "cache_read_tokens": 9}, 7),
    ({"input_tokens": 3}, 3),
    ({"input_tokens": True, "output_tokens": -1}, None),
    ({}, None), (None, None), ("12", None),
])
def test_tokens_of_recorded_usage(usage: Any, tokens: int | None) -> None:
    assert tokens_of(usage) == tokens


_event = st.tuples(st.sampled_from([None, "a", "b"]), st.sampled_from([None, "a", "b"]),
                   st.integers(0, 600), st.one_of(st.none(), st.integers(0, 1000)))


@settings(max_examples=200, deadline=None)
@given(st.lists(_event, max_size=40), st.integers(0, 40))
def test_split_replays_merge_to_the_whole(events: list[tuple[Any, ...]], cut: int) -> None:
    """A replay split into parts (as on Ray) and merged reports exactly what one pass does;
    what a route carries then is what it carried now, less what left, plus what came."""
    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)

    def feed(load: Load, part: list[tuple[Any, ...]]) -> Load:
        for now, then, s, tokens in part:
            usage = None if tokens is None else {"input_tokens": tokens}
            load.observe(now, then, t0 + timedelta(seconds=s), usage)
        return load

    whole = feed(Load(), events)
    merged = feed(Load(), events[:cut])
    merged.merge(feed(Load(), events[cut:]))
    assert merged.to_dict() == whole.to_dict()
    for name, load in whole.routes.items():
        came = sum(1 for now, then, _, _ in events if then == name and now != name)
        left = sum(1 for now, then, _, _ in events if now == name and then != name)
        assert load.moved_in == came
        assert sum(load.requests_then.values()) == sum(load.requests_now.values()) - left + came
