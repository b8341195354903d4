"""The JSON Schema of the configuration: generated from the settings definitions, shipped
with the package and in docs/, and in agreement with the parser on valid and invalid files;
`harbourgate config check` exits 0 or 2."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from harbourgate import config, configschema
from harbourgate.cli import main

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "harbourgate config schema > src/harbourgate/config.schema.json (and docs/)"


@pytest.mark.parametrize("path", [configschema.SHIPPED, ROOT / "docs" / "config.schema.json"])
def test_the_shipped_schema_is_the_generated_one(path: Path) -> None:
    assert json.loads(path.read_text()) == configschema.schema(), f"regenerate: {REGENERATE}"


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(configschema.schema())


VALID = [
    "",
    "data_dir: /tmp/x\n",
    "logging: {level: debug, format: json, access: false}\n",
    "telemetry: {otlp_endpoint: 'http://collector:4318', export_interval_s: 5}\n",
    "server: {host: 0.0.0.0, port: 9000, workers: 2}\n",
    "routes: [{name: a, provider: openai, base_url: 'http://x/v1', export_tags: [t],"
    " timeout_s: 3, class: frontier-chat}]\n",
    "admin_tokens: [{token_env: T, role: auditor}]\n",
    "policy: {packs: [hk-sandbox], bundles: [./b.yaml]}\n",
    "routes: [{name: a, export_tags: null, timeout_s: null, origin: null}]\n",
]

INVALID = [
    "nonsense: 1\n",
    "logging: {level: loud}\n",
    "logging: {format: xml}\n",
    "logging: {access: maybe}\n",
    "logging: {colour: true}\n",
    "telemetry: {sampler: always}\n",
    "server: {port: eighty}\n",
    "routes: [{provider: openai, base_url: 'http://x/v1'}]\n",
    "routes: [{name: a, provider: bedrock}]\n",
    "routes: [{name: a, weight: 3}]\n",
    "admin_tokens: [{token_env: T, role: root}]\n",
    "database_url: mysql://x\n",
    "policy: [a]\n",
]


@pytest.mark.parametrize("text", VALID)
def test_files_the_parser_accepts_match_the_schema(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    config.load(path, environ={})
    jsonschema.validate(yaml.safe_load(text), configschema.schema())
    assert CliRunner().invoke(main, ["config", "check", str(path)]).exit_code == 0


@pytest.mark.parametrize("text", INVALID)
def test_files_the_parser_refuses_the_schema_refuses(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError):
        config.load(path, environ={})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), configschema.schema())
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 2 and f"{path}: " in result.output


def test_config_check_json(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("logging: {format: xml}\n")
    result = CliRunner().invoke(main, ["config", "check", str(path), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.output) == {
        "ok": False, "file": str(path), "key": "logging.format",
        "error": f"{path}: logging.format: must be one of text, json, not 'xml'"}
    path.write_text("")
    result = CliRunner().invoke(main, ["config", "check", str(path), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["ok"] is True


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["config", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "cannot read the file" in result.output


def test_the_schema_command_prints_the_shipped_schema() -> None:
    result = CliRunner().invoke(main, ["config", "schema"])
    assert result.exit_code == 0 and json.loads(result.output) == configschema.schema()

