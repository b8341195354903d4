"""Anthropic Messages into and out of the canonical model."""

from __future__ import annotations

from typing import Any

from harbourgate.shapes import check as c
from harbourgate.shapes.common import EFFORT_BUDGETS, json_text, parse_arguments
from harbourgate.shapes.model import (
    Answer,
    Choice,
    Delta,
    Document,
    End,
    Event,
    Image,
    Message,
    OutputFormat,
    Part,
    PartEnd,
    PartKind,
    PartStart,
    Reasoning,
    Refusal,
    Request,
    Signature,
    Start,
    StreamEvent,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    TranslationError,
    Usage,
)

API = "Anthropic Messages"
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires max_tokens; OpenAI callers often leave it out."""
MIN_THINKING_BUDGET = 1024

_REQUEST_KEYS = {"model", "messages", "max_tokens", "system", "stop_sequences", "temperature",
                 "top_p", "top_k", "stream", "tools", "tool_choice", "metadata", "thinking",
                 "output_config", "service_tier"}
_FINISH_IN = {"end_turn": "end", "stop_sequence": "stop_sequence", "max_tokens": "length",
              "tool_use": "tool_calls", "refusal": "refusal", "pause_turn": "pause",
              "model_context_window_exceeded": "context_window"}
_FINISH_OUT = {"end": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens",
               "tool_calls": "tool_use", "refusal": "refusal", "content_filter": "refusal",
               "pause": "pause_turn", "context_window": "model_context_window_exceeded"}


# --------------------------------------------------------------------------- requests


def parse_request(body: Any) -> Request:
    body = c.obj(body, "body")
    c.only(body, _REQUEST_KEYS, "")
    names = {"max_tokens": "max_tokens", "stop": "stop_sequences", "reasoning": "thinking",
             "output_format": "output_config.format", "user": "metadata.user_id"}
    messages: list[Message] = []
    system = body.get("system")
    if system is not None:
        messages.append(Message("system", [Text(_system_text(system))]))
    for i, msg in enumerate(c.lst(body.get("messages"), "messages")):
        where = f"messages[{i}]"
        msg = c.obj(msg, where)
        c.only(msg, ("role", "content"), where)
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise TranslationError(f"{where}.role: must be user or assistant, not {role!r}")
        messages.append(Message(role, _blocks(msg.get("content"), f"{where}.content")))
    req = Request(model=c.string(body.get("model", ""), "model"), messages=messages, names=names)
    req.max_tokens = c.opt_integer(body.get("max_tokens"), "max_tokens")
    if body.get("stop_sequences") is not None:
        req.stop = [c.string(s, f"stop_sequences[{i}]")
                    for i, s in enumerate(c.lst(body["stop_sequences"], "stop_sequences"))]
    req.temperature = c.opt_number(body.get("temperature"), "temperature")
    req.top_p = c.opt_number(body.get("top_p"), "top_p")
    req.top_k = c.opt_integer(body.get("top_k"), "top_k")
    req.stream = bool(c.opt_boolean(body.get("stream"), "stream"))
    req.include_usage = True
    req.service_tier = c.opt_string(body.get("service_tier"), "service_tier")
    if body.get("metadata") is not None:
        metadata = c.obj(body["metadata"], "metadata")
        c.only(metadata, ("user_id",), "metadata")
        req.user = c.opt_string(metadata.get("user_id"), "metadata.user_id")
    if body.get("thinking") is not None:
        req.reasoning = _thinking(body["thinking"])
    if body.get("output_config") is not None:
        config = c.obj(body["output_config"], "output_config")
        c.only(config, ("effort", "format"), "output_config")
        if config.get("effort") is not None:
            effort = c.string(config["effort"], "output_config.effort")
            req.reasoning = req.reasoning or Reasoning()
            req.reasoning.effort = effort
            if body.get("thinking") is None:
                names["reasoning"] = "output_config.effort"
        if config.get("format") is not None:
            fmt = c.obj(config["format"], "output_config.format")
            c.only(fmt, ("type", "schema"), "output_config.format")
            if c.kind_of(fmt, "output_config.format") != "json_schema":
                raise TranslationError("output_config.format.type: must be json_schema")
            # Anthropic always holds the answer to the schema: OpenAI's strict mode.
            req.output_format = OutputFormat("json_schema", strict=True, schema=c.obj(
                fmt.get("schema"), "output_config.format.schema"))
    if body.get("tools") is not None:
        req.tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(c.lst(body["tools"], "tools"))]
    if body.get("tool_choice") is not None:
        choice = c.obj(body["tool_choice"], "tool_choice")
        c.only(choice, ("type", "name", "disable_parallel_tool_use"), "tool_choice")
        kind = c.kind_of(choice, "tool_choice")
        modes = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}
        if kind not in modes:
            raise TranslationError(f"tool_choice.type: {kind!r} is not a known tool choice")
        name = c.string(choice.get("name"), "tool_choice.name") if kind == "tool" else None
        req.tool_choice = ToolChoice(modes[kind], name)  # type: ignore[arg-type]
        if c.opt_boolean(choice.get("disable_parallel_tool_use"),
                         "tool_choice.disable_parallel_tool_use"):
            req.parallel_tool_calls = False
            names["parallel_tool_calls"] = "tool_choice.disable_parallel_tool_use"
    return req


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    texts = []
    for i, block in enumerate(c.lst(system, "system")):
        at = f"system[{i}]"
        if c.kind_of(block, at) != "text":
            raise TranslationError(f"{at}.type: only text blocks are allowed in system")
        c.only(block, ("type", "text"), at)
        texts.append(c.string(block.get("text"), f"{at}.text"))
    return "\n".join(texts)


def _thinking(value: Any) -> Reasoning:
    value = c.obj(value, "thinking")
    kind = c.kind_of(value, "thinking")
    if kind == "disabled":
        c.only(value, ("type",), "thinking")
        return Reasoning(enabled=False)
    if kind == "adaptive":
        c.only(value, ("type",), "thinking")
        return Reasoning()
    if kind == "enabled":
        c.only(value, ("type", "budget_tokens"), "thinking")
        return Reasoning(budget_tokens=c.integer(value.get("budget_tokens"),
                                                 "thinking.budget_tokens"))
    raise TranslationError(f"thinking.type: {kind!r} is not known")


def _blocks(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    return [_block(b, f"{where}[{i}]") for i, b in enumerate(c.lst(content, where))]


def _block(block: Any, at: str) -> Part:
    kind = c.kind_of(block, at)
    if kind == "text":
        c.only(block, ("type", "text"), at)
        return Text(c.string(block.get("text"), f"{at}.text"))
    if kind == "image":
        c.only(block, ("type", "source"), at)
        source = _source(block.get("source"), f"{at}.source", ("base64", "url"))
        return Image(url=source.get("url"), data=source.get("data"),
                     media_type=source.get("media_type"))
    if kind == "document":
        c.only(block, ("type", "source", "title"), at)
        source = _source(block.get("source"), f"{at}.source", ("base64", "url", "text"))
        text = source.get("data") if source["type"] == "text" else None
        return Document(data=None if text is not None else source.get("data"),
                        media_type=source.get("media_type"), url=source.get("url"), text=text,
                        filename=c.opt_string(block.get("title"), f"{at}.title"))
    if kind == "tool_use":
        c.only(block, ("type", "id", "name", "input"), at)
        return ToolCall(c.string(block.get("id"), f"{at}.id"),
                        c.string(block.get("name"), f"{at}.name"),
                        json_text(c.obj(block.get("input", {}), f"{at}.input")))
    if kind == "tool_result":
        c.only(block, ("type", "tool_use_id", "content", "is_error"), at)
        content = block.get("content")
        parts = [] if content is None else _blocks(content, f"{at}.content")
        for i, part in enumerate(parts):
            if not isinstance(part, Text | Image | Document):
                raise TranslationError(f"{at}.content[{i}]: not allowed in a tool result")
        return ToolResult(c.string(block.get("tool_use_id"), f"{at}.tool_use_id"), parts,
                          bool(c.opt_boolean(block.get("is_error"), f"{at}.is_error")))
    if kind == "thinking":
        c.only(block, ("type", "thinking", "signature"), at)
        return Thinking(c.string(block.get("thinking"), f"{at}.thinking"),
                        c.opt_string(block.get("signature"), f"{at}.signature"))
    if kind == "redacted_thinking":
        c.only(block, ("type", "data"), at)
        return Thinking(redacted=c.string(block.get("data"), f"{at}.data"))
    raise TranslationError(f"{at}.type: a {kind!r} block has no equivalent")


def _source(value: Any, where: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    source = c.obj(value, where)
    kind = c.kind_of(source, where)
    if kind not in kinds:
        raise TranslationError(f"{where}.type: {kind!r} has no equivalent")
    if kind == "url":
        c.only(source, ("type", "url"), where)
        c.string(source.get("url"), f"{where}.url")
    else:
        c.only(source, ("type", "media_type", "data"), where)
        c.string(source.get("media_type"), f"{where}.media_type")
        c.string(source.get("data"), f"{where}.data")
    return source


def _tool(tool: Any, where: str) -> Tool:
    tool = c.obj(tool, where)
    if tool.get("type") not in (None, "custom"):
        raise TranslationError(f"{where}.type: a {tool.get('type')!r} server tool has no "
                               "equivalent")
    c.only(tool, ("type", "name", "description", "input_schema", "strict"), where)
    return Tool(name=c.string(tool.get("name"), f"{where}.name"),
                parameters=c.obj(tool.get("input_schema"), f"{where}.input_schema"),
                description=c.opt_string(tool.get("description"), f"{where}.description"),
                strict=c.opt_boolean(tool.get("strict"), f"{where}.strict"))


def _refuse(req: Request, setting: str, why: str) -> TranslationError:
    return TranslationError(f"{req.name(setting)}: {why}")


def render_request(req: Request, *, model: str) -> dict[str, Any]:
    """A canonical request as an Anthropic Messages request for `model`."""
    for setting in ("seed", "frequency_penalty", "presence_penalty", "logit_bias"):
        if getattr(req, setting) is not None:
            raise _refuse(req, setting, f"{API} has no such setting")
    if req.n is not None and req.n != 1:
        raise _refuse(req, "n", f"{API} returns one answer per request; ask with n=1")
    if req.logprobs or req.top_logprobs:
        raise _refuse(req, "logprobs" if req.logprobs else "top_logprobs",
                      f"{API} returns no log probabilities")
    if req.temperature is not None and req.temperature > 1:
        raise _refuse(req, "temperature", f"{req.temperature} is above the maximum of 1 "
                      f"in {API}")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(req.messages):
        where = f"messages[{i}]"
        if msg.role in ("system", "developer"):
            for j, part in enumerate(msg.parts):
                if not isinstance(part, Text):
                    raise TranslationError(f"{where}.content[{j}]: only text in a system turn")
                system.append(part.text)
            continue
        blocks = [_render_block(p, f"{where}.content[{j}]") for j, p in enumerate(msg.parts)]
        if messages and messages[-1]["role"] == msg.role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": msg.role, "content": blocks})
    out: dict[str, Any] = {"model": model, "messages": [_compact(m) for m in messages]}
    if system:
        out["system"] = "\n\n".join(system)
    out["max_tokens"] = DEFAULT_MAX_TOKENS if req.max_tokens is None else req.max_tokens
    if req.stop:
        out["stop_sequences"] = list(req.stop)
    for key in ("temperature", "top_p", "top_k"):
        if getattr(req, key) is not None:
            out[key] = getattr(req, key)
    if req.metadata:
        raise _refuse(req, "metadata", f"{API} takes only a user id as metadata")
    if req.user is not None:
        out["metadata"] = {"user_id": req.user}
    if req.service_tier is not None:
        tiers = {"auto": "auto", "default": "standard_only"}
        if req.service_tier not in tiers:
            raise _refuse(req, "service_tier", f"{req.service_tier!r} has no {API} equivalent")
        out["service_tier"] = tiers[req.service_tier]
    if req.reasoning is not None:
        thinking = _render_thinking(req, out["max_tokens"])
        if thinking is not None:
            out["thinking"] = thinking
    if req.output_format is not None:
        fmt = req.output_format
        if fmt.kind == "json_object":
            raise _refuse(req, "output_format", f"{API} needs a JSON schema "
                          "(json_schema), it has no schema-less JSON mode")
        if fmt.description is not None:
            raise TranslationError(f"{req.name('output_format')}.description: {API} takes "
                                   "no description of the output format")
        if fmt.kind == "json_schema":
            out["output_config"] = {"format": {"type": "json_schema",
                                               "schema": fmt.schema or {}}}
    if req.tools:
        out["tools"] = [_render_tool(t) for t in req.tools]
    choice = None
    if req.tool_choice is not None:
        modes = {"auto": "auto", "required": "any", "none": "none", "tool": "tool"}
        choice = {"type": modes[req.tool_choice.mode]}
        if req.tool_choice.mode == "tool":
            choice["name"] = req.tool_choice.name
    if req.parallel_tool_calls is False and req.tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice
    if req.stream:
        out["stream"] = True
    return out


def _render_thinking(req: Request, max_tokens: int) -> dict[str, Any] | None:
    reasoning = req.reasoning
    assert reasoning is not None
    if not reasoning.enabled or reasoning.effort == "none":
        return {"type": "disabled"}
    if reasoning.summary is not None:
        raise TranslationError(f"{req.name('reasoning')}.summary: {API} returns the thinking "
                               "itself, not a summary")
    if reasoning.budget_tokens is not None:
        return {"type": "enabled", "budget_tokens": reasoning.budget_tokens}
    effort = reasoning.effort or "medium"
    if effort not in EFFORT_BUDGETS:
        raise _refuse(req, "reasoning", f"effort {effort!r} has no {API} equivalent")
    if max_tokens <= MIN_THINKING_BUDGET:
        raise _refuse(req, "max_tokens", f"{API} needs max_tokens above "
                      f"{MIN_THINKING_BUDGET} to reason (effort {effort!r})")
    budget = min(EFFORT_BUDGETS[effort], max(MIN_THINKING_BUDGET, max_tokens // 2))
    return {"type": "enabled", "budget_tokens": budget}


def _render_tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters}
    if tool.description is not None:
        out["description"] = tool.description
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _render_block(part: Part, at: str) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Refusal):
        return {"type": "text", "text": part.text}
    if isinstance(part, Image):
        if part.detail not in (None, "auto"):
            raise TranslationError(f"{at}.detail: {API} has no image detail setting")
        if part.url is not None:
            return {"type": "image", "source": {"type": "url", "url": part.url}}
        return {"type": "image", "source": {"type": "base64", "media_type": part.media_type,
                                            "data": part.data}}
    if isinstance(part, Document):
        if part.text is not None:
            source: dict[str, Any] = {"type": "text", "media_type": "text/plain",
                                      "data": part.text}
        elif part.url is not None:
            source = {"type": "url", "url": part.url}
        else:
            source = {"type": "base64", "media_type": part.media_type, "data": part.data}
        block = {"type": "document", "source": source}
        if part.filename is not None:
            block["title"] = part.filename
        return block
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name,
                "input": parse_arguments(part.arguments, f"{at}.arguments")}
    if isinstance(part, ToolResult):
        content: Any = [_render_block(p, f"{at}.content[{i}]") for i, p in enumerate(part.parts)]
        if len(content) == 1 and content[0]["type"] == "text":
            content = content[0]["text"]
        block = {"type": "tool_result", "tool_use_id": part.call_id, "content": content}
        if part.is_error:
            block["is_error"] = True
        return block
    if part.redacted is not None:
        return {"type": "redacted_thinking", "data": part.redacted}
    if part.signature is None:
        raise TranslationError(f"{at}: {API} takes back only signed thinking, and this "
                               "reasoning carries no signature")
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def _compact(message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    if len(content) == 1 and content[0]["type"] == "text":
        return {"role": message["role"], "content": content[0]["text"]}
    return message


# --------------------------------------------------------------------------- answers


def usage_in(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    read = usage.get("cache_read_input_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    details = usage.get("output_tokens_details") or {}
    return Usage(input_tokens=(usage.get("input_tokens") or 0) + read + write,
                 output_tokens=usage.get("output_tokens") or 0,
                 cache_read_tokens=read, cache_write_tokens=write,
                 reasoning_tokens=details.get("thinking_tokens") or 0)


def usage_out(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def parse_answer(data: dict[str, Any]) -> Answer:
    if data.get("type") != "message" or not isinstance(data.get("content"), list):
        raise TypeError("not an Anthropic message (type 'message' with a content list)")
    parts: list[Part] = []
    for block in data["content"]:
        kind = block["type"]
        if kind == "text":
            parts.append(Text(block["text"]))
        elif kind == "tool_use":
            parts.append(ToolCall(block["id"], block["name"], json_text(block.get("input", {}))))
        elif kind == "thinking":
            parts.append(Thinking(block["thinking"], block.get("signature")))
        elif kind == "redacted_thinking":
            parts.append(Thinking(redacted=block["data"]))
        else:
            raise TranslationError(f"content: a {kind!r} block cannot be translated")
    finish = _FINISH_IN.get(data.get("stop_reason") or "end_turn", "end")
    return Answer(id=str(data.get("id") or ""), model=str(data.get("model") or ""),
                  choices=[Choice(parts, finish, data.get("stop_sequence"))],
                  usage=usage_in(data.get("usage")))


def message_id(answer_id: str) -> str:
    for prefix in ("chatcmpl-", "resp_"):
        if answer_id.startswith(prefix):
            return "msg_" + answer_id[len(prefix):]
    return answer_id if answer_id.startswith("msg_") else "msg_" + answer_id


def render_answer(answer: Answer, *, model: str) -> dict[str, Any]:
    if len(answer.choices) != 1:
        raise TranslationError(f"n: {API} carries one answer")
    choice = answer.choices[0]
    content = []
    for part in choice.parts:
        content.append(_answer_block(part))
    return {"id": message_id(answer.id), "type": "message", "role": "assistant",
            "model": model, "content": content, "stop_reason": _FINISH_OUT[choice.finish],
            "stop_sequence": choice.stop_sequence, "usage": usage_out(answer.usage)}


def _answer_block(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        if part.logprobs is not None:
            raise TranslationError(f"logprobs: {API} carries no log probabilities")
        return {"type": "text", "text": part.text}
    if isinstance(part, Refusal):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name,
                "input": parse_arguments(part.arguments, "tool_calls.arguments")}
    if isinstance(part, Thinking):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    raise TranslationError(f"content: a {type(part).__name__} cannot be an answer")


# --------------------------------------------------------------------------- streams


class Reader:
    """Anthropic stream events in, canonical events out."""

    def __init__(self) -> None:
        self._kinds: dict[int, PartKind] = {}
        self._usage: dict[str, Any] = {}
        self._stop: tuple[Any, str | None] = ("end", None)
        self.done = False

    def feed(self, data: dict[str, Any]) -> list[Event]:
        kind = data.get("type")
        if kind == "message_start":
            message = data["message"]
            self._usage = dict(message.get("usage") or {})
            return [Start(str(message.get("id") or ""), str(message.get("model") or ""),
                          usage_in(self._usage))]
        if kind == "content_block_start":
            index, block = data["index"], data["content_block"]
            part_kind: PartKind = {"text": "text", "thinking": "thinking",
                                   "redacted_thinking": "redacted_thinking",
                                   "tool_use": "tool_call"}.get(block["type"], "text")
            if block["type"] not in ("text", "thinking", "redacted_thinking", "tool_use"):
                raise TranslationError(f"content: a {block['type']!r} block cannot be "
                                       "translated")
            self._kinds[index] = part_kind
            out: list[Event] = [PartStart(index, part_kind, id=block.get("id"),
                                          name=block.get("name"), data=block.get("data"))]
            if block.get("text"):
                out.append(Delta(index, block["text"]))
            return out
        if kind == "content_block_delta":
            index, delta = data["index"], data["delta"]
            dkind = delta["type"]
            if dkind == "text_delta":
                return [Delta(index, delta["text"])]
            if dkind == "input_json_delta":
                return [Delta(index, delta["partial_json"])] if delta["partial_json"] else []
            if dkind == "thinking_delta":
                return [Delta(index, delta["thinking"])]
            if dkind == "signature_delta":
                return [Signature(index, delta["signature"])]
            if dkind == "citations_delta":
                raise TranslationError("citations: cannot be translated")
            return []
        if kind == "content_block_stop":
            return [PartEnd(data["index"])]
        if kind == "message_delta":
            delta = data.get("delta") or {}
            if delta.get("stop_reason"):
                self._stop = (_FINISH_IN.get(delta["stop_reason"], "end"),
                              delta.get("stop_sequence"))
            for key, value in (data.get("usage") or {}).items():
                if value is not None:
                    self._usage[key] = value
            return []
        if kind == "message_stop":
            self.done = True
            return [End(self._stop[0], usage_in(self._usage), self._stop[1])]
        if kind == "error":
            error = data.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else error
            raise TranslationError(f"the upstream failed mid-stream: {message}")
        return []  # ping, and event types added later


class Writer:
    """Canonical events in, Anthropic stream events out."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self._blocks: dict[int, int] = {}
        self._kinds: dict[int, PartKind] = {}
        self._open: set[int] = set()
        self._start_usage = Usage()

    def write(self, event: Event) -> list[StreamEvent]:
        if isinstance(event, Start):
            self._start_usage = event.usage or Usage()
            usage = usage_out(self._start_usage)
            message = {"id": message_id(event.id), "type": "message", "role": "assistant",
                       "model": self.model, "content": [], "stop_reason": None,
                       "stop_sequence": None, "usage": usage}
            return [StreamEvent("message_start", {"type": "message_start",
                                                  "message": message})]
        if isinstance(event, PartStart):
            index = self._blocks[event.index] = len(self._blocks)
            self._kinds[event.index] = event.kind
            self._open.add(event.index)
            block: dict[str, Any]
            if event.kind in ("text", "refusal"):
                block = {"type": "text", "text": ""}
            elif event.kind == "thinking":
                block = {"type": "thinking", "thinking": "", "signature": ""}
            elif event.kind == "redacted_thinking":
                block = {"type": "redacted_thinking", "data": event.data or ""}
            else:
                block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            return [_event("content_block_start", index=index, content_block=block)]
        if isinstance(event, Delta):
            kind = self._kinds[event.index]
            if kind in ("text", "refusal"):
                if event.logprobs:
                    raise TranslationError(f"logprobs: {API} carries no log probabilities")
                delta = {"type": "text_delta", "text": event.text}
            elif kind == "thinking":
                delta = {"type": "thinking_delta", "thinking": event.text}
            elif kind == "tool_call":
                delta = {"type": "input_json_delta", "partial_json": event.text}
            else:
                return []
            return [_event("content_block_delta", index=self._blocks[event.index], delta=delta)]
        if isinstance(event, Signature):
            return [_event("content_block_delta", index=self._blocks[event.index],
                           delta={"type": "signature_delta", "signature": event.signature})]
        if isinstance(event, PartEnd):
            if event.index not in self._open:
                return []
            self._open.discard(event.index)
            return [_event("content_block_stop", index=self._blocks[event.index])]
        out = [_event("content_block_stop", index=self._blocks[i]) for i in sorted(self._open)]
        self._open.clear()
        out.append(_event("message_delta",
                          delta={"stop_reason": _FINISH_OUT[event.finish],
                                 "stop_sequence": event.stop_sequence},
                          usage=usage_out(event.usage)))
        out.append(_event("message_stop"))
        return out


def _event(kind: str, **fields: Any) -> StreamEvent:
    return StreamEvent(kind, {"type": kind, **fields})
