"""`harbourgate redact` and `harbourgate deid`, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from harbourgate.cli.privacy import deid, redact

KEY = "k" * 32


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_redact_stdin(runner: CliRunner) -> None:
    result = runner.invoke(redact, [], input="Tel +852 9123 4567，HKID A123456(3)\n")
    assert result.exit_code == 0, result.output
    assert result.output == "Tel [PHONE_1]，HKID [HK_ID_1]\n"


def test_redact_files_share_one_token_table(runner: CliRunner, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("mail a.b@example.com\n", encoding="utf-8")
    b.write_text("again a.b@example.com\n", encoding="utf-8")
    result = runner.invoke(redact, [str(a), str(b)])
    assert result.exit_code == 0
    assert result.output == "mail [EMAIL_1]\nagain [EMAIL_1]\n"


def test_redact_json(runner: CliRunner) -> None:
    result = runner.invoke(redact, ["--format", "json"], input="a.b@example.com, +852 9123 4567")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["counts"] == {"phone": 1, "email": 1}
    assert doc["inputs"][0]["spans"] == [{"start": 0, "end": 15, "class": "email"},
                                         {"start": 17, "end": 31, "class": "phone"}]
    assert doc["inputs"][0]["text"] == "[EMAIL_1], [PHONE_1]"
    assert "9123" not in result.output and "a.b@" not in result.output


def test_redact_some_classes(runner: CliRunner) -> None:
    result = runner.invoke(redact, ["--classes", "email"], input="a.b@example.com +852 9123 4567")
    assert result.output == "[EMAIL_1] +852 9123 4567"


def test_redact_unknown_class(runner: CliRunner) -> None:
    result = runner.invoke(redact, ["--classes", "ssn"], input="x")
    assert result.exit_code == 2
    assert "unknown personal-data class 'ssn'" in result.output


def test_redact_binary_input(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x89PNG\x00\x00\x01")
    result = runner.invoke(redact, [str(path)])
    assert result.exit_code == 2
    assert f"{path}: looks like a binary file (it contains NUL bytes)" in result.output


def test_redact_invalid_utf8(runner: CliRunner) -> None:
    result = runner.invoke(redact, [], input="電話".encode("big5") + b" 91234567")
    assert result.exit_code == 2
    assert "<stdin>: not valid UTF-8 (byte 0xb9 at offset 0)" in result.output


def test_redact_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(redact, [str(tmp_path / "nope.txt")])
    assert result.exit_code == 2
    assert "nope.txt: cannot read it (No such file or directory)" in result.output


# ---- deid ----------------------------------------------------------------------------------

PEOPLE = {
    "name": ["陳大文", "John Lee", "王伟"],
    "phone": ["91234567", "61234567", "13812345678"],
    "birth": ["1990-05-17", "1985/02/03", None],
    "district": ["沙田", "Kowloon City", "Atlantis"],
    "age": ["34", "51", "7"],
    "notes": ["Call Mr. John Smith on +852 9123 4567", "nothing here", None],
    "city": ["深圳市", "Hong Kong", "上海"],
}
CONFIG = """
columns:
  name: {action: pseudonymise, class: person_name}
  birth: {action: generalise, to: year}
  district: {action: generalise, to: region}
  age: {action: generalise, to: band, width: 10}
  city: drop
"""


def _run(runner: CliRunner, dataset: Path, out: Path, key: str = KEY,
         config: Path | None = None) -> tuple[int, str]:
    args = [str(dataset), "--out", str(out)]
    if config:
        args += ["--config", str(config)]
    result = runner.invoke(deid, args, env={"HARBOURGATE_DEID_KEY": key})
    return result.exit_code, result.output


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_deid_csv_and_parquet(runner: CliRunner, tmp_path: Path, suffix: str) -> None:
    dataset = tmp_path / f"people{suffix}"
    frame = pl.DataFrame(PEOPLE)
    frame.write_csv(dataset) if suffix == ".csv" else frame.write_parquet(dataset)
    config = tmp_path / "rules.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    out = tmp_path / f"out{suffix}"
    code, output = _run(runner, dataset, out, config=config)
    assert code == 0, output
    result = pl.read_csv(out, infer_schema=False) if suffix == ".csv" else pl.read_parquet(out)
    assert result.columns == ["name", "phone", "birth", "district", "age", "notes"]
    assert all(v.startswith("person_name_") and len(v) == 28 for v in result["name"])
    assert all(v.startswith("phone_") for v in result["phone"])
    assert result["birth"].to_list() == ["1990", "1985", None]
    assert result["district"].to_list() == ["Hong Kong - New Territories", "Hong Kong - Kowloon",
                                            "other"]
    assert result["age"].to_list() == ["30-39", "50-59", "0-9"]
    notes = result["notes"].to_list()
    assert notes[0].startswith("Call Mr. person_name_") and "phone_" in notes[0]
    assert notes[1:] == ["nothing here", None]
    report = json.loads((tmp_path / f"out{suffix}.report.json").read_text(encoding="utf-8"))
    assert report["rows"] == 3
    assert report["columns"]["phone"] == {
        "action": "pseudonymise", "class": "phone", "to": None, "hint": "phone",
        "reason": "3 of 3 sampled values are phone; the name suggests phone", "sampled": 3,
        "sample_found": {"phone": 3}, "examples": ["9*****67", "6*****67", "1********78"],
        "changed": 3, "found": {"phone": 3}, "unmapped": 0}
    assert report["columns"]["notes"]["found"] == {"phone": 1, "person_name": 1}
    assert report["columns"]["district"]["unmapped"] == 1
    assert report["columns"]["city"] == {
        "action": "drop", "class": None, "to": None, "hint": None, "reason": "configured",
        "sampled": 0, "sample_found": {}, "examples": [], "changed": 3, "found": {},
        "unmapped": 0}
    assert report["kept"] == {}
    assert "91234567" not in out.read_bytes().decode("utf-8", "replace")


def test_deid_same_key_same_pseudonyms_across_files(runner: CliRunner, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    pl.DataFrame({"email": ["a@example.com", "b@example.com"]}).write_csv(first)
    pl.DataFrame({"email": ["b@example.com", "c@example.com"]}).write_csv(second)
    for src in (first, second):
        assert _run(runner, src, src.with_suffix(".out.csv"))[0] == 0
    a = pl.read_csv(tmp_path / "a.out.csv")["email"].to_list()
    b = pl.read_csv(tmp_path / "b.out.csv")["email"].to_list()
    assert a[1] == b[0] and len({*a, *b}) == 3
    other_key = "another-key-of-32-bytes-length!!"
    assert _run(runner, first, tmp_path / "other.csv", key=other_key)[0] == 0
    assert pl.read_csv(tmp_path / "other.csv")["email"].to_list()[1] != a[1]


def test_deid_without_a_key(runner: CliRunner, tmp_path: Path) -> None:
    dataset = tmp_path / "a.csv"
    pl.DataFrame({"x": ["1"]}).write_csv(dataset)
    result = runner.invoke(deid, [str(dataset)], env={"HARBOURGATE_DEID_KEY": ""})
    assert result.exit_code == 2
    assert "no pseudonymisation key: set the environment variable HARBOURGATE_DEID_KEY" in (
        result.output)
    code, output = _run(runner, dataset, tmp_path / "o.csv", key="short")
    assert code == 2
    assert "holds a key of 5 bytes; use at least 16" in output


def test_deid_errors_name_what_to_fix(runner: CliRunner, tmp_path: Path) -> None:
    dataset = tmp_path / "a.csv"
    pl.DataFrame({"x": ["1"]}).write_csv(dataset)
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  y: {action: generalise}\n", encoding="utf-8")
    code, output = _run(runner, dataset, tmp_path / "o.csv", config=bad)
    assert code == 2
    assert "columns.y.to: generalise needs to: one of year, month, band, region" in output
    bad.write_text("columns:\n  y: keep\n", encoding="utf-8")
    code, output = _run(runner, dataset, tmp_path / "o.csv", config=bad)
    assert "the config names column 'y', which the dataset does not have" in output
    code, output = _run(runner, tmp_path / "a.txt", tmp_path / "o.csv")
    assert code == 2 and "unknown format '.txt'; use .csv or .parquet" in output
    code, output = _run(runner, tmp_path / "missing.csv", tmp_path / "o.csv")
    assert code == 2 and "missing.csv: no such file" in output
    code, output = _run(runner, dataset, dataset)
    assert code == 2 and "the output would overwrite the dataset; choose --out" in output
