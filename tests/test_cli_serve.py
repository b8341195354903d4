"""`harbourgate serve` refuses bad input before it listens: exit 2, and what to fix."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harbourgate.cli import main


def test_bad_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes: [{name: x, provider: bedrock}]\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}: routes[0].provider: provider must be one of" in result.output


def test_broken_policy_bundle_exits_2_with_file_and_line(tmp_path: Path) -> None:
    bundle = tmp_path / "local.yaml"
    bundle.write_text("bundle: local\nversion: 1\nrules:\n  - id: r1\n    effect: maybe\n")
    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\npolicy: {{bundles: [{bundle}]}}\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert "cannot start" in result.output and f"{bundle}:5" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["serv"])
    assert result.exit_code == 2 and "No such command" in result.output
