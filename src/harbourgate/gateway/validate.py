"""Shape checks for incoming bodies of the three API shapes: every error names the field
(`messages[0].content[1].text`), as a user fixing a request needs.

The checks go to every depth the gateway or an adapter reads: a wrong type anywhere is a
400 here, never an exception further down. Unknown top-level fields pass through untouched
(the upstream may understand them); unknown content part and input item types are refused,
because the gateway could neither scan nor pseudonymise what it does not know.
"""

from __future__ import annotations

from collections.abc import Callable
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
    """Refuse nesting deeper than MAX_DEPTH, level by level (no recursion, so no depth can
    crash it; a typical body has a handful of containers)."""
    level: list[Any] = [body]
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            raise invalid(f"the request body nests arrays and objects deeper than "
                          f"{MAX_DEPTH} levels")
        deeper: list[Any] = []
        for value in level:
            for item in (value.values() if type(value) is dict else value):
                kind = type(item)
                if (kind is dict or kind is list) and item:
                    deeper.append(item)
        level = deeper
        depth += 1


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


def _positive_int(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is None:
        raise invalid(f"missing required field '{name}'", name)
    _positive(name, value)


# Checks of optional top-level fields, each `check(name, value)` for a present, non-null
# value: a body is checked field by field for the fields it has, not for every field known.
Check = Callable[[str, Any], None]


def _positive(name: str, value: Any) -> None:
    if type(value) is not int or value < 1:
        raise invalid(f"'{name}' must be a positive integer, not {value!r}", name)


def _count(name: str, value: Any) -> None:
    """A token count whose schema sets no minimum (OpenAI's `max_tokens`): the gateway
    checks its type; what a count of 0 means is the upstream's to say."""
    if type(value) is not int or value < 0:
        raise invalid(f"'{name}' must be a whole number, 0 or more, not {value!r}", name)


def _range(low: float, high: float) -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) not in (int, float) or not low <= value <= high:
            raise invalid(f"'{name}' must be a number from {low:g} to {high:g}, not "
                          f"{value!r}", name)
    return check


def _of(kind: type, what: str) -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) is not kind:
            raise invalid(f"'{name}' must be {what}, not {_kind(value)}", name)
    return check


def _str_or_strings(name: str, value: Any) -> None:
    if type(value) is not str and not (
            type(value) is list and all(type(s) is str for s in value)):
        raise invalid(f"'{name}' must be a string or an array of strings", name)


def _strings_only(name: str, value: Any) -> None:
    if type(value) is not list or not all(type(s) is str for s in value):
        raise invalid(f"'{name}' must be an array of strings", name)


def _fields(body: dict[str, Any], checks: dict[str, Check]) -> None:
    for name, value in body.items():
        check = checks.get(name)
        if check is not None and value is not None:
            check(name, value)


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


def _tools(name: str, tools: Any, *, anthropic: bool = False) -> None:
    for i, tool in enumerate(_array(tools, name)):
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


def _anthropic_tools(name: str, tools: Any) -> None:
    _tools(name, tools, anthropic=True)


def _tool_choice(name: str, choice: Any) -> None:
    if type(choice) not in (str, dict):
        raise invalid(f"'{name}' must be a string or an object, not {_kind(choice)}", name)


def _anthropic_tool_choice(name: str, choice: Any) -> None:
    if type(choice) is not dict:
        raise invalid(f"'{name}' must be an object such as {{\"type\": \"auto\"}}, not "
                      f"{_kind(choice)}", name)


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
        if len(message) == 2 and role != "tool":  # role and content: nothing more
            continue
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
    _fields(body, _CHAT_FIELDS)
    return model, stream


_CHAT_FIELDS: dict[str, Check] = {
    "max_tokens": _count, "max_completion_tokens": _count, "n": _positive,
    "temperature": _range(0, 2), "top_p": _range(0, 1), "presence_penalty": _range(-2, 2),
    "frequency_penalty": _range(-2, 2), "stop": _str_or_strings, "tools": _tools,
    "tool_choice": _tool_choice, "response_format": _of(dict, "an object"),
    "stream_options": _of(dict, "an object"), "metadata": _of(dict, "an object"),
    "user": _of(str, "a string"), "logprobs": _of(bool, "a boolean"),
    "top_logprobs": _of(int, "an integer"), "seed": _of(int, "an integer"),
    "parallel_tool_calls": _of(bool, "a boolean"), "reasoning_effort": _of(str, "a string"),
}


def _missing(field: str) -> list[Any]:
    raise invalid(f"missing required field '{field}'", field)


# -- Anthropic Messages -------------------------------------------------------------------

def anthropic_messages(body: dict[str, Any]) -> tuple[str, bool]:
    """Check a Messages body; return (model, stream)."""
    _positive_int(body, "max_tokens")
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
    _fields(body, _MESSAGES_FIELDS)
    return model


def _system(name: str, system: Any) -> None:
    if type(system) is list:
        _parts(system, name, {"text": (("text",), ())})
    elif type(system) is not str:
        raise invalid(f"'{name}' must be a string or an array of text blocks, not "
                      f"{_kind(system)}", name)


_MESSAGES_FIELDS: dict[str, Check] = {
    "max_tokens": _positive, "temperature": _range(0, 1), "top_p": _range(0, 1),
    "top_k": _positive, "system": _system, "stop_sequences": _strings_only,
    "tools": _anthropic_tools, "tool_choice": _anthropic_tool_choice,
    "metadata": _of(dict, "an object"), "thinking": _of(dict, "an object"),
    "output_config": _of(dict, "an object"),
}


# -- OpenAI Responses ---------------------------------------------------------------------

def responses(body: dict[str, Any]) -> tuple[str, bool]:
    """Check a Responses body; return (model, stream)."""
    return _responses(body), _stream(body)


def responses_input_tokens(body: dict[str, Any]) -> str:
    """Check a Responses input-token-counting body; return the model."""
    return _responses(body)


def _responses(body: dict[str, Any]) -> str:
    """The model may be left out (a stored prompt names it upstream): then "" and the
    gateway serves the application's first preferred model."""
    model = _model(body) if body.get("model") is not None else ""
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
    _fields(body, _RESPONSES_FIELDS)
    return model


_RESPONSES_FIELDS: dict[str, Check] = {
    "max_output_tokens": _positive, "temperature": _range(0, 2), "top_p": _range(0, 1),
    "tools": _tools, "tool_choice": _tool_choice, "instructions": _of(str, "a string"),
    "previous_response_id": _of(str, "a string"), "text": _of(dict, "an object"),
    "reasoning": _of(dict, "an object"), "metadata": _of(dict, "an object"),
    "store": _of(bool, "a boolean"), "parallel_tool_calls": _of(bool, "a boolean"),
    "truncation": _of(str, "a string"), "user": _of(str, "a string"),
    "include": _strings_only,
}


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
    _fields(body, _EMBEDDINGS_FIELDS)
    return model


_EMBEDDINGS_FIELDS: dict[str, Check] = {"dimensions": _positive, "user": _of(str, "a string")}
