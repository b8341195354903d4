"""OpenTelemetry: spans and metrics over OTLP/HTTP to a receiver that decodes the real
protobuf payloads; traceparent in and out; free and import-free when off; an unreachable or
stalled collector never holds a request (dropped spans are counted)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.config import TelemetrySettings
from harbourgate.gateway import metrics
from harbourgate.observe import telemetry
from harbourgate.observe.otel import OtelTelemetry
from harbourgate.observe.telemetry import format_traceparent, parse_traceparent
from tests.observe.otlp_receiver import Receiver, attrs

CALLER = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    metrics.configure(["fable-5", "glm-5.2"])
    r = Receiver()
    yield r
    r.close()
    metrics.configure([])


def drive(tel: telemetry.Telemetry, traceparent: bytes | None = CALLER) -> str | None:
    """One request as the gateway drives it: identify, scan, decide, two upstream attempts
    (the first fails over), usage, the audit commit."""
    trace = tel.request("/v1/chat/completions", "chat", traceparent=traceparent,
                        request_id="req-1")
    with trace.span("identify"):
        pass
    trace.identified(application="acme-research")
    with trace.span("scan") as scan:
        scan.set("harbourgate.pii_classes", "phone")
    with trace.span("decide"):
        pass
    trace.decided(decision="reroute", rule="export-directives/us-only", model="fable-5",
                  served="glm-5.2")
    with trace.upstream("glm-5.2", attempt=1, provider="openai") as first:
        first.failed("upstream_error")
    with trace.upstream("glm-5.2", attempt=2, provider="openai") as second:
        outgoing = second.traceparent
    trace.usage(input_tokens=12, output_tokens=40, first_token_s=0.05)
    with trace.span("audit.commit"):
        pass
    trace.end(status=200, audit_id="01JAUDIT", code=None)
    return outgoing


def test_spans_and_metrics_reach_an_otlp_receiver(receiver: Receiver) -> None:
    tel = telemetry.setup(TelemetrySettings(otlp_endpoint=receiver.url, service_name="hg-test",
                                            export_interval_s=3600))
    assert isinstance(tel, OtelTelemetry)
    try:
        outgoing = drive(tel)
        assert tel.flush()
        receiver.wait_for(lambda: len(receiver.spans) >= 7 and receiver.metrics)
    finally:
        tel.shutdown()
    assert receiver.resources[0]["service.name"] == "hg-test"
    spans = {s.name: s for s in receiver.spans}
    server = spans["chat fable-5"]
    assert server.kind == server.SPAN_KIND_SERVER
    # the caller's trace continues: same trace id, the caller's span as parent
    assert server.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert server.parent_span_id.hex() == "b7ad6b7169203331"
    a = attrs(server.attributes)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "fable-5"
    assert a["gen_ai.response.model"] == "glm-5.2"
    assert a["gen_ai.usage.input_tokens"] == 12 and a["gen_ai.usage.output_tokens"] == 40
    assert a["harbourgate.decision"] == "reroute"
    assert a["harbourgate.rule"] == "export-directives/us-only"
    assert a["harbourgate.audit_id"] == "01JAUDIT"
    assert a["harbourgate.request_id"] == "req-1"
    assert a["http.response.status_code"] == 200
    children = [s for s in receiver.spans if s.parent_span_id == server.span_id]
    assert sorted(s.name for s in children) == sorted(
        ["identify", "scan", "decide", "chat glm-5.2", "chat glm-5.2", "audit.commit"])
    attempts = sorted((s for s in children if s.name == "chat glm-5.2"),
                      key=lambda s: attrs(s.attributes)["harbourgate.attempt"])
    assert all(s.kind == s.SPAN_KIND_CLIENT for s in attempts)
    assert attrs(attempts[0].attributes)["error.type"] == "upstream_error"
    assert attempts[0].status.code == attempts[0].status.STATUS_CODE_ERROR
    assert attrs(attempts[1].attributes)["gen_ai.provider.name"] == "openai"
    # the upstream is called with a traceparent naming the attempt's span in the same trace
    assert outgoing == f"00-{server.trace_id.hex()}-{attempts[1].span_id.hex()}-01"
    names = {m.name: m for m in receiver.metrics}
    assert {"gen_ai.server.request.duration", "gen_ai.client.token.usage",
            "gen_ai.server.time_to_first_token", "harbourgate.requests"} <= set(names)
    usage = names["gen_ai.client.token.usage"].histogram.data_points
    by_type = {attrs(p.attributes)["gen_ai.token.type"]: p for p in usage}
    assert by_type["input"].sum == 12 and by_type["output"].sum == 40
    assert attrs(by_type["input"].attributes)["gen_ai.response.model"] == "glm-5.2"
    counted = names["harbourgate.requests"].sum.data_points
    assert attrs(counted[0].attributes)["harbourgate.decision"] == "reroute"


def test_a_malformed_traceparent_starts_a_new_trace(receiver: Receiver) -> None:
    tel = telemetry.setup(TelemetrySettings(otlp_endpoint=receiver.url))
    try:
        outgoing = drive(tel, b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")
        tel.flush()
        receiver.wait_for(lambda: any(s.name == "chat fable-5" for s in receiver.spans))
    finally:
        tel.shutdown()
    server = next(s for s in receiver.spans if s.name == "chat fable-5")
    assert server.parent_span_id == b""
    assert server.trace_id.hex() != "0af7651916cd43dd8448eb211c80319c"
    assert outgoing is not None and "0000000000000000" not in outgoing


def test_model_names_in_exported_metrics_are_bounded(receiver: Receiver) -> None:
    tel = telemetry.setup(TelemetrySettings(otlp_endpoint=receiver.url))
    try:
        for i in range(30):
            trace = tel.request("/v1/chat/completions", "chat")
            trace.decided(decision="deny", model=f"made-up-{i}")
            trace.end(status=404, code="model_not_found")
        tel.flush()
        receiver.wait_for(lambda: any(m.name == "gen_ai.server.request.duration"
                                      for m in receiver.metrics))
    finally:
        tel.shutdown()
    duration = next(m for m in receiver.metrics if m.name == "gen_ai.server.request.duration")
    points = duration.histogram.data_points
    assert len(points) == 1 and points[0].count == 30
    assert attrs(points[0].attributes)["gen_ai.request.model"] == "other"
    servers = [s for s in receiver.spans if s.kind == s.SPAN_KIND_SERVER]
    assert servers and {s.name for s in servers} == {"chat other"}  # no caller text


def dropped(reason: str) -> float:
    value = metrics.TELEMETRY_DROPPED.labels(reason)._value.get()
    return float(value)


def test_a_stalled_collector_never_holds_a_request(receiver: Receiver) -> None:
    """The receiver accepts the connection and never answers: requests go on, the bounded
    queue fills, and what does not fit is dropped and counted."""
    receiver.gate.clear()
    tel = OtelTelemetry(TelemetrySettings(otlp_endpoint=receiver.url), max_queue=50)
    before = dropped("queue_full")
    try:
        for _ in range(200):  # 7 spans each: far more than the queue holds
            drive(tel)
        assert dropped("queue_full") - before >= 200 * 7 - 50 - tel.processor.max_batch
    finally:
        receiver.gate.set()
        tel.shutdown()


def test_an_unreachable_endpoint_counts_failed_exports() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tel = OtelTelemetry(TelemetrySettings(otlp_endpoint=f"http://127.0.0.1:{port}"))
    before = dropped("export_failed")
    try:
        drive(tel)
        tel.flush(timeout_s=120)
    finally:
        tel.shutdown()
    assert dropped("export_failed") - before == 7  # the server span and its 6 children


def test_off_is_the_shared_noop_and_passes_a_valid_traceparent_on() -> None:
    off = telemetry.setup(TelemetrySettings())
    assert off is telemetry.OFF and not off.enabled
    assert drive(off, None) is None
    assert drive(off, CALLER) == CALLER.decode()
    assert drive(off, b"00-zz-bad") is None  # malformed: never passed on


def test_off_imports_neither_the_sdk_nor_an_exporter() -> None:
    """(FastAPI itself imports the small OpenTelemetry *API* when it is installed; the SDK,
    the exporters and their threads are ours, and stay out when off.)"""
    code = ("import sys\n"
            "from harbourgate.config import TelemetrySettings\n"
            "from harbourgate.observe import telemetry\n"
            "import harbourgate.app\n"
            "t = telemetry.setup(TelemetrySettings())\n"
            "r = t.request('/v1/chat/completions', 'chat', traceparent=b'x')\n"
            "with r.span('decide'): pass\n"
            "r.end(status=200)\n"
            "print(sorted(m for m in sys.modules if m.startswith(\n"
            "    ('opentelemetry.sdk', 'opentelemetry.exporter', 'harbourgate.observe.otel'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_a_missing_sdk_is_an_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)
    with pytest.raises(telemetry.TelemetryUnavailable, match=r"harbourgate\[otel\]"):
        telemetry.check_available(TelemetrySettings(otlp_endpoint="http://127.0.0.1:4318"))


@pytest.mark.parametrize("value", [
    b"", b"garbage", b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    b"00-00000000000000000000000000000000-b7ad6b7169203331-01",
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx-evil: 1",
])
def test_malformed_traceparents_are_rejected(value: bytes) -> None:
    assert parse_traceparent(value) is None


def test_a_future_version_with_more_fields_is_accepted() -> None:
    parsed = parse_traceparent(b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xyz")
    assert parsed == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, 1)


@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.integers(0, 255))
def test_traceparent_round_trips(trace_id: int, span_id: int, flags: int) -> None:
    assert parse_traceparent(format_traceparent(trace_id, span_id, flags)) == (
        trace_id, span_id, flags)
