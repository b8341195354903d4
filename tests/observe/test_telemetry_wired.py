"""OpenTelemetry on the live request path: the app with telemetry on exports, for each chat
request, a server span with its identify, scan, decide, upstream and audit.commit children to
a real OTLP/HTTP receiver, and the upstream (a real stand-in over HTTP, in both provider
shapes) receives a traceparent naming the attempt's span in the same trace."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from harbourgate import config
from harbourgate.app import Harbourgate, create_app, prepare
from harbourgate.gateway import metrics
from harbourgate.observe.otel import OtelTelemetry
from harbourgate.observe.telemetry import parse_traceparent
from harbourgate.store import registry
from tests.e2e.conftest import HARBOURGATE, Process, free_port, start
from tests.observe.otlp_receiver import Receiver, attrs

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{CALLER_TRACE}-b7ad6b7169203331-01".encode()
CHILDREN = ("identify", "scan", "decide", "audit.commit")


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[Process]:
    port = free_port()
    p = start([*HARBOURGATE, "stand-in", "--port", str(port)], port=port,
              ready_path="/v1/models", log=tmp_path / "standin.log")
    yield p
    p.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
    metrics.configure([])


def build(tmp_path: Path, standin: Process, receiver: Receiver) -> tuple[Harbourgate, str]:
    """The default routes, fable-5 over the stand-in's OpenAI API and mythos-5 over its
    Anthropic API, with telemetry exporting to the receiver."""
    base = config.load(None, environ={})
    wired = {"fable-5": {"provider": "openai", "base_url": standin.url + "/v1"},
             "mythos-5": {"provider": "anthropic", "base_url": standin.url}}
    routes = tuple(dataclasses.replace(r, **wired[r.name]) if r.name in wired else r
                   for r in base.routes)
    settings = config.Settings(
        data_dir=tmp_path / "data", routes=routes, sandbox=base.sandbox,
        telemetry=config.TelemetrySettings(otlp_endpoint=receiver.url, service_name="hg-wired",
                                           export_interval_s=3600))
    prepare(settings)
    hg = create_app(settings)
    with hg.store.change() as conn:
        key = registry.issue_key(conn, "acme-research").key
    hg.runtime.reload()
    return hg, key


async def call(hg: Harbourgate, key: str, body: dict[str, Any],
               traceparent: bytes | None = None) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:  # the body, then a client that stays
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": orjson.dumps(body), "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"authorization", f"Bearer {key}".encode())]
    if traceparent is not None:
        headers.append((b"traceparent", traceparent))
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": headers}
    await hg.gateway(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])


def test_a_chat_request_exports_its_spans_and_passes_a_traceparent_upstream(
        tmp_path: Path, standin: Process, receiver: Receiver) -> None:
    hg, key = build(tmp_path, standin, receiver)
    assert isinstance(hg.telemetry, OtelTelemetry)
    httpx.delete(standin.url + "/_standin/requests", timeout=30)

    async def scenario() -> list[tuple[int, dict[bytes, bytes]]]:
        try:
            return [
                await call(hg, key, {"model": "fable-5", "messages": [
                    {"role": "user", "content": "hello"}]}, CALLER),
                await call(hg, key, {"model": "mythos-5", "stream": True, "messages": [
                    {"role": "user", "content": "hello"}]}),
            ]
        finally:
            for upstream in hg.upstreams.values():
                await upstream.aclose()

    hg.audit.start()
    try:
        (plain, plain_headers), (streamed, _) = asyncio.run(scenario())
        assert hg.telemetry.flush()
        receiver.wait_for(lambda: sum(s.kind == s.SPAN_KIND_SERVER for s in receiver.spans)
                          >= 2)
    finally:
        hg.audit.close()
        hg.telemetry.shutdown()
        hg.store.close()
    assert (plain, streamed) == (200, 200)
    assert receiver.resources[0]["service.name"] == "hg-wired"
    servers = [s for s in receiver.spans if s.kind == s.SPAN_KIND_SERVER]
    assert [s.name for s in servers] == ["chat fable-5", "chat mythos-5"]
    upstream_seen = httpx.get(standin.url + "/_standin/requests", timeout=30).json()
    paths = {r["path"]: r["headers"] for r in upstream_seen}
    assert set(paths) == {"/v1/chat/completions", "/v1/messages"}
    for server, path in zip(servers, ("/v1/chat/completions", "/v1/messages"), strict=True):
        children = [s for s in receiver.spans if s.parent_span_id == server.span_id]
        names = [s.name for s in children]
        for name in CHILDREN:
            assert names.count(name) == 1, (name, names)
        upstream = [s for s in children if s.kind == s.SPAN_KIND_CLIENT]
        assert len(upstream) == 1 and upstream[0].name == server.name
        assert all(s.trace_id == server.trace_id for s in children)
        a = attrs(server.attributes)
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == server.name[5:]
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["harbourgate.decision"] == "allow"
        assert a["harbourgate.application"] == "acme-research"
        assert a["http.response.status_code"] == 200
        assert a["harbourgate.request_id"] and a["harbourgate.audit_id"]
        # the upstream got a traceparent naming this attempt's span, in this trace
        sent = parse_traceparent(paths[path]["traceparent"])
        assert sent is not None
        assert sent[0] == int.from_bytes(server.trace_id, "big")
        assert sent[1] == int.from_bytes(upstream[0].span_id, "big")
    # the caller's trace continues; the second request, sent without one, starts its own
    assert servers[0].trace_id.hex() == CALLER_TRACE
    assert servers[0].parent_span_id.hex() == "b7ad6b7169203331"
    assert servers[1].trace_id.hex() != CALLER_TRACE and not servers[1].parent_span_id
    assert plain_headers[b"x-request-id"].decode() == attrs(servers[0].attributes)[
        "harbourgate.request_id"]


def test_with_telemetry_off_a_valid_caller_traceparent_goes_upstream_unchanged(
        tmp_path: Path, standin: Process) -> None:
    base = config.load(None, environ={})
    routes = tuple(dataclasses.replace(r, provider="anthropic", base_url=standin.url)
                   if r.name == "fable-5" else r for r in base.routes)
    settings = config.Settings(data_dir=tmp_path / "data", routes=routes,
                               sandbox=base.sandbox)
    prepare(settings)
    hg = create_app(settings)
    with hg.store.change() as conn:
        key = registry.issue_key(conn, "acme-research").key
    hg.runtime.reload()
    httpx.delete(standin.url + "/_standin/requests", timeout=30)

    async def scenario() -> list[int]:
        try:
            body = {"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]}
            return [(await call(hg, key, body, CALLER))[0],
                    (await call(hg, key, body, b"00-zz-not-a-traceparent-01"))[0]]
        finally:
            for upstream in hg.upstreams.values():
                await upstream.aclose()

    hg.audit.start()
    try:
        assert asyncio.run(scenario()) == [200, 200]
    finally:
        hg.audit.close()
        hg.store.close()
    seen = httpx.get(standin.url + "/_standin/requests", timeout=30).json()
    assert [r["headers"].get("traceparent") for r in seen] == [CALLER.decode(), None]
