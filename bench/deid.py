"""`deid` rows per second: locally on one CPU vs on a local Ray with N CPUs (PRODUCT.md §6:
≥ 0.8·N× the local rate, identical output).

    .venv/bin/python bench/deid.py [--rows 200000] [--cpus 1 2] [--partition-rows 10000]

Generates a people dataset (names in Chinese and English, Hong Kong and mainland phone
numbers, free-text notes with phones, e-mails, HKIDs and names inside, districts, ages),
de-identifies it locally, then on a private local Ray (`harbourgate.cluster.connect`,
started once per CPU count and warmed up with a small job, not timed) for each `--cpus`,
and checks that every output is byte-identical to the local one. Rates are of the
de-identification itself (read, plan, partitions, write), the Ray start excluded.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import polars as pl

from harbourgate.cluster import connect
from harbourgate.privacy.deid import deid_dataset
from harbourgate.privacy.deid_ray import ray_partitions

KEY = b"bench-key-0123456789abcdef"


def people(rows: int, seed: int = 6) -> pl.DataFrame:
    rng = random.Random(seed)
    surnames, given = ["陳", "李", "黃", "張", "王"], ["大文", "美玲", "志明", "偉", "小芳"]
    english = ["Chan Tai Man", "John Smith", "Li Na", "Mary Wong", "Ho Ka Yan"]
    notes = ["call me on +852 4123 4567 after 6pm", "Mr. John Smith prefers e-mail",
             "身份證 A123456(3) 已核實", "mail mary.wong@example.com for the report",
             "nothing to add", "回電 13812345678 王先生", "paid by card, no issues"]
    return pl.DataFrame({
        "name": [rng.choice(surnames) + rng.choice(given) if rng.random() < .5
                 else rng.choice(english) for _ in range(rows)],
        "phone": [f"9{rng.randrange(10**7):07d}" for _ in range(rows)],
        "notes": [rng.choice(notes) for _ in range(rows)],
        "district": [rng.choice(["沙田", "Kowloon City", "深圳市", "Atlantis"])
                     for _ in range(rows)],
        "age": [str(rng.randrange(18, 90)) for _ in range(rows)],
    })


def timed(dataset: Path, out: Path, partition_rows: int, **kw: object) -> float:
    started = time.perf_counter()
    deid_dataset(dataset, out, KEY, batch_rows=partition_rows, **kw)  # type: ignore[arg-type]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cpus", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--partition-rows", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = root / "people.parquet"
        people(args.rows).write_parquet(dataset)
        warmup = root / "warmup.parquet"
        people(100 * max(args.cpus) * 2, seed=1).write_parquet(warmup)
        local_out = root / "local.parquet"
        seconds = timed(dataset, local_out, args.partition_rows)
        local_rate = args.rows / seconds
        rows = [("local, one process", seconds, local_rate, "-", "-")]
        for cpus in args.cpus:
            out = root / f"ray{cpus}.parquet"
            with connect(None, cpus=cpus):
                # Warm up: start the workers and import harbourgate in them (not timed).
                timed(warmup, root / "warm.parquet", 100, partitions=ray_partitions())
                seconds = timed(dataset, out, args.partition_rows, partitions=ray_partitions())
            rate = args.rows / seconds
            same = "yes" if out.read_bytes() == local_out.read_bytes() else "NO"
            rows.append((f"Ray, local, {cpus} CPU{'s' if cpus > 1 else ''}", seconds, rate,
                         f"{rate / local_rate:.2f}x (target {0.8 * cpus:.1f}x)", same))
    print(f"\ndeid of {args.rows:,} rows ({os.cpu_count()} CPUs on this machine, partitions "
          f"of {args.partition_rows:,} rows)")
    print(f"{'mode':<22} {'seconds':>8} {'rows/s':>9}  {'vs local':<26} identical")
    for mode, secs, rate, ratio, same in rows:
        print(f"{mode:<22} {secs:>8.1f} {rate:>9,.0f}  {ratio:<26} {same}")


if __name__ == "__main__":
    main()
