"""The official `anthropic` SDK against a running `harbourgate serve`."""

from __future__ import annotations

import anthropic
import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.keys["acme-research"],
                               max_retries=0, timeout=20)


@pytest.mark.parametrize("model", ["mythos-5", "fable-5", "qwen-local"])
def test_messages(client: anthropic.Anthropic, model: str) -> None:
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=100, system="Be brief.",
        messages=[{"role": "user", "content": "hello from kowloon"}])
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert "hello from kowloon" in message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["x-harbourgate-model"] == model
    assert raw.headers["x-harbourgate-decision"] == "allow"


def test_messages_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="fable-5", max_tokens=2,
                                     messages=[{"role": "user", "content": "a b c d e f"}])
    assert message.stop_reason == "max_tokens"


@pytest.mark.parametrize("model", ["mythos-5", "fable-5", "qwen-local"])
def test_streaming_messages(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(model=model, max_tokens=100,
                                messages=[{"role": "user", "content": "stream to lantau"}]
                                ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "stream to lantau" in text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_models_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    names = {m.id for m in client.models.list()}
    assert {"fable-5", "mythos-5"} <= names


def test_failover(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.keys["acme-failover"],
                                 max_retries=0, timeout=30)
    raw = client.messages.with_raw_response.create(
        model="broken-5", max_tokens=50, messages=[{"role": "user", "content": "over"}])
    assert raw.headers["x-harbourgate-decision"] == "reroute"
    assert raw.headers["x-harbourgate-rerouted-from"] == "broken-5"


def test_bad_key(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        client.messages.create(model="fable-5", max_tokens=10,
                               messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["code"] == "invalid_api_key"  # type: ignore[index]
    assert exc.value.body["type"] == "error"  # type: ignore[index]


def test_unknown_model(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.create(model="claude-nonexistent", max_tokens=10,
                               messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["code"] == "model_not_found"  # type: ignore[index]
    assert exc.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_missing_max_tokens_names_the_field(gateway: Gateway) -> None:
    import httpx

    r = httpx.post(gateway.url + "/v1/messages", headers={
        "x-api-key": gateway.keys["acme-research"], "anthropic-version": "2023-06-01"},
        json={"model": "fable-5", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    assert "'max_tokens'" in r.json()["error"]["message"]


def test_oversized(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model="fable-5", max_tokens=10,
                               messages=[{"role": "user", "content": "y" * 150_000}])
    assert exc.value.status_code == 413
    assert exc.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]


def test_upstream_timeout(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.keys["acme-failover"],
                                 max_retries=0, timeout=30)
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model="slow-5", max_tokens=10,
                               messages=[{"role": "user", "content": "x"}],
                               extra_headers={"X-Harbourgate-Fallback": "none"})
    assert exc.value.status_code == 504
    assert exc.value.body["error"]["code"] == "upstream_timeout"  # type: ignore[index]


def test_stream_cut(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIError), client.messages.stream(
            model="cut-5", max_tokens=100,
            messages=[{"role": "user", "content": "this will be cut short by the upstream"}],
            extra_headers={"X-Harbourgate-Fallback": "none"}) as stream:
        for _ in stream.text_stream:
            pass
