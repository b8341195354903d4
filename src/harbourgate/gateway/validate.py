"""Shape checks for incoming bodies of the three API shapes: every error names the field
(`messages[0].content[1].text`), as a user fixing a request needs.

The checks go to every depth the gateway or an adapter reads: a wrong type anywhere is a
400 here, never an exception further down. Unknown top-level fields pass through untouched
(the upstream may understand them); unknown content part and input item types are refused,
because the gateway could neither scan nor pseudonymise what it does not know.
"""

from __future__ import annotations

from typing import Any

import orjson

from harbourgate.gateway.errors import invalid

OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
ANTHROPIC_ROLES = frozenset({"user", "assistant"})
RESPONSES_ROLES = frozenset({"system", "developer", "user", "assistant"})
MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a body may have (tool schemas need a few dozen)."""

# part type -> (required string fields, required object fields)
_OPENAI_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text": (("text",), ()), "refusal": (("refusal",), ()),
    "image_url": ((), ("image_url",)), "input_audio": ((), ("input_audio",)),
    "file": ((), ("file",)),
}
_ANTHROPIC_BLOCKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text": (("text",), ()), "image": ((), ("source",)), "document": ((), ("source",)),
    "tool_use": (("id", "name"), ("input",)), "tool_result": (("tool_use_id",), ()),
    "thinking": (("thinking",), ()), "redacted_thinking": (("data",), ()),
    "search_result": (("source", "title"), ()), "server_tool_use": (("id", "name"), ()),
    "web_search_tool_result": (("tool_use_id",), ()), "container_upload": (("file_id",), ()),
    "mcp_tool_use": (("id", "name"), ()), "mcp_tool_result": (("tool_use_id",), ()),
}
_RESPONSES_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "input_text": (("text",), ()), "output_text": (("text",), ()),
    "refusal": (("refusal",), ()), "input_image": ((), ()), "input_file": ((), ()),
    "input_audio": ((), ("input_audio",)), "summary_text": (("text",), ()),
    "reasoning_text": (("text",), ()),
}
# Responses input items other than messages: type -> required string fields.
_RESPONSES_ITEMS: dict[str, tuple[str, ...]] = {
    "function_call": ("call_id", "name", "arguments"),
    "function_call_output": ("call_id",),
    "custom_tool_call": ("call_id", "name", "input"),
    "custom_tool_call_output": ("call_id",),
    "reasoning": (), "item_reference": ("id",),
    "web_search_call": (), "file_search_call": (), "computer_call": (),
    "computer_call_output": ("call_id",), "code_interpreter_call": (),
    "image_generation_call": (), "local_shell_call": (), "local_shell_call_output": (),
    "mcp_call": (), "mcp_list_tools": (), "mcp_approval_request": (),
    "mcp_approval_response": (),
}


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise invalid("the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object, not {_kind(body)}")
    _depth(body)
    return body


def _depth(body: dict[str, Any]) -> None:
    """Refuse nesting deeper than MAX_DEPTH, without recursion (so no depth can crash it)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise invalid(f"the request body nests arrays and objects deeper than "
                          f"{MAX_DEPTH} levels")
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            if isinstance(item, dict | list) and item:
                stack.append((item, depth + 1))


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise invalid("missing required field 'model'", "model")
    if not isinstance(model, str) or not model:
        raise invalid(f"'model' must be a non-empty string, not {_kind(model)}", "model")
    return model


def _stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise invalid(f"'stream' must be a boolean, not {_kind(stream)}", "stream")
    return stream


def _positive_int(body: dict[str, Any], name: str, *, required: bool = False,
                  where: str | None = None) -> None:
    value = body.get(name)
    where = where or name
    if value is None:
        if required:
            raise invalid(f"missing required field '{where}'", where)
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(f"'{where}' must be a positive integer, not {value!r}", where)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(f"'{name}' must be a number from {low:g} to {high:g}, not {value!r}", name)


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """Of that exact JSON type (a parsed body holds only builtin types, and a boolean is
    not a number here)."""
    return type(value) is kind if isinstance(kind, type) else type(value) in kind


def _typed(obj: dict[str, Any], field: str, kind: type | tuple[type, ...], what: str,
           where: str, *, required: bool = False) -> None:
    """`obj[field]`, when present (or `required`), is of `kind`."""
    value = obj.get(field)
    if value is None:
        if required:
            raise invalid(f"missing required field '{where}.{field}'", f"{where}.{field}")
        return
    if not _is(value, kind):
        raise invalid(f"'{where}.{field}' must be {what}, not {_kind(value)}",
                      f"{where}.{field}")


def _tops(body: dict[str, Any], specs: tuple[tuple[str, type, str], ...]) -> None:
    """Optional top-level fields, each of one JSON type."""
    for field, kind, what in specs:
        value = body.get(field)
        if value is not None and type(value) is not kind:
            raise invalid(f"'{field}' must be {what}, not {_kind(value)}", field)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object, not {_kind(value)}", where)
    return value


def _array(value: Any, where: str, *, nonempty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"'{where}' must be an array, not {_kind(value)}", where)
    if nonempty and not value:
        raise invalid(f"'{where}' must not be empty", where)
    return value


def _one_of(value: Any, allowed: frozenset[str] | dict[str, Any], where: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        shown = repr(value) if isinstance(value, str) or value is None else _kind(value)
        raise invalid(f"'{where}' must be one of {', '.join(sorted(allowed))}, not {shown}",
                      where)
    return value


def _parts(content: Any, where: str,
           known: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> None:
    """A content array: objects with a known `type` and their required fields typed."""
    for j, part in enumerate(_array(content, where)):
        at = f"{where}[{j}]"
        part = _object(part, at)
        kind = _one_of(part.get("type"), known, f"{at}.type")
        strings, objects = known[kind]
        for field in strings:
            _typed(part, field, str, "a string", at, required=True)
        for field in objects:
            _typed(part, field, dict, "an object", at, required=True)
        if kind == "tool_result" and not isinstance(part.get("content"), str | None):
            _parts(part["content"], f"{at}.content", _ANTHROPIC_BLOCKS)


def _strings(body: dict[str, Any], field: str) -> None:
    value = body.get(field)
    if value is not None and not isinstance(value, str) and not (
            isinstance(value, list) and all(isinstance(s, str) for s in value)):
        raise invalid(f"'{field}' must be a string or an array of strings", field)


def _tools(body: dict[str, Any], *, anthropic: bool = False) -> None:
    tools = body.get("tools")
    for i, tool in enumerate(_array(tools, "tools") if tools is not None else ()):
        at = f"tools[{i}]"
        tool = _object(tool, at)
        if anthropic:
            _typed(tool, "name", str, "a string", at, required="type" not in tool)
            _typed(tool, "type", str, "a string", at)
            _typed(tool, "input_schema", dict, "an object", at)
            _typed(tool, "description", str, "a string", at)
            continue
        _typed(tool, "type", str, "a string", at, required=True)
        if tool["type"] == "function":
            fn = tool.get("function", tool)  # Chat nests it; Responses does not
            where = f"{at}.function" if "function" in tool else at
            fn = _object(fn, where)
            _typed(fn, "name", str, "a string", where, required=True)
            _typed(fn, "description", str, "a string", where)
            _typed(fn, "parameters", dict, "an object", where)
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise invalid(f"'tool_choice' must be a string or an object, not {_kind(choice)}",
                      "tool_choice")
    if anthropic and isinstance(choice, str):
        raise invalid("'tool_choice' must be an object such as {\"type\": \"auto\"}",
                      "tool_choice")


# -- OpenAI Chat Completions --------------------------------------------------------------

def openai_chat(body: dict[str, Any]) -> tuple[str, bool]:
    """Check a Chat Completions body; return (model, stream)."""
    model = _model(body)
    messages = _array(body.get("messages"), "messages", nonempty=True) \
        if "messages" in body else _missing("messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        message = _object(message, where)
        role = _one_of(message.get("role"), OPENAI_ROLES, f"{where}.role")
        content = message.get("content")
        if content is None and role in ("assistant", "function"):
            pass  # assistant turns may carry only tool calls
        elif isinstance(content, list):
            _parts(content, f"{where}.content", _OPENAI_PARTS)
        elif not isinstance(content, str):
            raise invalid(f"'{where}.content' must be a string or an array of content parts, "
                          f"not {_kind(content)}", f"{where}.content")
        _typed(message, "name", str, "a string", where)
        _typed(message, "tool_call_id", str, "a string", where, required=role == "tool")
        calls = message.get("tool_calls")
        if calls is not None:
            for j, call in enumerate(_array(calls, f"{where}.tool_calls")):
                at = f"{where}.tool_calls[{j}]"
                call = _object(call, at)
                _typed(call, "id", str, "a string", at, required=True)
                fn = _object(call.get("function"), f"{at}.function")
                _typed(fn, "name", str, "a string", f"{at}.function", required=True)
                _typed(fn, "arguments", str, "a string (JSON text)", f"{at}.function",
                       required=True)
    stream = _stream(body)
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    _positive_int(body, "n")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _strings(body, "stop")
    _tools(body)
    _tops(body, _CHAT_FIELDS)
    return model, stream


_CHAT_FIELDS = (("response_format", dict, "an object"), ("stream_options", dict, "an object"),
                ("metadata", dict, "an object"), ("user", str, "a string"),
                ("logprobs", bool, "a boolean"), ("seed", int, "an integer"),
                ("parallel_tool_calls", bool, "a boolean"), ("reasoning_effort", str, "a string"))


def _missing(field: str) -> list[Any]:
    raise invalid(f"missing required field '{field}'", field)


# -- Anthropic Messages -------------------------------------------------------------------

def anthropic_messages(body: dict[str, Any]) -> tuple[str, bool]:
    """Check a Messages body; return (model, stream)."""
    _positive_int(body, "max_tokens", required=True)
    return _anthropic(body), _stream(body)


def anthropic_count_tokens(body: dict[str, Any]) -> str:
    """Check a Messages token-counting body (no max_tokens, no stream); return the model."""
    return _anthropic(body)


def _anthropic(body: dict[str, Any]) -> str:
    model = _model(body)
    messages = _array(body.get("messages"), "messages", nonempty=True) \
        if "messages" in body else _missing("messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        message = _object(message, where)
        _one_of(message.get("role"), ANTHROPIC_ROLES, f"{where}.role")
        content = message.get("content")
        if isinstance(content, list):
            _parts(content, f"{where}.content", _ANTHROPIC_BLOCKS)
        elif not isinstance(content, str):
            raise invalid(f"'{where}.content' must be a string or an array of content blocks,"
                          f" not {_kind(content)}", f"{where}.content")
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _positive_int(body, "top_k")
    system = body.get("system")
    if isinstance(system, list):
        _parts(system, "system", {"text": (("text",), ())})
    elif system is not None and not isinstance(system, str):
        raise invalid(f"'system' must be a string or an array of text blocks, not "
                      f"{_kind(system)}", "system")
    stop = body.get("stop_sequences")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise invalid("'stop_sequences' must be an array of strings", "stop_sequences")
    _tools(body, anthropic=True)
    _tops(body, _MESSAGES_FIELDS)
    return model


_MESSAGES_FIELDS = (("metadata", dict, "an object"), ("thinking", dict, "an object"),
                    ("output_config", dict, "an object"))


# -- OpenAI Responses ---------------------------------------------------------------------

def responses(body: dict[str, Any]) -> tuple[str, bool]:
    """Check a Responses body; return (model, stream)."""
    model = _responses(body)
    _positive_int(body, "max_output_tokens")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    return model, _stream(body)


def responses_input_tokens(body: dict[str, Any]) -> str:
    """Check a Responses input-token-counting body; return the model."""
    return _responses(body)


def _responses(body: dict[str, Any]) -> str:
    model = _model(body)
    value = body.get("input")
    if isinstance(value, list):
        for i, item in enumerate(value):
            where = f"input[{i}]"
            item = _object(item, where)
            kind = item.get("type", "message")
            if kind == "message":
                _one_of(item.get("role"), RESPONSES_ROLES, f"{where}.role")
                content = item.get("content")
                if isinstance(content, list):
                    _parts(content, f"{where}.content", _RESPONSES_PARTS)
                elif not isinstance(content, str):
                    raise invalid(f"'{where}.content' must be a string or an array of content "
                                  f"parts, not {_kind(content)}", f"{where}.content")
                continue
            kind = _one_of(kind, _RESPONSES_ITEMS, f"{where}.type")
            for field in _RESPONSES_ITEMS[kind]:
                _typed(item, field, str, "a string", where, required=True)
            output = item.get("output")
            if kind == "function_call_output" and not isinstance(output, str):
                _parts(output, f"{where}.output", _RESPONSES_PARTS)
    elif value is not None and not isinstance(value, str):
        raise invalid(f"'input' must be a string or an array of input items, not "
                      f"{_kind(value)}", "input")
    _tools(body)
    _tops(body, _RESPONSES_FIELDS)
    return model


_RESPONSES_FIELDS = (
    ("instructions", str, "a string"), ("previous_response_id", str, "a string"),
    ("text", dict, "an object"), ("reasoning", dict, "an object"),
    ("metadata", dict, "an object"), ("store", bool, "a boolean"),
    ("parallel_tool_calls", bool, "a boolean"), ("truncation", str, "a string"),
    ("user", str, "a string"), ("include", list, "an array"))


# -- OpenAI Embeddings --------------------------------------------------------------------

def openai_embeddings(body: dict[str, Any]) -> str:
    """Check an Embeddings body; return the model."""
    model = _model(body)
    value = body.get("input")
    if value is None:
        raise invalid("missing required field 'input'", "input")
    ok = (isinstance(value, str) and value != "") or (
        isinstance(value, list) and value and (
            all(isinstance(v, str) for v in value)
            or all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or all(isinstance(v, list) and v and all(
                isinstance(t, int) and not isinstance(t, bool) for t in v) for v in value)))
    if not ok:
        raise invalid("'input' must be a non-empty string, an array of strings, or token "
                      "arrays", "input")
    fmt = body.get("encoding_format")
    if fmt not in (None, "float", "base64"):
        raise invalid(f"'encoding_format' must be 'float' or 'base64', not {fmt!r}",
                      "encoding_format")
    _positive_int(body, "dimensions")
    return model
