"""Pools against real stand-in servers (uvicorn on 127.0.0.1, one thread each).

Each server is the stand-in wrapped as a pool server (`standin.capacity.ServerApp`):
its request record shows where the pool sent what, its `running` figure what it carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from harbourgate.config import EndpointConfig, HealthConfig, RouteConfig
from harbourgate.providers import pool as pool_module
from harbourgate.providers.base import UpstreamError
from harbourgate.providers.http import POOL
from harbourgate.providers.pool import Pool, failure_reason, pool_status, server_queue
from harbourgate.providers.registry import build_upstreams
from harbourgate.providers.standin.app import create_app
from harbourgate.providers.standin.capacity import ServerApp, create_server

from .conftest import Served, serve

ASK = {"model": "qwen-local", "messages": [{"role": "user", "content": "hello pool"}]}


@pytest.fixture
def servers() -> Iterator[Callable[..., Served]]:
    """`servers(**options)` starts one more pool server for this test."""
    with contextlib.ExitStack() as stack:
        yield lambda port=0, **kw: stack.enter_context(serve(create_server(**kw), port))


def route(*urls: str, name: str = "qwen-local", limits: tuple[int | None, ...] = (),
          **kw: Any) -> RouteConfig:
    endpoints = tuple(EndpointConfig(u.rstrip("/") + "/v1",
                                     limits[i] if i < len(limits) else None)
                      for i, u in enumerate(urls))
    kw.setdefault("health", HealthConfig(interval_s=0))
    return RouteConfig(name=name, provider="openai", endpoints=endpoints, timeout_s=5, **kw)


def build(r: RouteConfig, **kw: Any) -> Pool:
    pool = build_upstreams([r])[r.name]
    assert isinstance(pool, Pool)
    for key, value in kw.items():
        setattr(pool, key, value)
    return pool


def chats(served: Served) -> int:
    return sum(1 for r in served.recorded() if r["path"] == "/v1/chat/completions")


def server(served: Served) -> ServerApp:
    app: ServerApp = served.app
    return app


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "EJECT_BASE_S", 0.2)
    monkeypatch.setattr(pool_module, "EJECT_MAX_S", 0.8)


# --- balancing --------------------------------------------------------------------------------

def test_round_robin_takes_the_servers_in_turn(servers: Callable[..., Served]) -> None:
    a, b, c = servers(), servers(), servers()
    pool = build(route(a.url, b.url, c.url, balance="round_robin"))

    async def run() -> None:
        for _ in range(9):
            answer = await pool.chat("openai", ASK)
            assert answer["model"] == "qwen-local"
            assert answer["choices"][0]["message"]["content"].endswith("hello pool")
        await pool.aclose()

    asyncio.run(run())
    assert [chats(s) for s in (a, b, c)] == [3, 3, 3]


def test_least_outstanding_spreads_concurrent_requests(servers: Callable[..., Served]) -> None:
    a, b, c = (servers(latency_ms=100) for _ in range(3))
    pool = build(route(a.url, b.url, c.url))

    async def run() -> list[dict[str, Any]]:
        try:
            return await asyncio.gather(*(pool.chat("openai", ASK) for _ in range(30)))
        finally:
            await pool.aclose()

    answers = asyncio.run(run())
    assert len(answers) == 30
    counts = [chats(s) for s in (a, b, c)]
    assert sum(counts) == 30
    assert counts == [10, 10, 10]  # none finishes before all 30 are placed: a perfect spread
    assert all(e.outstanding == 0 for e in pool.endpoints)


def test_least_outstanding_prefers_the_idle_server(servers: Callable[..., Served]) -> None:
    slow, fast = servers(latency_ms=400), servers()
    pool = build(route(slow.url, fast.url))

    async def run() -> None:
        first = asyncio.create_task(pool.chat("openai", ASK))  # occupies one server
        await asyncio.sleep(0.1)
        for _ in range(5):  # sequential: each finds the other server idle
            await pool.chat("openai", ASK)
        await first
        await pool.aclose()

    asyncio.run(run())
    assert chats(slow) + chats(fast) == 6
    assert min(chats(slow), chats(fast)) == 1  # the first request; then only the idle one


def test_server_metrics_steer_least_outstanding(servers: Callable[..., Served]) -> None:
    a, b = servers(), servers()
    pool = build(route(a.url, b.url))
    pool.endpoints[0].foreign = 50  # as scraped: the server is busy with others' requests

    async def run() -> None:
        for _ in range(4):
            await pool.chat("openai", ASK)
        await pool.aclose()

    asyncio.run(run())
    assert (chats(a), chats(b)) == (0, 4)


def test_the_health_check_scrapes_vllm_queue_gauges(servers: Callable[..., Served]) -> None:
    busy, idle = servers(latency_ms=2000), servers()
    r = route(busy.url, idle.url, health=HealthConfig(interval_s=0.05,
                                                      metrics_path="/metrics"))
    pool = build(r)
    other = build(dataclasses.replace(r, name="other-worker",
                                      endpoints=r.endpoints[:1]))  # another gateway's view

    async def run() -> None:
        load = [asyncio.create_task(other.chat("openai", ASK)) for _ in range(3)]
        checks = asyncio.create_task(pool.run_health_checks())
        deadline = time.monotonic() + 60
        while pool.endpoints[0].foreign < 3:
            assert time.monotonic() < deadline, "the scrape never saw the busy server's queue"
            await asyncio.sleep(0.02)
        for _ in range(3):
            await pool.chat("openai", ASK)
        checks.cancel()
        await asyncio.gather(*load)
        await pool.aclose()
        await other.aclose()

    asyncio.run(run())
    assert chats(busy) == 3 and chats(idle) == 3  # ours went to the idle server


def test_server_queue_reads_vllm_exposition() -> None:
    text = ('# HELP vllm:num_requests_running x\n# TYPE vllm:num_requests_running gauge\n'
            'vllm:num_requests_running{model_name="a"} 3.0\n'
            'vllm:num_requests_running{model_name="b"} 1.0\n'
            'vllm:num_requests_waiting{model_name="a"} 2.0\n'
            'vllm:gpu_cache_usage_perc{model_name="a"} 0.5\n')
    assert server_queue(text) == 6
    assert server_queue("# nothing here\nother_metric 4\n") is None
    assert server_queue("vllm:num_requests_running{} not-a-number\n") is None


# --- concurrency ------------------------------------------------------------------------------

def test_max_concurrency_is_respected_and_excess_waits(servers: Callable[..., Served]) -> None:
    a = servers(latency_ms=200, max_concurrency=2)
    b = servers(latency_ms=200, max_concurrency=2)
    pool = build(route(a.url, b.url, limits=(2, 2)), queue_wait_s=60)
    peak: list[int] = []

    async def watch() -> None:
        while True:
            peak.append(max(server(a).running, server(b).running))
            await asyncio.sleep(0.01)

    async def run() -> None:
        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(pool.chat("openai", ASK) for _ in range(10)))
        watcher.cancel()
        await pool.aclose()

    asyncio.run(run())
    assert chats(a) + chats(b) == 10
    assert server(a).refused == server(b).refused == 0  # the servers' own limit never hit
    assert max(peak) <= 2


def test_full_pool_fails_over_after_a_brief_wait(servers: Callable[..., Served]) -> None:
    a = servers(latency_ms=500)
    pool = build(route(a.url, limits=(1,)), queue_wait_s=0.05)

    async def run() -> list[Any]:
        try:
            return await asyncio.gather(pool.chat("openai", ASK), pool.chat("openai", ASK),
                                        return_exceptions=True)
        finally:
            await pool.aclose()

    first, second = asyncio.run(run())
    assert isinstance(first, dict)
    assert isinstance(second, UpstreamError)
    assert (second.code, second.status, second.retryable) == ("upstream_overloaded", 503, True)
    assert "max_concurrency" in second.message
    assert chats(a) == 1


def test_a_server_at_its_own_limit_sends_the_request_elsewhere(
        servers: Callable[..., Served]) -> None:
    small = servers(latency_ms=300, max_concurrency=1)  # the pool does not know its limit
    big = servers(latency_ms=300)
    pool = build(route(small.url, big.url))

    async def run() -> None:
        await asyncio.gather(*(pool.chat("openai", ASK) for _ in range(4)))
        await pool.aclose()

    asyncio.run(run())
    assert server(small).refused >= 1
    assert pool.endpoints[0].state == "healthy"  # busy is not broken
    assert pool.endpoints[0].reason is None


# --- failures and ejection --------------------------------------------------------------------

def test_connection_refused_is_ejected_and_requests_still_answered(
        servers: Callable[..., Served]) -> None:
    dead, live = dead_url(), servers()
    r = route(dead, live.url, name="pool-refused")
    pool = build(r)

    async def run() -> None:
        for _ in range(6):
            await pool.chat("openai", ASK)
        await pool.aclose()

    asyncio.run(run())
    assert chats(live) == 6
    status = pool_status({r.name: pool})[r.name]
    down = status["servers"][0]
    assert down["state"] in ("ejected", "half_open") and down["reason"] == "connect"
    assert "cannot connect" in down["last_error"]
    labels = {"model": r.name, "endpoint": dead + "/v1"}
    assert metric("harbourgate_pool_endpoint_ejections_total", **labels, reason="connect") >= 1
    assert metric("harbourgate_pool_endpoint_errors_total", **labels, reason="connect") >= 1
    assert metric("harbourgate_pool_endpoint_up", **labels) == 0
    assert metric("harbourgate_pool_endpoint_duration_seconds_count", model=r.name,
                  endpoint=live.url + "/v1") == 6


def test_5xx_ejects_after_consecutive_failures(servers: Callable[..., Served],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "EJECT_BASE_S", 60)  # no probe during the test
    failing, live = servers(fail_rate=1.0), servers()
    pool = build(route(failing.url, live.url, balance="round_robin"))

    async def run() -> None:
        for _ in range(10):
            await pool.chat("openai", ASK)  # each failure is retried on the live server
        await pool.aclose()

    asyncio.run(run())
    assert chats(live) == 10
    assert chats(failing) == pool_module.CONSECUTIVE_5XX
    assert pool.endpoints[0].reason == "http_5xx"


def test_wrong_model_id_is_ejected(servers: Callable[..., Served],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "EJECT_BASE_S", 60)  # no probe during the test
    wrong, right = servers(model_id="llama-3-8b"), servers(model_id="qwen-local")
    pool = build(route(wrong.url, right.url, name="pool-wrong-model", balance="round_robin",
                      upstream_model="qwen-local"))

    async def run() -> None:
        for _ in range(4):
            await pool.chat("openai", ASK)
        await pool.aclose()

    asyncio.run(run())
    assert chats(right) == 4
    assert pool.endpoints[0].reason == "wrong_model"
    assert "does not exist" in (pool.endpoints[0].last_error or "")
    assert metric("harbourgate_pool_endpoint_ejections_total", model="pool-wrong-model",
                  endpoint=wrong.url + "/v1", reason="wrong_model") == 1


async def _garbage_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A server that answers every request with an HTML error page and status 200."""
    if scope["type"] != "http":
        return
    body = b"<html><body>upstream misconfigured</body></html>"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_garbage_is_ejected(servers: Callable[..., Served]) -> None:
    live = servers()
    with serve(_garbage_app) as garbage:
        pool = build(route(garbage.url, live.url, balance="round_robin"))

        async def run() -> None:
            for _ in range(3):
                await pool.chat("openai", ASK)
            await pool.aclose()

        asyncio.run(run())
    assert chats(live) == 3
    assert pool.endpoints[0].reason == "garbage"


def test_timeouts_are_ejected(servers: Callable[..., Served]) -> None:
    slow, live = servers(latency_ms=3000), servers()
    pool = build(dataclasses.replace(route(slow.url, live.url, balance="round_robin"),
                                     timeout_s=0.3))

    async def run() -> None:
        for _ in range(3):
            await pool.chat("openai", ASK)
        await pool.aclose()

    asyncio.run(run())
    assert chats(live) == 3
    assert pool.endpoints[0].reason == "timeout"


def test_a_refused_request_is_not_the_servers_fault(servers: Callable[..., Served]) -> None:
    a = servers()
    pool = build(route(a.url))
    bad = {"model": "qwen-local", "messages": [{"role": "user", "content": "x"}],
           "max_tokens": -1}

    async def run() -> UpstreamError:
        try:
            with pytest.raises(UpstreamError) as caught:
                await pool.chat("openai", bad)
            return caught.value
        finally:
            await pool.aclose()

    error = asyncio.run(run())
    assert (error.code, error.retryable) == ("invalid_request", False)
    assert pool.endpoints[0].state == "healthy" and chats(a) == 1


def test_no_healthy_server_is_a_retryable_route_failure() -> None:
    pool = build(route(dead_url(), dead_url(), name="pool-all-dead"))

    async def run() -> tuple[UpstreamError, UpstreamError]:
        try:
            with pytest.raises(UpstreamError) as first:
                await pool.chat("openai", ASK)
            with pytest.raises(UpstreamError) as second:
                await pool.chat("openai", ASK)
            return first.value, second.value
        finally:
            await pool.aclose()

    first, second = asyncio.run(run())
    assert first.retryable and first.code == "upstream_error"
    assert "every pool server tried failed" in first.message and "connect" in first.message
    assert second.retryable and "no pool server is healthy" in second.message
    assert "ejected (connect)" in second.message


def test_half_open_probe_puts_a_returning_server_back(servers: Callable[..., Served]) -> None:
    live = servers()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    pool = build(route(url, live.url, balance="round_robin"))

    async def fail_once() -> None:
        for _ in range(2):
            await pool.chat("openai", ASK)
        await POOL.close()  # this loop's connections; the next loop opens its own

    asyncio.run(fail_once())
    assert pool.endpoints[0].reason == "connect"
    with serve(create_server(), port) as back:
        time.sleep(pool_module.EJECT_MAX_S)  # the back-off (shortened for the test) ends

        async def run() -> None:
            for _ in range(6):
                await pool.chat("openai", ASK)
            await pool.aclose()

        asyncio.run(run())
        assert chats(back) == 3  # the probe, then its turns again
    assert pool.endpoints[0].state == "healthy" and pool.endpoints[0].reason is None


def test_failed_probe_doubles_the_backoff() -> None:
    pool = build(route(dead_url(), name="pool-backoff"))

    async def run() -> list[float]:
        seen = []
        for _ in range(3):
            with pytest.raises(UpstreamError):
                await pool.chat("openai", ASK)
            seen.append(pool.endpoints[0].backoff_s)
            pool.endpoints[0].ejected_until = time.monotonic()  # the back-off is over
        await pool.aclose()
        return seen

    assert asyncio.run(run()) == [0.2, 0.4, 0.8]


# --- the active health check ------------------------------------------------------------------

def test_health_check_takes_a_dead_server_out_before_anyone_hits_it(
        servers: Callable[..., Served]) -> None:
    live = servers()
    dead = dead_url()
    pool = build(route(dead, live.url, health=HealthConfig(interval_s=0.05)))

    async def run() -> None:
        checks = asyncio.create_task(pool.run_health_checks())
        deadline = time.monotonic() + 60
        while pool.endpoints[0].health_ok:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        for _ in range(8):
            await pool.chat("openai", ASK)
        checks.cancel()
        await pool.aclose()

    asyncio.run(run())
    assert chats(live) == 8
    ep = pool.endpoints[0]
    assert ep.state == "down" and ep.requests == 0 and ep.errors == 0
    assert "health check" in (ep.last_error or "")


def test_health_check_brings_a_server_back(servers: Callable[..., Served]) -> None:
    live = servers()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = build(route(f"http://127.0.0.1:{port}", live.url, balance="round_robin",
                       health=HealthConfig(interval_s=0.05)))

    async def until(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not check():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)

    async def down() -> None:
        checks = asyncio.create_task(pool.run_health_checks())
        await until(lambda: pool.endpoints[0].state == "down")
        checks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checks
        await POOL.close()  # this loop's connections; the next loop opens its own

    asyncio.run(down())
    with serve(create_server(), port) as back:
        async def up() -> None:
            checks = asyncio.create_task(pool.run_health_checks())
            await until(lambda: pool.endpoints[0].state == "healthy")
            for _ in range(4):
                await pool.chat("openai", ASK)
            checks.cancel()
            await pool.aclose()

        asyncio.run(up())
        assert chats(back) == 2


# --- streams ----------------------------------------------------------------------------------

def test_a_stream_holds_its_slot_until_it_ends(servers: Callable[..., Served]) -> None:
    a = servers()
    pool = build(route(a.url, limits=(1,)), queue_wait_s=0)

    async def run() -> str:
        stream = await pool.open_stream("openai", {**ASK, "stream": True})
        assert pool.endpoints[0].outstanding == 1
        with pytest.raises(UpstreamError) as full:
            await pool.chat("openai", ASK)
        assert full.value.code == "upstream_overloaded"
        text = ""
        async for event in stream:
            for choice in event.data.get("choices", []):
                text += choice["delta"].get("content") or ""
        assert pool.endpoints[0].outstanding == 0
        early = await pool.open_stream("anthropic", {
            "model": "qwen-local", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]})
        await early.__anext__()
        await early.aclose()
        assert pool.endpoints[0].outstanding == 0
        await pool.aclose()
        return text

    assert asyncio.run(run()).endswith("hello pool")


# --- the classifier ---------------------------------------------------------------------------

@pytest.mark.parametrize(("error", "reason"), [
    (UpstreamError("m: the upstream did not answer in time", status=504,
                   code="upstream_timeout"), "timeout"),
    (UpstreamError("m: the upstream is rate limiting (HTTP 429: slow down)"), "rate_limited"),
    (UpstreamError("m: the upstream failed (HTTP 503: x)"), "http_5xx"),
    (UpstreamError("m: the upstream does not know the endpoint or model (HTTP 404: x)"),
     "wrong_model"),
    (UpstreamError("m: the upstream rejected the route's credentials (HTTP 401: x)"), "auth"),
    (UpstreamError("m: cannot connect to the upstream (connection refused)"), "connect"),
    (UpstreamError("m: the upstream closed the connection"), "disconnected"),
    (UpstreamError("m: the upstream answered with a body that is not JSON (b'<')"), "garbage"),
    (UpstreamError("m: something else"), "error"),
])
def test_failure_reasons(error: UpstreamError, reason: str) -> None:
    assert failure_reason(error) == reason


def test_pool_needs_one_adapter_per_endpoint() -> None:
    from harbourgate.providers.standin.upstream import StandInUpstream

    r = route("http://127.0.0.1:1", "http://127.0.0.1:2")
    with pytest.raises(ValueError, match="one adapter per endpoint"):
        Pool(r, [StandInUpstream(r)])


def test_stand_in_server_refuses_beyond_its_limit() -> None:
    app = ServerApp(create_app(latency_ms=300), max_concurrency=1)
    with serve(app) as served:
        import httpx

        async def run() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
                return await asyncio.gather(*(client.post("/v1/chat/completions", json=ASK)
                                              for _ in range(3)))

        answers = asyncio.run(run())
        statuses = sorted(r.status_code for r in answers)
        assert statuses[0] == 200 and 429 in statuses
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["message"].startswith("The server is at its max")
        health = httpx.get(served.url + "/health")
        assert (health.status_code, health.content) == (200, b"")
        text = httpx.get(served.url + "/metrics").text
        assert 'vllm:num_requests_running{model_name="stand-in"} 0.0' in text
        assert "vllm:num_requests_waiting" in text
        assert f"standin_requests_refused_total {float(app.refused)}" in text
    with pytest.raises(ValueError, match="at least 1"):
        ServerApp(create_app(), max_concurrency=0)


def test_stand_in_server_with_a_model_id() -> None:
    import httpx

    with serve(create_server(model_id="qwen-local")) as served:
        assert httpx.post(served.url + "/v1/chat/completions", json=ASK).status_code == 200
        wrong = httpx.post(served.url + "/v1/chat/completions", json={**ASK, "model": "glm"})
        assert wrong.status_code == 404
        assert wrong.json()["error"]["message"] == "The model `glm` does not exist."
        listed = httpx.get(served.url + "/v1/models").json()
        assert [m["id"] for m in listed["data"]] == ["qwen-local"]


# --- the choice, as a property ----------------------------------------------------------------

_state = st.tuples(st.booleans(), st.integers(0, 4), st.sampled_from([None, 1, 2, 4]),
                   st.sampled_from(["in", "ejected", "due", "probing"]), st.integers(0, 5))


@settings(max_examples=300, deadline=None)
@given(states=st.lists(_state, min_size=1, max_size=8),
       balance=st.sampled_from(["least_outstanding", "round_robin"]))
def test_the_choice_is_always_an_eligible_server(states: list[tuple[Any, ...]],
                                                 balance: str) -> None:
    """Never a server that is down, full, ejected or already probing; the least loaded
    one under least_outstanding; every eligible one within a round under round_robin."""
    from harbourgate.providers.standin.upstream import StandInUpstream

    r = route(*(f"http://10.0.0.{i}:8000" for i in range(len(states))), balance=balance,
              name="pool-property")
    r = dataclasses.replace(r, endpoints=tuple(
        EndpointConfig(ep.base_url, limit) for ep, (_, _, limit, _, _) in
        zip(r.endpoints, states, strict=True)))
    pool = Pool(r, [StandInUpstream(r) for _ in states])
    now = time.monotonic()
    for ep, (healthy, outstanding, _, ejection, foreign) in zip(pool.endpoints, states,
                                                                strict=True):
        ep.health_ok, ep.outstanding, ep.foreign = healthy, outstanding, foreign
        if ejection != "in":
            ep.ejected_until = now + 60 if ejection == "ejected" else now - 1
            ep.probing = ejection == "probing"
    eligible = [ep for ep, (healthy, outstanding, limit, ejection, _) in
                zip(pool.endpoints, states, strict=True)
                if healthy and (limit is None or outstanding < limit)
                and ejection in ("in", "due")]
    picks = [pool._pick(now, []) for _ in range(len(states))]
    if not eligible:
        assert picks == [None] * len(states)
        return
    assert all(p in eligible for p in picks)
    if balance == "least_outstanding":
        least = min(ep.outstanding + ep.foreign for ep in eligible)
        assert all(p is not None and p.outstanding + p.foreign == least for p in picks)
    else:
        assert set(map(id, picks)) >= set(map(id, eligible))
    assert pool._pick(now, eligible) is None  # every eligible one tried: nothing left


def test_failures_in_flight_at_ejection_do_not_lengthen_the_backoff() -> None:
    """Requests already on a server when it dies fail together: one ejection, not one
    doubling of the back-off per request."""
    dead = dead_url()
    pool = build(route(dead, name="pool-mass-failure"))

    async def run() -> None:
        with pytest.raises(UpstreamError):
            await pool.chat("openai", ASK)
        await pool.aclose()

    asyncio.run(run())
    ep = pool.endpoints[0]
    assert ep.backoff_s == 0.2
    for _ in range(3):  # the others that were in flight when it died
        pool._failed(ep, "disconnected", "the upstream closed the connection")
    assert ep.backoff_s == 0.2 and ep.reason == "connect" and ep.errors == 4
    assert metric("harbourgate_pool_endpoint_ejections_total", model="pool-mass-failure",
                  endpoint=dead + "/v1", reason="connect") == 1
    assert metric("harbourgate_pool_endpoint_errors_total", model="pool-mass-failure",
                  endpoint=dead + "/v1", reason="disconnected") == 3


_MULTIPROCESS = """
import asyncio, sys
from harbourgate.config import EndpointConfig, HealthConfig, RouteConfig
from harbourgate.gateway.metrics import render
from harbourgate.providers.registry import build_upstreams

route = RouteConfig(name="qwen-local", provider="openai", health=HealthConfig(interval_s=0),
                    endpoints=(EndpointConfig(sys.argv[1] + "/v1", 4),
                               EndpointConfig(sys.argv[2] + "/v1")))
pool = build_upstreams([route])["qwen-local"]

async def run():
    for _ in range(3):
        await pool.chat("openai", {"model": "qwen-local",
                                   "messages": [{"role": "user", "content": "hi"}]})
    await pool.aclose()

asyncio.run(run())
sys.stdout.write(render()[0].decode())
"""


def test_metrics_under_multiple_workers(servers: Callable[..., Served], tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set (serve --workers N), the pool's metrics are
    written to the shared files and the gateway's /metrics renders them."""
    live = servers()
    dead = dead_url()
    done = subprocess.run([sys.executable, "-c", _MULTIPROCESS, live.url, dead],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    text = done.stdout
    ok = f'endpoint="{live.url}/v1",model="qwen-local"'
    assert f"harbourgate_pool_endpoint_duration_seconds_count{{{ok}}} 3.0" in text
    assert f"harbourgate_pool_endpoint_in_flight{{{ok}}} 0.0" in text
    assert f"harbourgate_pool_endpoint_up{{{ok}}} 1.0" in text
    assert (f'harbourgate_pool_endpoint_ejections_total{{endpoint="{dead}/v1",'
            f'model="qwen-local",reason="connect"}} 1.0') in text
    assert f'harbourgate_pool_endpoint_up{{endpoint="{dead}/v1",model="qwen-local"}} 0.0' in text


def test_a_waiter_cancelled_after_being_woken_passes_the_slot_on(
        servers: Callable[..., Served]) -> None:
    """A caller that leaves while queued for a slot does not take the slot with it."""
    a = servers(latency_ms=1000)  # the stayer's request is still on the server below
    pool = build(route(a.url, limits=(1,)), queue_wait_s=3600)
    ep = pool.endpoints[0]

    async def run() -> dict[str, Any]:
        ep.outstanding = 1  # the one slot is taken
        leaver = asyncio.create_task(pool.chat("openai", ASK))   # queued first
        stayer = asyncio.create_task(pool.chat("openai", ASK))   # queued second
        while len(pool._waiters) < 2:
            await asyncio.sleep(0)
        pool._free(ep)  # the slot comes free and wakes the leaver ...
        leaver.cancel()  # ... which leaves before it can take it
        for _ in range(10):  # no I/O: a few turns of the loop
            await asyncio.sleep(0)
        assert (ep.outstanding, len(pool._waiters)) == (1, 0)  # the stayer has the slot
        answer = await stayer
        assert leaver.cancelled()
        await pool.aclose()
        return answer

    assert asyncio.run(run())["model"] == "qwen-local"
    assert chats(a) == 1 and ep.outstanding == 0
