"""Prometheus metrics of the pools' servers (names are part of the operator contract).

They live in prometheus_client's default registry, like the gateway's own
(`harbourgate.gateway.metrics`), so `/metrics` serves them with no further wiring; under
`--workers N` (PROMETHEUS_MULTIPROC_DIR set) gauges aggregate as their `multiprocess_mode`
says and counters and histograms add up across workers.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

IN_FLIGHT = Gauge("harbourgate_pool_endpoint_in_flight",
                  "Requests the gateway has outstanding on a pool server.",
                  ["model", "endpoint"], multiprocess_mode="livesum")
ERRORS = Counter("harbourgate_pool_endpoint_errors_total",
                 "Failures of a pool server, by reason (connect, timeout, http_5xx, "
                 "garbage, wrong_model, rate_limited, disconnected, auth, health).",
                 ["model", "endpoint", "reason"])
EJECTIONS = Counter("harbourgate_pool_endpoint_ejections_total",
                    "Times a pool server was taken out of rotation, by reason.",
                    ["model", "endpoint", "reason"])
LATENCY = Histogram("harbourgate_pool_endpoint_duration_seconds",
                    "Time a pool server took to answer (to the first event of a stream), "
                    "failures included: its _count is the requests sent to the server.",
                    ["model", "endpoint"], buckets=_LATENCY_BUCKETS)
UP = Gauge("harbourgate_pool_endpoint_up",
           "1 when a pool server is in rotation, 0 when ejected or failing its health check "
           "(the lowest of all workers).",
           ["model", "endpoint"], multiprocess_mode="livemin")
