"""Prometheus metrics of the data plane (names are part of the operator contract).

Every label value is bounded: a model is one of the configured route names or ``other``,
an endpoint one of the data-plane paths or ``other``, an error code one of the codes the
gateway answers with or ``other``. Bounding happens here, in the metric objects, so no
caller (and no made-up model name sent with a valid key) can create new series.

Gauges are read when scraped (`track`), never only refreshed by the /metrics handler.
With `--workers N` the serve command gives the workers a private PROMETHEUS_MULTIPROC_DIR
(removed on exit); there each worker refreshes its gauges every second, `/metrics`
aggregates every worker's files, and the live gauges of workers that died are dropped
(`prometheus_client.multiprocess.mark_process_dead`). `_created` series are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import prometheus_client
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from harbourgate.observe import labels

prometheus_client.disable_created_metrics()

OTHER = labels.OTHER
# the policy vocabulary's endpoint names (what the gateway passes) and the paths themselves
ENDPOINTS = frozenset({
    "chat", "embeddings", "models", "count_tokens", "input_tokens", "responses", "messages",
    "/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/embeddings",
    "/v1/models", "/v1/responses", "/v1/responses/input_tokens",
})
DECISIONS = frozenset({"allow", "reroute", "deny"})
CODES = frozenset({
    "ok", "invalid_request", "invalid_api_key", "invalid_attestation", "tier_prohibited",
    "approval_required", "model_not_found", "request_too_large", "legal_restriction",
    "participant_suspended", "quota_exceeded", "upstream_rate_limited", "headers_too_large",
    "upstream_error", "upstream_timeout", "upstream_overloaded", "audit_unavailable",
    "internal_error", "not_found", "method_not_allowed", "unsupported_media_type",
})
DIRECTIONS = frozenset({"input", "output"})

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                    5, 10, 30, 60)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
_COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   1)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


def configure(route_names: Iterable[str]) -> None:
    """Declare the models that get their own label value (the configured routes)."""
    labels.configure(route_names)
    for metric in _BOUNDED:  # a model name's bounded value may have changed
        metric._same.clear()


def _one_of(allowed: frozenset[str]) -> Callable[[str | None], str]:
    def bound(value: str | None) -> str:
        return value if value in allowed else OTHER
    return bound


model_label = labels.model
code_label = _one_of(CODES)
decision_label = _one_of(DECISIONS)
_BOUNDS: dict[str, Callable[[Any], str]] = {
    "endpoint": _one_of(ENDPOINTS),
    "decision": decision_label,
    "model": model_label,
    "code": code_label,
    "direction": _one_of(DIRECTIONS),
}


class _Bounded:
    """A labelled metric whose `labels(...)` maps every value into its bounded set; label
    values a caller leaves out are ``none`` (so a metric can gain a label without breaking
    callers)."""

    def __init__(self, metric: Any, labelnames: tuple[str, ...]) -> None:
        self._metric = metric
        self._names = labelnames
        self._bounds = tuple(_BOUNDS[n] for n in labelnames)
        # children by bounded label values: as bounded as the series (every request asks)
        self._children: dict[tuple[str, ...], Any] = {}
        # the children of label values that bound to themselves (nearly every request's):
        # found without mapping them; as bounded as the series, emptied when bounds change
        self._same: dict[tuple[Any, ...], Any] = {}

    def labels(self, *values: Any) -> Any:
        child = self._same.get(values)
        if child is not None:
            return child
        missing = len(self._names) - len(values)
        if missing:
            if missing < 0:
                raise ValueError(f"{len(values)} label values for {self._names}")
            values = (*values, *(None,) * missing)
        key = tuple(map(_apply, self._bounds, values))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(*key)
        if key == values:
            self._same[key] = child
        return child


def _apply(bound: Callable[[Any], str], value: Any) -> str:
    return bound(value)


_BOUNDED: list[_Bounded] = []


def _counter(name: str, doc: str, labels: tuple[str, ...]) -> _Bounded:
    _BOUNDED.append(_Bounded(Counter(name, doc, labels), labels))
    return _BOUNDED[-1]


def _histogram(name: str, doc: str, labels: tuple[str, ...],
               buckets: tuple[float, ...]) -> _Bounded:
    _BOUNDED.append(_Bounded(Histogram(name, doc, labels, buckets=buckets), labels))
    return _BOUNDED[-1]


REQUESTS = _counter("harbourgate_requests_total", "Data-plane requests by outcome.",
                    ("endpoint", "decision", "model", "code"))
LATENCY = _histogram("harbourgate_request_duration_seconds",
                     "Time from request to the response's first byte, per model served.",
                     ("endpoint", "model"), _LATENCY_BUCKETS)
OVERHEAD = Histogram("harbourgate_overhead_seconds",
                     "Time spent in the gateway itself, excluding the upstream call.",
                     buckets=_OVERHEAD_BUCKETS)
AUDIT_COMMIT_WAIT = Histogram("harbourgate_audit_commit_wait_seconds",
                              "Time a request waited for its audit record to commit.",
                              buckets=_COMMIT_BUCKETS)
UPSTREAM_ERRORS = _counter("harbourgate_upstream_errors_total", "Failed upstream calls.",
                           ("model", "code"))
TOKENS = _counter("harbourgate_tokens_total", "Tokens sent to and received from upstreams.",
                  ("model", "direction"))
COST = _counter("harbourgate_cost_total",
                "Cost of the tokens at the route's configured price (currency of the price).",
                ("model",))
TIME_TO_FIRST_TOKEN = _histogram("harbourgate_time_to_first_token_seconds",
                                 "Time from request to the first streamed event.",
                                 ("model",), _TTFT_BUCKETS)
TELEMETRY_DROPPED = Counter("harbourgate_telemetry_dropped_spans_total",
                            "Spans not exported: the bounded queue was full or the OTLP "
                            "endpoint failed.", ["reason"])
# The two gauges are written to files in multi-process mode; in a single process the
# `_LiveGauges` collector reads them from their sources at each scrape instead.
AUDIT_QUEUE = Gauge("harbourgate_audit_queue_depth", "Audit entries waiting for commit.",
                    multiprocess_mode="livesum", registry=None)
STATE_VERSION = Gauge("harbourgate_state_version",
                      "Version of the registry/directive state this process serves.",
                      multiprocess_mode="livemax", registry=None)


# -- what the gateway records ----------------------------------------------------------------

def observe_request(*, endpoint: str, decision: str, model: str | None, code: str | None,
                    seconds: float, upstream_seconds: float = 0.0) -> None:
    """One answered request: its outcome, latency (per model) and the gateway's overhead."""
    REQUESTS.labels(endpoint, decision, model, code or "ok").inc()
    LATENCY.labels(endpoint, model).observe(seconds)
    OVERHEAD.observe(max(seconds - upstream_seconds, 0.0))


def observe_usage(model: str | None, input_tokens: int, output_tokens: int,
                  cost: float = 0.0) -> None:
    """The tokens an upstream reported for one answer, and their cost."""
    if input_tokens:
        TOKENS.labels(model, "input").inc(input_tokens)
    if output_tokens:
        TOKENS.labels(model, "output").inc(output_tokens)
    if cost:
        COST.labels(model).inc(cost)


def observe_first_token(model: str | None, seconds: float) -> None:
    TIME_TO_FIRST_TOKEN.labels(model).observe(seconds)


def observe_upstream_error(model: str | None, code: str) -> None:
    UPSTREAM_ERRORS.labels(model, code).inc()


# -- gauges, current at any scrape -----------------------------------------------------------

Read = Callable[[], float]


class _LiveGauges(Collector):
    """Single process: each gauge is read from its source when scraped (the most recently
    started tracker's), or is its last set value when nothing tracks it."""

    def __init__(self) -> None:
        self.trackers: list[GaugeTracker] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tracker = self.trackers[-1] if self.trackers else None
        for gauge, read in ((AUDIT_QUEUE, tracker and tracker.audit_queue),
                            (STATE_VERSION, tracker and tracker.state_version)):
            value = gauge._value.get()
            if read is not None:
                with contextlib.suppress(Exception):  # a failing read must not fail a scrape
                    value = float(read())
            yield GaugeMetricFamily(gauge._name, gauge._documentation, value=value)


_LIVE = _LiveGauges()
REGISTRY.register(_LIVE)


class GaugeTracker:
    """Keeps the audit queue depth and state version current (see `track`)."""

    REFRESH_S = 1.0

    def __init__(self, audit_queue: Read, state_version: Read) -> None:
        self.audit_queue = audit_queue
        self.state_version = state_version
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Multi-process: refresh this worker's gauge files every second (a scrape reads the
        files, not the process). Single process: read by the collector at each scrape."""
        if _multiprocess_dir():
            self._refresh()
            self._task = asyncio.get_running_loop().create_task(self._run())
        else:
            _LIVE.trackers.append(self)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            multiprocess.mark_process_dead(os.getpid())
        if self in _LIVE.trackers:
            _LIVE.trackers.remove(self)

    def _refresh(self) -> None:
        for gauge, read in ((AUDIT_QUEUE, self.audit_queue),
                            (STATE_VERSION, self.state_version)):
            with contextlib.suppress(Exception):
                gauge.set(read())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.REFRESH_S)
            self._refresh()


def track(*, audit_queue: Read, state_version: Read) -> GaugeTracker:
    """A started tracker of the two gauges; call from the worker's running event loop and
    `await tracker.stop()` at shutdown."""
    tracker = GaugeTracker(audit_queue, state_version)
    tracker.start()
    return tracker


# -- exposition ------------------------------------------------------------------------------

_PID_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _mark_dead_workers(directory: str) -> None:
    """Drop the live gauges of worker processes that are gone (killed, crashed)."""
    for name in os.listdir(directory):
        match = _PID_FILE.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)
        except PermissionError:  # alive, owned by someone else
            pass


def render() -> tuple[bytes, str]:
    """The exposition text (all workers' when running multi-process)."""
    directory = _multiprocess_dir()
    if directory:
        _mark_dead_workers(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
