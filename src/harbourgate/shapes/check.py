"""Strict readers for JSON values: each names the field at fault in its `TranslationError`.

The shape mappings read caller bodies that the gateway has not necessarily validated
deeply, so every access goes through these: a wrong type at any depth is a refusal that
names the field, never a `KeyError` or `TypeError` escaping.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harbourgate.shapes.model import TranslationError


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TranslationError(f"{where}: must be an object, not {_kind(value)}")
    return value


def lst(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"{where}: must be a list, not {_kind(value)}")
    return value


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"{where}: must be a string, not {_kind(value)}")
    return value


def opt_string(value: Any, where: str) -> str | None:
    return None if value is None else string(value, where)


def integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TranslationError(f"{where}: must be an integer, not {_kind(value)}")
    return value


def opt_integer(value: Any, where: str) -> int | None:
    return None if value is None else integer(value, where)


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TranslationError(f"{where}: must be a number, not {_kind(value)}")
    return value


def opt_number(value: Any, where: str) -> float | None:
    return None if value is None else number(value, where)


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise TranslationError(f"{where}: must be true or false, not {_kind(value)}")
    return value


def opt_boolean(value: Any, where: str) -> bool | None:
    return None if value is None else boolean(value, where)


def only(value: dict[str, Any], known: Iterable[str], where: str) -> None:
    """Refuse a key this mapping does not know: across shapes its meaning would be lost."""
    allowed = set(known)
    for key in value:
        if key not in allowed:
            label = key if key and key.isprintable() and not set(key) & set(" .[]") else (
                repr(key))
            at = f"{where}.{label}" if where else label
            raise TranslationError(f"{at}: has no equivalent in the other API shape")


def kind_of(value: Any, where: str) -> str:
    """The `type` of a part or item (an object with a string `type`)."""
    return string(obj(value, where).get("type"), f"{where}.type")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
