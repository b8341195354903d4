"""Shape checks for incoming bodies: every error names the field, as a user fixing a
request needs. Unknown fields pass through untouched (the upstream may understand them).
"""

from __future__ import annotations

from typing import Any

import orjson

from harbourgate.gateway.errors import invalid

OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
ANTHROPIC_ROLES = frozenset({"user", "assistant"})


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise invalid("the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object, not {_kind(body)}")
    return body


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


def _positive_int(body: dict[str, Any], name: str, *, required: bool = False) -> None:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(f"missing required field '{name}'", name)
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(f"'{name}' must be a positive integer, not {value!r}", name)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(f"'{name}' must be a number from {low:g} to {high:g}, not {value!r}", name)


def _messages(body: dict[str, Any], roles: frozenset[str]) -> list[Any]:
    messages = body.get("messages")
    if messages is None:
        raise invalid("missing required field 'messages'", "messages")
    if not isinstance(messages, list):
        raise invalid(f"'messages' must be an array, not {_kind(messages)}", "messages")
    if not messages:
        raise invalid("'messages' must contain at least one message", "messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(f"'{where}' must be an object, not {_kind(message)}", where)
        role = message.get("role")
        if role not in roles:
            raise invalid(f"'{where}.role' must be one of {', '.join(sorted(roles))}, "
                          f"not {role!r}", f"{where}.role")
        content = message.get("content")
        if content is None and role in ("assistant", "function"):
            continue  # assistant turns may carry only tool calls
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise invalid(f"'{where}.content[{j}]' must be an object with a 'type'",
                                  f"{where}.content[{j}]")
        elif not isinstance(content, str):
            raise invalid(f"'{where}.content' must be a string or an array of content parts, "
                          f"not {_kind(content)}", f"{where}.content")
    return messages


def openai_chat(body: dict[str, Any]) -> tuple[str, bool]:
    """Check a Chat Completions body; return (model, stream)."""
    model = _model(body)
    _messages(body, OPENAI_ROLES)
    stream = _stream(body)
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    n = body.get("n")
    if n not in (None, 1):
        raise invalid(f"'n' must be 1 (one choice per request), not {n!r}", "n")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise invalid("'stop' must be a string or an array of strings", "stop")
    return model, stream


def anthropic_messages(body: dict[str, Any]) -> tuple[str, bool]:
    """Check a Messages body; return (model, stream)."""
    model = _model(body)
    _positive_int(body, "max_tokens", required=True)
    _messages(body, ANTHROPIC_ROLES)
    stream = _stream(body)
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise invalid(f"'system' must be a string or an array of text blocks, not "
                      f"{_kind(system)}", "system")
    stop = body.get("stop_sequences")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise invalid("'stop_sequences' must be an array of strings", "stop_sequences")
    return model, stream


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
            or all(isinstance(v, list) and v and all(isinstance(t, int) for t in v)
                   for v in value)))
    if not ok:
        raise invalid("'input' must be a non-empty string, an array of strings, or token "
                      "arrays", "input")
    fmt = body.get("encoding_format")
    if fmt not in (None, "float", "base64"):
        raise invalid(f"'encoding_format' must be 'float' or 'base64', not {fmt!r}",
                      "encoding_format")
    return model
