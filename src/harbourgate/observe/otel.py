"""The OpenTelemetry SDK behind `harbourgate.observe.telemetry` (imported only when on).

Spans follow the GenAI semantic conventions (`gen_ai.operation.name`,
`gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.*`, `gen_ai.provider.name`)
plus `harbourgate.*` attributes (decision, rule, audit id, request id, application).
A request never waits for the collector: ended spans go into a bounded queue that a
background thread exports in batches; when the queue is full, or an export fails, the spans
are dropped and counted in `harbourgate_telemetry_dropped_spans_total`. Metric attributes
and span attributes that name a model use `harbourgate.observe.labels` (a made-up model
name is ``other``), so exported series stay bounded and caller text stays out.
"""

from __future__ import annotations

import collections
import threading
from time import perf_counter
from types import TracebackType

from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from harbourgate.config import TelemetrySettings
from harbourgate.gateway import metrics
from harbourgate.observe import labels
from harbourgate.observe.logs import safe_token
from harbourgate.observe.telemetry import format_traceparent, parse_traceparent

_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                     40.96, 81.92)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                 5.0, 7.5, 10.0)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


class BoundedBatchProcessor(SpanProcessor):
    """Ended spans into a bounded queue; a daemon thread exports them in batches.

    `on_end` never blocks and never does I/O: at `max_queue` spans it drops the span and
    counts it. An export that fails or raises drops its batch, counted the same way.
    """

    def __init__(self, exporter: SpanExporter, *, max_queue: int = 4096,
                 max_batch: int = 512, interval_s: float = 1.0) -> None:
        self.exporter = exporter
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.interval_s = interval_s
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="harbourgate-otlp-spans",
                                        daemon=True)
        self._thread.start()

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopping or not span.context.trace_flags.sampled:
            return
        if len(self._queue) >= self.max_queue:
            metrics.TELEMETRY_DROPPED.labels("queue_full").inc()
            return
        self._queue.append(span)
        if len(self._queue) >= self.max_batch:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._drain()
            if self._stopping:
                return

    def _drain(self) -> None:
        self._idle.clear()
        while self._queue:
            batch: list[ReadableSpan] = []
            while self._queue and len(batch) < self.max_batch:
                batch.append(self._queue.popleft())
            try:
                result = self.exporter.export(batch)
            except Exception:
                result = SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                metrics.TELEMETRY_DROPPED.labels("export_failed").inc(len(batch))
        self._idle.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued now (for shutdown and tests)."""
        self._idle.clear()
        self._wake.set()
        return self._idle.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)
        self.exporter.shutdown()


class _Span:
    """A child span of a request, used as a context manager."""

    __slots__ = ("_span",)

    def __init__(self, span: trace_api.Span) -> None:
        self._span = span

    @property
    def traceparent(self) -> str:
        """The W3C traceparent naming this span (for the upstream call's headers)."""
        ctx = self._span.get_span_context()
        return format_traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags))

    def set(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def failed(self, code: str) -> None:
        self._span.set_attribute("error.type", safe_token(code))
        self._span.set_status(Status(StatusCode.ERROR, code))

    def __enter__(self) -> _Span:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self._span.record_exception(exc)
            self.failed(kind.__name__ if kind else "error")
        self._span.end()


class _Trace:
    """One request's server span and what its children and metrics need."""

    def __init__(self, owner: OtelTelemetry, endpoint: str, operation: str,
                 traceparent: bytes | None, request_id: str | None) -> None:
        self.owner = owner
        self.operation = operation
        self.started = perf_counter()
        self.model: str | None = None
        self.served: str | None = None
        self.provider: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.first_token_s: float | None = None
        self.decision = "none"
        parent = None
        parsed = parse_traceparent(traceparent)
        if parsed is not None:  # continue the caller's trace; a malformed one is replaced
            trace_id, span_id, flags = parsed
            remote = trace_api.SpanContext(trace_id, span_id, is_remote=True,
                                           trace_flags=trace_api.TraceFlags(flags & 0x01))
            parent = trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote))
        self.server = owner.tracer.start_span(
            f"{operation}", context=parent, kind=SpanKind.SERVER,
            attributes={"gen_ai.operation.name": operation, "http.request.method": "POST",
                        "url.path": safe_token(endpoint),
                        **({"harbourgate.request_id": request_id} if request_id else {})})
        self._context = trace_api.set_span_in_context(self.server)

    def span(self, name: str) -> _Span:
        return _Span(self.owner.tracer.start_span(name, context=self._context))

    def upstream(self, model: str, *, attempt: int = 1, provider: str | None = None) -> _Span:
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": self.operation, "gen_ai.request.model": labels.model(model),
            "harbourgate.attempt": attempt}
        if provider:
            attributes["gen_ai.provider.name"] = safe_token(provider)
            self.provider = provider
        return _Span(self.owner.tracer.start_span(
            f"{self.operation} {labels.model(model)}", context=self._context,
            kind=SpanKind.CLIENT, attributes=attributes))

    def identified(self, *, application: str | None) -> None:
        if application:
            self.server.set_attribute("harbourgate.application", safe_token(application))

    def decided(self, *, decision: str, rule: str | None = None, model: str | None = None,
                served: str | None = None) -> None:
        self.decision = metrics.decision_label(decision)
        self.server.set_attribute("harbourgate.decision", self.decision)
        if rule:
            self.server.set_attribute("harbourgate.rule", safe_token(rule, 128))
        if model:
            self.model = model
            self.server.set_attribute("gen_ai.request.model", labels.model(model))
            self.server.update_name(f"{self.operation} {labels.model(model)}")
        if served:
            self.served = served
            self.server.set_attribute("gen_ai.response.model", labels.model(served))

    def usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None,
              first_token_s: float | None = None) -> None:
        if input_tokens is not None:
            self.input_tokens = input_tokens
            self.server.set_attribute("gen_ai.usage.input_tokens", int(input_tokens))
        if output_tokens is not None:
            self.output_tokens = output_tokens
            self.server.set_attribute("gen_ai.usage.output_tokens", int(output_tokens))
        if first_token_s is not None:
            self.first_token_s = first_token_s

    def end(self, *, status: int, audit_id: str | None = None, code: str | None = None) -> None:
        span = self.server
        span.set_attribute("http.response.status_code", int(status))
        if audit_id:
            span.set_attribute("harbourgate.audit_id", safe_token(audit_id))
        if code:
            span.set_attribute("error.type", safe_token(code))
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR, code))
        span.end()
        self.owner.record(self, perf_counter() - self.started, code)


class OtelTelemetry:
    """Tracer and meter providers of this process, exporting over OTLP/HTTP."""

    enabled = True

    def __init__(self, settings: TelemetrySettings, *, max_queue: int = 4096) -> None:
        assert settings.otlp_endpoint
        base = settings.otlp_endpoint.rstrip("/")
        resource = Resource.create({"service.name": settings.service_name})
        self.processor = BoundedBatchProcessor(
            OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=5), max_queue=max_queue)
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(self.processor)
        self.tracer = self.tracer_provider.get_tracer("harbourgate")
        self.reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=5),
            export_interval_millis=settings.export_interval_s * 1000,
            export_timeout_millis=5000)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[self.reader])
        meter = self.meter_provider.get_meter("harbourgate")
        self.duration = meter.create_histogram(
            "gen_ai.server.request.duration", unit="s",
            description="Time to answer a generative AI request, as the gateway saw it.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
        self.first_token = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s",
            description="Time to the first streamed token.",
            explicit_bucket_boundaries_advisory=_TTFT_BUCKETS)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Tokens used per request, by gen_ai.token.type.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS)
        self.requests = meter.create_counter(
            "harbourgate.requests", unit="{request}",
            description="Data-plane requests by decision and model.")

    def request(self, endpoint: str, operation: str, *, traceparent: bytes | None = None,
                request_id: str | None = None) -> _Trace:
        return _Trace(self, endpoint, operation, traceparent, request_id)

    def record(self, trace: _Trace, seconds: float, code: str | None) -> None:
        attrs: dict[str, str] = {"gen_ai.operation.name": trace.operation,
                                 "gen_ai.request.model": metrics.model_label(trace.model)}
        if trace.served:
            attrs["gen_ai.response.model"] = metrics.model_label(trace.served)
        if trace.provider:
            attrs["gen_ai.provider.name"] = safe_token(trace.provider)
        if code:
            attrs["error.type"] = metrics.code_label(code)
        self.duration.record(seconds, attrs)
        if trace.first_token_s is not None:
            self.first_token.record(trace.first_token_s, attrs)
        if trace.input_tokens is not None:
            self.tokens.record(trace.input_tokens, {**attrs, "gen_ai.token.type": "input"})
        if trace.output_tokens is not None:
            self.tokens.record(trace.output_tokens, {**attrs, "gen_ai.token.type": "output"})
        self.requests.add(1, {**attrs, "harbourgate.decision": trace.decision})

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export every queued span and the current metrics now."""
        spans = self.processor.force_flush(int(timeout_s * 1000))
        return self.reader.force_flush(int(timeout_s * 1000)) and spans

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown(timeout_millis=5000)

