"""/metrics holds up: bounded label values under hostile traffic, gauges read at scrape,
no `_created` series, the token/cost/time-to-first-token families present."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from harbourgate import config
from harbourgate.app import Harbourgate, create_app, prepare
from harbourgate.gateway import metrics
from harbourgate.quotas.model import Price
from harbourgate.store import registry


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Harbourgate, str]]:
    base = config.load(None, environ={})
    settings = config.Settings(data_dir=tmp_path, routes=base.routes, sandbox=base.sandbox)
    prepare(settings)
    hg = create_app(settings)
    with hg.store.change() as conn:
        key = registry.issue_key(conn, "acme-research").key
    hg.runtime.reload()
    hg.audit.start()
    try:
        yield hg, key
    finally:
        hg.audit.close()
        hg.store.close()


def request(hg: Harbourgate, method: str, path: str, body: Any = None,
            key: str | None = None) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:  # the body, then a client that stays (a stream
        nonlocal delivered  # watches for its disconnect)
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": orjson.dumps(body) if body else b"",
                    "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    asyncio.run(hg.gateway(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def chat(hg: Harbourgate, key: str, model: str) -> int:
    status, _ = request(hg, "POST", "/v1/chat/completions", {
        "model": model, "messages": [{"role": "user", "content": "hello"}]}, key)
    return status


def test_made_up_model_names_do_not_create_series(app: tuple[Harbourgate, str]) -> None:
    hg, key = app
    assert chat(hg, key, "fable-5") == 200
    assert chat(hg, key, "made-up-model-0") == 404
    status, body = request(hg, "GET", "/metrics")
    assert status == 200
    before = series(body.decode())
    for i in range(1, 60):  # hostile: a valid key, a new model name each time
        assert chat(hg, key, f"made-up-model-{i}") == 404
        assert chat(hg, key, f"made-up-{i}\n{{evil=\"1\"}}") in (400, 404)
    _, body = request(hg, "GET", "/metrics")
    after = series(body.decode())
    assert len(after) == len(before), set(after) ^ set(before)
    text = body.decode()
    assert "made-up" not in text and "evil" not in text
    # the series these requests counted (a line holds its value): the registry is the
    # process's, so earlier tests' series, such as a real route's refusal, are there too
    hostile = [s for s in set(after) - set(before) if s.startswith("harbourgate_requests_total")
               and 'code="model_not_found"' in s]
    assert hostile and all('model="other"' in s or 'model="none"' in s for s in hostile)
    assert 'model="fable-5"' in text  # configured routes keep their own label value


def test_exposition_has_no_created_series_and_the_new_families(
        app: tuple[Harbourgate, str]) -> None:
    hg, key = app
    chat(hg, key, "fable-5")
    metrics.observe_usage("fable-5", 12, 40, cost=0.00066)
    metrics.observe_usage("not-a-route", 1, 1, cost=1.0)
    metrics.observe_first_token("fable-5", 0.12)
    metrics.observe_request(endpoint="/v1/chat/completions", decision="allow", model="fable-5",
                            code=None, seconds=0.2, upstream_seconds=0.19)
    _, body = request(hg, "GET", "/metrics")
    text = body.decode()
    assert "_created" not in text
    for family in ("harbourgate_tokens_total", "harbourgate_cost_total",
                   "harbourgate_time_to_first_token_seconds",
                   "harbourgate_request_duration_seconds", "harbourgate_upstream_errors_total",
                   "harbourgate_audit_queue_depth", "harbourgate_state_version",
                   "harbourgate_quota_refusals_total",
                   "harbourgate_telemetry_dropped_spans_total"):
        assert f"# TYPE {family}" in text, family
    assert re.search(r'harbourgate_tokens_total\{direction="output",model="fable-5"\} \d+', text)
    assert 'harbourgate_cost_total{model="other"}' in text
    assert re.search(r'harbourgate_request_duration_seconds_count\{endpoint="/v1/chat/'
                     r'completions",model="fable-5"\} \d', text)


def test_gauges_are_read_when_scraped_not_when_the_handler_runs() -> None:
    depth = {"n": 3}

    async def scenario() -> list[str]:
        tracker = metrics.track(audit_queue=lambda: depth["n"], state_version=lambda: 41)
        try:
            first = metrics.render()[0].decode()
            depth["n"] = 17
            second = metrics.render()[0].decode()
        finally:
            await tracker.stop()
        return [first, second]

    first, second = asyncio.run(scenario())
    assert "harbourgate_audit_queue_depth 3.0" in first
    assert "harbourgate_audit_queue_depth 17.0" in second
    assert "harbourgate_state_version 41.0" in second


def test_a_failing_gauge_source_does_not_fail_the_scrape() -> None:
    def broken() -> float:
        raise RuntimeError("store gone")

    async def scenario() -> str:
        tracker = metrics.track(audit_queue=broken, state_version=lambda: 2)
        try:
            return metrics.render()[0].decode()
        finally:
            await tracker.stop()

    text = asyncio.run(scenario())
    assert "harbourgate_state_version 2.0" in text
    assert "harbourgate_audit_queue_depth" in text


def test_label_values_are_bounded_whatever_the_caller_passes() -> None:
    metrics.configure(["fable-5"])
    try:
        metrics.REQUESTS.labels("/v1/bogus", "maybe", "x" * 500, "made_up_code").inc()
        metrics.LATENCY.labels("/v1/chat/completions").observe(0.1)  # model left out
        text = metrics.render()[0].decode()
    finally:
        metrics.configure([])
    assert ('harbourgate_requests_total{code="other",decision="other",endpoint="other",'
            'model="other"}') in text
    assert "x" * 100 not in text
    assert 'endpoint="/v1/chat/completions",model="none"' in text


def value(text: str, series_name: str) -> float:
    """The value of one series in an exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series_name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_chat_and_a_stream_record_tokens_cost_first_token_and_latency_per_model(
        tmp_path: Path) -> None:
    base = config.load(None, environ={})
    priced = tuple(dataclasses.replace(r, price=Price(input_per_mtok=2.0, output_per_mtok=8.0))
                   if r.name == "fable-5" else r for r in base.routes)
    settings = config.Settings(data_dir=tmp_path, routes=priced, sandbox=base.sandbox)
    prepare(settings)
    hg = create_app(settings)
    with hg.store.change() as conn:
        key = registry.issue_key(conn, "acme-research").key
    hg.runtime.reload()
    hg.audit.start()
    tokens_in = 'harbourgate_tokens_total{direction="input",model="fable-5"}'
    tokens_out = 'harbourgate_tokens_total{direction="output",model="fable-5"}'
    cost = 'harbourgate_cost_total{model="fable-5"}'
    ttft = 'harbourgate_time_to_first_token_seconds_count{model="fable-5"}'
    latency = 'harbourgate_request_duration_seconds_count{endpoint="chat",model="fable-5"}'
    try:
        before = request(hg, "GET", "/metrics")[1].decode()
        assert chat(hg, key, "fable-5") == 200
        status, streamed = request(hg, "POST", "/v1/chat/completions", {
            "model": "fable-5", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hello"}]}, key)
        assert status == 200 and streamed.endswith(b"data: [DONE]\n\n")
        after = request(hg, "GET", "/metrics")[1].decode()
    finally:
        hg.audit.close()
        hg.store.close()
    used_in = value(after, tokens_in) - value(before, tokens_in)
    used_out = value(after, tokens_out) - value(before, tokens_out)
    assert used_in > 0 and used_out > 0
    assert value(after, cost) - value(before, cost) == pytest.approx(
        (used_in * 2.0 + used_out * 8.0) / 1e6)
    assert value(after, ttft) - value(before, ttft) == 1  # the stream only
    assert value(after, latency) - value(before, latency) == 2


def test_label_values_that_bound_to_themselves_skip_the_mapping_and_others_do_not() -> None:
    """The fast lookup of `_Bounded.labels` gives the child the bounded values give."""
    metrics.configure(["fable-5"])
    try:
        ok = metrics.REQUESTS.labels("chat", "allow", "fable-5", "ok")
        assert metrics.REQUESTS.labels("chat", "allow", "fable-5", "ok") is ok
        assert ("chat", "allow", "fable-5", "ok") in metrics.REQUESTS._same
        # "none" and "other" are bounded values, but a model named "none" is not a route
        absent = metrics.REQUESTS.labels("chat", "allow", None, "ok")
        named_none = metrics.REQUESTS.labels("chat", "allow", "none", "ok")
        other = metrics.REQUESTS.labels("chat", "allow", "other", "ok")
        assert absent is not named_none and named_none is other
        assert metrics.REQUESTS.labels("chat", "allow", "none", "ok") is other
        assert metrics.LATENCY.labels("chat") is metrics.LATENCY.labels("chat", None)
        metrics.configure(["fable-6"])  # fable-5 is no route any more: it is "other"
        assert metrics.REQUESTS.labels("chat", "allow", "fable-5", "ok") is other
    finally:
        metrics.configure([])
