"""Streams that end badly: the client leaves, the upstream stalls or drips forever, the
upstream breaks off, the audit log is down. Each ends with the upstream stream closed, an
error event in the caller's shape, and an audit record (or 503 audit_unavailable in its
place). No timing bounds: the waits are generous and only check that things happened."""

from __future__ import annotations

import asyncio

import pytest

from harbourgate.providers.base import UpstreamError
from tests.gateway.doubles import Rig, request, rig, route

BODIES = {
    "openai": ("/v1/chat/completions", {"model": "fable-5", "stream": True,
                                        "messages": [{"role": "user", "content": "hello"}]}),
    "anthropic": ("/v1/messages", {"model": "fable-5", "stream": True, "max_tokens": 9,
                                   "messages": [{"role": "user", "content": "hello"}]}),
    "responses": ("/v1/responses", {"model": "fable-5", "stream": True, "input": "hello"}),
}


def interrupted(r: Rig) -> dict:
    """The stream_interrupted record (the stream's usage record follows it)."""
    kinds = [rec["kind"] for rec in r.audit.records]
    assert kinds == ["request", "stream_interrupted", "usage"], kinds
    return r.audit.records[1]


def stalling(*, idle: float = 0.3, max_stream_s: float = 3600.0, **options: object) -> Rig:
    r = rig(routes=(route("fable-5", timeout_s=idle),), max_stream_s=max_stream_s)
    r.upstreams["fable-5"].stream_options = options
    return r


@pytest.mark.parametrize("shape", ["openai", "anthropic", "responses"])
def test_a_departing_client_closes_the_upstream_stream(shape: str) -> None:
    r = rig()
    r.upstreams["fable-5"].stream_options = {"hang": True}
    path, body = BODIES[shape]

    async def scenario() -> None:
        reply = await asyncio.wait_for(
            request(r.gateway, "POST", path, body, leave_after=2), timeout=120)
        assert reply.status == 200
        stream = r.upstreams["fable-5"].streams[0]
        await asyncio.wait_for(stream.closed.wait(), timeout=120)
        assert stream.sent == 3  # it was stalled mid-stream, not run to its end

    asyncio.run(scenario())
    assert [rec["kind"] for rec in r.audit.records] == ["request", "usage"]
    usage = r.audit.records[1]  # metered for what was delivered
    assert usage["request_id"] == "entry-1" and usage["ended"] == "gone"
    assert usage["usage"]["input_tokens"] == 7 and usage["usage"]["output_tokens"] == 0


@pytest.mark.parametrize("shape", ["openai", "anthropic", "responses"])
def test_an_idle_upstream_ends_the_stream_with_an_error_event(shape: str) -> None:
    r = stalling(hang=True)
    path, body = BODIES[shape]
    reply = asyncio.run(request(r.gateway, "POST", path, body))
    assert reply.status == 200
    event, data = reply.events()[-1]
    error = data if shape == "responses" else data["error"]
    assert error["code"] == "upstream_timeout" and "timeout_s" in error["message"]
    assert event == (None if shape == "openai" else "error")
    record = interrupted(r)
    assert record["code"] == "upstream_timeout" and error["audit_id"] == "entry-2"
    assert r.audit.records[2]["ended"] == "cut"
    assert r.upstreams["fable-5"].streams[0].closed.is_set()


def test_a_stream_that_never_ends_meets_the_overall_deadline() -> None:
    r = stalling(idle=60, drip=0.01, max_stream_s=1.0)
    path, body = BODIES["anthropic"]
    reply = asyncio.run(request(r.gateway, "POST", path, body))
    _, data = reply.events()[-1]
    assert data["error"]["code"] == "upstream_timeout"
    assert "limits.max_stream_s" in data["error"]["message"]
    assert r.upstreams["fable-5"].streams[0].sent > 3  # it kept dripping until the deadline
    assert interrupted(r)["code"] == "upstream_timeout"


def test_a_broken_off_stream_is_recorded_with_its_partial_usage() -> None:
    r = rig()
    r.upstreams["fable-5"].stream_options = {"fail": UpstreamError("connection reset")}
    path, body = BODIES["openai"]
    reply = asyncio.run(request(r.gateway, "POST", path, body))
    _, data = reply.events()[-1]
    assert data["error"]["code"] == "upstream_error"
    assert "connection reset" in data["error"]["message"]
    record = interrupted(r)
    assert record["status"] == 502
    assert record["usage"]["input_tokens"] == 7 and record["usage"]["output_tokens"] == 0
    usage = r.audit.records[2]
    assert usage["request_id"] == "entry-1" and usage["ended"] == "cut"
    assert usage["usage"] == record["usage"] and usage["cost"] == 0.0


def test_an_interruption_that_cannot_be_recorded_says_audit_unavailable() -> None:
    r = rig()
    r.upstreams["fable-5"].stream_options = {"fail": UpstreamError("connection reset")}
    path, body = BODIES["anthropic"]

    async def scenario() -> list:
        original = r.audit.append

        async def first_only(record: dict, entry_id: str | None = None) -> str:
            r.audit.broken = bool(r.audit.records)  # the answer is recorded, then the disk fills
            return await original(record, entry_id)

        r.audit.append = first_only  # type: ignore[method-assign]
        return (await request(r.gateway, "POST", path, body)).events()

    event, data = asyncio.run(scenario())[-1]
    assert event == "error" and data["error"]["code"] == "audit_unavailable"
    assert len(r.audit.records) == 1
