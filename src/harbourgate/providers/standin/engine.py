"""The stand-in model: deterministic answers in both API shapes, no network.

The answer echoes the last user message (`"[fable-5] You said: <text>"`), so a test can
see exactly what the upstream received. Tokens are whitespace-separated words, which
makes `max_tokens`, usage and stop sequences predictable. A request that offers tools gets
a tool call when it forces one (`tool_choice`) or when the user's text names the tool;
arguments are filled from the tool's JSON schema. Streams are cut into 8-character
chunks, so words are split across events as a real model's tokens would be.

The HTTP app (`app.py`) and the in-process adapter (`upstream.py`) both drive this module.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from harbourgate.providers.base import Shape, StreamEvent

CHUNK_CHARS = 8
DEFAULT_DIMENSIONS = 1536
MAX_DIMENSIONS = 3072
MODELS = ("fable-5", "mythos-5", "glm-5.2", "qwen-local", "embed-small",
          "standin-hang", "standin-500", "standin-garbage", "standin-cut")
BEHAVIOURS = {"standin-hang": "hang", "standin-500": "fail", "standin-garbage": "garbage",
              "standin-cut": "cut"}
"""Upstream model ids that select a test behaviour instead of an answer."""

_WORD = re.compile(r"\S+")
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


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Reply:
    """One answer, independent of the shape it will be rendered in."""

    key: str  # hex digest of the request: the answer's id
    text: str
    finish: str  # "end" | "length" | "stop" | "tool"
    prompt_tokens: int
    completion_tokens: int
    stop_sequence: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)


def include_usage(body: Any) -> bool:
    """Whether an OpenAI streaming request asked for the final usage chunk."""
    options = body.get("stream_options") if isinstance(body, Mapping) else None
    return isinstance(options, Mapping) and options.get("include_usage") is True


def words(text: str) -> int:
    """The stand-in's token count: whitespace-separated words."""
    return len(text.split())


# --------------------------------------------------------------------------- answering


def reply(shape: Shape, body: Any, model: str) -> Reply:
    """Validate a chat request in `shape` and compute its answer (as `model` would)."""
    if shape == "openai":
        return _reply_openai(body, model)
    return _reply_anthropic(body, model)


def _reply_openai(body: Any, model: str) -> Reply:
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
    limit = _positive_int(body, "max_completion_tokens")
    if limit is None:
        limit = _positive_int(body, "max_tokens")
    stops = _stops(body.get("stop"), "stop")
    forced = _openai_forced_tool(body.get("tool_choice"))
    tools = [(t["function"]["name"], t["function"].get("parameters") or {})
             for t in body.get("tools") or []
             if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)
             and t["function"].get("name")]
    may_call = messages[-1].get("role") == "user"
    return _answer(body, model, prompt, last, limit, stops, tools, forced, may_call)


def _reply_anthropic(body: Any, model: str) -> Reply:
    messages = _require_messages(body)
    limit = _positive_int(body, "max_tokens")
    if limit is None:
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
    stops = _stops(body.get("stop_sequences"), "stop_sequences")
    forced = _anthropic_forced_tool(body.get("tool_choice"))
    tools = [(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or []
             if isinstance(t, Mapping) and t.get("name")]
    final = messages[-1]
    content = final.get("content")
    may_call = final.get("role") == "user" and not (
        isinstance(content, list)
        and any(isinstance(b, Mapping) and b.get("type") == "tool_result" for b in content))
    return _answer(body, model, prompt, last, limit, stops, tools, forced, may_call)


def _answer(body: Mapping[str, Any], model: str, prompt: list[str], last: str,
            limit: int | None, stops: list[str], tools: list[tuple[str, Any]],
            forced: str | bool | None, may_call: bool) -> Reply:
    key = hashlib.blake2b(orjson.dumps(body), digest_size=12).hexdigest()
    prompt_tokens = sum(words(t) for t in prompt)
    call = _tool_call(tools, forced, last) if tools and may_call and forced is not False else None
    if call is not None:
        return Reply(key, "", "tool", prompt_tokens,
                     words(orjson.dumps(call.arguments).decode()), tool_calls=[call])
    text = f"[{model}] You said: {last}"
    cut = len(text)
    finish = "end"
    if limit is not None:
        found = list(_WORD.finditer(text))
        if len(found) > limit:
            cut, finish = found[limit - 1].end(), "length"
    hit = min(((text.find(s), s) for s in stops if s and s in text), default=None)
    if hit is not None and hit[0] <= cut:
        return Reply(key, text[:hit[0]], "stop", prompt_tokens, words(text[:hit[0]]),
                     stop_sequence=hit[1])
    text = text[:cut]
    return Reply(key, text, finish, prompt_tokens, words(text))


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
        message: dict[str, Any] = {"role": "assistant",
                                   "content": None if answer.tool_calls else answer.text,
                                   "refusal": None}
        if answer.tool_calls:
            message["tool_calls"] = [
                {"id": _call_id("openai", answer.key, i), "type": "function",
                 "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()}}
                for i, c in enumerate(answer.tool_calls)]
        return {
            "id": "chatcmpl-" + answer.key, "object": "chat.completion", "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _OPENAI_FINISH[answer.finish]}],
            "usage": _openai_usage(answer),
        }
    content: list[dict[str, Any]] = []
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    content.extend({"type": "tool_use", "id": _call_id("anthropic", answer.key, i),
                    "name": c.name, "input": c.arguments}
                   for i, c in enumerate(answer.tool_calls))
    return {
        "id": "msg_" + answer.key, "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": _ANTHROPIC_FINISH[answer.finish],
        "stop_sequence": answer.stop_sequence,
        "usage": {"input_tokens": answer.prompt_tokens, "output_tokens": answer.completion_tokens},
    }


def render_stream(shape: Shape, answer: Reply, model: str, created: int, *,
                  include_usage: bool = False) -> list[StreamEvent]:
    """The streamed form of `answer`: every event, in order (OpenAI without `[DONE]`)."""
    if shape == "openai":
        return _openai_chunks(answer, model, created, include_usage)
    return _anthropic_events(answer, model)


def _openai_chunks(answer: Reply, model: str, created: int,
                   include_usage: bool) -> list[StreamEvent]:
    ident = "chatcmpl-" + answer.key

    def chunk(delta: dict[str, Any], finish: str | None = None) -> StreamEvent:
        data: dict[str, Any] = {
            "id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        return StreamEvent(None, data)

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in _pieces(answer.text)]
    for i, call in enumerate(answer.tool_calls):
        events.append(chunk({"tool_calls": [{
            "index": i, "id": _call_id("openai", answer.key, i), "type": "function",
            "function": {"name": call.name, "arguments": ""}}]}))
        events += [chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                   for piece in _pieces(orjson.dumps(call.arguments).decode())]
    events.append(chunk({}, _OPENAI_FINISH[answer.finish]))
    if include_usage:
        events.append(StreamEvent(None, {
            "id": ident, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [], "usage": _openai_usage(answer)}))
    return events


def _anthropic_events(answer: Reply, model: str) -> list[StreamEvent]:
    message = {
        "id": "msg_" + answer.key, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": answer.prompt_tokens, "output_tokens": 0},
    }
    events = [StreamEvent("message_start", {"type": "message_start", "message": message})]
    index = 0
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
    events.append(StreamEvent("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": _ANTHROPIC_FINISH[answer.finish],
                  "stop_sequence": answer.stop_sequence},
        "usage": {"output_tokens": answer.completion_tokens}}))
    events.append(StreamEvent("message_stop", {"type": "message_stop"}))
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


def _call_id(shape: Shape, key: str, i: int) -> str:
    return f"call_{key[:16]}{i}" if shape == "openai" else f"toolu_{key[:16]}{i}"


def _openai_usage(answer: Reply) -> dict[str, int]:
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


_OPENAI_FINISH = {"end": "stop", "stop": "stop", "length": "length", "tool": "tool_calls"}
_ANTHROPIC_FINISH = {"end": "end_turn", "stop": "stop_sequence", "length": "max_tokens",
                     "tool": "tool_use"}


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
    if shape == "openai":
        return {"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "harbourgate-stand-in"}
            for m in MODELS]}
    data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
            for m in MODELS]
    return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}


_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                       404: "not_found_error", 405: "invalid_request_error"}
_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                          404: "not_found_error", 405: "invalid_request_error",
                          529: "overloaded_error"}


def error_body(shape: Shape, status: int, message: str,
               param: str | None = None) -> dict[str, Any]:
    """An error response body in the real shape of each API."""
    if shape == "openai":
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
