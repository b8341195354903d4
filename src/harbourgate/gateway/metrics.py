"""Prometheus metrics of the data plane (names are part of the operator contract).

With `--workers N` the serve command sets PROMETHEUS_MULTIPROC_DIR before the workers
start, and `/metrics` aggregates every worker's figures.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                    5, 10, 30, 60)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

REQUESTS = Counter("harbourgate_requests_total", "Data-plane requests by outcome.",
                   ["endpoint", "decision", "model", "code"])
LATENCY = Histogram("harbourgate_request_duration_seconds",
                    "Time from request to the response's first byte.", ["endpoint"],
                    buckets=_LATENCY_BUCKETS)
OVERHEAD = Histogram("harbourgate_overhead_seconds",
                     "Time spent in the gateway itself, excluding the upstream call.",
                     buckets=_OVERHEAD_BUCKETS)
UPSTREAM_ERRORS = Counter("harbourgate_upstream_errors_total", "Failed upstream calls.",
                          ["model", "code"])
AUDIT_QUEUE = Gauge("harbourgate_audit_queue_depth", "Audit entries waiting for commit.",
                    multiprocess_mode="livesum")
STATE_VERSION = Gauge("harbourgate_state_version",
                      "Version of the registry/directive state this process serves.",
                      multiprocess_mode="max")


def render() -> tuple[bytes, str]:
    """The exposition text (all workers' when running multi-process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
