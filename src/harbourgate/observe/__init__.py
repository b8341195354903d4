"""Observability: structured logs (`logs`), OpenTelemetry traces and metrics (`telemetry`).

Prometheus metrics of the data plane live in `harbourgate.gateway.metrics`. Everything here
is cheap when off: no access logger work when `logging.access` is false, and no
OpenTelemetry import at all when `telemetry.otlp_endpoint` is null.
"""
