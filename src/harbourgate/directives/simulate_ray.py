"""`directive simulate --ray`: the recorded log exported in partitions, replayed on Ray.

The driver reads the log's leaves (the raw, signed-over bytes; nothing is decoded here) in
partitions of `PARTITION_ROWS` from the newest back to `since`, exactly the entries the
local mode reads, and puts each partition in Ray's object store. A task per partition
decodes its leaves, keeps the request records and replays them with a `Replayer`, the
local mode's own code (`harbourgate.enforce.plan` under the policy in force and under it
plus the proposed directive), and returns a partial `Simulation`; the partials merge
into the one the local mode computes, whatever order they finish in.

The deployment (routes, registry, compiled policy) travels once, as one object, to every
worker; the database does not: workers need no access to it. At most `IN_FLIGHT` per
CPU of the cluster partitions are exported ahead of the workers, so the driver's memory is
bounded by the partitions in flight, not by the size of the log. A task whose worker dies
is retried by Ray (`MAX_RETRIES`); a partition that still fails fails the command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from harbourgate.audit import record
from harbourgate.audit.storage import ENTRIES
from harbourgate.cluster import import_ray
from harbourgate.directives.model import Directive
from harbourgate.directives.simulate import AFFECTED_LIMIT, Deployment, Replayer, Simulation

PARTITION_ROWS = 50_000
IN_FLIGHT = 2
MAX_RETRIES = 3
REQUEST = "request"


def count_entries(engine: sa.Engine, *, since: datetime | None = None) -> int:
    """How many entries the log holds at or after `since` (a progress bar's total)."""
    query = sa.select(sa.func.count()).select_from(ENTRIES)
    if since is not None:
        query = query.where(ENTRIES.c.created_at >= record.timestamp(since))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def export_partitions(engine: sa.Engine, *, since: datetime | None = None,
                      rows: int = PARTITION_ROWS) -> Iterator[list[bytes]]:
    """The log's leaves recorded at or after `since`, newest first, `rows` at a time
    (the entries `admin.records.recorded_requests` reads, not yet decoded)."""
    floor = record.timestamp(since) if since is not None else None
    before: int | None = None
    while True:
        query = sa.select(ENTRIES.c.seq, ENTRIES.c.leaf).order_by(ENTRIES.c.seq.desc())
        query = query.limit(rows)
        if before is not None:
            query = query.where(ENTRIES.c.seq < before)
        if floor is not None:
            query = query.where(ENTRIES.c.created_at >= floor)
        with engine.connect() as conn:
            found = conn.execute(query).all()
        if found:
            yield [bytes(row.leaf) for row in found]
        if len(found) < rows:
            return
        before = found[-1].seq


def replay_partition(leaves: list[bytes], deployment: Deployment,
                     proposed: Directive) -> Simulation:
    """One partition's simulation (what a Ray task runs): the request records among
    `leaves`, replayed as the local mode replays them."""
    replayer = Replayer(deployment, proposed)
    result = replayer.new_result()
    for leaf in leaves:
        try:
            found = record.decode(leaf)
        except record.RecordError:
            continue  # `harbourgate audit verify` reports a malformed leaf
        if found.get("kind") == REQUEST:
            replayer.replay(found, result)
    result.totals["skipped"] = sum(result.skipped.values())
    return result


def simulate_on_ray(engine: sa.Engine, deployment: Deployment, proposed: Directive, *,
                    since: datetime | None = None, affected_limit: int = AFFECTED_LIMIT,
                    rows: int = PARTITION_ROWS,
                    progress: Callable[[int], None] | None = None) -> Simulation:
    """`simulate.simulate` over the log of `engine`, on the Ray this process is connected
    to (`harbourgate.cluster.connect`); the same result. `progress(entries)` after each
    partition comes back."""
    ray = import_ray()
    replayer = Replayer(deployment, proposed)  # refuses a directive already in force, here
    total = replayer.new_result(since=since, affected_limit=affected_limit)
    task = ray.remote(replay_partition).options(max_retries=MAX_RETRIES)
    shared = ray.put(deployment)
    window = max(1, IN_FLIGHT * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict[Any, int] = {}
    done = 0

    def collect(until: int) -> None:
        """Merge finished partitions until at most `until` are in flight."""
        nonlocal done
        while len(pending) > until:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                entries = pending.pop(ref)
                try:
                    total.merge(ray.get(ref))
                except ray.exceptions.RayError as exc:
                    for other in pending:
                        ray.cancel(other)
                    raise RayJobError(f"a partition of {entries:,} entries failed on Ray "
                                      f"({_first_line(exc)}); no result") from None
                done += entries
                if progress is not None:
                    progress(done)

    for leaves in export_partitions(engine, since=since, rows=rows):
        pending[task.remote(leaves, shared, proposed)] = len(leaves)
        collect(window - 1)
    collect(0)
    total.totals["skipped"] = sum(total.skipped.values())
    return total


class RayJobError(RuntimeError):
    """A partition failed on Ray after its retries: there is no (partial) result."""


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
