"""A real OTLP/HTTP receiver for tests: decodes the protobuf payloads the exporter sends."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Receiver:
    """Collects decoded spans and metrics; `hold()` makes it stall until `release()`."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, Any]] = []
        self.metrics: list[Any] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.gate.wait()
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                assert self.headers.get("content-type") == "application/x-protobuf"
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    receiver._traces(request)
                    answer = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/metrics":
                    request = ExportMetricsServiceRequest.FromString(body)
                    receiver._metrics(request)
                    answer = ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _traces(self, request: ExportTraceServiceRequest) -> None:
        with self.changed:
            for rs in request.resource_spans:
                self.resources.append(attrs(rs.resource.attributes))
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)
            self.changed.notify_all()

    def _metrics(self, request: ExportMetricsServiceRequest) -> None:
        with self.changed:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    self.metrics.extend(sm.metrics)
            self.changed.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 120) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "nothing arrived in time"

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def attrs(attributes: Any) -> dict[str, Any]:
    """OTLP KeyValue list -> dict of Python values."""
    out: dict[str, Any] = {}
    for kv in attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out
