"""The JSON Schema of the configuration file, generated from the settings definitions.

`config.py` stays the one parser; this module reads its definitions (the section
dataclasses, the route keys, the providers and roles) so that the schema cannot drift from
what `harbourgate config check` accepts. The generated schema ships with the package
(`harbourgate/config.schema.json`) and in the docs (`docs/config.schema.json`); a test
regenerates it and compares, and `harbourgate config schema` prints it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from harbourgate import config

SCHEMA_ID = "https://harbourgate.local/config.schema.json"
SHIPPED = Path(__file__).with_name("config.schema.json")

# route keys whose value is not a plain string
_ROUTE_TYPES: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "minLength": 1,
             "description": "The model name clients ask for."},
    "provider": {"enum": list(config.PROVIDERS)},
    "export_tags": {"type": "array", "items": {"type": "string"}},
    "timeout_s": {"type": "number", "exclusiveMinimum": 0},
    "endpoints": {"type": "array", "items": {"type": "object"}},
    "health": {"type": "object"},
    "capacity": {"type": "object"},
    "price": {"type": "object"},
    "max_concurrency": {"type": "integer", "minimum": 1},
    "balance": {"enum": ["least_outstanding", "round_robin"]},
}
_ENUMS: dict[str, list[str]] = {
    "logging.level": list(config.LOG_LEVELS),
    "logging.format": list(config.LOG_FORMATS),
}


def _type_of(default: Any) -> dict[str, Any]:
    if isinstance(default, bool):
        return {"type": "boolean"}
    if isinstance(default, int):
        return {"type": "integer"}
    if isinstance(default, float):
        return {"type": "number"}
    if isinstance(default, tuple):
        return {"type": ["array", "string"], "items": {"type": "string"}}
    if default is None:
        return {"type": ["string", "null"]}
    return {"type": ["string", "number"]} if isinstance(default, str) else {}


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """A route key may be null: the parser reads null as "not given"."""
    if "enum" in prop:
        return {**prop, "enum": [*prop["enum"], None]}
    kind = prop.get("type")
    return {**prop, "type": [kind, "null"]} if isinstance(kind, str) else prop


def _section(name: str, cls: type) -> dict[str, Any]:
    instance = cls()
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        default = getattr(instance, f.name)
        prop = _type_of(default)
        if f"{name}.{f.name}" in _ENUMS:
            prop = {"enum": _ENUMS[f"{name}.{f.name}"]}
        if isinstance(default, Path):
            default = str(default)
        prop["default"] = list(default) if isinstance(default, tuple) else default
        if isinstance(prop.get("type"), list) and "null" not in prop["type"]:
            prop["type"] = [*prop["type"], "null"]  # null means: the default
        properties[f.name] = prop
    return {"type": ["object", "null"], "properties": properties, "additionalProperties": False}


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the configuration file."""
    route_props = {key: _nullable(_ROUTE_TYPES.get(key, {"type": "string"}))
                   for key in sorted(config._ROUTE_KEYS)}
    route_props["name"] = _ROUTE_TYPES["name"]  # the one key a route must have
    properties: dict[str, Any] = {
        "data_dir": {"type": ["string", "null"], "default": "./harbourgate-data"},
        "database_url": {"type": ["string", "null"], "default": None,
                         "pattern": "^(sqlite:|postgres:|postgresql:|postgresql\\+psycopg:)"},
        "redis_url": {"type": ["string", "null"], "default": None},
        "admin_tokens": {"type": ["array", "null"], "items": {
            "type": "object",
            "properties": {"token_env": {"type": "string"},
                           "token": {"type": "string", "minLength": 16},
                           "role": {"enum": list(config.ROLES)},
                           "name": {"type": "string", "maxLength": 100}},
            "anyOf": [{"required": ["token_env"]}, {"required": ["token"]}]}},
        "routes": {"type": ["array", "null"], "items": {
            "type": "object", "properties": route_props, "required": ["name"],
            "additionalProperties": False}},
        "quotas": {"type": ["array", "null"], "items": {
            "type": "object", "required": ["scope"],
            "properties": {
                "id": {"type": "string"},
                "scope": {"type": "object", "minProperties": 1, "additionalProperties": False,
                          "properties": {k: {"type": "string"} for k in
                                         ("participant", "application", "key", "route")}},
                "requests_per_minute": {"type": "number", "exclusiveMinimum": 0},
                "tokens_per_minute": {"type": "number", "exclusiveMinimum": 0},
                "budget": {"type": "object", "required": ["period"],
                           "properties": {"tokens": {"type": "number", "exclusiveMinimum": 0},
                                          "cost": {"type": "number", "exclusiveMinimum": 0},
                                          "period": {"enum": ["day", "week", "month"]}}},
                "on_exhausted": {"enum": ["refuse", "reroute"]}}}},
        "sandbox": {"type": ["object", "null"], "properties": {
            kind: {"type": ["array", "null"], "items": {"type": "object", "required": ["id"]}}
            for kind in ("participants", "applications")}},
    }
    for name, cls in config._SECTIONS.items():
        properties[name] = _section(name, cls)
    for key in sorted(config._KNOWN_TOP - set(properties)):
        properties[key] = {}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Harbourgate configuration",
        "description": "harbourgate serve --config FILE; check a file with "
                       "`harbourgate config check FILE`. Every key has a default.",
        "type": ["object", "null"],
        "properties": dict(sorted(properties.items())),
        "additionalProperties": False,
    }


def render() -> str:
    return json.dumps(schema(), indent=2) + "\n"
