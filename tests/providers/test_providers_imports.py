"""providers/ and shapes/ import one way: no module imports itself through others."""

from __future__ import annotations

import ast
from pathlib import Path

import harbourgate

ROOT = Path(harbourgate.__file__).parent
PACKAGES = ("providers", "shapes")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, anywhere in it (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from package import module` imports the module; `from module import name`
            # the module
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known
                     else node.module for a in node.names]
        found |= {name for name in names if name in known}
    return found


def test_there_is_no_import_cycle() -> None:
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph = {name: imports(path, set(files)) - {name} for name, path in files.items()}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, "import cycle: " + " -> ".join((*trail, name))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, (*trail, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert "harbourgate.shapes.model" in graph  # the walk saw the packages
    assert not any(n.startswith("harbourgate.providers") for m in graph
                   if m.startswith("harbourgate.shapes") for n in graph[m])
