"""OpenAI Responses into and out of the canonical model.

Only what a stateless exchange means translates: `previous_response_id`, `conversation`,
`background`, `store: true` and item references need the state a native Responses upstream
keeps, so they are refused for any other upstream. Thinking travels as a `reasoning` item
whose `content` holds the text and whose `encrypted_content` holds Anthropic's signature,
so a caller can hand it back unchanged.
"""

from __future__ import annotations

import time
from typing import Any

from harbourgate.shapes import check as c
from harbourgate.shapes.common import Collector, data_url, effort_of_budget, split_data_url
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

API = "OpenAI Responses"
STATEFUL = ("previous_response_id", "conversation", "background")
"""Request fields that need state kept by a native Responses upstream."""
LOGPROBS_INCLUDE = "message.output_text.logprobs"

_REQUEST_KEYS = {"model", "input", "instructions", "max_output_tokens", "temperature", "top_p",
                 "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning", "metadata",
                 "user", "service_tier", "stream", "store", "include", "top_logprobs",
                 "truncation", *STATEFUL}


# --------------------------------------------------------------------------- requests


def stateful_field(body: Any) -> str | None:
    """The first field of a request that needs upstream-held state, if any."""
    if not isinstance(body, dict):
        return None
    for key in STATEFUL:
        if body.get(key) not in (None, False):
            return key
    if body.get("store") is True:
        return "store"
    items = body.get("input")
    if isinstance(items, list) and any(isinstance(i, dict) and i.get("type") == "item_reference"
                                       for i in items):
        return "input[].item_reference"
    return None


def parse_request(body: Any) -> Request:
    body = c.obj(body, "body")
    c.only(body, _REQUEST_KEYS, "")
    stateful = stateful_field(body)
    if stateful is not None:
        raise TranslationError(f"{stateful}: needs conversation state that only a native "
                               "Responses upstream keeps")
    names = {"max_tokens": "max_output_tokens", "output_format": "text.format",
             "reasoning": "reasoning", "logprobs": "top_logprobs"}
    messages: list[Message] = []
    if body.get("instructions") is not None:
        messages.append(Message("system", [Text(c.string(body["instructions"],
                                                         "instructions"))]))
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append(Message("user", [Text(raw)]))
    else:
        for i, item in enumerate(c.lst(raw, "input")):
            _item(item, f"input[{i}]", messages)
    req = Request(model=c.string(body.get("model", ""), "model"), messages=messages, names=names)
    req.max_tokens = c.opt_integer(body.get("max_output_tokens"), "max_output_tokens")
    req.temperature = c.opt_number(body.get("temperature"), "temperature")
    req.top_p = c.opt_number(body.get("top_p"), "top_p")
    req.stream = bool(c.opt_boolean(body.get("stream"), "stream"))
    req.include_usage = True
    req.user = c.opt_string(body.get("user"), "user")
    req.service_tier = c.opt_string(body.get("service_tier"), "service_tier")
    if body.get("metadata") is not None:
        req.metadata = c.obj(body["metadata"], "metadata")
    if body.get("truncation") not in (None, "disabled"):
        raise TranslationError(f"truncation: {body['truncation']!r} has no equivalent")
    include = [c.string(v, f"include[{i}]")
               for i, v in enumerate(c.lst(body.get("include") or [], "include"))]
    for i, value in enumerate(include):
        if value not in (LOGPROBS_INCLUDE, "reasoning.encrypted_content"):
            raise TranslationError(f"include[{i}]: {value!r} has no equivalent")
    req.top_logprobs = c.opt_integer(body.get("top_logprobs"), "top_logprobs")
    req.logprobs = LOGPROBS_INCLUDE in include
    if body.get("reasoning") is not None:
        reasoning = c.obj(body["reasoning"], "reasoning")
        c.only(reasoning, ("effort", "summary"), "reasoning")
        req.reasoning = Reasoning(effort=c.opt_string(reasoning.get("effort"),
                                                      "reasoning.effort"),
                                  summary=c.opt_string(reasoning.get("summary"),
                                                       "reasoning.summary"))
    if body.get("text") is not None:
        text = c.obj(body["text"], "text")
        c.only(text, ("format",), "text")
        if text.get("format") is not None:
            req.output_format = _format(text["format"])
    if body.get("tools") is not None:
        req.tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(c.lst(body["tools"], "tools"))]
    if body.get("tool_choice") is not None:
        req.tool_choice = _tool_choice(body["tool_choice"])
    req.parallel_tool_calls = c.opt_boolean(body.get("parallel_tool_calls"),
                                            "parallel_tool_calls")
    return req


def _append(messages: list[Message], role: Any, parts: list[Part]) -> None:
    if messages and messages[-1].role == role and role in ("user", "assistant"):
        messages[-1].parts.extend(parts)
    else:
        messages.append(Message(role, parts))


def _item(item: Any, where: str, messages: list[Message]) -> None:
    item = c.obj(item, where)
    kind = item.get("type", "message")
    if kind == "message":
        c.only(item, ("type", "role", "content", "id", "status"), where)
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise TranslationError(f"{where}.role: must be user, assistant, system or "
                                   f"developer, not {role!r}")
        content = item.get("content")
        if isinstance(content, str):
            parts: list[Part] = [Text(content)]
        else:
            parts = [_content(p, f"{where}.content[{i}]", role)
                     for i, p in enumerate(c.lst(content, f"{where}.content"))]
        _append(messages, role, parts)
    elif kind == "function_call":
        c.only(item, ("type", "call_id", "name", "arguments", "id", "status"), where)
        _append(messages, "assistant", [ToolCall(
            c.string(item.get("call_id"), f"{where}.call_id"),
            c.string(item.get("name"), f"{where}.name"),
            c.string(item.get("arguments"), f"{where}.arguments"))])
    elif kind == "function_call_output":
        c.only(item, ("type", "call_id", "output", "id", "status"), where)
        output = item.get("output")
        if isinstance(output, str):
            result: list[Part] = [Text(output)]
        else:
            result = [_content(p, f"{where}.output[{i}]", "user")
                      for i, p in enumerate(c.lst(output, f"{where}.output"))]
        _append(messages, "user", [ToolResult(c.string(item.get("call_id"),
                                                       f"{where}.call_id"), result)])
    elif kind == "reasoning":
        c.only(item, ("type", "id", "summary", "content", "encrypted_content", "status"), where)
        texts = []
        for i, part in enumerate(c.lst(item.get("content") or [], f"{where}.content")):
            at = f"{where}.content[{i}]"
            if c.kind_of(part, at) != "reasoning_text":
                raise TranslationError(f"{at}.type: must be reasoning_text")
            texts.append(c.string(part.get("text"), f"{at}.text"))
        if item.get("summary"):
            raise TranslationError(f"{where}.summary: a reasoning summary cannot be handed to "
                                   "another model")
        _append(messages, "assistant", [Thinking(
            "".join(texts), c.opt_string(item.get("encrypted_content"),
                                         f"{where}.encrypted_content"))])
    else:
        raise TranslationError(f"{where}.type: a {kind!r} item has no equivalent")


def _content(part: Any, at: str, role: str) -> Part:
    kind = c.kind_of(part, at)
    if kind in ("input_text", "output_text"):
        c.only(part, ("type", "text", "annotations", "logprobs"), at)
        if part.get("annotations"):
            raise TranslationError(f"{at}.annotations: have no equivalent")
        return Text(c.string(part.get("text"), f"{at}.text"))
    if kind == "refusal":
        c.only(part, ("type", "refusal"), at)
        return Refusal(c.string(part.get("refusal"), f"{at}.refusal"))
    if kind == "input_image":
        c.only(part, ("type", "image_url", "detail"), at)
        url = c.string(part.get("image_url"), f"{at}.image_url")
        detail = c.opt_string(part.get("detail"), f"{at}.detail")
        inline = split_data_url(url, f"{at}.image_url")
        return (Image(data=inline[1], media_type=inline[0], detail=detail) if inline
                else Image(url=url, detail=detail))
    if kind == "input_file":
        c.only(part, ("type", "file_data", "file_url", "filename"), at)
        filename = c.opt_string(part.get("filename"), f"{at}.filename")
        if part.get("file_url") is not None:
            return Document(url=c.string(part["file_url"], f"{at}.file_url"), filename=filename)
        raw = c.string(part.get("file_data"), f"{at}.file_data")
        inline = split_data_url(raw, f"{at}.file_data")
        if inline is None:
            raise TranslationError(f"{at}.file_data: must be a base64 data URL")
        return Document(data=inline[1], media_type=inline[0], filename=filename)
    raise TranslationError(f"{at}.type: a {kind!r} part has no equivalent")


def _format(fmt: Any) -> OutputFormat:
    fmt = c.obj(fmt, "text.format")
    kind = c.kind_of(fmt, "text.format")
    if kind in ("text", "json_object"):
        c.only(fmt, ("type",), "text.format")
        return OutputFormat(kind)
    if kind != "json_schema":
        raise TranslationError(f"text.format.type: {kind!r} has no equivalent")
    c.only(fmt, ("type", "name", "schema", "strict", "description"), "text.format")
    return OutputFormat("json_schema", schema=c.obj(fmt.get("schema"), "text.format.schema"),
                        name=c.opt_string(fmt.get("name"), "text.format.name"),
                        strict=c.opt_boolean(fmt.get("strict"), "text.format.strict"),
                        description=c.opt_string(fmt.get("description"),
                                                 "text.format.description"))


def _tool(tool: Any, where: str) -> Tool:
    tool = c.obj(tool, where)
    if c.kind_of(tool, where) != "function":
        raise TranslationError(f"{where}.type: a {tool['type']!r} tool has no equivalent")
    c.only(tool, ("type", "name", "description", "parameters", "strict"), where)
    parameters = tool.get("parameters")
    return Tool(name=c.string(tool.get("name"), f"{where}.name"),
                parameters=c.obj(parameters, f"{where}.parameters") if parameters is not None
                else {"type": "object", "properties": {}},
                description=c.opt_string(tool.get("description"), f"{where}.description"),
                strict=c.opt_boolean(tool.get("strict"), f"{where}.strict"))


def _tool_choice(choice: Any) -> ToolChoice:
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    choice = c.obj(choice, "tool_choice")
    if c.kind_of(choice, "tool_choice") != "function":
        raise TranslationError(f"tool_choice.type: {choice['type']!r} has no equivalent")
    c.only(choice, ("type", "name"), "tool_choice")
    return ToolChoice("tool", c.string(choice.get("name"), "tool_choice.name"))


def _refuse(req: Request, setting: str, why: str) -> TranslationError:
    return TranslationError(f"{req.name(setting)}: {why}")


def render_request(req: Request, *, model: str) -> dict[str, Any]:
    """A canonical request as a Responses request for `model` (never stored upstream)."""
    for setting in ("seed", "frequency_penalty", "presence_penalty", "logit_bias", "top_k"):
        if getattr(req, setting) is not None:
            raise _refuse(req, setting, f"{API} has no such setting")
    if req.stop:
        raise _refuse(req, "stop", f"{API} has no stop sequences")
    if req.n is not None and req.n != 1:
        raise _refuse(req, "n", f"{API} returns one answer per request; ask with n=1")
    out: dict[str, Any] = {"model": model, "input": _render_items(req.messages), "store": False}
    if req.max_tokens is not None:
        out["max_output_tokens"] = req.max_tokens
    for key in ("temperature", "top_p", "metadata", "user", "parallel_tool_calls"):
        if getattr(req, key) is not None:
            out[key] = getattr(req, key)
    if req.service_tier is not None:
        out["service_tier"] = {"standard_only": "default"}.get(req.service_tier,
                                                               req.service_tier)
    if req.logprobs or req.top_logprobs is not None:
        out["top_logprobs"] = req.top_logprobs or 0
        out["include"] = [LOGPROBS_INCLUDE]
    if req.reasoning is not None:
        reasoning = _render_reasoning(req)
        if reasoning is not None:
            out["reasoning"] = reasoning
            out.setdefault("include", []).append("reasoning.encrypted_content")
    if req.output_format is not None:
        fmt = req.output_format
        spec: dict[str, Any] = {"type": fmt.kind}
        if fmt.kind == "json_schema":
            spec.update(name=fmt.name or "output", schema=fmt.schema or {})
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
            if fmt.description is not None:
                spec["description"] = fmt.description
        out["text"] = {"format": spec}
    if req.tools:
        out["tools"] = [_render_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        choice = req.tool_choice
        out["tool_choice"] = ({"type": "function", "name": choice.name}
                              if choice.mode == "tool" else choice.mode)
    if req.stream:
        out["stream"] = True
    return out


def _render_reasoning(req: Request) -> dict[str, Any] | None:
    reasoning = req.reasoning
    assert reasoning is not None
    if not reasoning.enabled:
        return None  # no thinking: what a request without reasoning asks for
    out: dict[str, Any] = {}
    if reasoning.effort is not None:
        out["effort"] = reasoning.effort
    elif reasoning.budget_tokens is not None:
        out["effort"] = effort_of_budget(reasoning.budget_tokens)
    if reasoning.summary is not None:
        out["summary"] = reasoning.summary
    return out or None


def _render_tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function", "name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        out["description"] = tool.description
    out["strict"] = bool(tool.strict)  # the Responses API defaults to strict; keep the meaning
    return out


def _render_items(messages: list[Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        content: list[dict[str, Any]] = []
        for j, part in enumerate(msg.parts):
            at = f"messages[{i}].content[{j}]"
            if isinstance(part, Text | Refusal | Image | Document):
                content.append(_render_content(part, at, msg.role))
                continue
            _flush(items, msg.role, content)
            items.append(_render_item(part, at))
        _flush(items, msg.role, content)
    return items


def _flush(items: list[dict[str, Any]], role: str, content: list[dict[str, Any]]) -> None:
    if content:
        items.append({"type": "message", "role": role, "content": list(content)})
        content.clear()


def _render_item(part: Part, at: str) -> dict[str, Any]:
    if isinstance(part, ToolCall):
        return {"type": "function_call", "call_id": part.id, "name": part.name,
                "arguments": part.arguments}
    if isinstance(part, ToolResult):
        if part.is_error:
            raise TranslationError(f"{at}.is_error: {API} has no failed tool results")
        output = [_render_content(p, f"{at}.content[{k}]", "user")
                  for k, p in enumerate(part.parts)]
        if len(output) == 1 and output[0]["type"] == "input_text":
            return {"type": "function_call_output", "call_id": part.call_id,
                    "output": output[0]["text"]}
        return {"type": "function_call_output", "call_id": part.call_id, "output": output}
    assert isinstance(part, Thinking)
    if part.redacted is not None:
        raise TranslationError(f"{at}: redacted thinking has no equivalent in {API}")
    item: dict[str, Any] = {"type": "reasoning", "summary": [],
                            "content": [{"type": "reasoning_text", "text": part.text}]}
    if part.signature is not None:
        item["encrypted_content"] = part.signature
    return item


def _render_content(part: Part, at: str, role: str) -> dict[str, Any]:
    if isinstance(part, Text):
        if role == "assistant":
            return {"type": "output_text", "text": part.text, "annotations": []}
        return {"type": "input_text", "text": part.text}
    if isinstance(part, Refusal):
        return {"type": "refusal", "refusal": part.text}
    if isinstance(part, Image):
        url = part.url if part.url is not None else data_url(part.media_type, part.data or "")
        return {"type": "input_image", "image_url": url, "detail": part.detail or "auto"}
    if isinstance(part, Document):
        if part.text is not None:
            raise TranslationError(f"{at}: {API} takes files, not plain-text documents")
        out: dict[str, Any] = {"type": "input_file"}
        if part.url is not None:
            out["file_url"] = part.url
        else:
            out["file_data"] = data_url(part.media_type, part.data or "")
        if part.filename is not None:
            out["filename"] = part.filename
        return out
    raise TranslationError(f"{at}: a {type(part).__name__.lower()} part is not allowed here")


# --------------------------------------------------------------------------- answers


def usage_in(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("input_tokens_details") or {}
    out_details = usage.get("output_tokens_details") or {}
    return Usage(input_tokens=usage.get("input_tokens") or 0,
                 output_tokens=usage.get("output_tokens") or 0,
                 cache_read_tokens=details.get("cached_tokens") or 0,
                 cache_write_tokens=details.get("cache_write_tokens") or 0,
                 reasoning_tokens=out_details.get("reasoning_tokens") or 0)


def usage_out(usage: Usage) -> dict[str, Any]:
    details = {"cached_tokens": usage.cache_read_tokens,
               "cache_write_tokens": usage.cache_write_tokens}
    return {"input_tokens": usage.input_tokens, "input_tokens_details": details,
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.input_tokens + usage.output_tokens}


def parse_answer(data: dict[str, Any]) -> Answer:
    if data.get("object") != "response" or not isinstance(data.get("output"), list):
        raise TypeError("not a Responses answer (object 'response' with an output list)")
    parts: list[Part] = []
    for item in data["output"]:
        kind = item["type"]
        if kind == "message":
            for part in item["content"]:
                if part["type"] == "output_text":
                    parts.append(Text(part["text"], part.get("logprobs") or None))
                elif part["type"] == "refusal":
                    parts.append(Refusal(part["refusal"]))
        elif kind == "function_call":
            parts.append(ToolCall(item["call_id"], item["name"], item.get("arguments") or ""))
        elif kind == "reasoning":
            text = "".join(p.get("text", "") for p in item.get("content") or [])
            if not text:
                text = "".join(p.get("text", "") for p in item.get("summary") or [])
            parts.append(Thinking(text, item.get("encrypted_content")))
        else:
            raise TranslationError(f"output: a {kind!r} item cannot be translated")
    return Answer(id=str(data.get("id") or ""), model=str(data.get("model") or ""),
                  choices=[Choice(parts, _finish_in(data, parts))],
                  usage=usage_in(data.get("usage")), created=data.get("created_at"))


def _finish_in(data: dict[str, Any], parts: list[Part]) -> Any:
    if data.get("status") == "incomplete":
        reason = (data.get("incomplete_details") or {}).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    if any(isinstance(p, Refusal) for p in parts):
        return "refusal"
    if any(isinstance(p, ToolCall) for p in parts):
        return "tool_calls"
    return "end"


def response_id(answer_id: str) -> str:
    for prefix in ("chatcmpl-", "msg_"):
        if answer_id.startswith(prefix):
            return "resp_" + answer_id[len(prefix):]
    return answer_id if answer_id.startswith("resp_") else "resp_" + answer_id


def _items(answer: Answer) -> list[dict[str, Any]]:
    """The output items of an answer, each with its final content."""
    if len(answer.choices) != 1:
        raise TranslationError(f"n: {API} carries one answer")
    rid = response_id(answer.id)[5:]
    items: list[dict[str, Any]] = []
    message: dict[str, Any] | None = None
    for part in answer.choices[0].parts:
        if isinstance(part, Text | Refusal):
            if message is None:
                message = {"id": f"msg_{rid}_{len(items)}", "type": "message",
                           "status": "completed", "role": "assistant", "content": []}
                items.append(message)
            if isinstance(part, Text):
                message["content"].append({"type": "output_text", "text": part.text,
                                           "annotations": [], "logprobs": part.logprobs or []})
            else:
                message["content"].append({"type": "refusal", "refusal": part.text})
            continue
        message = None
        if isinstance(part, ToolCall):
            items.append({"id": f"fc_{rid}_{len(items)}", "type": "function_call",
                          "status": "completed", "call_id": part.id, "name": part.name,
                          "arguments": part.arguments})
        elif isinstance(part, Thinking):
            if part.redacted is not None:
                items.append({"id": f"rs_{rid}_{len(items)}", "type": "reasoning",
                              "summary": [], "encrypted_content": part.redacted})
                continue
            item: dict[str, Any] = {"id": f"rs_{rid}_{len(items)}", "type": "reasoning",
                                    "summary": [],
                                    "content": [{"type": "reasoning_text", "text": part.text}]}
            if part.signature:
                item["encrypted_content"] = part.signature
            items.append(item)
    return items


def render_answer(answer: Answer, *, model: str, request: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The answer as a Responses object; `request` (the caller's body) fills the echoed
    settings (instructions, tools, temperature...) that a Response carries."""
    choice = answer.choices[0] if answer.choices else Choice([])
    status, incomplete = "completed", None
    if choice.finish in ("length", "context_window"):
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    elif choice.finish == "content_filter" or (
            choice.finish == "refusal" and not any(isinstance(p, Refusal) for p in choice.parts)):
        status, incomplete = "incomplete", {"reason": "content_filter"}
    return _response(answer, model, status, _items(answer), request or {},
                     incomplete=incomplete, usage=usage_out(answer.usage))


def _response(answer: Answer, model: str, status: str, output: list[dict[str, Any]],
              request: dict[str, Any], *, incomplete: dict[str, Any] | None = None,
              usage: dict[str, Any] | None = None) -> dict[str, Any]:
    req = request if isinstance(request, dict) else {}
    created = answer.created if answer.created is not None else int(time.time())
    return {
        "id": response_id(answer.id), "object": "response", "created_at": created,
        "status": status, "model": model, "output": output,
        "output_text": "".join(p["text"] for i in output if i["type"] == "message"
                               for p in i["content"] if p["type"] == "output_text"),
        "error": None, "incomplete_details": incomplete,
        "instructions": req.get("instructions"), "metadata": req.get("metadata") or {},
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "temperature": req.get("temperature"), "top_p": req.get("top_p"),
        "tool_choice": req.get("tool_choice", "auto"), "tools": req.get("tools") or [],
        "max_output_tokens": req.get("max_output_tokens"),
        "reasoning": req.get("reasoning"), "text": req.get("text") or {"format": {"type": "text"}},
        "store": False, "usage": usage,
    }


# --------------------------------------------------------------------------- streams


class Reader:
    """Responses stream events in, canonical events out."""

    def __init__(self) -> None:
        self._index: dict[tuple[int, int], int] = {}  # (output, content index) -> part
        self._kinds: dict[int, PartKind] = {}
        self._next = 0
        self.done = False

    def _part(self, key: tuple[int, int], kind: PartKind, **fields: Any) -> list[Event]:
        index = self._index[key] = self._next
        self._next += 1
        self._kinds[index] = kind
        return [PartStart(index, kind, **fields)]

    def feed(self, data: dict[str, Any]) -> list[Event]:
        kind = data.get("type")
        if kind == "response.created":
            response = data["response"]
            return [Start(str(response.get("id") or ""), str(response.get("model") or ""),
                          created=response.get("created_at"))]
        if kind == "response.output_item.added":
            item, at = data["item"], data["output_index"]
            if item["type"] == "function_call":
                return self._part((at, -1), "tool_call", id=item["call_id"], name=item["name"])
            if item["type"] == "reasoning":
                return self._part((at, -1), "thinking")
            if item["type"] != "message":
                raise TranslationError(f"output: a {item['type']!r} item cannot be translated")
            return []
        if kind == "response.content_part.added":
            part = data["part"]
            part_kind: PartKind = "refusal" if part["type"] == "refusal" else "text"
            return self._part((data["output_index"], data["content_index"]), part_kind)
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            index = self._index[(data["output_index"], data["content_index"])]
            return [Delta(index, data["delta"], data.get("logprobs") or None)]
        if kind in ("response.function_call_arguments.delta", "response.reasoning_text.delta",
                    "response.reasoning_summary_text.delta"):
            return [Delta(self._index[(data["output_index"], -1)], data["delta"])]
        if kind == "response.content_part.done":
            return [PartEnd(self._index[(data["output_index"], data["content_index"])])]
        if kind == "response.output_item.done":
            item, key = data["item"], (data["output_index"], -1)
            if key not in self._index:
                return []
            out: list[Event] = []
            if item["type"] == "reasoning" and item.get("encrypted_content"):
                out.append(Signature(self._index[key], item["encrypted_content"]))
            return [*out, PartEnd(self._index[key])]
        if kind in ("response.completed", "response.incomplete"):
            self.done = True
            answer = parse_answer(data["response"])
            choice = answer.choices[0]
            return [End(choice.finish, answer.usage)]
        if kind in ("response.failed", "error"):
            error = (data.get("response") or {}).get("error") or data
            message = error.get("message") if isinstance(error, dict) else error
            raise TranslationError(f"the upstream failed mid-stream: {message}")
        return []


class Writer:
    """Canonical events in, the full Responses event sequence out.

    The terminal `response.completed` carries the whole response, as rendered by
    `render_answer` from what the stream carried, so it equals the non-streamed answer.
    """

    def __init__(self, *, model: str, request: dict[str, Any] | None = None) -> None:
        self.model = model
        self.request = request or {}
        self._collector = Collector()
        self._seq = 0
        self._where: dict[int, tuple[int, int]] = {}  # part -> (output index, content index)
        self._kinds: dict[int, PartKind] = {}
        self._items: list[dict[str, Any]] = []  # output items as announced
        self._message: int | None = None  # output index of the open message item
        self._open: set[int] = set()
        self._rid = ""

    def _event(self, kind: str, **fields: Any) -> StreamEvent:
        self._seq += 1
        return StreamEvent(kind, {"type": kind, "sequence_number": self._seq - 1, **fields})

    def write(self, event: Event) -> list[StreamEvent]:
        self._collector.feed(event)
        if isinstance(event, Start):
            self._rid = response_id(event.id)
            answer = self._collector.answer
            shell = _response(answer, self.model, "in_progress", [], self.request)
            return [self._event("response.created", response=shell),
                    self._event("response.in_progress", response=shell)]
        if isinstance(event, PartStart):
            return self._start(event)
        if isinstance(event, Delta):
            return self._delta(event)
        if isinstance(event, PartEnd):
            return self._end(event.index)
        if isinstance(event, Signature):
            return []
        out: list[StreamEvent] = []
        for index in sorted(self._open):
            out += self._end(index)
        out += self._close_message()
        final = render_answer(self._collector.answer, model=self.model, request=self.request)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=final))
        return out

    def _final_items(self) -> list[dict[str, Any]]:
        return _items(self._collector.answer)

    def _close_message(self) -> list[StreamEvent]:
        if self._message is None:
            return []
        at, self._message = self._message, None
        return [self._event("response.output_item.done", output_index=at,
                            item=self._final_items()[at])]

    def _start(self, event: PartStart) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self._kinds[event.index] = event.kind
        self._open.add(event.index)
        rid = self._rid[5:]
        if event.kind in ("text", "refusal"):
            if self._message is None:
                self._message = len(self._items)
                item = {"id": f"msg_{rid}_{self._message}", "type": "message",
                        "status": "in_progress", "role": "assistant", "content": []}
                self._items.append(item)
                out.append(self._event("response.output_item.added",
                                       output_index=self._message, item=item))
            message = self._items[self._message]
            content_index = len(message["content"])
            part = ({"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                    if event.kind == "text" else {"type": "refusal", "refusal": ""})
            message["content"].append(part)
            self._where[event.index] = (self._message, content_index)
            out.append(self._event("response.content_part.added", item_id=message["id"],
                                   output_index=self._message, content_index=content_index,
                                   part=part))
            return out
        out += self._close_message()
        at = len(self._items)
        if event.kind == "tool_call":
            item = {"id": f"fc_{rid}_{at}", "type": "function_call", "status": "in_progress",
                    "call_id": event.id, "name": event.name, "arguments": ""}
        else:
            item = {"id": f"rs_{rid}_{at}", "type": "reasoning", "summary": []}
            if event.kind == "thinking":
                item["content"] = []
            else:
                item["encrypted_content"] = event.data or ""
        self._items.append(item)
        self._where[event.index] = (at, -1)
        out.append(self._event("response.output_item.added", output_index=at, item=item))
        return out

    def _delta(self, event: Delta) -> list[StreamEvent]:
        at, content_index = self._where[event.index]
        item_id = self._items[at]["id"]
        kind = self._kinds[event.index]
        if kind == "text":
            return [self._event("response.output_text.delta", item_id=item_id, output_index=at,
                                content_index=content_index, delta=event.text,
                                logprobs=event.logprobs or [])]
        if kind == "refusal":
            return [self._event("response.refusal.delta", item_id=item_id, output_index=at,
                                content_index=content_index, delta=event.text)]
        if kind == "tool_call":
            return [self._event("response.function_call_arguments.delta", item_id=item_id,
                                output_index=at, delta=event.text)]
        if kind == "thinking":
            return [self._event("response.reasoning_text.delta", item_id=item_id,
                                output_index=at, content_index=0, delta=event.text)]
        return []

    def _end(self, index: int) -> list[StreamEvent]:
        if index not in self._open:
            return []
        self._open.discard(index)
        at, content_index = self._where[index]
        item_id = self._items[at]["id"]
        kind = self._kinds[index]
        part = self._collector.part(index)
        if kind == "text":
            assert isinstance(part, Text)
            final = {"type": "output_text", "text": part.text, "annotations": [],
                     "logprobs": part.logprobs or []}
            return [self._event("response.output_text.done", item_id=item_id, output_index=at,
                                content_index=content_index, text=part.text,
                                logprobs=part.logprobs or []),
                    self._event("response.content_part.done", item_id=item_id,
                                output_index=at, content_index=content_index, part=final)]
        if kind == "refusal":
            assert isinstance(part, Refusal)
            final = {"type": "refusal", "refusal": part.text}
            return [self._event("response.refusal.done", item_id=item_id, output_index=at,
                                content_index=content_index, refusal=part.text),
                    self._event("response.content_part.done", item_id=item_id,
                                output_index=at, content_index=content_index, part=final)]
        item = self._final_items()[at]
        out: list[StreamEvent] = []
        if kind == "tool_call":
            assert isinstance(part, ToolCall)
            out.append(self._event("response.function_call_arguments.done", item_id=item_id,
                                   output_index=at, name=part.name, arguments=part.arguments))
        elif kind == "thinking":
            assert isinstance(part, Thinking)
            out.append(self._event("response.reasoning_text.done", item_id=item_id,
                                   output_index=at, content_index=0, text=part.text))
        out.append(self._event("response.output_item.done", output_index=at, item=item))
        return out
