"""The official `openai` SDK against a running `harbourgate serve`, unchanged but for
base_url and key: plain and streaming chat, embeddings, models, failover and every error."""

from __future__ import annotations

import base64

import openai
import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys["acme-research"],
                         max_retries=0, timeout=20)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_chat_through_openai_shaped_upstream(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fable-5", messages=ask("hello harbour"))
    answer = raw.parse()
    assert "hello harbour" in answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens > 0
    assert raw.headers["x-harbourgate-decision"] == "allow"
    assert raw.headers["x-harbourgate-model"] == "fable-5"
    assert "x-harbourgate-rerouted-from" not in raw.headers
    assert len(raw.headers["x-harbourgate-audit"]) >= 16


def test_chat_through_anthropic_shaped_upstream_is_translated(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="mythos-5", messages=ask("translate me"),
                                            max_tokens=200)
    assert "translate me" in answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens > 0


def test_chat_max_tokens_gives_length(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="mythos-5", messages=ask("one two three four"),
                                            max_tokens=2)
    assert answer.choices[0].finish_reason == "length"


@pytest.mark.parametrize("model", ["fable-5", "mythos-5", "qwen-local"])
def test_streaming_chat(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(model=model, messages=ask("stream this please"),
                                            stream=True)
    text, finish = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert "stream this please" in text
    assert finish == "stop"


def test_audit_ids_are_unique(client: openai.OpenAI) -> None:
    ids = {client.chat.completions.with_raw_response.create(
        model="fable-5", messages=ask(f"n{i}")).headers["x-harbourgate-audit"] for i in range(5)}
    assert len(ids) == 5


def test_embeddings_default_base64_and_float(client: openai.OpenAI) -> None:
    default = client.embeddings.create(model="embed-small", input=["alpha", "beta"])
    assert len(default.data) == 2 and len(default.data[0].embedding) > 0
    floats = client.embeddings.create(model="embed-small", input="alpha",
                                      encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(default.data[0].embedding, rel=1e-6)
    raw = client.embeddings.with_raw_response.create(model="embed-small", input="alpha",
                                                     encoding_format="base64")
    assert base64.b64decode(raw.parse().data[0].embedding)  # type: ignore[arg-type]
    assert raw.headers["x-harbourgate-model"] == "embed-small"


def test_models_lists_routes(client: openai.OpenAI) -> None:
    names = {m.id for m in client.models.list()}
    assert {"fable-5", "mythos-5", "glm-5.2", "qwen-local", "embed-small"} <= names


def test_failover_to_next_model_in_preference(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys["acme-failover"],
                           max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(model="broken-5",
                                                           messages=ask("fail over"))
    assert raw.headers["x-harbourgate-decision"] == "reroute"
    assert raw.headers["x-harbourgate-model"] == "fable-5"
    assert raw.headers["x-harbourgate-rerouted-from"] == "broken-5"
    assert "fail over" in raw.parse().choices[0].message.content


def test_streaming_failover(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys["acme-failover"],
                           max_retries=0, timeout=30)
    with client.chat.completions.with_streaming_response.create(
            model="broken-5", messages=ask("streamed failover"), stream=True) as raw:
        assert raw.headers["x-harbourgate-model"] == "fable-5"
        assert raw.headers["x-harbourgate-rerouted-from"] == "broken-5"
        assert raw.headers["x-harbourgate-decision"] == "reroute"
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert "streamed failover" in text


# -- errors, as the SDK raises them ----------------------------------------------------

def test_unknown_key(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="hg_not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="fable-5", messages=ask("x"))
    assert exc.value.status_code == 401
    assert exc.value.code == "invalid_api_key"
    assert "unknown or revoked" in exc.value.message


def test_revoked_key_stops_working(gateway: Gateway) -> None:
    issued = gateway.admin("POST", "/applications/acme-research/keys").json()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=issued["key"], max_retries=0)
    client.chat.completions.create(model="fable-5", messages=ask("before"))
    assert gateway.admin("DELETE", f"/keys/{issued['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="fable-5", messages=ask("after"))
    assert exc.value.code == "invalid_api_key"


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-nonexistent", messages=ask("x"))
    assert exc.value.code == "model_not_found"
    assert "gpt-nonexistent" in exc.value.message
    assert exc.value.body["audit_id"]  # type: ignore[index]


def test_missing_messages_names_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="fable-5", messages=[])
    assert exc.value.code == "invalid_request"
    assert "'messages'" in exc.value.message
    assert exc.value.param == "messages"


def test_wrong_field_type_names_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="fable-5", messages=ask("x"),
                                       temperature="hot")  # type: ignore[arg-type]
    assert exc.value.param == "temperature"


def test_oversized_body(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="fable-5", messages=ask("x" * 150_000))
    assert exc.value.status_code == 413
    assert exc.value.code == "request_too_large"


def test_upstream_timeout(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys["acme-failover"],
                           max_retries=0, timeout=30)
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="slow-5", messages=ask("x"),
                                       extra_headers={"X-Harbourgate-Fallback": "none"})
    assert exc.value.status_code == 504
    assert exc.value.code == "upstream_timeout"


def test_upstream_garbage_without_fallback(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys["acme-failover"],
                           max_retries=0, timeout=30)
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="garbage-5", messages=ask("x"),
                                       extra_headers={"X-Harbourgate-Fallback": "none"})
    assert exc.value.status_code == 502
    assert exc.value.code == "upstream_error"
    assert "garbage-5" in exc.value.message


def test_stream_cut_mid_way_raises_in_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="cut-5", messages=ask("this stream will be cut short by the upstream"),
        stream=True, extra_headers={"X-Harbourgate-Fallback": "none"})
    with pytest.raises(openai.APIError) as exc:
        for _ in stream:
            pass
    assert "mid-stream" in str(exc.value)
