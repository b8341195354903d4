"""The free text of a request and of an answer: what the scanner reads, the pseudonymiser
replaces and the restorer puts back.

A request's text lives in many places (string contents, text parts, system blocks, tool
arguments and results); rather than knowing every shape, walk the message tree and take
every string except those under keys that are structure, not prose (roles, ids, types,
base64 image data). Rebuilding copies only the containers on the way, so the caller's
body stays intact for the next failover candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

# Keys whose string values are identifiers or encodings, never user prose.
STRUCTURAL = frozenset({
    "role", "type", "id", "tool_call_id", "tool_use_id", "name", "model", "media_type",
    "data", "detail", "cache_control", "format", "encoding_format", "url", "signature",
    "call_id", "item_id", "status", "image_url", "file_id", "file_data", "file_url",
    "encrypted_content",
})
# The top-level request keys that hold prose (Responses: `input` items, tool outputs
# included, and `instructions`).
PROSE_KEYS = ("system", "messages", "input", "prompt", "instructions")


def _walk(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _walk(item, out)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in STRUCTURAL:
                _walk(item, out)


def request_texts(body: dict[str, Any]) -> list[str]:
    """Every prose string of a request body, in a stable order."""
    out: list[str] = []
    for key in PROSE_KEYS:
        if key in body:
            _walk(body[key], out)
    return out


def _rebuild(value: Any, texts: Iterator[str]) -> Any:
    if isinstance(value, str):
        return next(texts)
    if isinstance(value, list):
        return [_rebuild(item, texts) for item in value]
    if isinstance(value, dict):
        return {key: (item if key in STRUCTURAL else _rebuild(item, texts))
                for key, item in value.items()}
    return value


def with_texts(body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """A copy of `body` whose prose strings are `texts` (as `request_texts` listed them)."""
    it = iter(texts)
    out = dict(body)
    for key in PROSE_KEYS:
        if key in body:
            out[key] = _rebuild(body[key], it)
    return out


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """Apply `fn` to every string in an answer (to restore pseudonyms), in place where the
    containers are the answer's own."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = map_strings(item, fn)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in STRUCTURAL:
                value[key] = map_strings(item, fn)
        return value
    return value
