"""Safe defaults of `deid`: names are evidence, recall for phones, nothing kept silently,
and the exact errors for bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.cli.privacy import deid
from harbourgate.privacy import Scanner
from harbourgate.privacy.columns import hint, words
from harbourgate.privacy.deid import (
    ColumnPlan,
    DeidConfig,
    DeidError,
    PartitionReport,
    deid_dataset,
    deidentify,
    mask,
    plan_columns,
)

KEY = "k" * 32
# What the issue saw kept in the clear: a `name` column of names no recogniser can prove,
# and +852 numbers in ranges the numbering plan calls unallocated.
PEOPLE = {
    "name": ["陳大文", "Chan Tai Man", "John Smith"],
    "notes": ["call +852 4123 4567 after 6", "回電 (+852) 4000 1234", "fine"],
    "qty": ["1", "2", "3"],
}


def run(*args: str, key: str = KEY) -> tuple[int, str]:
    result = CliRunner().invoke(deid, list(args), env={"HARBOURGATE_DEID_KEY": key})
    return result.exit_code, result.output


@pytest.fixture
def people(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    pl.DataFrame(PEOPLE).write_csv(path)
    return path


@pytest.mark.parametrize(("column", "kind"), [
    ("name", "person_name"), ("姓名", "person_name"), ("客戶姓名", "person_name"),
    ("Full Name", "person_name"), ("phone", "phone"), ("電話", "phone"), ("联系电话", "phone"),
    ("customerPhone", "phone"), ("id", "id"), ("身份證號碼", "id"), ("身份证", "id"),
    ("user_id", "id"), ("address", "address"), ("地址", "address"), ("email", "email"),
    ("電郵", "email"), ("邮箱", "email"), ("HKID", "hk_id"), ("護照號碼", "passport"),
    ("qty", None), ("filename", None), ("company_name", None), ("product_id", None),
    ("phoneme", None), ("notes", None),
])
def test_what_a_column_name_suggests(column: str, kind: str | None) -> None:
    assert hint(column) == kind


def test_words_split_camel_case_and_separators() -> None:
    assert words("customerPhone-No") == ["customer", "phone", "no"]


def test_a_name_column_is_pseudonymised_although_nothing_in_it_is_recognised() -> None:
    plan = {p.column: p for p in plan_columns(pl.DataFrame(PEOPLE), DeidConfig())}
    name = plan["name"]
    assert (name.action, name.kind, name.hint, name.found) == (
        "pseudonymise", "person_name", "person_name", {})
    assert name.reason == ("the name suggests person_name; nothing recognised in 3 sampled "
                           "values, pseudonymised anyway (--keep name keeps it in the clear)")
    assert name.examples == ("陳**", "C*** *** *an", "J*** ***th")
    assert plan["notes"].action == "scan" and plan["notes"].found == {"phone": 2}
    assert (plan["qty"].action, plan["qty"].reason) == (
        "keep", "no personal data: nothing recognised in 3 sampled values, and the name "
        "suggests nothing")
    assert plan["qty"].examples == ()


def test_chinese_headers_are_evidence_too() -> None:
    frame = pl.DataFrame({"姓名": ["陳大文"], "電話": ["12"], "身份證號碼": ["X1"],
                          "地址": ["沙田"], "電郵": ["-"]})
    plan = {p.column: (p.action, p.kind) for p in plan_columns(frame, DeidConfig())}
    assert plan == {"姓名": ("pseudonymise", "person_name"), "電話": ("pseudonymise", "phone"),
                    "身份證號碼": ("pseudonymise", "id"), "地址": ("pseudonymise", "address"),
                    "電郵": ("pseudonymise", "email")}


def test_an_id_column_takes_the_class_its_values_prove() -> None:
    frame = pl.DataFrame({"id": ["A123456(3)", "C668668(9)", "x"]})
    plan = plan_columns(frame, DeidConfig())[0]
    assert (plan.action, plan.kind) == ("pseudonymise", "hk_id")
    assert plan.reason == "2 of 3 sampled values are hk_id; the name suggests id"


def test_keep_is_honoured_and_says_why() -> None:
    plan = {p.column: p for p in plan_columns(pl.DataFrame(PEOPLE), DeidConfig(),
                                              keep=["name", "notes"])}
    assert plan["name"].action == "keep"
    assert plan["name"].reason == ("--keep (the name suggests person_name; nothing recognised "
                                   "in 3 sampled values)")
    assert plan["notes"].reason == ("--keep (the name suggests nothing; 2 values found in 3 "
                                    "sampled values)")
    with pytest.raises(DeidError, match=r"^--keep nmae: the dataset has no such column; its "
                                        r"columns are name, notes, qty$"):
        plan_columns(pl.DataFrame(PEOPLE), DeidConfig(), keep=["nmae"])


def test_recall_mode_takes_unallocated_numbers_with_a_calling_code() -> None:
    for text in ("call +852 4123 4567 after 6", "回電 (+852) 4000 1234", "00852 4123 4567"):
        assert Scanner().find(text) == [], text  # the gateway keeps its precision
        assert [k for _, _, k in Scanner(recall=True).find(text)] == ["phone"], text
    # Still no phone without a calling code or with an impossible length.
    assert Scanner(recall=True).find("ref 4123 4567") == []
    assert Scanner(recall=True).find("+852 4123") == []
    assert repr(Scanner(recall=True)) == "Scanner(classes=all, recall=True)"


@settings(deadline=None)
@given(st.sampled_from(["852", "853", "86", "44", "1", "65"]), st.integers(0, 10**12))
def test_recall_finds_whatever_the_gateway_finds(code: str, number: int) -> None:
    text = f"tel +{code} {number}"
    precise = Scanner().find(text)
    if precise:
        assert Scanner(recall=True).find(text) == precise


@settings(deadline=None)
@given(st.text(st.characters(categories=["L", "N"]), min_size=3, max_size=40))
def test_a_masked_sample_never_shows_more_than_three_characters(value: str) -> None:
    masked = mask(value)
    assert len(masked) == len(value)
    shown = sum(1 for a, b in zip(value, masked, strict=True) if a == b and a.isalnum())
    assert shown <= (3 if len(value) >= 8 else 1)


def test_the_report_lists_every_column_kept_and_a_masked_sample(people: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    code, output = run(str(people), "--out", str(out), "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["kept"] == {"qty": "no personal data: nothing recognised in 3 sampled "
                                     "values, and the name suggests nothing"}
    notes = report["columns"]["notes"]
    assert (notes["action"], notes["found"], notes["examples"]) == (
        "scan", {"phone": 2}, ["+8** **** **67", "(+8**) **** **34"])
    result = pl.read_csv(out, infer_schema=False)
    assert all(v.startswith("person_name_") for v in result["name"])
    assert result["notes"][0].startswith("call phone_") and result["notes"][2] == "fine"
    text = out.read_text(encoding="utf-8")
    for value in ("陳大文", "Chan Tai Man", "John Smith", "4123 4567", "4000 1234"):
        assert value not in text
    assert json.loads((tmp_path / "out.csv.report.json").read_text("utf-8")) == report


def test_the_table_shows_class_action_counts_and_sample(people: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(deid, [str(people), "--out", str(tmp_path / "o.csv")],
                                env={"HARBOURGATE_DEID_KEY": KEY, "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines()
             if line.count("│") > 5}
    assert "person_name" in lines["name"] and "pseudonymise" in lines["name"]
    assert "陳**" in lines["name"] and "陳大文" not in result.output
    assert "phone=2" in lines["notes"] and "+8** **** **67" in lines["notes"]
    assert "keep" in lines["qty"] and "the name suggests nothing" in lines["qty"]


# ---- bad input: the exact message, exit 2 -------------------------------------------------


def test_keep_names_a_column_that_does_not_exist(people: Path, tmp_path: Path) -> None:
    code, output = run(str(people), "--out", str(tmp_path / "o.csv"), "--keep", "nmae")
    assert code == 2
    assert "Error: --keep nmae: the dataset has no such column; its columns are name, notes, " \
           "qty" in output
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"name,phone\nA,1\nB,2,3\n",
     "row 3, column 3: 3 fields where the header has 2 (name, phone); quote values that "
     "contain commas"),
    (b"name,phone\nA,1\n\xff\xfeB,2\n",
     "row 3, column 1 ('name'): not valid UTF-8 (byte 0xff); convert it first, e.g. iconv "
     "-f GB18030 -t UTF-8"),
    (b'name,phone\nA,"1\nB,2\n',
     "row 2: unexpected end of data (a quoted value that is never closed, or a quote inside "
     "an unquoted value); double the quotes inside quoted values"),
])
def test_a_dataset_that_does_not_parse(tmp_path: Path, content: bytes, message: str) -> None:
    dataset = tmp_path / "bad.csv"
    dataset.write_bytes(content)
    code, output = run(str(dataset), "--out", str(tmp_path / "o.csv"))
    assert code == 2
    assert f"Error: {dataset}: {message}" in output.replace("\n", " ").replace("  ", " ") or \
        f"Error: {dataset}: {message}" in output


def test_a_parquet_file_that_is_not_one(tmp_path: Path) -> None:
    dataset = tmp_path / "bad.parquet"
    dataset.write_bytes(b"PAR1 not really")
    code, output = run(str(dataset), "--out", str(tmp_path / "o.parquet"))
    assert code == 2 and f"Error: {dataset}: cannot read it as parquet:" in output


def test_a_missing_or_unreadable_key_file(people: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no.key"
    code, output = run(str(people), "--out", str(tmp_path / "o.csv"), "--key-file",
                       str(missing))
    assert code == 2
    assert f"Error: {missing}: cannot read the key file (No such file or directory)" in output
    code, output = run(str(people), "--out", str(tmp_path / "o.csv"), "--key-file",
                       str(tmp_path))
    assert code == 2
    assert f"Invalid value for '--key-file': File '{tmp_path}' is a directory." in output
    short = tmp_path / "short.key"
    short.write_bytes(b"abc\n")
    code, output = run(str(people), "--out", str(tmp_path / "o.csv"), "--key-file", str(short))
    assert code == 2
    assert f"the key file {short} holds a key of 3 bytes; use at least 16" in output


def test_the_output_is_whole_or_absent(people: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"

    def dies_half_way(parts: Sequence[pl.DataFrame], plan: Sequence[ColumnPlan],
                      key: bytes) -> Iterator[tuple[pl.DataFrame, PartitionReport]]:
        yield deidentify(parts[0], plan, key)
        raise DeidError("the second partition failed; nothing was written")

    with pytest.raises(DeidError, match="nothing was written"):
        deid_dataset(people, out, KEY.encode(), batch_rows=2, partitions=dies_half_way)
    assert list(tmp_path.iterdir()) == [people]

    def loses_rows(parts: Sequence[pl.DataFrame], plan: Sequence[ColumnPlan],
                   key: bytes) -> Iterator[tuple[pl.DataFrame, PartitionReport]]:
        yield deidentify(parts[0], plan, key)

    with pytest.raises(DeidError, match=r"^1 partitions came back with 2 of 3 rows; nothing "
                                        r"was written$"):
        deid_dataset(people, out, KEY.encode(), batch_rows=2, partitions=loses_rows)
    assert list(tmp_path.iterdir()) == [people]


def test_cpus_only_with_a_local_ray(people: Path, tmp_path: Path) -> None:
    code, output = run(str(people), "--out", str(tmp_path / "o.csv"), "--cpus", "2")
    assert code == 2
    assert "Error: --cpus sizes the local Ray that --ray starts; add --ray" in output
    code, output = run(str(people), "--out", str(tmp_path / "o.csv"), "--cpus", "2",
                       "--ray=10.0.0.5:6379")
    assert code == 2
    assert ("Error: --cpus sizes a local Ray; the cluster at 10.0.0.5:6379 has its own CPUs "
            "(drop --cpus)") in output
