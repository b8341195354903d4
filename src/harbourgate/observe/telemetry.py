"""OpenTelemetry for the data plane: the API the gateway calls, free when telemetry is off.

`setup(settings.telemetry)` returns a `Telemetry`. With `otlp_endpoint: null` (the default)
it is `OFF`: no OpenTelemetry module is imported, and every call below is a method on a
shared do-nothing object. With an endpoint it is the SDK-backed implementation in
`harbourgate.observe.otel` (the `harbourgate[otel]` extra), which exports traces and metrics
over OTLP/HTTP from a background thread through a bounded queue.

One request, as the gateway drives it::

    trace = telemetry.request("/v1/chat/completions", "chat",
                              traceparent=headers.get(b"traceparent"), request_id=rid)
    with trace.span("identify"):
        ...
    trace.identified(application="acme-research")
    with trace.span("scan"):
        ...
    with trace.span("decide"):
        ...
    trace.decided(decision="allow", rule="hk-sandbox/allow", model="fable-5", served="fable-5")
    with trace.upstream("fable-5", attempt=1, provider="openai") as attempt:
        headers["traceparent"] = attempt.traceparent  # None: send none
        ...                                             # attempt.failed("upstream_error")
    trace.usage(input_tokens=12, output_tokens=40, first_token_s=0.21)
    with trace.span("audit.commit"):
        ...
    trace.end(status=200, audit_id="01J...", code=None)

The caller's W3C `traceparent` is parsed here (`parse_traceparent`); a malformed one is
replaced by a new trace, never passed on. Off, a well-formed one is passed upstream as is.
"""

from __future__ import annotations

import importlib.util
import re
from types import TracebackType
from typing import Protocol

from harbourgate.config import TelemetrySettings

EXTRA = "otel"
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


class TelemetryUnavailable(Exception):
    """`telemetry.otlp_endpoint` is set, but the OpenTelemetry packages are missing."""


_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16


def _valid(raw: bytes) -> re.Match[bytes] | None:
    """The match of a valid W3C traceparent: version ``ff``, an all-zero trace or span id,
    and a version-00 header with anything after the flags are invalid (Trace Context §3.2)."""
    if len(raw) > 512:
        return None
    match = _TRACEPARENT.fullmatch(raw)
    if match is None:
        return None
    version, trace_id, span_id, _, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return match


def parse_traceparent(value: bytes | str | None) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) of a valid W3C traceparent, else None."""
    if value is None:
        return None
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    match = _valid(raw.strip())
    if match is None:
        return None
    _, trace_id, span_id, flags, _ = match.groups()
    return int(trace_id, 16), int(span_id, 16), int(flags, 16)


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & 0xFF:02x}"


class Span(Protocol):
    """What a `with trace.span(...)` / `trace.upstream(...)` block gets."""

    traceparent: str | None

    def set(self, key: str, value: str | int | float | bool) -> None: ...

    def failed(self, code: str) -> None: ...

    def __enter__(self) -> Span: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class RequestTrace(Protocol):
    """The trace of one data-plane request (see the module's example)."""

    def span(self, name: str) -> Span: ...

    def upstream(self, model: str, *, attempt: int = 1, provider: str | None = None) -> Span: ...

    def identified(self, *, application: str | None) -> None: ...

    def decided(self, *, decision: str, rule: str | None = None, model: str | None = None,
                served: str | None = None) -> None: ...

    def usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None,
              first_token_s: float | None = None) -> None: ...

    def end(self, *, status: int, audit_id: str | None = None, code: str | None = None) -> None:
        ...


class Telemetry(Protocol):
    enabled: bool

    def request(self, endpoint: str, operation: str, *, traceparent: bytes | None = None,
                request_id: str | None = None) -> RequestTrace: ...

    def shutdown(self) -> None: ...


# -- off: shared do-nothing objects --------------------------------------------------------

class _NoSpan:
    """A span that records nothing; `traceparent` passes the caller's on, if valid."""

    __slots__ = ("traceparent",)

    def __init__(self, traceparent: str | None = None) -> None:
        self.traceparent = traceparent

    def set(self, key: str, value: str | int | float | bool) -> None:
        pass

    def failed(self, code: str) -> None:
        pass

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None


_NO_SPAN = _NoSpan()


class _NoTrace:
    __slots__ = ("_upstream",)

    def __init__(self, upstream: _NoSpan = _NO_SPAN) -> None:
        self._upstream = upstream

    def span(self, name: str) -> _NoSpan:
        return _NO_SPAN

    def upstream(self, model: str, *, attempt: int = 1, provider: str | None = None) -> _NoSpan:
        return self._upstream

    def identified(self, *, application: str | None) -> None:
        pass

    def decided(self, *, decision: str, rule: str | None = None, model: str | None = None,
                served: str | None = None) -> None:
        pass

    def usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None,
              first_token_s: float | None = None) -> None:
        pass

    def end(self, *, status: int, audit_id: str | None = None, code: str | None = None) -> None:
        pass


_NO_TRACE = _NoTrace()
NO_TRACE: RequestTrace = _NO_TRACE
"""A trace that records nothing (for steps called without one: tests, tools)."""


class _Off:
    """Telemetry off: `request` costs a dictionary-free method call and, only when the
    caller sent a valid traceparent, one small object (to pass it upstream unchanged)."""

    enabled = False

    def request(self, endpoint: str, operation: str, *, traceparent: bytes | None = None,
                request_id: str | None = None) -> _NoTrace:
        if traceparent is None or _valid(traceparent) is None:
            return _NO_TRACE
        return _NoTrace(_NoSpan(traceparent.decode("ascii")))

    def shutdown(self) -> None:
        pass


OFF: Telemetry = _Off()


def check_available(settings: TelemetrySettings) -> None:
    """Raise `TelemetryUnavailable`, naming the extra, when an endpoint is configured but
    the SDK or the OTLP/HTTP exporter is not installed."""
    if not settings.otlp_endpoint:
        return
    for module in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise TelemetryUnavailable(
                f"telemetry.otlp_endpoint is set but {module} is not installed: "
                f"pip install 'harbourgate[{EXTRA}]' (or set telemetry.otlp_endpoint: null)")


def setup(settings: TelemetrySettings) -> Telemetry:
    """`OFF` without an endpoint; otherwise exporting traces and metrics over OTLP/HTTP."""
    if not settings.otlp_endpoint:
        return OFF
    check_available(settings)
    from harbourgate.observe.otel import OtelTelemetry

    return OtelTelemetry(settings)
