"""Prometheus metrics of the quota gate (they appear in the gateway's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REFUSALS = Counter("harbourgate_quota_refusals_total",
                   "Requests a quota refused (or sent to reroute).", ["quota"])
STORE_UP = Gauge("harbourgate_quota_store_up",
                 "1 while the shared quota store (Redis or the local file) answers, 0 while "
                 "the gate fails open or closed without it.", multiprocess_mode="livemin")
