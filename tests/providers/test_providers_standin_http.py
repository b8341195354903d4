"""The stand-in over HTTP (a real uvicorn), driven by the official openai and anthropic SDKs."""

from __future__ import annotations

import asyncio
import base64
import struct
import subprocess
import sys
import time
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from harbourgate.providers.standin import create_app
from harbourgate.providers.standin.app import RECORD_LIMIT, StandInApp


@pytest.fixture
def oai(standin) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=standin.openai_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def ant(standin) -> anthropic.Anthropic:  # type: ignore[no-untyped-def]
    return anthropic.Anthropic(base_url=standin.url, api_key="sk-ant-test", max_retries=0)


# --------------------------------------------------------------------------- OpenAI SDK


def test_openai_chat_completion(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="fable-5", messages=[{"role": "user", "content": "hello there"}])
    assert completion.choices[0].message.content == "[fable-5] You said: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "fable-5"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 5)
    assert completion.id.startswith("chatcmpl-")


def test_openai_streaming_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(
        model="glm-5.2", messages=[{"role": "user", "content": "split these words"}],
        stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[glm-5.2] You said: split these words"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_openai_stream_helper_gives_the_final_completion_with_tool_calls(
        oai: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    with oai.chat.completions.stream(
            model="fable-5", messages=[{"role": "user", "content": "weather in Kowloon"}],
            tools=tools) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather"  # type: ignore[union-attr]
    assert orjson.loads(call.function.arguments) == {"city": "weather in Kowloon"}  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"


def test_openai_embeddings_default_base64_equals_float(oai: openai.OpenAI) -> None:
    default = oai.embeddings.create(model="embed-small", input=["港口", "harbour"])
    floats = oai.embeddings.create(model="embed-small", input=["港口", "harbour"],
                                   encoding_format="float")
    assert len(default.data) == 2
    assert len(default.data[0].embedding) == 1536
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)


def test_openai_embeddings_dimensions(oai: openai.OpenAI) -> None:
    out = oai.embeddings.create(model="embed-small", input="x", dimensions=16)
    assert len(out.data[0].embedding) == 16
    assert out.usage.prompt_tokens == 1


def test_embeddings_base64_is_little_endian_float32(standin) -> None:  # type: ignore[no-untyped-def]
    raw = httpx.post(standin.openai_url + "/embeddings",
                     json={"model": "e", "input": "x", "dimensions": 4,
                           "encoding_format": "base64"}).json()
    floats = httpx.post(standin.openai_url + "/embeddings",
                        json={"model": "e", "input": "x", "dimensions": 4}).json()
    decoded = struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats["data"][0]["embedding"], abs=1e-7)


def test_openai_models(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "fable-5" in ids and "embed-small" in ids


def test_openai_bad_request_is_a_400_in_openais_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="fable-5", messages=[], max_tokens=3)
    assert info.value.status_code == 400
    assert info.value.body == {"message": "messages: a non-empty list of messages is required",
                               "type": "invalid_request_error", "param": "messages",
                               "code": "invalid_request"}


def test_openai_500_model(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model="standin-500",
                                    messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 500
    assert info.value.body == {"message": "standin-500 always fails.", "type": "server_error",
                               "param": None, "code": None}


# --------------------------------------------------------------------------- Anthropic SDK


def test_anthropic_message(ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(model="fable-5", max_tokens=3,
                                  messages=[{"role": "user", "content": "one two three"}])
    assert message.content[0].text == "[fable-5] You said:"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 3)
    assert message.id.startswith("msg_")


def test_anthropic_stream_helper(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(model="mythos-5", max_tokens=100, stop_sequences=["three"],
                             messages=[{"role": "user", "content": "one two three four"}]
                             ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "[mythos-5] You said: one two "
    assert len(pieces) > 1
    assert final.content[0].text == "[mythos-5] You said: one two "  # type: ignore[union-attr]
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "three")
    assert final.usage.output_tokens == 5


def test_anthropic_stream_with_a_tool_call(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(
            model="fable-5", max_tokens=100,
            tools=[{"name": "lookup", "input_schema": {
                "type": "object", "properties": {"q": {"type": "string"},
                                                 "n": {"type": "integer"}}}}],
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "find the harbour master"}]) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("lookup", {"q": "find the harbour master", "n": 4})
    assert final.stop_reason == "tool_use"


def test_anthropic_raw_stream_events(ant: anthropic.Anthropic) -> None:
    events = list(ant.messages.create(model="fable-5", max_tokens=50, stream=True,
                                      messages=[{"role": "user", "content": "hi"}]))
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-1].type == "message_stop"


def test_anthropic_models(ant: anthropic.Anthropic) -> None:
    assert "qwen-local" in [m.id for m in ant.models.list()]


def test_anthropic_bad_request_is_a_400_in_anthropics_shape(ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        ant.messages.create(model="fable-5", max_tokens=0,
                            messages=[{"role": "user", "content": "x"}])
    assert info.value.body == {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "max_tokens: must be a positive integer, not 0"}}


def test_anthropic_500_model(ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        ant.messages.create(model="standin-500", max_tokens=5,
                            messages=[{"role": "user", "content": "x"}])
    assert info.value.body == {"type": "error", "error": {
        "type": "api_error", "message": "standin-500 always fails."}}


# --------------------------------------------------------------------------- raw HTTP


def test_malformed_json_gets_a_400_in_the_paths_shape(standin) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(standin.url + "/v1/messages", content=b"{nope")
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "We could not parse the JSON body of your request."}}
    r = httpx.post(standin.openai_url + "/chat/completions", content=b"{nope")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "We could not parse the JSON body of your request."


def test_unknown_path_and_wrong_method(standin) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(standin.url + "/v2/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Unknown request URL: GET /v2/nothing."
    r = httpx.get(standin.openai_url + "/chat/completions")
    assert r.status_code == 405
    assert r.json()["error"]["message"] == "Use POST for /v1/chat/completions."
    r = httpx.post(standin.openai_url + "/models")
    assert (r.status_code, r.json()["error"]["message"]) == (405, "Use GET for /v1/models.")


def test_garbage_model_answers_200_with_a_body_that_is_not_json(standin) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(standin.openai_url + "/chat/completions",
                   json={"model": "standin-garbage", "messages": [{"role": "user",
                                                                   "content": "x"}]})
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


def test_the_server_records_what_it_received(standin, oai: openai.OpenAI) -> None:  # type: ignore[no-untyped-def]
    standin.clear()
    oai.chat.completions.create(model="fable-5", messages=[{"role": "user", "content": "a"}])
    httpx.post(standin.url + "/v1/messages",
               json={"model": "fable-5", "max_tokens": 5,
                     "messages": [{"role": "user", "content": "b"}]})
    records = standin.recorded()
    assert [(r["method"], r["path"], r["auth"]) for r in records] == [
        ("POST", "/v1/chat/completions", True), ("POST", "/v1/messages", False)]
    assert records[0]["body"]["messages"] == [{"role": "user", "content": "a"}]
    standin.clear()
    assert standin.recorded() == []


# --------------------------------------------------------------------------- in-process ASGI


async def call(app: StandInApp, path: str, body: Any = None, *, method: str = "POST",
               headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    """Drive the ASGI app directly; the client 'disconnects' once the body has been read."""
    payload = orjson.dumps(body) if body is not None else b""
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": payload, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or []}
    await app(scope, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    return {"status": start["status"] if start else None,
            "body": b"".join(m.get("body", b"") for m in bodies),
            "complete": bool(bodies) and not bodies[-1].get("more_body", False)}


CHAT = {"model": "fable-5", "messages": [{"role": "user", "content": "x"}]}


def test_fail_rate_is_deterministic_for_a_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        app = create_app(fail_rate=0.5, seed=seed)
        return [(await call(app, "/v1/chat/completions", CHAT))["status"] for _ in range(40)]

    first, again, other = (asyncio.run(statuses(s)) for s in (7, 7, 8))
    assert first == again
    assert first != other
    assert set(first) == {200, 500}


def test_fail_rate_answers_500_in_the_callers_shape() -> None:
    result = asyncio.run(call(create_app(fail_rate=1), "/v1/messages",
                              {**CHAT, "max_tokens": 5}))
    assert result["status"] == 500
    assert orjson.loads(result["body"]) == {"type": "error", "error": {
        "type": "api_error", "message": "The stand-in failed this request on purpose (fail_rate)."}}


@pytest.mark.parametrize(("kw", "message"), [
    ({"fail_rate": 1.5}, "fail_rate must be between 0 and 1, not 1.5"),
    ({"latency_ms": -1}, "latency_ms must not be negative, not -1"),
])
def test_bad_knobs_are_refused(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_app(**kw)


def test_hang_never_answers_until_the_client_leaves() -> None:
    result = asyncio.run(call(create_app(), "/v1/chat/completions",
                              {**CHAT, "model": "standin-hang"}))
    assert result == {"status": None, "body": b"", "complete": False}


def test_cut_stops_a_stream_without_its_end() -> None:
    result = asyncio.run(call(create_app(), "/v1/messages",
                              {**CHAT, "model": "standin-cut", "max_tokens": 50,
                               "stream": True}))
    assert result["status"] == 200
    assert not result["complete"]
    assert result["body"].count(b"event: ") == 3
    assert b"message_stop" not in result["body"]


def test_cut_stops_a_plain_answer_short_of_its_content_length() -> None:
    result = asyncio.run(call(create_app(), "/v1/chat/completions",
                              {**CHAT, "model": "standin-cut"}))
    assert result["status"] == 200 and not result["complete"]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(result["body"])


def test_garbage_stream_has_a_data_line_that_is_not_json() -> None:
    result = asyncio.run(call(create_app(), "/v1/chat/completions",
                              {**CHAT, "model": "standin-garbage", "stream": True}))
    assert result["status"] == 200
    first = result["body"].split(b"\n\n")[0]
    assert first.startswith(b"data: <html>")


def test_the_record_keeps_the_last_thousand_requests() -> None:
    app = create_app()

    async def many() -> None:
        for i in range(RECORD_LIMIT + 5):
            await call(app, "/v1/embeddings", {"model": "e", "input": str(i), "dimensions": 1})

    asyncio.run(many())
    assert len(app.requests) == RECORD_LIMIT
    assert app.requests[0]["body"]["input"] == "5"
    listed = asyncio.run(call(app, "/_standin/requests", method="GET"))
    assert len(orjson.loads(listed["body"])) == RECORD_LIMIT
    cleared = asyncio.run(call(app, "/_standin/requests", method="DELETE"))
    assert orjson.loads(cleared["body"]) == {"cleared": True}
    assert len(app.requests) == 0


def test_models_answer_in_anthropics_shape_for_anthropic_clients() -> None:
    result = asyncio.run(call(create_app(), "/v1/models", method="GET",
                              headers=[(b"anthropic-version", b"2023-06-01")]))
    body = orjson.loads(result["body"])
    assert body["has_more"] is False
    assert body["data"][0]["type"] == "model"


def test_lifespan_is_acknowledged() -> None:
    async def lifespan() -> list[str]:
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        sent: list[str] = []

        async def receive() -> dict[str, str]:
            return next(messages)

        async def send(message: dict[str, str]) -> None:
            sent.append(message["type"])

        await create_app()({"type": "lifespan"}, receive, send)
        return sent

    assert asyncio.run(lifespan()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_run_serves_the_stand_in_with_uvicorn(refused_port: int) -> None:
    code = ("from harbourgate.providers.standin import run; "
            f"run('127.0.0.1', {refused_port}, latency_ms=1, fail_rate=0)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{refused_port}/v1", api_key="k",
                               max_retries=0)
        deadline = time.monotonic() + 120
        while True:
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        assert models.data[0].id == "fable-5"
        answer = client.chat.completions.create(
            model="qwen-local", messages=[{"role": "user", "content": "served"}])
        assert answer.choices[0].message.content == "[qwen-local] You said: served"
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()


# --------------------------------------------------------------------------- Responses API


def test_responses_create_and_the_sdk_reads_it(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="fable-5", instructions="be brief",
                                    input="hello responses")
    assert response.output_text == "[fable-5] You said: hello responses"
    assert (response.status, response.model) == ("completed", "fable-5")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (4, 5)
    assert response.id.startswith("resp_")


def test_responses_stream_sends_the_full_event_sequence(oai: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}]
    with oai.responses.stream(model="fable-5", input="weather in Tai Po", tools=tools,
                              reasoning={"effort": "low"}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    for kind in ("response.output_item.added", "response.reasoning_text.delta",
                 "response.function_call_arguments.delta",
                 "response.function_call_arguments.done", "response.output_item.done"):
        assert kind in kinds
    assert kinds[-1] == "response.completed"
    call = final.output[-1]
    assert call.type == "function_call" and call.name == "weather"
    assert orjson.loads(call.arguments) == {"city": "weather in Tai Po"}
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens == 6

    with oai.responses.stream(model="fable-5", input="plain text please") as stream:
        kinds = [event.type for event in stream]
    assert kinds == ["response.created", "response.in_progress",
                     "response.output_item.added", "response.content_part.added",
                     *["response.output_text.delta"] * 5, "response.output_text.done",
                     "response.content_part.done", "response.output_item.done",
                     "response.completed"]


def test_responses_refusal_structured_output_and_logprobs(oai: openai.OpenAI) -> None:
    refusal = oai.responses.create(model="fable-5", input="[refuse] this")
    assert refusal.output[0].content[0].type == "refusal"  # type: ignore[union-attr]
    structured = oai.responses.create(model="fable-5", input="Sha Tin", text={"format": {
        "type": "json_schema", "name": "w", "schema": {
            "type": "object", "properties": {"city": {"type": "string"}}}}})
    assert orjson.loads(structured.output_text) == {"city": "Sha Tin"}
    probed = oai.responses.create(model="fable-5", input="two words", top_logprobs=2,
                                  include=["message.output_text.logprobs"])
    logprobs = probed.output[0].content[0].logprobs  # type: ignore[union-attr]
    assert "".join(t.token for t in logprobs) == probed.output_text
    assert all(len(t.top_logprobs) == 2 for t in logprobs)


def test_stored_responses_continue_and_unknown_ones_are_refused(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model="fable-5", input="my name is Ada")
    second = oai.responses.create(model="fable-5", input="who am I",
                                  previous_response_id=first.id)
    assert second.usage is not None and second.usage.input_tokens == 3 + 4 + 7
    with pytest.raises(openai.BadRequestError, match="Previous response with id 'resp_x' not"):
        oai.responses.create(model="fable-5", input="x", previous_response_id="resp_x")


def test_token_counting_endpoints(standin, oai: openai.OpenAI, ant: anthropic.Anthropic  # type: ignore[no-untyped-def]
                                  ) -> None:
    counted = ant.messages.count_tokens(model="fable-5", system="be brief", messages=[
        {"role": "user", "content": "count these four words"}])
    assert counted.input_tokens == 6
    answer = httpx.post(standin.url + "/v1/responses/input_tokens",
                        json={"model": "fable-5", "input": "three more words"})
    assert answer.json() == {"object": "response.input_tokens", "input_tokens": 3}


@pytest.mark.parametrize(("model", "status", "kind"), [
    ("standin-429", 429, "rate_limit_error"), ("standin-503", 503, "server_error")])
def test_openai_refusals_carry_retry_after(standin, model: str, status: int, kind: str  # type: ignore[no-untyped-def]
                                           ) -> None:
    answer = httpx.post(standin.openai_url + "/chat/completions",
                        json={"model": model, "messages": [{"role": "user", "content": "x"}]})
    assert (answer.status_code, answer.headers["retry-after"]) == (status, "7")
    assert answer.json()["error"]["type"] == kind


def test_anthropic_overload_is_529(ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        ant.messages.create(model="standin-529", max_tokens=5,
                            messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_anthropic_thinking_refusal_and_cache_usage(ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(model="fable-5", max_tokens=2000,
                                  thinking={"type": "enabled", "budget_tokens": 1024},
                                  messages=[{"role": "user", "content": "[cached] think"}])
    assert message.content[0].type == "thinking"
    assert message.content[0].signature.startswith("sig_")  # type: ignore[union-attr]
    assert (message.usage.cache_read_input_tokens, message.usage.input_tokens) == (1, 1)
    refused = ant.messages.create(model="fable-5", max_tokens=50,
                                  messages=[{"role": "user", "content": "[refuse] now"}])
    assert refused.stop_reason == "refusal"
