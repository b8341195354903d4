"""`deid --ray` on a real local Ray cluster: the same bytes as the local mode, retries when a
worker dies, whole-or-absent output, clear errors when Ray is missing or does not answer."""

from __future__ import annotations

import json
import os
import random
import socket
import sys
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from harbourgate.cli.privacy import deid
from harbourgate.cluster import INSTALL_HINT, connect
from harbourgate.privacy.deid import ColumnPlan, DeidError, PartitionReport, deid_dataset
from harbourgate.privacy.deid_ray import deid_partition, ray_partitions

KEY = "r" * 32


def people(rows: int, seed: int = 7) -> pl.DataFrame:
    rng = random.Random(seed)
    names = ["陳大文", "Chan Tai Man", "John Smith", "王伟", None]
    notes = ["call +852 4123 4567 after 6", "mail a.b@example.com", "nothing", "Mr. Li Na",
             "身份證 A123456(3)", None]
    return pl.DataFrame({
        "name": [rng.choice(names) for _ in range(rows)],
        "電話": [f"9{rng.randrange(10**7):07d}" for _ in range(rows)],
        "notes": [rng.choice(notes) for _ in range(rows)],
        "district": [rng.choice(["沙田", "Kowloon City", "Atlantis"]) for _ in range(rows)],
        "qty": [str(rng.randrange(100)) for _ in range(rows)],
    })


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(deid, list(args), env={"HARBOURGATE_DEID_KEY": KEY})
    return result.exit_code, result.output


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.ray
def test_joining_a_cluster_gives_the_local_bytes(ray_address: str, tmp_path: Path) -> None:
    dataset = tmp_path / "people.csv"
    people(1500).write_csv(dataset)
    local, on_ray = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    code, output = run(str(dataset), "--out", str(local), "--json")
    assert code == 0, output
    code, ray_output = run(str(dataset), "--out", str(on_ray), "--ray", ray_address, "--json")
    assert code == 0, ray_output
    assert on_ray.read_bytes() == local.read_bytes()
    report, ray_report = (json.loads(text[text.index("{"):]) for text in (output, ray_output))
    assert ray_report == {**report, "output": str(on_ray)}
    assert "陳大文" not in on_ray.read_bytes().decode("utf-8", "replace")


@pytest.mark.ray
def test_a_local_ray_is_started_without_an_address(ray_auth: None, tmp_path: Path) -> None:
    dataset = tmp_path / "people.parquet"
    people(500).write_parquet(dataset)
    assert run(str(dataset), "--out", str(tmp_path / "local.csv"))[0] == 0
    code, output = run(str(dataset), "--out", str(tmp_path / "ray.csv"), "--ray", "--cpus", "1")
    assert code == 0, output
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.fixture(scope="module")
def connected(ray_address: str) -> Iterator[None]:
    """This process joined to the session's cluster, for the tests below (one join, not
    one per test; the two tests above join and start Ray themselves, through the CLI)."""
    import ray.cloudpickle

    # Ship this module's functions to the workers by value (they cannot import tests/).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with connect(ray_address):
        yield


@pytest.mark.ray
def test_many_partitions_on_the_cluster_give_the_local_bytes(connected: None,
                                                            tmp_path: Path) -> None:
    dataset = tmp_path / "people.parquet"
    people(2400, seed=3).write_parquet(dataset)
    key = KEY.encode()
    plan, report = deid_dataset(dataset, tmp_path / "local.parquet", key, batch_rows=300)
    ray_plan, ray_report = deid_dataset(dataset, tmp_path / "ray.parquet", key,
                                        batch_rows=300, partitions=ray_partitions())
    assert (tmp_path / "ray.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    assert ray_plan == plan and ray_report.to_dict() == report.to_dict()
    assert report.rows == 2400


def crash_once(frame: pl.DataFrame, plan: Sequence[ColumnPlan], key: bytes, *,
               marker: Path) -> tuple[pl.DataFrame, PartitionReport]:
    """Kill the worker process the first time any worker runs this (`marker` says)."""
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return deid_partition(frame, plan, key)
    os._exit(1)


def always_fails(frame: pl.DataFrame, plan: Sequence[ColumnPlan],
                 key: bytes) -> tuple[pl.DataFrame, PartitionReport]:
    raise ValueError("this partition cannot be de-identified")


@pytest.mark.ray
def test_a_worker_that_dies_is_retried_and_the_output_is_complete(
        connected: None, tmp_path: Path) -> None:
    dataset = tmp_path / "people.csv"
    people(1000).write_csv(dataset)
    key = KEY.encode()
    deid_dataset(dataset, tmp_path / "local.csv", key, batch_rows=200)
    marker = tmp_path / "crashed"
    _, report = deid_dataset(
        dataset, tmp_path / "ray.csv", key, batch_rows=200,
        partitions=ray_partitions(transform=partial(crash_once, marker=marker)))
    assert marker.exists()  # a worker did die
    assert report.rows == 1000
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.ray
def test_a_partition_that_fails_leaves_no_output(connected: None, tmp_path: Path) -> None:
    dataset = tmp_path / "people.csv"
    people(300).write_csv(dataset)
    with pytest.raises(DeidError) as failed:
        deid_dataset(dataset, tmp_path / "out.csv", KEY.encode(), batch_rows=100,
                     partitions=ray_partitions(transform=always_fails))
    assert str(failed.value).startswith("the Ray job failed (")
    assert "ValueError: this partition cannot be de-identified" in str(failed.value)
    assert str(failed.value).endswith("; nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.csv"]


def test_an_address_that_does_not_answer_is_an_error_in_seconds(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="pip install -e '.[test]' brings ray[data]")
    dataset = tmp_path / "people.csv"
    people(10).write_csv(dataset)
    port = closed_port()
    code, output = run(str(dataset), "--out", str(tmp_path / "o.csv"), "--ray",
                       f"127.0.0.1:{port}")
    assert code == 2
    assert (f"Error: no Ray cluster answers at 127.0.0.1:{port} (Connection refused); check "
            "the address (`ray status` on the head prints it) and that this machine may reach "
            "that port") in output
    code, output = run(str(dataset), "--out", str(tmp_path / "o.csv"), "--ray", "nowhere")
    assert code == 2
    assert ("Error: --ray 'nowhere': give the cluster's address as HOST:PORT (the head's GCS "
            "port, 6379 by default) or ray://HOST:PORT (Ray Client, 10001 by default)") in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.csv"]


def test_without_ray_the_message_names_the_extra(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = tmp_path / "people.csv"
    people(10).write_csv(dataset)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    code, output = run(str(dataset), "--out", str(tmp_path / "o.csv"), "--ray")
    assert code == 2
    assert f"Error: {INSTALL_HINT}" in output
    assert INSTALL_HINT == ("Ray is not installed: pip install 'harbourgate[ray]' (it brings "
                            "ray[data])")
