"""Long audit commands show a progress bar on a terminal and stay quiet in a pipe; `--json`
gives machine-readable output."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harbourgate import config
from harbourgate.audit.log import AuditLog
from harbourgate.cli import common
from harbourgate.cli.audit import audit


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    cfg = tmp_path / "harbourgate.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    log = AuditLog.open(config.load(cfg), checkpoint_interval=0)
    log.start()
    for i in range(25):
        log.append_sync({"decision": "allow", "n": i})
    log.close()
    log.engine.dispose()
    return cfg


def on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `harbourgate ARGS` with stderr on a pseudo-terminal; (exit code, what it drew)."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "harbourgate", *args],
                            stdout=subprocess.PIPE, stderr=secondary,
                            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"})
    os.close(secondary)
    drawn = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the process is done with it
            break
        if not chunk:
            break
        drawn += chunk
    proc.wait(timeout=120)
    os.close(primary)
    return proc.returncode, drawn.decode(errors="replace")


@pytest.mark.parametrize(("args", "label"), [
    (["audit", "verify"], "verifying"),
    (["audit", "export"], "exporting"),
])
def test_a_bar_on_a_terminal(config_path: Path, tmp_path: Path, args: list[str],
                             label: str) -> None:
    extra = ["--out", str(tmp_path / "bundle")] if args[-1] == "export" else []
    code, drawn = on_a_terminal(*args, "--config", str(config_path), *extra)
    assert code == 0
    assert label in drawn and "25/25" in drawn


def test_quiet_in_a_pipe(config_path: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harbourgate", "audit", "verify", "--config",
                          str(config_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert out.stderr == "" and "verifying" not in out.stdout


def test_export_json(config_path: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(audit, ["export", "--config", str(config_path), "--out",
                                        str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["entries"] == 25 and answer["tree_size"] == 25
    assert answer["directory"] == str(tmp_path / "b")


def test_the_progress_helper_is_silent_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    with common.progress("working", enabled=False) as update:
        update(1, 2)
        update(2, 2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
