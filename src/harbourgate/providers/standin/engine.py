"""The stand-in model: deterministic answers in all three API shapes, no network.

The answer echoes the last user message (`"[fable-5] You said: <text>"`), so a test can
see exactly what the upstream received. Tokens are whitespace-separated words, which
makes `max_tokens`, usage and stop sequences predictable. A request that offers tools gets
a tool call when it forces one (`tool_choice`) or when the user's text names the tool;
arguments are filled from the tool's JSON schema. Streams are cut into 8-character
chunks, so words are split across events as a real model's tokens would be (one word per
event when log probabilities are asked for, each event carrying its word's).

Deterministic triggers, for tests:
- `[refuse]` in the last user text: a refusal (OpenAI `refusal`, Anthropic stop_reason
  `refusal`, a Responses `refusal` part);
- `[cached]` / `[cache-write]` anywhere in the prompt: half the prompt reported as read
  from / written to the prompt cache;
- a structured output format (OpenAI `response_format`, Anthropic `output_config.format`,
  Responses `text.format`): the answer is JSON filled from the schema;
- reasoning asked for (`reasoning_effort`, `thinking`, `reasoning.effort`): a thinking text
  (`Thinking about: <text>`) whose words are reported as reasoning tokens (Anthropic also
  gets the thinking block, Responses a reasoning item; OpenAI chat reports only the count,
  as OpenAI does);
- `n` > 1 (OpenAI): that many identical choices; log probabilities when asked for;
- a stop sequence that occurs in the answer: the answer ends before it (OpenAI reports the
  matched sequence in the choice's `stop_reason`, as vLLM does);
- model ids `standin-429` (429 with `Retry-After: 7`), `standin-503` (503) and
  `standin-529` (Anthropic's 529 overloaded), besides the behaviours in `BEHAVIOURS`.

The HTTP app (`app.py`) and the in-process adapter (`upstream.py`) both drive this module.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from harbourgate.providers.base import Shape, StreamEvent

CHUNK_CHARS = 8
DEFAULT_DIMENSIONS = 1536
MAX_DIMENSIONS = 3072
MODELS = ("fable-5", "mythos-5", "glm-5.2", "qwen-local", "embed-small",
          "standin-hang", "standin-500", "standin-garbage", "standin-cut", "standin-429",
          "standin-503", "standin-529")
BEHAVIOURS = {"standin-hang": "hang", "standin-500": "fail", "standin-garbage": "garbage",
              "standin-cut": "cut", "standin-429": "rate_limited", "standin-503": "overloaded",
              "standin-529": "overloaded_529"}
"""Upstream model ids that select a test behaviour instead of an answer."""
RETRY_AFTER = "7"
"""The Retry-After the refusing behaviours send."""
REFUSAL = "I can't help with that request."
HISTORY_LIMIT = 1000

_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"\s*\S+")
_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class StandInError(Exception):
    """A request the stand-in refuses, with the HTTP status and the field at fault."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


def behaviour(model: str) -> str | None:
    """The test behaviour selected by an upstream model id, if any."""
    return BEHAVIOURS.get(model)


def refusal_of(kind: str | None, model: str) -> tuple[int, str] | None:
    """The HTTP status and message a refusing behaviour answers with, if `kind` is one."""
    if kind == "rate_limited":
        return 429, f"{model} is rate limited; retry after {RETRY_AFTER} s."
    if kind == "overloaded":
        return 503, f"{model} is overloaded."
    if kind == "overloaded_529":
        return 529, "Overloaded"
    return None


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Reply:
    """One answer, independent of the shape it will be rendered in."""

    key: str  # hex digest of the request: the answer's id
    text: str
    finish: str  # "end" | "length" | "stop" | "tool" | "refusal"
    prompt_tokens: int
    completion_tokens: int  # reasoning included
    stop_sequence: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    thinking: str | None = None
    cache_read: int = 0
    cache_write: int = 0
    logprobs: int | None = None  # None: not asked for; else how many alternatives per token
    choices: int = 1

    @property
    def reasoning_tokens(self) -> int:
        return words(self.thinking) if self.thinking else 0


@dataclass(slots=True)
class Asked:
    """What a request asks for beyond the conversation, read from its shape."""

    limit: int | None = None
    stops: list[str] = field(default_factory=list)
    tools: list[tuple[str, Any]] = field(default_factory=list)
    forced: str | bool | None = None
    may_call: bool = True
    schema: Any = None  # a JSON schema, "json_object", or None
    thinking: bool = False
    logprobs: int | None = None
    n: int = 1


def include_usage(body: Any) -> bool:
    """Whether an OpenAI streaming request asked for the final usage chunk."""
    options = body.get("stream_options") if isinstance(body, Mapping) else None
    return isinstance(options, Mapping) and options.get("include_usage") is True


def words(text: str) -> int:
    """The stand-in's token count: whitespace-separated words."""
    return len(text.split())


# --------------------------------------------------------------------------- answering


def reply(shape: Shape, body: Any, model: str,
          history: MutableMapping[str, str] | None = None) -> Reply:
    """Validate a request in `shape` and compute its answer (as `model` would).

    `history` (Responses only): the texts of earlier stored responses by id, which
    `previous_response_id` continues; a stored answer is added to it.
    """
    prompt, last, asked = prompt_of(shape, body, history)
    answer = _answer(body, model, prompt, last, asked)
    if shape == "responses" and history is not None:
        text = "\n".join([*prompt, answer.text])
        if body.get("store") is not False:
            history["resp_" + answer.key] = text
        conversation = conversation_id(body)
        if conversation is not None:  # a conversation keeps its items, stored or not
            history[conversation] = text
        while len(history) > HISTORY_LIMIT:
            del history[next(iter(history))]
    return answer


def conversation_id(body: Mapping[str, Any]) -> str | None:
    """The Responses `conversation` a request continues (an id, or `{"id": ...}`); an id
    the stand-in has not seen starts an empty conversation, as a newly created one would."""
    value = body.get("conversation")
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise StandInError("conversation: a conversation id (string) or {id} is required",
                           param="conversation")
    return "conv:" + value


def prompt_of(shape: Shape, body: Any, history: Mapping[str, str] | None = None
              ) -> tuple[list[str], str, Asked]:
    """The prompt texts, the last user text, and the settings of a request in `shape`."""
    if shape == "openai":
        return _prompt_openai(body)
    if shape == "anthropic":
        return _prompt_anthropic(body)
    return _prompt_responses(body, history or {})


def count_tokens(shape: Shape, body: Any, history: Mapping[str, str] | None = None) -> int:
    """Input tokens of a token-counting request (the prompt's words, as `reply` counts)."""
    if shape == "anthropic" and isinstance(body, Mapping) and "max_tokens" not in body:
        body = {**body, "max_tokens": 1}
    prompt, _, _ = prompt_of(shape, body, history)
    return sum(words(t) for t in prompt)


def _prompt_openai(body: Any) -> tuple[list[str], str, Asked]:
    messages = _require_messages(body)
    prompt: list[str] = []
    last = ""
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or msg.get("role") not in _OPENAI_ROLES:
            raise StandInError(
                f"messages[{i}].role must be one of {', '.join(sorted(_OPENAI_ROLES))}",
                param=f"messages[{i}].role")
        text = _openai_text(msg.get("content"), f"messages[{i}].content")
        prompt.append(text)
        if msg["role"] in ("user", "tool"):
            last = text
    asked = Asked()
    asked.limit = _whole_int(body, "max_completion_tokens")
    if asked.limit is None:
        asked.limit = _whole_int(body, "max_tokens")
    asked.stops = _stops(body.get("stop"), "stop")
    asked.forced = _openai_forced_tool(body.get("tool_choice"))
    asked.tools = [(t["function"]["name"], t["function"].get("parameters") or {})
                   for t in body.get("tools") or []
                   if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)
                   and t["function"].get("name")]
    asked.may_call = messages[-1].get("role") == "user"
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping):
        if fmt.get("type") == "json_object":
            asked.schema = "json_object"
        elif fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), Mapping):
            asked.schema = fmt["json_schema"].get("schema") or {}
    asked.thinking = body.get("reasoning_effort") not in (None, "none")
    if body.get("logprobs") is True:
        asked.logprobs = _count(body.get("top_logprobs"), "top_logprobs")
    asked.n = _positive_int(body, "n") or 1
    return prompt, last, asked


def _prompt_anthropic(body: Any) -> tuple[list[str], str, Asked]:
    messages = _require_messages(body)
    asked = Asked()
    asked.limit = _positive_int(body, "max_tokens")
    if asked.limit is None:
        raise StandInError("max_tokens: Field required", param="max_tokens")
    prompt: list[str] = []
    system = body.get("system")
    if system is not None:
        prompt.append(_anthropic_text(system, "system"))
    last = ""
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or msg.get("role") not in ("user", "assistant"):
            raise StandInError(f"messages.{i}.role: Input should be 'user' or 'assistant'",
                               param=f"messages.{i}.role")
        text = _anthropic_text(msg.get("content"), f"messages.{i}.content")
        prompt.append(text)
        if msg["role"] == "user":
            last = text
    asked.stops = _stops(body.get("stop_sequences"), "stop_sequences")
    asked.forced = _anthropic_forced_tool(body.get("tool_choice"))
    asked.tools = [(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or []
                   if isinstance(t, Mapping) and t.get("name")]
    final = messages[-1]
    content = final.get("content")
    asked.may_call = final.get("role") == "user" and not (
        isinstance(content, list)
        and any(isinstance(b, Mapping) and b.get("type") == "tool_result" for b in content))
    config = body.get("output_config")
    if isinstance(config, Mapping) and isinstance(config.get("format"), Mapping):
        asked.schema = config["format"].get("schema") or {}
    thinking = body.get("thinking")
    asked.thinking = isinstance(thinking, Mapping) and thinking.get("type") in ("enabled",
                                                                              "adaptive")
    return prompt, last, asked


def _prompt_responses(body: Any, history: Mapping[str, str]) -> tuple[list[str], str, Asked]:
    if not isinstance(body, Mapping):
        raise StandInError("the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise StandInError("model: a model id (string) is required", param="model")
    prompt: list[str] = []
    conversation = conversation_id(body)
    if conversation is not None and conversation in history:
        prompt.append(history[conversation])
    previous = body.get("previous_response_id")
    if previous is not None:
        if previous not in history:
            raise StandInError(f"Previous response with id '{previous}' not found.",
                               param="previous_response_id")
        prompt.append(history[previous])
    if body.get("instructions") is not None:
        prompt.append(_openai_text(body["instructions"], "instructions"))
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if items is None:  # a stored prompt (or the conversation) supplies it upstream
        items = []
    if not isinstance(items, list):
        raise StandInError("input: a string or a list of items is required", param="input")
    last, last_kind = "", ""
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, Mapping):
            raise StandInError(f"{where}: must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            if item.get("role") not in ("user", "assistant", "system", "developer"):
                raise StandInError(f"{where}.role: must be user, assistant, system or developer",
                                   param=f"{where}.role")
            text = _openai_text(item.get("content"), f"{where}.content")
            if item["role"] == "user":
                last = text
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _openai_text(output, f"{where}.output")
            last = text
        elif kind == "function_call":
            text = str(item.get("arguments") or "")
        elif kind == "reasoning":
            continue
        else:
            raise StandInError(f"{where}.type: the stand-in does not take {kind!r} items",
                               param=f"{where}.type")
        prompt.append(text)
        last_kind = f"{kind}:{item.get('role', '')}"
    asked = Asked(limit=_positive_int(body, "max_output_tokens"))
    choice = body.get("tool_choice")
    asked.forced = (True if choice == "required" else False if choice == "none"
                    else str(choice.get("name")) if isinstance(choice, Mapping) else None)
    asked.tools = [(t["name"], t.get("parameters") or {}) for t in body.get("tools") or []
                   if isinstance(t, Mapping) and t.get("type") == "function" and t.get("name")]
    asked.may_call = last_kind == "message:user"
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(fmt, Mapping):
        if fmt.get("type") == "json_object":
            asked.schema = "json_object"
        elif fmt.get("type") == "json_schema":
            asked.schema = fmt.get("schema") or {}
    reasoning = body.get("reasoning")
    asked.thinking = isinstance(reasoning, Mapping) and reasoning.get("effort") not in (
        None, "none")
    include = body.get("include") or []
    if isinstance(include, list) and "message.output_text.logprobs" in include:
        asked.logprobs = _count(body.get("top_logprobs"), "top_logprobs")
    return prompt, last, asked


def _answer(body: Mapping[str, Any], model: str, prompt: list[str], last: str,
            asked: Asked) -> Reply:
    # Streamed or not, one request gets one answer with one id.
    same = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    key = hashlib.blake2b(orjson.dumps(same, option=orjson.OPT_SORT_KEYS),
                          digest_size=12).hexdigest()
    prompt_tokens = sum(words(t) for t in prompt)
    everything = "\n".join(prompt)
    extra: dict[str, Any] = {
        "thinking": f"Thinking about: {last}" if asked.thinking else None,
        "cache_read": prompt_tokens // 2 if "[cached]" in everything else 0,
        "cache_write": prompt_tokens // 2 if "[cache-write]" in everything else 0,
        "logprobs": asked.logprobs, "choices": asked.n,
    }
    thought = words(extra["thinking"]) if extra["thinking"] else 0
    if "[refuse]" in last:
        return Reply(key, REFUSAL, "refusal", prompt_tokens, words(REFUSAL) + thought, **extra)
    call = None
    if asked.tools and asked.may_call and asked.forced is not False:
        call = _tool_call(asked.tools, asked.forced, last)
    if call is not None:
        return Reply(key, "", "tool", prompt_tokens,
                     words(orjson.dumps(call.arguments).decode()) + thought,
                     tool_calls=[call], **extra)
    if asked.schema is not None:
        value = ({"answer": last} if asked.schema == "json_object"
                 else _arguments(asked.schema, last))
        text = orjson.dumps(value).decode()
        return Reply(key, text, "end", prompt_tokens, words(text) + thought, **extra)
    text = f"[{model}] You said: {last}"
    cut = len(text)
    finish = "end"
    if asked.limit is not None:
        found = list(_WORD.finditer(text))
        if len(found) > asked.limit:
            cut, finish = found[asked.limit - 1].end(), "length"
    hit = min(((text.find(s), s) for s in asked.stops if s and s in text), default=None)
    if hit is not None and hit[0] <= cut:
        return Reply(key, text[:hit[0]], "stop", prompt_tokens, words(text[:hit[0]]) + thought,
                     stop_sequence=hit[1], **extra)
    text = text[:cut]
    return Reply(key, text, finish, prompt_tokens, words(text) + thought, **extra)


def _tool_call(tools: list[tuple[str, Any]], forced: str | bool | None,
               text: str) -> ToolCall | None:
    if isinstance(forced, str):
        chosen = next(((n, s) for n, s in tools if n == forced), None)
    elif forced is True:
        chosen = tools[0]
    else:
        chosen = next(((n, s) for n, s in tools if n in text), None)
    if chosen is None:
        return None
    name, schema = chosen
    return ToolCall(name, _arguments(schema, text))


def _arguments(schema: Any, text: str) -> dict[str, Any]:
    """Plausible arguments for a JSON schema, derived from the user's text."""
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return {}
    out: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if kind == "string":
            enum = spec.get("enum")
            out[name] = enum[0] if isinstance(enum, list) and enum else text
        elif kind in ("integer", "number"):
            out[name] = words(text)
        elif kind == "boolean":
            out[name] = True
    return out


# --------------------------------------------------------------------------- rendering


def render(shape: Shape, answer: Reply, model: str, created: int) -> dict[str, Any]:
    """The plain (non-streamed) response body for `answer` in `shape`."""
    if shape == "openai":
        return _render_openai(answer, model, created)
    if shape == "responses":
        return _render_responses(answer, model, created, "completed")
    content: list[dict[str, Any]] = []
    if answer.thinking:
        content.append({"type": "thinking", "thinking": answer.thinking,
                        "signature": _signature(answer)})
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    content.extend({"type": "tool_use", "id": _call_id("anthropic", answer.key, i),
                    "name": c.name, "input": c.arguments}
                   for i, c in enumerate(answer.tool_calls))
    return {
        "id": "msg_" + answer.key, "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": _ANTHROPIC_FINISH[answer.finish],
        "stop_sequence": answer.stop_sequence, "usage": _anthropic_usage(answer),
    }


def _render_openai(answer: Reply, model: str, created: int) -> dict[str, Any]:
    refused = answer.finish == "refusal"
    message: dict[str, Any] = {"role": "assistant",
                               "content": None if answer.tool_calls or refused else answer.text,
                               "refusal": answer.text if refused else None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": _call_id("openai", answer.key, i), "type": "function",
             "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()}}
            for i, c in enumerate(answer.tool_calls)]
    choices = []
    for index in range(answer.choices):
        choice: dict[str, Any] = {
            "index": index, "message": message, "finish_reason": _OPENAI_FINISH[answer.finish],
            "logprobs": None}
        if answer.logprobs is not None and not refused and not answer.tool_calls:
            choice["logprobs"] = {"content": _logprobs(_tokens(answer.text), answer.logprobs),
                                  "refusal": None}
        if answer.stop_sequence is not None:
            choice["stop_reason"] = answer.stop_sequence
        choices.append(choice)
    return {"id": "chatcmpl-" + answer.key, "object": "chat.completion", "created": created,
            "model": model, "choices": choices, "usage": _openai_usage(answer)}


def _responses_items(answer: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.thinking:
        items.append({"id": "rs_" + answer.key, "type": "reasoning", "summary": [],
                      "content": [{"type": "reasoning_text", "text": answer.thinking}]})
    for i, call in enumerate(answer.tool_calls):
        items.append({"id": f"fc_{answer.key}{i}", "type": "function_call",
                      "status": "completed", "call_id": _call_id("openai", answer.key, i),
                      "name": call.name, "arguments": orjson.dumps(call.arguments).decode()})
    if not answer.tool_calls:
        part: dict[str, Any]
        if answer.finish == "refusal":
            part = {"type": "refusal", "refusal": answer.text}
        else:
            part = {"type": "output_text", "text": answer.text, "annotations": [],
                    "logprobs": _logprobs(_tokens(answer.text), answer.logprobs)
                    if answer.logprobs is not None else []}
        items.append({"id": "msg_" + answer.key, "type": "message", "status": "completed",
                      "role": "assistant", "content": [part]})
    return items


def _render_responses(answer: Reply, model: str, created: int, status: str,
                      items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    final = items is None
    if final:
        items = _responses_items(answer)
        if answer.finish == "length":
            status = "incomplete"
    assert items is not None
    return {
        "id": "resp_" + answer.key, "object": "response", "created_at": created,
        "status": status, "model": model, "output": items, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete"
        else None,
        "instructions": None, "metadata": {}, "parallel_tool_calls": True,
        "temperature": None, "top_p": None, "tool_choice": "auto", "tools": [],
        "usage": _responses_usage(answer) if final else None, "store": True,
    }


def render_stream(shape: Shape, answer: Reply, model: str, created: int, *,
                  include_usage: bool = False) -> list[StreamEvent]:
    """The streamed form of `answer`: every event, in order (OpenAI without `[DONE]`)."""
    if shape == "openai":
        return _openai_chunks(answer, model, created, include_usage)
    if shape == "responses":
        return _responses_events(answer, model, created)
    return _anthropic_events(answer, model)


def _openai_chunks(answer: Reply, model: str, created: int,
                   include_usage: bool) -> list[StreamEvent]:
    ident = "chatcmpl-" + answer.key

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None,
              logprobs: list[dict[str, Any]] | None = None) -> StreamEvent:
        choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish,
                                  "logprobs": None if logprobs is None
                                  else {"content": logprobs, "refusal": None}}
        if finish is not None and answer.stop_sequence is not None:
            choice["stop_reason"] = answer.stop_sequence
        data: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk",
                                "created": created, "model": model, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return StreamEvent(None, data)

    events = []
    key = "refusal" if answer.finish == "refusal" else "content"
    for index in range(answer.choices):
        first = "" if key == "content" and not answer.tool_calls else None
        events.append(chunk(index, {"role": "assistant", "content": first}))
        if answer.logprobs is not None and key == "content":
            events += [chunk(index, {"content": token}, logprobs=_logprobs([token],
                                                                           answer.logprobs))
                       for token in _tokens(answer.text)]
        else:
            events += [chunk(index, {key: piece}) for piece in _pieces(answer.text)]
        for i, call in enumerate(answer.tool_calls):
            events.append(chunk(index, {"tool_calls": [{
                "index": i, "id": _call_id("openai", answer.key, i), "type": "function",
                "function": {"name": call.name, "arguments": ""}}]}))
            events += [chunk(index, {"tool_calls": [{"index": i,
                                                     "function": {"arguments": piece}}]})
                       for piece in _pieces(orjson.dumps(call.arguments).decode())]
        events.append(chunk(index, {}, _OPENAI_FINISH[answer.finish]))
    if include_usage:
        events.append(StreamEvent(None, {
            "id": ident, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [], "usage": _openai_usage(answer)}))
    return events


def _anthropic_events(answer: Reply, model: str) -> list[StreamEvent]:
    start_usage = {**_anthropic_usage(answer), "output_tokens": 0}
    start_usage.pop("output_tokens_details", None)
    message = {
        "id": "msg_" + answer.key, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage,
    }
    events = [StreamEvent("message_start", {"type": "message_start", "message": message})]
    index = 0
    if answer.thinking:
        events.append(_block_start(index, {"type": "thinking", "thinking": "",
                                           "signature": ""}))
        events += [_block_delta(index, {"type": "thinking_delta", "thinking": piece})
                   for piece in _pieces(answer.thinking)]
        events.append(_block_delta(index, {"type": "signature_delta",
                                           "signature": _signature(answer)}))
        events.append(_block_stop(index))
        index += 1
    if answer.text:
        events.append(_block_start(index, {"type": "text", "text": ""}))
        events.append(StreamEvent("ping", {"type": "ping"}))
        events += [_block_delta(index, {"type": "text_delta", "text": piece})
                   for piece in _pieces(answer.text)]
        events.append(_block_stop(index))
        index += 1
    for i, call in enumerate(answer.tool_calls):
        events.append(_block_start(index, {"type": "tool_use", "name": call.name, "input": {},
                                           "id": _call_id("anthropic", answer.key, i)}))
        events += [_block_delta(index, {"type": "input_json_delta", "partial_json": piece})
                   for piece in _pieces(orjson.dumps(call.arguments).decode())]
        events.append(_block_stop(index))
        index += 1
    usage = {"output_tokens": answer.completion_tokens}
    if answer.thinking:
        usage["output_tokens_details"] = {"thinking_tokens": answer.reasoning_tokens}
    events.append(StreamEvent("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": _ANTHROPIC_FINISH[answer.finish],
                  "stop_sequence": answer.stop_sequence},
        "usage": usage}))
    events.append(StreamEvent("message_stop", {"type": "message_stop"}))
    return events


def _responses_events(answer: Reply, model: str, created: int) -> list[StreamEvent]:
    events: list[StreamEvent] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append(StreamEvent(kind, {"type": kind, "sequence_number": len(events),
                                         **fields}))

    shell = _render_responses(answer, model, created, "in_progress", [])
    emit("response.created", response=shell)
    emit("response.in_progress", response=shell)
    for at, item in enumerate(_responses_items(answer)):
        kind = item["type"]
        if kind == "message":
            emit("response.output_item.added", output_index=at,
                 item={**item, "status": "in_progress", "content": []})
            part = item["content"][0]
            if part["type"] == "refusal":
                emit("response.content_part.added", item_id=item["id"], output_index=at,
                     content_index=0, part={"type": "refusal", "refusal": ""})
                for piece in _pieces(part["refusal"]):
                    emit("response.refusal.delta", item_id=item["id"], output_index=at,
                         content_index=0, delta=piece)
                emit("response.refusal.done", item_id=item["id"], output_index=at,
                     content_index=0, refusal=part["refusal"])
            else:
                emit("response.content_part.added", item_id=item["id"], output_index=at,
                     content_index=0, part={"type": "output_text", "text": "",
                                            "annotations": [], "logprobs": []})
                if answer.logprobs is not None:
                    pieces = [(t, _logprobs([t], answer.logprobs)) for t in _tokens(part["text"])]
                else:
                    pieces = [(p, []) for p in _pieces(part["text"])]
                for piece, logprobs in pieces:
                    emit("response.output_text.delta", item_id=item["id"], output_index=at,
                         content_index=0, delta=piece, logprobs=logprobs)
                emit("response.output_text.done", item_id=item["id"], output_index=at,
                     content_index=0, text=part["text"], logprobs=part["logprobs"])
            emit("response.content_part.done", item_id=item["id"], output_index=at,
                 content_index=0, part=part)
        elif kind == "function_call":
            emit("response.output_item.added", output_index=at,
                 item={**item, "status": "in_progress", "arguments": ""})
            for piece in _pieces(item["arguments"]):
                emit("response.function_call_arguments.delta", item_id=item["id"],
                     output_index=at, delta=piece)
            emit("response.function_call_arguments.done", item_id=item["id"],
                 output_index=at, name=item["name"], arguments=item["arguments"])
        else:
            emit("response.output_item.added", output_index=at,
                 item={**item, "content": []})
            text = item["content"][0]["text"]
            for piece in _pieces(text):
                emit("response.reasoning_text.delta", item_id=item["id"], output_index=at,
                     content_index=0, delta=piece)
            emit("response.reasoning_text.done", item_id=item["id"], output_index=at,
                 content_index=0, text=text)
        emit("response.output_item.done", output_index=at, item=item)
    final = _render_responses(answer, model, created, "completed")
    emit("response.completed" if final["status"] == "completed" else "response.incomplete",
         response=final)
    return events


def _block_start(index: int, block: dict[str, Any]) -> StreamEvent:
    return StreamEvent("content_block_start",
                       {"type": "content_block_start", "index": index, "content_block": block})


def _block_delta(index: int, delta: dict[str, Any]) -> StreamEvent:
    return StreamEvent("content_block_delta",
                       {"type": "content_block_delta", "index": index, "delta": delta})


def _block_stop(index: int) -> StreamEvent:
    return StreamEvent("content_block_stop", {"type": "content_block_stop", "index": index})


def _pieces(text: str) -> list[str]:
    return [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]


def _tokens(text: str) -> list[str]:
    """The stand-in's tokens with their leading whitespace (they join back into `text`)."""
    return _TOKEN.findall(text)


def _logprobs(tokens: list[str], top: int) -> list[dict[str, Any]]:
    """Deterministic log probabilities: the token, then `top` - 1 made-up alternatives."""
    out = []
    for token in tokens:
        logprob = -round((len(token.strip()) % 7) / 10, 1)
        alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}]
        alternatives += [{"token": f"{token}{i}", "logprob": logprob - i,
                          "bytes": list(f"{token}{i}".encode())} for i in range(1, top)]
        out.append({"token": token, "logprob": logprob, "bytes": list(token.encode()),
                    "top_logprobs": alternatives[:top]})
    return out


def _call_id(shape: Shape, key: str, i: int) -> str:
    return f"call_{key[:16]}{i}" if shape != "anthropic" else f"toolu_{key[:16]}{i}"


def _signature(answer: Reply) -> str:
    return "sig_" + hashlib.blake2b(f"{answer.key}:{answer.thinking}".encode(),
                                    digest_size=16).hexdigest()


def _openai_usage(answer: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens * answer.choices,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens * answer.choices}
    if answer.cache_read or answer.cache_write:
        usage["prompt_tokens_details"] = {"cached_tokens": answer.cache_read,
                                          "cache_write_tokens": answer.cache_write}
    if answer.thinking:
        usage["completion_tokens_details"] = {"reasoning_tokens": answer.reasoning_tokens}
    return usage


def _anthropic_usage(answer: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": answer.prompt_tokens - answer.cache_read - answer.cache_write,
        "output_tokens": answer.completion_tokens,
        "cache_creation_input_tokens": answer.cache_write,
        "cache_read_input_tokens": answer.cache_read}
    if answer.thinking:
        usage["output_tokens_details"] = {"thinking_tokens": answer.reasoning_tokens}
    return usage


def _responses_usage(answer: Reply) -> dict[str, Any]:
    return {"input_tokens": answer.prompt_tokens,
            "input_tokens_details": {"cached_tokens": answer.cache_read,
                                     "cache_write_tokens": answer.cache_write},
            "output_tokens": answer.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


_OPENAI_FINISH = {"end": "stop", "stop": "stop", "length": "length", "tool": "tool_calls",
                  "refusal": "stop"}
_ANTHROPIC_FINISH = {"end": "end_turn", "stop": "stop_sequence", "length": "max_tokens",
                     "tool": "tool_use", "refusal": "refusal"}


# --------------------------------------------------------------------------- embeddings


def embed(body: Any, model: str | None = None) -> dict[str, Any]:
    """An OpenAI embeddings response: one deterministic unit vector per input."""
    if not isinstance(body, Mapping):
        raise StandInError("the request body must be a JSON object")
    inputs = _embedding_inputs(body.get("input"))
    dims = body.get("dimensions", DEFAULT_DIMENSIONS)
    if dims is None:
        dims = DEFAULT_DIMENSIONS
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_DIMENSIONS:
        raise StandInError(f"dimensions must be an integer from 1 to {MAX_DIMENSIONS}",
                           param="dimensions")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise StandInError("encoding_format must be 'float' or 'base64'",
                           param="encoding_format")
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            seed, tokens = item.encode(), tokens + words(item)
        else:
            seed, tokens = b"tokens:" + orjson.dumps(item), tokens + len(item)
        vector = unit_vector(seed, dims)
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": model or body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def unit_vector(seed: bytes, dims: int) -> list[float]:
    """A vector of length 1 determined by `seed` (SHAKE-256 as a stream of int16)."""
    raw = struct.unpack(f"<{dims}h", hashlib.shake_256(seed).digest(2 * dims))
    norm = math.sqrt(math.fsum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _embedding_inputs(value: Any) -> list[Any]:
    error = StandInError("input must be a string, a list of strings, a list of token ids, "
                         "or a list of token-id lists", param="input")
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise error
    if all(isinstance(v, str) for v in value):
        return value
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    if all(isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool)
                                             for t in v) for v in value):
        return value
    raise error


# --------------------------------------------------------------------------- models, errors


def models(shape: Shape) -> dict[str, Any]:
    """The models the stand-in lists (it answers any model id)."""
    if shape != "anthropic":
        return {"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "harbourgate-stand-in"}
            for m in MODELS]}
    data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
            for m in MODELS]
    return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}


_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                       404: "not_found_error", 405: "invalid_request_error",
                       429: "rate_limit_error", 503: "server_error"}
_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                          404: "not_found_error", 405: "invalid_request_error",
                          429: "rate_limit_error", 529: "overloaded_error"}


def error_body(shape: Shape, status: int, message: str,
               param: str | None = None) -> dict[str, Any]:
    """An error response body in the real shape of each API."""
    if shape != "anthropic":
        kind = _OPENAI_ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
        code = "invalid_request" if status == 400 else None
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


# --------------------------------------------------------------------------- validation


def _require_messages(body: Any) -> list[Any]:
    if not isinstance(body, Mapping):
        raise StandInError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise StandInError("model: a model id (string) is required", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise StandInError("messages: a non-empty list of messages is required",
                           param="messages")
    return messages


def _positive_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StandInError(f"{key}: must be a positive integer, not {value!r}", param=key)
    return value


def _whole_int(body: Mapping[str, Any], key: str) -> int | None:
    """OpenAI's token limits: a whole number with no minimum in the API's schema (0 answers
    nothing, cut short for length)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StandInError(f"{key}: must be a whole number, 0 or more, not {value!r}",
                           param=key)
    return value


def _count(value: Any, key: str) -> int:
    """A top_logprobs count (0 to 20; absent means 0)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
        raise StandInError(f"{key}: must be an integer from 0 to 20, not {value!r}", param=key)
    return value


def _stops(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    raise StandInError(f"{key}: must be a string or a list of strings", param=key)


def _openai_forced_tool(choice: Any) -> str | bool | None:
    """A tool name, True (any tool), False (no tool) or None (the model decides)."""
    if choice == "required":
        return True
    if choice == "none":
        return False
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return str(choice["function"].get("name"))
    return None


def _anthropic_forced_tool(choice: Any) -> str | bool | None:
    if not isinstance(choice, Mapping):
        return None
    kind = choice.get("type")
    if kind == "any":
        return True
    if kind == "none":
        return False
    if kind == "tool":
        return str(choice.get("name"))
    return None


def _openai_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise StandInError(f"{where}: must be a string or a list of content parts", param=where)
    return "\n".join(p["text"] for p in content
                     if isinstance(p, Mapping) and isinstance(p.get("text"), str))


def _anthropic_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise StandInError(f"{where}: Input should be a valid string or list of content blocks",
                           param=where)
    parts: list[str] = []
    for block in content:
        if not isinstance(block, Mapping):
            raise StandInError(f"{where}: each content block must be an object", param=where)
        if isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(_anthropic_text(block.get("content") or "", where))
    return "\n".join(parts)
