"""OpenAI Chat Completions into and out of the canonical model.

Extensions read where compatible servers send them: `reasoning_content` (vLLM, DeepSeek)
or `reasoning` (newer vLLM, OpenRouter) carries thinking, and a choice's `stop_reason`
string (vLLM) names the stop sequence that ended the answer.
"""

from __future__ import annotations

import time
from typing import Any

from harbourgate.shapes import check as c
from harbourgate.shapes.common import EFFORT_BUDGETS, data_url, effort_of_budget, split_data_url
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

API = "OpenAI Chat Completions"

_REQUEST_KEYS = {"model", "messages", "max_tokens", "max_completion_tokens", "stop",
                 "temperature", "top_p", "n", "stream", "stream_options", "tools", "tool_choice",
                 "parallel_tool_calls", "functions", "function_call", "response_format",
                 "reasoning_effort", "logprobs", "top_logprobs", "metadata", "user", "seed",
                 "frequency_penalty", "presence_penalty", "logit_bias", "service_tier", "store"}

_FINISH_IN = {"stop": "end", "length": "length", "tool_calls": "tool_calls",
              "function_call": "tool_calls", "content_filter": "content_filter"}
_FINISH_OUT = {"end": "stop", "stop_sequence": "stop", "length": "length",
               "tool_calls": "tool_calls", "refusal": "content_filter",
               "content_filter": "content_filter",
               "pause": "stop", "context_window": "length"}


# --------------------------------------------------------------------------- requests


def parse_request(body: Any) -> Request:
    """A Chat Completions request as a canonical request (refusing what has no place)."""
    body = c.obj(body, "body")
    c.only(body, _REQUEST_KEYS, "")
    names: dict[str, str] = {}
    legacy: dict[str, list[str]] = {}  # function name -> ids of calls not yet answered
    messages = [_message(m, f"messages[{i}]", legacy)
                for i, m in enumerate(c.lst(body.get("messages"), "messages"))]
    req = Request(model=c.string(body.get("model", ""), "model"), messages=messages, names=names)
    if body.get("max_completion_tokens") is not None:
        req.max_tokens = c.integer(body["max_completion_tokens"], "max_completion_tokens")
        names["max_tokens"] = "max_completion_tokens"
    elif body.get("max_tokens") is not None:
        req.max_tokens = c.integer(body["max_tokens"], "max_tokens")
    stop = body.get("stop")
    if isinstance(stop, str):
        req.stop = [stop]
    elif stop is not None:
        req.stop = [c.string(s, f"stop[{i}]") for i, s in enumerate(c.lst(stop, "stop"))]
    req.temperature = c.opt_number(body.get("temperature"), "temperature")
    req.top_p = c.opt_number(body.get("top_p"), "top_p")
    req.n = c.opt_integer(body.get("n"), "n")
    req.seed = c.opt_integer(body.get("seed"), "seed")
    req.frequency_penalty = c.opt_number(body.get("frequency_penalty"), "frequency_penalty")
    req.presence_penalty = c.opt_number(body.get("presence_penalty"), "presence_penalty")
    if body.get("logit_bias") is not None:
        req.logit_bias = c.obj(body["logit_bias"], "logit_bias")
    req.logprobs = bool(c.opt_boolean(body.get("logprobs"), "logprobs"))
    req.top_logprobs = c.opt_integer(body.get("top_logprobs"), "top_logprobs")
    req.stream = bool(c.opt_boolean(body.get("stream"), "stream"))
    if body.get("stream_options") is not None:
        options = c.obj(body["stream_options"], "stream_options")
        c.only(options, ("include_usage",), "stream_options")
        req.include_usage = bool(c.opt_boolean(options.get("include_usage"),
                                               "stream_options.include_usage"))
    if c.opt_boolean(body.get("store"), "store"):
        raise TranslationError("store: stored completions are kept by the upstream that "
                               "answers, which does not speak this API")
    if body.get("metadata") is not None:
        req.metadata = c.obj(body["metadata"], "metadata")
    req.user = c.opt_string(body.get("user"), "user")
    req.service_tier = c.opt_string(body.get("service_tier"), "service_tier")
    if body.get("reasoning_effort") is not None:
        req.reasoning = Reasoning(effort=c.string(body["reasoning_effort"], "reasoning_effort"))
        names["reasoning"] = "reasoning_effort"
    if body.get("response_format") is not None:
        req.output_format = _response_format(body["response_format"])
        names["output_format"] = "response_format"
    if body.get("tools") is not None:
        req.tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(c.lst(body["tools"], "tools"))]
    if body.get("functions") is not None:
        if body.get("tools") is not None:
            raise TranslationError("functions: use either tools or the legacy functions")
        req.tools = [_function(f, f"functions[{i}]")
                     for i, f in enumerate(c.lst(body["functions"], "functions"))]
        names["tools"] = "functions"
    if body.get("tool_choice") is not None:
        req.tool_choice = _tool_choice(body["tool_choice"], "tool_choice")
    elif body.get("function_call") is not None:
        req.tool_choice = _tool_choice(body["function_call"], "function_call")
        names["tool_choice"] = "function_call"
    req.parallel_tool_calls = c.opt_boolean(body.get("parallel_tool_calls"),
                                            "parallel_tool_calls")
    return req


def _message(msg: Any, where: str, legacy: dict[str, list[str]]) -> Message:
    msg = c.obj(msg, where)
    role = msg.get("role")
    content = msg.get("content")
    if role in ("system", "developer"):
        c.only(msg, ("role", "content", "name"), where)
        _no_name(msg, where)
        return Message(role, [Text(_text(content, f"{where}.content"))])
    if role == "user":
        c.only(msg, ("role", "content", "name"), where)
        _no_name(msg, where)
        return Message("user", _user_parts(content, f"{where}.content"))
    if role == "assistant":
        c.only(msg, ("role", "content", "name", "refusal", "tool_calls", "function_call",
                     "reasoning_content"), where)
        _no_name(msg, where)
        parts: list[Part] = []
        if msg.get("reasoning_content") is not None:
            parts.append(Thinking(c.string(msg["reasoning_content"],
                                           f"{where}.reasoning_content")))
        if content is not None:
            parts.extend(_assistant_content(content, f"{where}.content"))
        if msg.get("refusal") is not None:
            parts.append(Refusal(c.string(msg["refusal"], f"{where}.refusal")))
        for i, call in enumerate(c.lst(msg.get("tool_calls") or [], f"{where}.tool_calls")):
            at = f"{where}.tool_calls[{i}]"
            call = c.obj(call, at)
            c.only(call, ("id", "type", "function"), at)
            if call.get("type", "function") != "function":
                raise TranslationError(f"{at}.type: only function tool calls translate")
            function = c.obj(call.get("function"), f"{at}.function")
            parts.append(ToolCall(c.string(call.get("id"), f"{at}.id"),
                                  c.string(function.get("name"), f"{at}.function.name"),
                                  c.string(function.get("arguments", ""),
                                           f"{at}.function.arguments")))
        if msg.get("function_call") is not None:
            at = f"{where}.function_call"
            function = c.obj(msg["function_call"], at)
            name = c.string(function.get("name"), f"{at}.name")
            call_id = f"call_legacy_{name}_{sum(len(v) for v in legacy.values())}"
            legacy.setdefault(name, []).append(call_id)
            parts.append(ToolCall(call_id, name, c.string(function.get("arguments", ""),
                                                          f"{at}.arguments")))
        return Message("assistant", parts)
    if role == "tool":
        c.only(msg, ("role", "content", "tool_call_id"), where)
        call_id = c.string(msg.get("tool_call_id"), f"{where}.tool_call_id")
        return Message("user", [ToolResult(call_id, _result_parts(content, f"{where}.content"))])
    if role == "function":
        c.only(msg, ("role", "content", "name"), where)
        name = c.string(msg.get("name"), f"{where}.name")
        pending = legacy.get(name)
        if not pending:
            raise TranslationError(f"{where}.name: no earlier function_call of {name!r} to answer")
        return Message("user", [ToolResult(pending.pop(0),
                                           _result_parts(content, f"{where}.content"))])
    raise TranslationError(f"{where}.role: must be system, developer, user, assistant, tool "
                           f"or function, not {role!r}")


def _no_name(msg: dict[str, Any], where: str) -> None:
    if msg.get("name") is not None:
        raise TranslationError(f"{where}.name: participant names have no equivalent")


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(c.lst(content, where)):
        at = f"{where}[{i}]"
        if c.kind_of(part, at) != "text":
            raise TranslationError(f"{at}.type: only text parts are allowed here")
        c.only(part, ("type", "text"), at)
        texts.append(c.string(part.get("text"), f"{at}.text"))
    return "\n".join(texts)


def _user_parts(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Part] = []
    for i, part in enumerate(c.lst(content, where)):
        at = f"{where}[{i}]"
        kind = c.kind_of(part, at)
        if kind == "text":
            c.only(part, ("type", "text"), at)
            parts.append(Text(c.string(part.get("text"), f"{at}.text")))
        elif kind == "image_url":
            c.only(part, ("type", "image_url"), at)
            image = c.obj(part.get("image_url"), f"{at}.image_url")
            c.only(image, ("url", "detail"), f"{at}.image_url")
            url = c.string(image.get("url"), f"{at}.image_url.url")
            detail = c.opt_string(image.get("detail"), f"{at}.image_url.detail")
            inline = split_data_url(url, f"{at}.image_url.url")
            parts.append(Image(data=inline[1], media_type=inline[0], detail=detail)
                         if inline else Image(url=url, detail=detail))
        elif kind == "file":
            c.only(part, ("type", "file"), at)
            file = c.obj(part.get("file"), f"{at}.file")
            c.only(file, ("file_data", "filename"), f"{at}.file")
            raw = c.string(file.get("file_data"), f"{at}.file.file_data")
            inline = split_data_url(raw, f"{at}.file.file_data")
            if inline is None:
                raise TranslationError(f"{at}.file.file_data: must be a base64 data URL")
            parts.append(Document(data=inline[1], media_type=inline[0],
                                  filename=c.opt_string(file.get("filename"),
                                                        f"{at}.file.filename")))
        else:
            raise TranslationError(f"{at}.type: a {kind!r} part has no equivalent")
    return parts


def _assistant_content(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[Part] = []
    for i, part in enumerate(c.lst(content, where)):
        at = f"{where}[{i}]"
        kind = c.kind_of(part, at)
        if kind == "text":
            c.only(part, ("type", "text"), at)
            parts.append(Text(c.string(part.get("text"), f"{at}.text")))
        elif kind == "refusal":
            c.only(part, ("type", "refusal"), at)
            parts.append(Refusal(c.string(part.get("refusal"), f"{at}.refusal")))
        else:
            raise TranslationError(f"{at}.type: a {kind!r} part has no equivalent")
    return parts


def _result_parts(content: Any, where: str) -> list[Part]:
    return [Text(_text(content, where))]


def _tool(tool: Any, where: str) -> Tool:
    tool = c.obj(tool, where)
    c.only(tool, ("type", "function"), where)
    if tool.get("type", "function") != "function":
        raise TranslationError(f"{where}.type: only function tools translate, not "
                               f"{tool.get('type')!r}")
    return _function(tool.get("function"), f"{where}.function")


def _function(function: Any, where: str) -> Tool:
    function = c.obj(function, where)
    c.only(function, ("name", "description", "parameters", "strict"), where)
    parameters = function.get("parameters")
    return Tool(name=c.string(function.get("name"), f"{where}.name"),
                parameters=c.obj(parameters, f"{where}.parameters") if parameters is not None
                else {"type": "object", "properties": {}},
                description=c.opt_string(function.get("description"), f"{where}.description"),
                strict=c.opt_boolean(function.get("strict"), f"{where}.strict"))


def _tool_choice(choice: Any, where: str) -> ToolChoice:
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    choice = c.obj(choice, where)
    if "function" in choice:
        c.only(choice, ("type", "function"), where)
        function = c.obj(choice["function"], f"{where}.function")
        return ToolChoice("tool", c.string(function.get("name"), f"{where}.function.name"))
    if "name" in choice and where == "function_call":
        return ToolChoice("tool", c.string(choice["name"], f"{where}.name"))
    raise TranslationError(f"{where}: must be auto, none, required or a named function")


def _response_format(fmt: Any) -> OutputFormat:
    fmt = c.obj(fmt, "response_format")
    kind = c.kind_of(fmt, "response_format")
    if kind in ("text", "json_object"):
        c.only(fmt, ("type",), "response_format")
        return OutputFormat(kind)
    if kind != "json_schema":
        raise TranslationError(f"response_format.type: {kind!r} has no equivalent")
    c.only(fmt, ("type", "json_schema"), "response_format")
    spec = c.obj(fmt.get("json_schema"), "response_format.json_schema")
    where = "response_format.json_schema"
    c.only(spec, ("name", "schema", "strict", "description"), where)
    return OutputFormat("json_schema",
                        schema=c.obj(spec.get("schema", {}), f"{where}.schema"),
                        name=c.opt_string(spec.get("name"), f"{where}.name"),
                        strict=c.opt_boolean(spec.get("strict"), f"{where}.strict"),
                        description=c.opt_string(spec.get("description"),
                                                 f"{where}.description"))


def render_request(req: Request, *, model: str, max_completion_tokens: bool = False,
                   top_k: bool = False) -> dict[str, Any]:
    """A canonical request as a Chat Completions request for `model`.

    `max_completion_tokens`: the upstream takes that field (OpenAI reasoning models) rather
    than `max_tokens`; `top_k`: the upstream accepts vLLM's `top_k` extension.
    """
    out: dict[str, Any] = {"model": model, "messages": _render_messages(req.messages)}
    if req.max_tokens is not None:
        out["max_completion_tokens" if max_completion_tokens else "max_tokens"] = req.max_tokens
    if req.stop:
        out["stop"] = list(req.stop)
    for key in ("temperature", "top_p", "n", "seed", "frequency_penalty", "presence_penalty",
                "logit_bias", "user", "metadata"):
        if getattr(req, key) is not None:
            out[key] = getattr(req, key)
    if req.top_k is not None:
        if not top_k:
            raise TranslationError(f"{req.name('top_k')}: the upstream of this route does not "
                                   "take top_k (a route declares accepts: {top_k: true} if it "
                                   "does)")
        out["top_k"] = req.top_k
    if req.logprobs or req.top_logprobs is not None:
        out["logprobs"] = True
        if req.top_logprobs:
            out["top_logprobs"] = req.top_logprobs
    if req.service_tier is not None:
        tier = {"auto": "auto", "standard_only": "default"}.get(req.service_tier,
                                                                 req.service_tier)
        out["service_tier"] = tier
    if req.reasoning is not None:
        effort = _effort(req)
        if effort is not None:
            out["reasoning_effort"] = effort
    if req.output_format is not None:
        out["response_format"] = _render_format(req.output_format)
    if req.tools:
        out["tools"] = [{"type": "function", "function": _render_function(t)} for t in req.tools]
    if req.tool_choice is not None:
        choice = req.tool_choice
        out["tool_choice"] = ({"type": "function", "function": {"name": choice.name}}
                              if choice.mode == "tool" else choice.mode)
    if req.parallel_tool_calls is not None:
        out["parallel_tool_calls"] = req.parallel_tool_calls
    if req.stream:
        out["stream"] = True
    return out


def _effort(req: Request) -> str | None:
    reasoning = req.reasoning
    assert reasoning is not None
    if not reasoning.enabled:
        return None  # no thinking: what a request without reasoning_effort asks for
    if reasoning.summary is not None:
        raise TranslationError(f"{req.name('reasoning')}.summary: Chat Completions returns no "
                               "reasoning summaries")
    if reasoning.effort is not None:
        if reasoning.effort not in ("none", "minimal", *EFFORT_BUDGETS):
            raise TranslationError(f"{req.name('reasoning')}: effort {reasoning.effort!r} has "
                                   "no OpenAI equivalent")
        return reasoning.effort
    if reasoning.budget_tokens is not None:
        return effort_of_budget(reasoning.budget_tokens)
    return None  # adaptive thinking: the model's own default


def _render_format(fmt: OutputFormat) -> dict[str, Any]:
    if fmt.kind != "json_schema":
        return {"type": fmt.kind}
    spec: dict[str, Any] = {"name": fmt.name or "output", "schema": fmt.schema or {}}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    if fmt.description is not None:
        spec["description"] = fmt.description
    return {"type": "json_schema", "json_schema": spec}


def _render_function(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        out["description"] = tool.description
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _render_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if msg.role in ("system", "developer"):
            out.append({"role": msg.role, "content": _plain(msg.parts, f"{where}.content")})
        elif msg.role == "user":
            out.extend(_render_user(msg.parts, where))
        else:
            out.append(_render_assistant(msg.parts, where))
    return out


def _plain(parts: list[Part], where: str) -> str:
    texts = []
    for i, part in enumerate(parts):
        if not isinstance(part, Text):
            raise TranslationError(f"{where}[{i}]: only text is allowed here in {API}")
        texts.append(part.text)
    return "\n".join(texts)


def _render_user(parts: list[Part], where: str) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        at = f"{where}.content[{i}]"
        if isinstance(part, ToolResult):
            if part.is_error:
                raise TranslationError(f"{at}.is_error: {API} has no failed tool results")
            tools.append({"role": "tool", "tool_call_id": part.call_id,
                          "content": _plain(part.parts, f"{at}.content")})
        elif isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            url = part.url if part.url is not None else data_url(part.media_type,
                                                                 part.data or "")
            image: dict[str, Any] = {"url": url}
            if part.detail is not None:
                image["detail"] = part.detail
            content.append({"type": "image_url", "image_url": image})
        elif isinstance(part, Document):
            if part.data is None:
                raise TranslationError(f"{at}: {API} takes files inline (base64) only")
            file: dict[str, Any] = {"file_data": data_url(part.media_type, part.data)}
            if part.filename is not None:
                file["filename"] = part.filename
            content.append({"type": "file", "file": file})
        else:
            raise TranslationError(f"{at}: a {type(part).__name__.lower()} part cannot be sent "
                                   f"in a user turn to {API}")
    if not content:
        return tools
    if len(content) == 1 and content[0]["type"] == "text":
        return [*tools, {"role": "user", "content": content[0]["text"]}]
    return [*tools, {"role": "user", "content": content}]


def _render_assistant(parts: list[Part], where: str) -> dict[str, Any]:
    texts: list[str] = []
    out: dict[str, Any] = {"role": "assistant"}
    calls = []
    for i, part in enumerate(parts):
        at = f"{where}.content[{i}]"
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(part, Refusal):
            out["refusal"] = part.text
        elif isinstance(part, ToolCall):
            calls.append({"id": part.id, "type": "function",
                          "function": {"name": part.name, "arguments": part.arguments}})
        elif isinstance(part, Thinking):
            if part.redacted is not None:
                raise TranslationError(f"{at}: redacted thinking has no equivalent in {API}")
            out["reasoning_content"] = part.text
        else:
            raise TranslationError(f"{at}: a {type(part).__name__.lower()} part cannot be sent "
                                   f"in an assistant turn to {API}")
    if len(texts) > 1:  # several text blocks stay several parts
        out["content"] = [{"type": "text", "text": t} for t in texts]
    else:
        out["content"] = texts[0] if texts else None
    if calls:
        out["tool_calls"] = calls
    return out


# --------------------------------------------------------------------------- answers


def usage_in(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    details = usage.get("prompt_tokens_details") or {}
    out_details = usage.get("completion_tokens_details") or {}
    return Usage(input_tokens=prompt, output_tokens=completion,
                 cache_read_tokens=details.get("cached_tokens") or 0,
                 cache_write_tokens=details.get("cache_write_tokens") or 0,
                 reasoning_tokens=out_details.get("reasoning_tokens") or 0)


def usage_out(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": usage.input_tokens,
                           "completion_tokens": usage.output_tokens,
                           "total_tokens": usage.input_tokens + usage.output_tokens}
    if usage.cache_read_tokens or usage.cache_write_tokens:
        details = {"cached_tokens": usage.cache_read_tokens}
        if usage.cache_write_tokens:
            details["cache_write_tokens"] = usage.cache_write_tokens
        out["prompt_tokens_details"] = details
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def parse_answer(data: dict[str, Any]) -> Answer:
    """A chat completion as a canonical answer (raises on an unexpected shape)."""
    choices = []
    for raw in data["choices"]:
        message = raw["message"]
        parts: list[Part] = []
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning:
            parts.append(Thinking(reasoning))
        content = message.get("content")
        if isinstance(content, list):  # some compatible servers answer with parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if content:
            logprobs = (raw.get("logprobs") or {}).get("content")
            parts.append(Text(content, logprobs))
        if message.get("refusal"):
            parts.append(Refusal(message["refusal"]))
        for call in message.get("tool_calls") or []:
            parts.append(ToolCall(call["id"], call["function"]["name"],
                                  call["function"].get("arguments") or ""))
        if message.get("function_call"):
            call = message["function_call"]
            parts.append(ToolCall("call_legacy_0", call["name"], call.get("arguments") or ""))
        finish, stop = _finish_in(raw, message.get("refusal"))
        choices.append(Choice(parts, finish, stop, raw.get("index", 0)))
    return Answer(id=str(data.get("id") or ""), model=str(data.get("model") or ""),
                  choices=choices, usage=usage_in(data.get("usage")),
                  created=data.get("created"))


def _finish_in(choice: dict[str, Any], refusal: Any) -> tuple[Any, str | None]:
    if refusal:
        return "refusal", None
    reason = choice.get("finish_reason") or "stop"
    matched = choice.get("stop_reason")
    if reason == "stop" and isinstance(matched, str):
        return "stop_sequence", matched
    return _FINISH_IN.get(reason, "end"), None


def chat_id(answer_id: str) -> str:
    for prefix in ("msg_", "resp_"):
        if answer_id.startswith(prefix):
            return "chatcmpl-" + answer_id[len(prefix):]
    return answer_id if answer_id.startswith("chatcmpl-") else "chatcmpl-" + answer_id


def render_answer(answer: Answer, *, model: str, legacy_functions: bool = False
                  ) -> dict[str, Any]:
    choices = []
    for choice in answer.choices:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        texts: list[str] = []
        logprobs: list[dict[str, Any]] | None = None
        calls = []
        for part in choice.parts:
            if isinstance(part, Text):
                texts.append(part.text)
                if part.logprobs is not None:
                    logprobs = (logprobs or []) + part.logprobs
            elif isinstance(part, Refusal):
                message["refusal"] = (message["refusal"] or "") + part.text
            elif isinstance(part, ToolCall):
                calls.append({"id": part.id, "type": "function",
                              "function": {"name": part.name, "arguments": part.arguments}})
            elif isinstance(part, Thinking) and part.redacted is None:
                message["reasoning_content"] = message.get("reasoning_content", "") + part.text
        if texts:
            message["content"] = "".join(texts)
        finish = "stop" if message["refusal"] is not None else _FINISH_OUT[choice.finish]
        if calls and legacy_functions:
            message["function_call"] = calls[0]["function"]
            finish = "function_call" if finish == "tool_calls" else finish
        elif calls:
            message["tool_calls"] = calls
        choices.append({"index": choice.index, "message": message, "finish_reason": finish,
                        "logprobs": {"content": logprobs, "refusal": None}
                        if logprobs is not None else None})
    return {"id": chat_id(answer.id), "object": "chat.completion",
            "created": answer.created if answer.created is not None else int(time.time()),
            "model": model, "choices": choices, "usage": usage_out(answer.usage)}


# --------------------------------------------------------------------------- streams


class Reader:
    """Chat completion chunks in, canonical events out (one choice)."""

    def __init__(self) -> None:
        self.started = False
        self._open: tuple[PartKind, int] | None = None  # the open text-like part
        self._tools: dict[int, int] = {}
        self._parts = 0
        self._finish: tuple[Any, str | None] = ("end", None)
        self._refused = False
        self._usage = Usage()

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if not self.started:
            self.started = True
            out.append(Start(str(chunk.get("id") or ""), str(chunk.get("model") or ""),
                             created=chunk.get("created")))
        if chunk.get("usage"):
            self._usage = usage_in(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                raise TranslationError("n: only one choice can be translated")
            delta = choice.get("delta") or {}
            logprobs = (choice.get("logprobs") or {}).get("content")
            for kind, key in (("thinking", "reasoning_content"), ("thinking", "reasoning"),
                              ("text", "content"), ("refusal", "refusal")):
                text = delta.get(key)
                if text or (kind == "text" and logprobs):
                    out += self._text(kind, text or "", logprobs if kind == "text" else None)
            for call in delta.get("tool_calls") or []:
                out += self._tool(call)
            if delta.get("function_call"):
                out += self._tool({"index": 0, "id": "call_legacy_0",
                                   "function": delta["function_call"]})
            if choice.get("finish_reason"):
                self._finish = _finish_in(choice, None)
        return out

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        index, self._open = self._open[1], None
        return [PartEnd(index)]

    def _new(self) -> int:
        self._parts += 1
        return self._parts - 1

    def _text(self, kind: PartKind, text: str,
              logprobs: list[dict[str, Any]] | None) -> list[Event]:
        out: list[Event] = []
        if self._open is None or self._open[0] != kind:
            out += self._close()
            self._open = (kind, self._new())
            out.append(PartStart(self._open[1], kind))
            if kind == "refusal":
                self._refused = True
        out.append(Delta(self._open[1], text, logprobs))
        return out

    def _tool(self, call: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self._tools:
            out += self._close()
            if self._tools:  # calls arrive one after another: the previous one is complete
                out.append(PartEnd(self._tools[max(self._tools)]))
            index = self._tools[position] = self._new()
            out.append(PartStart(index, "tool_call", id=call.get("id") or f"call_{position}",
                                 name=function.get("name") or ""))
        if function.get("arguments"):
            out.append(Delta(self._tools[position], function["arguments"]))
        return out

    def done(self) -> list[Event]:
        """The upstream sent `[DONE]`."""
        out = [] if self.started else self.feed({})
        out += self._close()
        if self._tools:
            out.append(PartEnd(self._tools[max(self._tools)]))
        finish, stop = ("refusal", None) if self._refused else self._finish
        out.append(End(finish, self._usage, stop))
        return out


class Writer:
    """Canonical events in, chat completion chunks out (without the `[DONE]` sentinel)."""

    def __init__(self, *, model: str, include_usage: bool = False,
                 legacy_functions: bool = False) -> None:
        self.model = model
        self.include_usage = include_usage
        self.legacy = legacy_functions
        self.id = "chatcmpl-"
        self.created = int(time.time())
        self._kinds: dict[int, PartKind] = {}
        self._tools: dict[int, int] = {}
        self._refused = False
        self._role_sent = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None,
               logprobs: list[dict[str, Any]] | None = None) -> StreamEvent:
        data: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                         "logprobs": {"content": logprobs, "refusal": None}
                         if logprobs is not None else None}]}
        if self.include_usage:
            data["usage"] = None
        return StreamEvent(None, data)

    def write(self, event: Event) -> list[StreamEvent]:
        if isinstance(event, Start):
            self.id = chat_id(event.id)
            if event.created is not None:
                self.created = event.created
            return []
        out: list[StreamEvent] = []
        if not self._role_sent:
            # As OpenAI does: content "" when the answer starts with text, else null.
            self._role_sent = True
            text = isinstance(event, PartStart) and event.kind == "text"
            out.append(self._chunk({"role": "assistant", "content": "" if text else None}))
        return out + self._write(event)

    def _write(self, event: Event) -> list[StreamEvent]:
        if isinstance(event, PartStart):
            self._kinds[event.index] = event.kind
            if event.kind != "tool_call":
                return []
            position = self._tools[event.index] = len(self._tools)
            if self.legacy:
                return [self._chunk({"function_call": {"name": event.name, "arguments": ""}})]
            return [self._chunk({"tool_calls": [{
                "index": position, "id": event.id, "type": "function",
                "function": {"name": event.name, "arguments": ""}}]})]
        if isinstance(event, Delta):
            kind = self._kinds.get(event.index)
            if kind == "text":
                return [self._chunk({"content": event.text}, logprobs=event.logprobs)]
            if kind == "refusal":
                self._refused = True
                return [self._chunk({"refusal": event.text})]
            if kind == "thinking":
                return [self._chunk({"reasoning_content": event.text})]
            if kind == "tool_call":
                if self.legacy:
                    return [self._chunk({"function_call": {"arguments": event.text}})]
                return [self._chunk({"tool_calls": [{"index": self._tools[event.index],
                                                     "function": {"arguments": event.text}}]})]
            return []
        if isinstance(event, End):
            finish = "stop" if self._refused else _FINISH_OUT[event.finish]
            if self.legacy and finish == "tool_calls":
                finish = "function_call"
            out = [self._chunk({}, finish)]
            if self.include_usage:
                out.append(StreamEvent(None, {
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [], "usage": usage_out(event.usage)}))
            return out
        assert isinstance(event, PartEnd | Signature)
        return []
