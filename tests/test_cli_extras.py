"""A command whose optional extra is missing exits 2 and names the extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harbourgate.cli import main


@pytest.mark.parametrize(("command", "module", "extra"), [
    (["deid", "data.csv"], "polars", "deid"),
    (["demo"], "httpx", "demo"),
])
def test_a_missing_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  command: list[str], module: str, extra: str) -> None:
    (tmp_path / "data.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("harbourgate.privacy.deid", "harbourgate.demo"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, module, None)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2, result.output
    assert f"harbourgate[{extra}]" in result.output
