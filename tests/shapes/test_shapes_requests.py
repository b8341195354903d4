"""Requests across shapes: each field to its documented equivalent, or refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from harbourgate.shapes import TranslationError, translate_request
from harbourgate.shapes.anthropic import DEFAULT_MAX_TOKENS

PNG = "iVBORw0KGgo="
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
USER = [{"role": "user", "content": "hi"}]


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": "gw", "messages": USER, **kw}


def messages(**kw: Any) -> dict[str, Any]:
    return {"model": "gw", "max_tokens": 100, "messages": USER, **kw}


def responses(**kw: Any) -> dict[str, Any]:
    return {"model": "gw", "input": "hi", **kw}


def refused(source: str, target: str, body: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(TranslationError) as info:
        translate_request(source, target, body, model="up", **kw)  # type: ignore[arg-type]
    return str(info.value)


# --------------------------------------------------------------------------- chat -> anthropic


def test_a_chat_request_becomes_a_messages_request_with_system_tools_and_merged_turns() -> None:
    body = chat(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "Weather in Hong Kong?"},
        {"role": "user", "content": [
            {"type": "text", "text": "And this picture?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.org/a.jpg"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Hong Kong"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "weather",
                                                              "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "28C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "n/a"}]},
    ], tools=[{"type": "function", "function": {"name": "weather", "description": "Now",
                                                "parameters": WEATHER, "strict": True}}],
        tool_choice="required", parallel_tool_calls=False, max_completion_tokens=300,
        temperature=0.7, top_p=0.9, stop="END", stream=True, user="u-42")
    assert translate_request("openai", "anthropic", body, model="claude-x") == {
        "model": "claude-x",
        "system": "Be brief.\n\nAnswer in English.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Hong Kong?"},
                {"type": "text", "text": "And this picture?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.org/a.jpg"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather",
                 "input": {"city": "Hong Kong"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "28C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "n/a"}]},
        ],
        "tools": [{"name": "weather", "description": "Now", "input_schema": WEATHER,
                   "strict": True}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "max_tokens": 300, "temperature": 0.7, "top_p": 0.9, "stop_sequences": ["END"],
        "stream": True, "metadata": {"user_id": "u-42"},
    }


def test_a_chat_request_without_max_tokens_gets_the_anthropic_default() -> None:
    assert translate_request("openai", "anthropic", chat(), model="c") == {
        "model": "c", "messages": USER, "max_tokens": DEFAULT_MAX_TOKENS}


@pytest.mark.parametrize(("field", "value"), [
    ("seed", 7), ("frequency_penalty", 0.5), ("presence_penalty", 0.1),
    ("logit_bias", {"50256": -100}),
])
def test_chat_only_knobs_are_refused_by_name_for_anthropic(field: str, value: Any) -> None:
    assert refused("openai", "anthropic", chat(**{field: value})) == (
        f"{field}: Anthropic Messages has no such setting")


@pytest.mark.parametrize(("body", "message"), [
    (chat(n=2), "n: Anthropic Messages returns one answer per request; ask with n=1"),
    (chat(logprobs=True), "logprobs: Anthropic Messages returns no log probabilities"),
    (chat(top_logprobs=3), "top_logprobs: Anthropic Messages returns no log probabilities"),
    (chat(temperature=1.5), "temperature: 1.5 is above the maximum of 1 in Anthropic Messages"),
    (chat(response_format={"type": "json_object"}),
     "response_format: Anthropic Messages needs a JSON schema (json_schema)"),
    (chat(metadata={"team": "a"}), "metadata: Anthropic Messages takes only a user id"),
    (chat(service_tier="flex"), "service_tier: 'flex' has no Anthropic Messages equivalent"),
    (chat(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
     "messages[0].content[0].type: a 'input_audio' part has no equivalent"),
    (chat(messages=[{"role": "user", "content": "x", "name": "bob"}]),
     "messages[0].name: participant names have no equivalent"),
    (chat(modalities=["audio"]), "modalities: has no equivalent in the other API shape"),
    (chat(tools=[{"type": "custom", "custom": {"name": "x"}}]),
     "tools[0].custom: has no equivalent"),
    (chat(store=True), "store: stored completions are kept by the upstream"),
    (chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,xyz"}}]}]),
     "messages[0].content[0].image_url.url: a data URL must look like"),
    (chat(messages=[{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]),
     "messages[0].content[0].arguments: must be a JSON object"),
    (chat(messages=[{"role": "assistant", "content": "x", "reasoning_content": "hm"}]),
     "messages[0].content[0]: Anthropic Messages takes back only signed thinking"),
])
def test_chat_requests_anthropic_cannot_express_are_refused_naming_the_field(
        body: dict[str, Any], message: str) -> None:
    assert refused("openai", "anthropic", body).startswith(message)


def test_response_format_json_schema_becomes_output_config() -> None:
    body = chat(response_format={"type": "json_schema", "json_schema": {
        "name": "weather", "schema": WEATHER, "strict": True}})
    out = translate_request("openai", "anthropic", body, model="c")
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": WEATHER}}


@pytest.mark.parametrize(("effort", "max_tokens", "thinking"), [
    ("low", None, {"type": "enabled", "budget_tokens": 1024}),
    ("medium", None, {"type": "enabled", "budget_tokens": 2048}),  # half of the default 4096
    ("high", 40000, {"type": "enabled", "budget_tokens": 16384}),
    ("none", None, {"type": "disabled"}),
])
def test_reasoning_effort_becomes_a_thinking_budget(effort: str, max_tokens: int | None,
                                                    thinking: dict[str, Any]) -> None:
    body = chat(reasoning_effort=effort)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    assert translate_request("openai", "anthropic", body, model="c")["thinking"] == thinking


def test_reasoning_needs_room_to_think_on_anthropic() -> None:
    assert refused("openai", "anthropic", chat(reasoning_effort="low", max_tokens=500)) == (
        "max_tokens: Anthropic Messages needs max_tokens above 1024 to reason (effort 'low')")


def test_legacy_functions_become_tools_and_their_calls_pair_with_results() -> None:
    body = chat(messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None,
         "function_call": {"name": "weather", "arguments": '{"city": "HK"}'}},
        {"role": "function", "name": "weather", "content": "28C"}],
        functions=[{"name": "weather", "parameters": WEATHER}],
        function_call={"name": "weather"})
    out = translate_request("openai", "anthropic", body, model="c")
    assert out["tools"] == [{"name": "weather", "input_schema": WEATHER}]
    assert out["tool_choice"] == {"type": "tool", "name": "weather"}
    call = out["messages"][1]["content"][0]
    result = out["messages"][2]["content"][0]
    assert call["type"] == "tool_use" and call["input"] == {"city": "HK"}
    assert result == {"type": "tool_result", "tool_use_id": call["id"], "content": "28C"}


def test_a_function_result_without_its_call_is_refused() -> None:
    body = chat(messages=[{"role": "function", "name": "weather", "content": "28C"}])
    assert refused("openai", "anthropic", body) == (
        "messages[0].name: no earlier function_call of 'weather' to answer")


# --------------------------------------------------------------------------- anthropic -> chat


def test_a_messages_request_becomes_a_chat_request() -> None:
    body = messages(system=[{"type": "text", "text": "Be brief."}], messages=[
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "28C"},
            {"type": "text", "text": "and now?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "HK"}}]},
    ], stop_sequences=["END"], temperature=0.2, metadata={"user_id": "u-1"},
        tools=[{"name": "weather", "input_schema": WEATHER}],
        tool_choice={"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
        output_config={"format": {"type": "json_schema", "schema": WEATHER}},
        thinking={"type": "enabled", "budget_tokens": 2000}, stream=True)
    assert translate_request("anthropic", "openai", body, model="gpt") == {
        "model": "gpt",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "28C"},
            {"role": "user", "content": [
                {"type": "text", "text": "and now?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "toolu_2", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city":"HK"}'}}]},
        ],
        "max_tokens": 100, "stop": ["END"], "temperature": 0.2, "user": "u-1",
        "reasoning_effort": "medium",
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "output", "schema": WEATHER, "strict": True}},
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False, "stream": True,
    }


def test_a_route_that_takes_max_completion_tokens_gets_it() -> None:
    out = translate_request("anthropic", "openai", messages(), model="o4",
                            max_completion_tokens=True)
    assert out["max_completion_tokens"] == 100 and "max_tokens" not in out


def test_top_k_goes_only_where_the_route_accepts_it() -> None:
    assert refused("anthropic", "openai", messages(top_k=5)).startswith(
        "top_k: the upstream of this route does not take top_k")
    assert translate_request("anthropic", "openai", messages(top_k=5), model="v",
                             top_k=True)["top_k"] == 5


def test_output_config_effort_becomes_reasoning_effort() -> None:
    out = translate_request("anthropic", "openai", messages(output_config={"effort": "high"}),
                            model="o")
    assert out["reasoning_effort"] == "high"


@pytest.mark.parametrize(("body", "message"), [
    (messages(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
     "tools[0].type: a 'web_search_20250305' server tool has no equivalent"),
    (messages(messages=[{"role": "user", "content": [
        {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]}]),
     "messages[0].content[0].cache_control: has no equivalent"),
    (messages(messages=[{"role": "user", "content": [{"type": "search_result"}]}]),
     "messages[0].content[0].type: a 'search_result' block has no equivalent"),
    (messages(mcp_servers=[]), "mcp_servers: has no equivalent"),
    (messages(messages=[{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": True}]}]),
     "messages[0].content[0].is_error: OpenAI Chat Completions has no failed tool results"),
    (messages(messages=[{"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "zzz"}]}]),
     "messages[0].content[0]: redacted thinking has no equivalent"),
])
def test_messages_requests_chat_cannot_express_are_refused(body: dict[str, Any],
                                                           message: str) -> None:
    assert refused("anthropic", "openai", body).startswith(message)


# --------------------------------------------------------------------------- responses


def test_a_responses_request_becomes_a_chat_request() -> None:
    body = responses(instructions="Be brief.", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather",
         "arguments": '{"city":"HK"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "28C"},
    ], max_output_tokens=50, text={"format": {"type": "json_schema", "name": "w",
                                              "schema": WEATHER, "strict": True}},
        reasoning={"effort": "low"}, tools=[{"type": "function", "name": "weather",
                                             "parameters": WEATHER, "strict": True}],
        tool_choice={"type": "function", "name": "weather"}, top_logprobs=2,
        include=["message.output_text.logprobs"], store=False)
    assert translate_request("responses", "openai", body, model="gpt") == {
        "model": "gpt",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city":"HK"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "28C"},
        ],
        "max_tokens": 50, "logprobs": True, "top_logprobs": 2, "reasoning_effort": "low",
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "w", "schema": WEATHER, "strict": True}},
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER,
                                                    "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
    }


def test_a_chat_request_becomes_a_responses_request_that_is_not_stored() -> None:
    body = chat(messages=[{"role": "system", "content": "Be brief."}, *USER],
                max_completion_tokens=20, response_format={"type": "json_object"},
                reasoning_effort="high", logprobs=True, top_logprobs=1)
    assert translate_request("openai", "responses", body, model="gpt") == {
        "model": "gpt", "store": False,
        "input": [{"type": "message", "role": "system",
                   "content": [{"type": "input_text", "text": "Be brief."}]},
                  {"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "hi"}]}],
        "max_output_tokens": 20, "top_logprobs": 1,
        "include": ["message.output_text.logprobs", "reasoning.encrypted_content"],
        "reasoning": {"effort": "high"}, "text": {"format": {"type": "json_object"}},
    }


def test_anthropic_thinking_and_structured_output_map_to_responses() -> None:
    body = messages(thinking={"type": "enabled", "budget_tokens": 20000},
                    output_config={"format": {"type": "json_schema", "schema": WEATHER}})
    out = translate_request("anthropic", "responses", body, model="gpt")
    assert out["reasoning"] == {"effort": "high"}
    assert out["text"] == {"format": {"type": "json_schema", "name": "output",
                                      "schema": WEATHER, "strict": True}}


@pytest.mark.parametrize(("source", "body", "message"), [
    ("openai", chat(stop=["x"]), "stop: OpenAI Responses has no stop sequences"),
    ("anthropic", messages(stop_sequences=["x"]),
     "stop_sequences: OpenAI Responses has no stop sequences"),
    ("openai", chat(seed=1), "seed: OpenAI Responses has no such setting"),
    ("anthropic", messages(top_k=3), "top_k: OpenAI Responses has no such setting"),
    ("openai", chat(n=3), "n: OpenAI Responses returns one answer per request"),
])
def test_requests_responses_cannot_express_are_refused(source: str, body: dict[str, Any],
                                                       message: str) -> None:
    assert refused(source, "responses", body).startswith(message)


@pytest.mark.parametrize(("body", "field"), [
    (responses(previous_response_id="resp_1"), "previous_response_id"),
    (responses(conversation="conv_1"), "conversation"),
    (responses(background=True), "background"),
    (responses(store=True), "store"),
    (responses(input=[{"type": "item_reference", "id": "msg_1"}]), "input[].item_reference"),
])
def test_stateful_responses_requests_cannot_be_translated(body: dict[str, Any],
                                                          field: str) -> None:
    assert refused("responses", "anthropic", body) == (
        f"{field}: needs conversation state that only a native Responses upstream keeps")


@pytest.mark.parametrize(("body", "message"), [
    (responses(tools=[{"type": "web_search"}]), "tools[0].type: a 'web_search' tool has no"),
    (responses(truncation="auto"), "truncation: 'auto' has no equivalent"),
    (responses(include=["file_search_call.results"]), "include[0]: 'file_search_call.results'"),
    (responses(reasoning={"effort": "low", "summary": "auto"}),
     "reasoning.summary: Anthropic Messages returns the thinking itself, not a summary"),
    (responses(input=[{"role": "user", "content": [{"type": "input_audio"}]}]),
     "input[0].content[0].type: a 'input_audio' part has no equivalent"),
])
def test_responses_requests_anthropic_cannot_express_are_refused(body: dict[str, Any],
                                                                 message: str) -> None:
    assert refused("responses", "anthropic", body).startswith(message)


def test_responses_reasoning_items_carry_anthropic_signatures_back() -> None:
    body = responses(input=[
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": [],
         "content": [{"type": "reasoning_text", "text": "hmm"}], "encrypted_content": "sig"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"}])
    out = translate_request("responses", "anthropic", body, model="claude")
    assert out["messages"][1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}}]}
    assert out["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "c1", "content": "ok"}]}
