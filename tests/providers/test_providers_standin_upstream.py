"""The in-process stand-in adapter: same answers as the server, same failures, no network."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harbourgate.config import RouteConfig
from harbourgate.providers import UpstreamError
from harbourgate.providers.registry import build_upstreams
from harbourgate.providers.standin import StandInUpstream
from harbourgate.providers.standin.upstream import CUT_AFTER
from harbourgate.shapes import Usage


def upstream(model: str = "fable-5", **kw: Any) -> StandInUpstream:
    timeout_s = kw.pop("timeout_s", 5.0)
    r = RouteConfig(name="gw", provider="stand-in", upstream_model=model, timeout_s=timeout_s)
    return StandInUpstream(r, **kw)


OPENAI = {"model": "gw", "messages": [{"role": "user", "content": "in process"}]}
ANTHROPIC = {**OPENAI, "max_tokens": 50}


def test_chat_in_both_shapes_names_the_route() -> None:
    up = upstream()
    completion = asyncio.run(up.chat("openai", OPENAI))
    assert completion["choices"][0]["message"]["content"] == "[fable-5] You said: in process"
    assert completion["model"] == "gw"
    message = asyncio.run(up.chat("anthropic", ANTHROPIC))
    assert message["content"] == [{"type": "text", "text": "[fable-5] You said: in process"}]
    assert message["model"] == "gw"


def test_the_default_routes_answer_in_process() -> None:
    built = build_upstreams([RouteConfig(name="qwen-local")])
    answer = asyncio.run(built["qwen-local"].chat("openai", OPENAI))
    assert answer["choices"][0]["message"]["content"] == "[qwen-local] You said: in process"


def test_streams_in_both_shapes() -> None:
    async def scenario(shape: str, body: dict) -> tuple[list, dict]:
        stream = await upstream().open_stream(shape, {**body, "stream": True})  # type: ignore[arg-type]
        return [e async for e in stream], stream.usage

    chunks, usage = asyncio.run(scenario("openai", OPENAI))
    assert "".join(c.data["choices"][0]["delta"].get("content") or "" for c in chunks) == (
        "[fable-5] You said: in process")
    assert usage == Usage(input_tokens=2, output_tokens=5)
    events, _ = asyncio.run(scenario("anthropic", ANTHROPIC))
    assert events[0].data["message"]["model"] == "gw"
    assert events[-1].event == "message_stop"


def test_embeddings() -> None:
    out = asyncio.run(upstream("embed-small").embed({"model": "gw", "input": "x",
                                                     "dimensions": 2}))
    assert out["model"] == "gw"
    assert len(out["data"][0]["embedding"]) == 2


def test_a_malformed_request_is_a_non_retryable_400() -> None:
    with pytest.raises(UpstreamError) as info:
        asyncio.run(upstream().chat("anthropic", OPENAI))
    assert (info.value.status, info.value.code, info.value.retryable) == (
        400, "invalid_request", False)
    assert info.value.message == "model 'gw' refused the request: max_tokens: Field required"
    with pytest.raises(UpstreamError, match="input must be a string"):
        asyncio.run(upstream().embed({"input": []}))


def test_hang_times_out_after_the_routes_timeout() -> None:
    with pytest.raises(UpstreamError) as info:
        asyncio.run(upstream("standin-hang", timeout_s=0.01).chat("openai", OPENAI))
    assert (info.value.status, info.value.code, info.value.retryable) == (
        504, "upstream_timeout", True)


@pytest.mark.parametrize(("model", "message"), [
    ("standin-500", "model 'gw': the upstream failed (HTTP 500: standin-500 always fails)"),
    ("standin-garbage", "model 'gw': the upstream answered with a body that is not JSON"),
])
def test_failing_models_are_retryable_502s(model: str, message: str) -> None:
    with pytest.raises(UpstreamError) as info:
        asyncio.run(upstream(model).chat("openai", OPENAI))
    assert (info.value.status, info.value.code, info.value.retryable) == (
        502, "upstream_error", True)
    assert info.value.message == message


def test_cut_breaks_off_after_a_few_events() -> None:
    received: list = []

    async def scenario() -> None:
        stream = await upstream("standin-cut").open_stream("anthropic", ANTHROPIC)
        async for event in stream:
            received.append(event)

    with pytest.raises(UpstreamError) as info:
        asyncio.run(scenario())
    assert info.value.retryable is False
    assert info.value.message == "model 'gw': the upstream closed the stream before its end"
    assert len(received) == CUT_AFTER


def test_fail_rate_is_deterministic_for_a_seed() -> None:
    async def outcomes(seed: int) -> list[bool]:
        up = upstream(fail_rate=0.5, seed=seed)
        results = []
        for _ in range(30):
            try:
                await up.chat("openai", OPENAI)
                results.append(True)
            except UpstreamError:
                results.append(False)
        return results

    first, again = asyncio.run(outcomes(3)), asyncio.run(outcomes(3))
    assert first == again
    assert set(first) == {True, False}
