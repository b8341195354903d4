"""YAML with line numbers: mappings and lists remember where each key and item came from.

PyYAML throws marks away once it builds Python values and silently keeps the last of
two equal keys; a policy author needs both the line of a mistake and a loud duplicate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harbourgate.policy.errors import PolicyError, Problem


class LineDict(dict[str, Any]):
    """A mapping that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line) if hasattr(self, "key_lines") else self.line


class LineList(list[Any]):
    """A list that knows its own line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if index < len(lines) else self.line


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a parsed value started on, when it is a mapping or list from YAML."""
    return getattr(value, "line", None) or default


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.duplicates: list[Problem] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:  # type: ignore[override]
        self.flatten_mapping(node)
        out = LineDict()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            line = key_node.start_mark.line + 1
            if key in out:
                self.duplicates.append(Problem(
                    f"key {key!r} appears twice in one mapping (first on line "
                    f"{out.key_lines[key]}); YAML would silently keep only the last",
                    self.source, line, "remove or rename one of them"))
            out[key] = self.construct_object(value_node, deep=True)
            out.key_lines[key] = line
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:  # type: ignore[override]
        out = LineList(self.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.item_lines = [child.start_mark.line + 1 for child in node.value]
        return out


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_sequence)
# Timestamps stay strings: the policy parses them itself, with its own precise errors
# (PyYAML would turn `2026-06-12` into a date and `2026-06-12T00:00:00Z` into a datetime).
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_text(text: str, source: str) -> Any:
    """Parse one YAML document, raising `PolicyError` with the line of any syntax error."""
    loader = _Loader(text, source)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([Problem(f"invalid YAML: {problem}", source,
                                   mark.line + 1 if mark else None,
                                   "check indentation, colons and quoting on this line")]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise PolicyError(loader.duplicates)
    return data


def parse_file(path: str | Path) -> Any:
    """Read and parse a YAML (or JSON, a subset of YAML) file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([Problem(f"cannot read the file ({exc.strerror})", source, None,
                                   "check the path")]) from None
    except UnicodeDecodeError:
        raise PolicyError([Problem("the file is not UTF-8 text", source, None,
                                   "save it as UTF-8")]) from None
    return parse_text(text, source)
