"""`deid` on Ray Data: the same pure `deidentify`, one Ray task per partition.

The driver reads the dataset and plans from its sample exactly as the local mode does,
then hands the partitions to Ray Data (`from_arrow`), which maps them on the cluster's
workers with the plan and the key and streams them back in input order. The driver
writes the output, so the bytes are those of the local mode by construction: same reader,
same partitions, same pure function, same writer.

Each mapped batch carries its `PartitionReport` as JSON in one extra column (in its first
row), so the counts travel with the rows they describe and no side channel is needed; the
driver strips it. A task whose worker dies is run again by Ray Data (its default: system
failures are retried, errors raised by the function are not); if a partition fails, the
command fails and writes nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import polars as pl

from harbourgate.cluster import import_ray
from harbourgate.privacy.deid import (
    ColumnPlan,
    ColumnReport,
    DeidError,
    PartitionReport,
    deidentify,
)
from harbourgate.privacy.scanner import Scanner

REPORT_COLUMN = "__harbourgate_report__"

Transform = Callable[[pl.DataFrame, Sequence[ColumnPlan], bytes],
                     tuple[pl.DataFrame, PartitionReport]]


def deid_partition(frame: pl.DataFrame, plan: Sequence[ColumnPlan],
                   key: bytes) -> tuple[pl.DataFrame, PartitionReport]:
    """What a worker runs on one partition: `deidentify` in de-identification mode."""
    return deidentify(frame, plan, key, Scanner(recall=True))


def _map_batch(batch: Any, plan: Sequence[ColumnPlan], key: bytes,
               transform: Transform) -> Any:
    """pyarrow batch in, de-identified pyarrow batch with its report column out."""
    import pyarrow as pa

    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    out, report = transform(frame, plan, key)
    table = out.to_arrow()
    reports = [json.dumps(_report_to_json(report))][:table.num_rows]
    reports += [None] * (table.num_rows - len(reports))
    return table.append_column(REPORT_COLUMN, pa.array(reports, pa.large_string()))


def ray_partitions(*, transform: Transform = deid_partition,
                   cpus_per_task: float = 1.0) -> Callable[..., Iterator[
                       tuple[pl.DataFrame, PartitionReport]]]:
    """A `deid_dataset(partitions=...)` runner on the Ray this process is connected to
    (`harbourgate.cluster.connect`)."""

    def run(parts: Sequence[pl.DataFrame], plan: Sequence[ColumnPlan],
            key: bytes) -> Iterator[tuple[pl.DataFrame, PartitionReport]]:
        ray = import_ray()
        nonempty = [p for p in parts if p.height]
        if not nonempty:  # nothing to send: the local function gives the same answer
            yield from (transform(p, plan, key) for p in parts)
            return
        dataset = ray.data.from_arrow([p.to_arrow() for p in nonempty])
        mapped = dataset.map_batches(
            _map_batch, batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
            fn_kwargs={"plan": list(plan), "key": key, "transform": transform},
            num_cpus=cpus_per_task)
        try:
            for table in mapped.iter_batches(batch_size=None, batch_format="pyarrow"):
                yield _unpack(table)
        except DeidError:
            raise
        except Exception as exc:
            raise DeidError(f"the Ray job failed ({_worker_error(exc)}); nothing was "
                            "written") from None

    return run


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)
_WRAPPERS = frozenset({"UserCodeException", "RayTaskError", "RaySystemError"})


def _worker_error(exc: BaseException) -> str:
    """What the partition function raised, as "ValueError: message": Ray Data wraps it, and
    only the remote traceback in the wrapper's text names it."""
    text = _ANSI.sub("", str(exc))
    raised = [m for m in _RAISED.finditer(text) if m.group(1) not in _WRAPPERS]
    if raised:
        return f"{raised[-1].group(1)}: {raised[-1].group(2).strip()}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _unpack(table: Any) -> tuple[pl.DataFrame, PartitionReport]:
    reports = [r for r in table.column(REPORT_COLUMN).to_pylist() if r is not None]
    frame = pl.from_arrow(table.drop_columns([REPORT_COLUMN]))
    assert isinstance(frame, pl.DataFrame)
    merged = PartitionReport()
    for raw in reports:
        merged.merge(_report_from_json(json.loads(raw)))
    if merged.rows != frame.height:
        raise DeidError(f"a partition came back with {frame.height} rows but reports "
                        f"{merged.rows}; nothing was written")
    return frame, merged


def _report_to_json(report: PartitionReport) -> dict[str, Any]:
    return {"rows": report.rows, "columns": {
        name: {"action": c.action, "kind": c.kind, "to": c.to, "changed": c.changed,
               "found": dict(c.found), "unmapped": c.unmapped, "reason": c.reason}
        for name, c in report.columns.items()}}


def _report_from_json(raw: dict[str, Any]) -> PartitionReport:
    return PartitionReport(rows=raw["rows"], columns={
        name: ColumnReport(c["action"], c["kind"], c["to"], c["changed"], Counter(c["found"]),
                           c["unmapped"], c["reason"])
        for name, c in raw["columns"].items()})
