"""OpenAI Chat Completions <-> Anthropic Messages: requests, responses and streams.

Pure functions (and two small stateful stream translators): no I/O, no clock except the
`created` stamp OpenAI wants. Anything the target shape cannot express raises
`TranslationError` naming the field, rather than being dropped silently, with two
deliberate exceptions documented where they happen (sampling knobs one side lacks, and an
OpenAI temperature above Anthropic's maximum of 1, which is clamped).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from harbourgate.providers.base import StreamEvent

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires max_tokens; OpenAI callers often leave it out."""

_FINISH_TO_OPENAI = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}
_FINISH_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class TranslationError(ValueError):
    """A request or response the other API shape cannot express; the message names the field."""


# --------------------------------------------------------------------------- requests


def request_to_anthropic(body: Mapping[str, Any], *, model: str | None = None) -> dict[str, Any]:
    """An OpenAI Chat Completions request as an Anthropic Messages request.

    System and developer messages become `system`; tool messages become `tool_result`
    blocks; consecutive messages of one role are merged, as Anthropic requires alternation.
    OpenAI-only knobs with no Anthropic meaning (penalties, seed, logprobs, logit_bias) are
    dropped; `n` > 1 and JSON response formats are refused.
    """
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(_list(body.get("messages"), "messages")):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise TranslationError(f"{where}: must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            text = _openai_text(msg.get("content"), f"{where}.content")
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(msg.get("content"), f"{where}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(msg, where)
            role = "assistant"
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise TranslationError(f"{where}.tool_call_id: required for a tool message")
            blocks = [{"type": "tool_result", "tool_use_id": call_id,
                       "content": _openai_text(msg.get("content"), f"{where}.content")}]
            role = "user"
        else:
            raise TranslationError(f"{where}.role: {role!r} cannot be sent to an Anthropic model")
        _append_merged(messages, role, blocks)
    out: dict[str, Any] = {
        "model": model if model is not None else body.get("model"),
        "messages": [_compact(m) for m in messages],
    }
    if system:
        out["system"] = "\n\n".join(system)
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    out["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if (temperature := body.get("temperature")) is not None:
        # OpenAI allows up to 2, Anthropic up to 1: clamp rather than fail a failover.
        out["temperature"] = min(temperature, 1.0) if _is_number(temperature) else temperature
    if (top_p := body.get("top_p")) is not None:
        out["top_p"] = top_p
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = list(stop)
    if body.get("stream"):
        out["stream"] = True
    if (user := body.get("user")) is not None:
        out["metadata"] = {"user_id": user}
    n = body.get("n")
    if n is not None and n != 1:
        raise TranslationError("n: an Anthropic model returns one choice; ask with n=1")
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") not in (None, "text"):
        raise TranslationError(f"response_format: {fmt.get('type')!r} is not available on an "
                               "Anthropic model")
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool_to_anthropic(t, f"tools[{i}]")
                        for i, t in enumerate(_list(tools, "tools"))]
    choice = _tool_choice_to_anthropic(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice
    return out


def request_to_openai(body: Mapping[str, Any], *, model: str | None = None) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI Chat Completions request.

    `system` becomes a system message; `tool_result` blocks become tool messages placed
    before the rest of their user turn, as OpenAI requires. `top_k` and `thinking` have no
    OpenAI equivalent and are dropped; documents and server tools are refused.
    """
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _anthropic_text(system, "system")})
    for i, msg in enumerate(_list(body.get("messages"), "messages")):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise TranslationError(f"{where}: must be an object")
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise TranslationError(f"{where}.role: must be user or assistant, not {role!r}")
        content = msg.get("content")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
        elif role == "user":
            messages.extend(_user_to_openai(_list(content, f"{where}.content"), where))
        else:
            messages.append(_assistant_to_openai(_list(content, f"{where}.content"), where))
    out: dict[str, Any] = {
        "model": model if model is not None else body.get("model"),
        "messages": messages,
    }
    if (max_tokens := body.get("max_tokens")) is not None:
        # `max_tokens` rather than `max_completion_tokens`: every OpenAI-compatible server
        # (vLLM, llama.cpp, local clusters) understands it.
        out["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if stops := body.get("stop_sequences"):
        out["stop"] = list(stops)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("user_id") is not None:
        out["user"] = metadata["user_id"]
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool_to_openai(t, f"tools[{i}]")
                        for i, t in enumerate(_list(tools, "tools"))]
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        kind = choice.get("type")
        if kind == "auto":
            out["tool_choice"] = "auto"
        elif kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            raise TranslationError(f"tool_choice.type: {kind!r} is not a known tool choice")
        if choice.get("disable_parallel_tool_use") and tools:
            out["parallel_tool_calls"] = False
    return out


# --------------------------------------------------------------------------- responses


def response_to_openai(message: Mapping[str, Any], *, model: str,
                       created: int | None = None) -> dict[str, Any]:
    """An Anthropic message as an OpenAI chat completion (`model` = the route name)."""
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message["content"]:
        kind = block["type"]
        if kind == "text":
            text.append(block["text"])
        elif kind == "tool_use":
            tool_calls.append({
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"],
                             "arguments": orjson.dumps(block.get("input") or {}).decode()},
            })
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None,
                             "refusal": None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {
        "id": openai_id(message.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": reply,
            "finish_reason": _FINISH_TO_OPENAI.get(message.get("stop_reason") or "", "stop"),
            "logprobs": None,
        }],
        "usage": usage_to_openai(message.get("usage") or {}),
    }


def response_to_anthropic(completion: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """An OpenAI chat completion (its first choice) as an Anthropic message."""
    choice = completion["choices"][0]
    reply = choice["message"]
    content: list[dict[str, Any]] = []
    text = reply.get("content")
    if isinstance(text, list):  # some compatible servers answer with parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, Mapping))
    if text:
        content.append({"type": "text", "text": text})
    elif reply.get("refusal"):
        content.append({"type": "text", "text": reply["refusal"]})
    for call in reply.get("tool_calls") or []:
        content.append({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": _arguments(call["function"].get("arguments")),
        })
    return {
        "id": anthropic_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _FINISH_TO_ANTHROPIC.get(choice.get("finish_reason") or "", "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(completion.get("usage") or {}),
    }


def usage_to_openai(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic usage (input, cache reads and writes, output) as OpenAI token counts."""
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached + (
        usage.get("cache_creation_input_tokens") or 0)
    completion = usage.get("output_tokens") or 0
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def usage_to_anthropic(usage: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI token counts as Anthropic usage."""
    return {"input_tokens": usage.get("prompt_tokens") or 0,
            "output_tokens": usage.get("completion_tokens") or 0}


def openai_id(anthropic_message_id: Any) -> str:
    """`msg_X` -> `chatcmpl-X`, so one answer keeps one recognisable id in both shapes."""
    text = str(anthropic_message_id or "")
    return "chatcmpl-" + (text[4:] if text.startswith("msg_") else text)


def anthropic_id(openai_completion_id: Any) -> str:
    """`chatcmpl-X` -> `msg_X`."""
    text = str(openai_completion_id or "")
    return "msg_" + (text[9:] if text.startswith("chatcmpl-") else text)


# --------------------------------------------------------------------------- streams


class StreamToOpenAI:
    """Anthropic stream events in, OpenAI chat completion chunks out.

    Feed each upstream event; `done` turns true at `message_stop`, after the final chunk
    (and the usage chunk, if the caller asked with `stream_options.include_usage`).
    """

    def __init__(self, *, model: str, include_usage: bool = False,
                 created: int | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.id = "chatcmpl-"
        self.done = False
        self.usage: dict[str, Any] = {}
        self._finish: str | None = None
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> StreamEvent:
        data: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self.include_usage:
            data["usage"] = None
        return StreamEvent(None, data)

    def feed(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        """Translate one Anthropic event (its JSON payload; the type is read from it)."""
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                return [self._chunk({"content": delta["text"]})]
            if delta["type"] == "input_json_delta" and delta["partial_json"]:
                call = {"index": self._tools[data["index"]],
                        "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_start":
            message = data["message"]
            self.id = openai_id(message.get("id"))
            self.usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data["content_block"]
            if block["type"] == "tool_use":
                index = self._tools[data["index"]] = len(self._tools)
                call = {"index": index, "id": block["id"], "type": "function",
                        "function": {"name": block["name"], "arguments": ""}}
                return [self._chunk({"tool_calls": [call]})]
            if block["type"] == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "message_delta":
            self._finish = data.get("delta", {}).get("stop_reason")
            for key, value in (data.get("usage") or {}).items():
                if value is not None:
                    self.usage[key] = value
            return []
        if kind == "message_stop":
            self.done = True
            out = [self._chunk({}, _FINISH_TO_OPENAI.get(self._finish or "", "stop"))]
            if self.include_usage:
                out.append(StreamEvent(None, {
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [], "usage": usage_to_openai(self.usage),
                }))
            return out
        if kind == "error":
            error = data.get("error") or {}
            raise TranslationError(f"the upstream reported an error mid-stream: "
                                   f"{error.get('message') or error.get('type') or data}")
        return []  # ping, content_block_stop, and event types added later


class StreamToAnthropic:
    """OpenAI chat completion chunks in, Anthropic stream events out.

    Feed each chunk; call `finish()` at the upstream's `[DONE]`: it closes the open block
    and emits `message_delta` (stop reason, usage) and `message_stop`.
    """

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.started = False
        self.done = False
        self.usage: dict[str, Any] = {}
        self._finish: str | None = None
        self._block: int | None = None  # index of the open content block
        self._block_kind: str | None = None
        self._blocks = 0
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> Anthropic block index

    def _start(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        self.started = True
        message = {
            "id": anthropic_id(chunk.get("id")), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [StreamEvent("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[StreamEvent]:
        if self._block is None:
            return []
        index, self._block, self._block_kind = self._block, None, None
        return [StreamEvent("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[StreamEvent]:
        out = self._close_block()
        self._block, self._block_kind = self._blocks, kind
        self._blocks += 1
        out.append(StreamEvent("content_block_start", {
            "type": "content_block_start", "index": self._block, "content_block": block}))
        return out

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """Translate one OpenAI chunk."""
        out = [] if self.started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = dict(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._block_kind != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                out.append(StreamEvent("content_block_delta", {
                    "type": "content_block_delta", "index": self._block,
                    "delta": {"type": "text_delta", "text": text}}))
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _tool_delta(self, call: Mapping[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self._tools:
            out += self._open_block("tool_use", {
                "type": "tool_use", "id": call.get("id") or f"toolu_{position}",
                "name": function.get("name") or "", "input": {}})
            self._tools[position] = self._blocks - 1
        arguments = function.get("arguments")
        if arguments:
            out.append(StreamEvent("content_block_delta", {
                "type": "content_block_delta", "index": self._tools[position],
                "delta": {"type": "input_json_delta", "partial_json": arguments}}))
        return out

    def finish(self) -> list[StreamEvent]:
        """The upstream sent `[DONE]`: close the message."""
        out = [] if self.started else self._start({})
        out += self._close_block()
        usage = usage_to_anthropic(self.usage)
        out.append(StreamEvent("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": _FINISH_TO_ANTHROPIC.get(self._finish or "", "end_turn"),
                      "stop_sequence": None},
            "usage": {"input_tokens": usage["input_tokens"],
                      "output_tokens": usage["output_tokens"]},
        }))
        out.append(StreamEvent("message_stop", {"type": "message_stop"}))
        self.done = True
        return out


# --------------------------------------------------------------------------- helpers


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"{where}: must be a list")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _openai_text(content: Any, where: str) -> str:
    """The text of an OpenAI content field: a string, or text parts (joined), or nothing."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for i, part in enumerate(_list(content, where)):
        if not isinstance(part, Mapping) or part.get("type") not in ("text", "refusal"):
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise TranslationError(f"{where}[{i}]: only text parts are allowed here, not {kind!r}")
        parts.append(part.get("text") or part.get("refusal") or "")
    return "\n".join(parts)


def _anthropic_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for i, block in enumerate(_list(content, where)):
        if not isinstance(block, Mapping) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
            raise TranslationError(f"{where}[{i}]: only text blocks are allowed here, not "
                                   f"{kind!r}")
        parts.append(block.get("text") or "")
    return "\n".join(parts)


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(_list(content, where)):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            blocks.append(_image_block(url, f"{where}[{i}].image_url.url"))
        else:
            raise TranslationError(f"{where}[{i}]: a {kind!r} part cannot be sent to an "
                                   "Anthropic model (text and image_url parts can)")
    return blocks


def _image_block(url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise TranslationError(f"{where}: must be a URL or a data: URL")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise TranslationError(f"{where}: a data URL must look like "
                                   "data:image/png;base64,...")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise TranslationError(f"{where}: must be an http(s) URL or a data: URL")


def _assistant_blocks(msg: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _openai_text(msg.get("content"), f"{where}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for i, call in enumerate(msg.get("tool_calls") or []):
        at = f"{where}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not call.get("id"):
            raise TranslationError(f"{at}: needs id and function")
        blocks.append({"type": "tool_use", "id": call["id"], "name": function.get("name"),
                       "input": _arguments(function.get("arguments"), f"{at}.function.arguments")})
    return blocks


def _arguments(arguments: Any, where: str = "tool_calls.function.arguments") -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        raise TranslationError(f"{where}: must be a JSON object, got {arguments!r:.80}") from None
    if not isinstance(value, dict):
        raise TranslationError(f"{where}: must be a JSON object, got {arguments!r:.80}")
    return value


def _append_merged(messages: list[dict[str, Any]], role: str,
                   blocks: list[dict[str, Any]]) -> None:
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _compact(message: dict[str, Any]) -> dict[str, Any]:
    """A message of one text block is sent as a plain string, as people write it."""
    content = message["content"]
    if len(content) == 1 and content[0]["type"] == "text":
        return {"role": message["role"], "content": content[0]["text"]}
    if not content:
        return {"role": message["role"], "content": ""}
    return message


def _tool_to_anthropic(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        raise TranslationError(f"{where}: only function tools can go to an Anthropic model, "
                               f"not {kind!r}")
    function = tool.get("function")
    if not isinstance(function, Mapping) or not function.get("name"):
        raise TranslationError(f"{where}.function.name: required")
    out: dict[str, Any] = {"name": function["name"],
                           "input_schema": function.get("parameters")
                           or {"type": "object", "properties": {}}}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice_to_anthropic(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return {"type": "tool", "name": choice["function"].get("name")}
    raise TranslationError(f"tool_choice: {choice!r} is not a known tool choice")


def _user_to_openai(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    """One Anthropic user turn: its tool results first (as tool messages), then the rest."""
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        at = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text") or ""})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
        elif kind == "tool_result":
            content = block.get("content")
            text = _anthropic_text(content, f"{at}.content") if content is not None else ""
            tools.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                          "content": text})
        else:
            raise TranslationError(f"{at}: a {kind!r} block cannot be sent to an OpenAI-style "
                                   "model (text, image and tool_result blocks can)")
    if not parts:
        return tools
    if all(p["type"] == "text" for p in parts) and len(parts) == 1:
        return [*tools, {"role": "user", "content": parts[0]["text"]}]
    return [*tools, {"role": "user", "content": parts}]


def _image_url(block: Mapping[str, Any], where: str) -> str:
    source = block.get("source")
    if isinstance(source, Mapping):
        if source.get("type") == "base64":
            return f"data:{source.get('media_type')};base64,{source.get('data')}"
        if source.get("type") == "url" and source.get("url"):
            return str(source["url"])
    raise TranslationError(f"{where}.source: must be a base64 or url image source")


def _assistant_to_openai(blocks: list[Any], where: str) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": orjson.dumps(block.get("input") or {})
                                       .decode()}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # private to the model that produced it
        else:
            raise TranslationError(f"{where}.content[{i}]: a {kind!r} block cannot be sent to "
                                   "an OpenAI-style model")
    out: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if calls:
        out["tool_calls"] = calls
    return out


def _tool_to_openai(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping) or not tool.get("name") or (
            tool.get("type") not in (None, "custom")):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        raise TranslationError(f"{where}: only client tools (name, input_schema) can go to an "
                               f"OpenAI-style model, not {kind!r}")
    function: dict[str, Any] = {"name": tool["name"],
                                "parameters": tool.get("input_schema")
                                or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}
