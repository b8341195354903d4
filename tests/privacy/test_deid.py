"""The pure per-partition function and planning, without files."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from harbourgate.privacy.deid import (
    ColumnPlan,
    DeidConfig,
    DeidError,
    PartitionReport,
    deidentify,
    plan_columns,
    pseudonym,
)
from harbourgate.privacy.regions import region_of

KEY = b"0123456789abcdef0123"


def test_plan_detects_identifier_columns_text_columns_and_clean_columns() -> None:
    frame = pl.DataFrame({
        "hkid": ["A123456(3)", "C668668(9)", None],
        "comment": ["mail me at a@b.com", "fine", "ok"],
        "qty": ["1", "2", "3"],
    })
    plan = {p.column: p for p in plan_columns(frame, DeidConfig())}
    assert (plan["hkid"].action, plan["hkid"].kind) == ("pseudonymise", "hk_id")
    assert plan["comment"].action == "scan" and plan["comment"].found == {"email": 1}
    assert plan["qty"].action == "keep"


def test_partition_function_is_pure_and_reports_merge() -> None:
    frame = pl.DataFrame({"hkid": ["A123456(3)", "A123456(3)", "C668668(9)"]})
    plan = [ColumnPlan("hkid", "pseudonymise", "hk_id")]
    first, r1 = deidentify(frame.slice(0, 2), plan, KEY)
    second, r2 = deidentify(frame.slice(2, 1), plan, KEY)
    whole, _ = deidentify(frame, plan, KEY)
    assert pl.concat([first, second]).equals(whole)
    assert frame["hkid"].to_list() == ["A123456(3)", "A123456(3)", "C668668(9)"]  # untouched
    merged = PartitionReport().merge(r1).merge(r2)
    assert merged.to_dict() == {"rows": 3, "columns": {"hkid": {
        "action": "pseudonymise", "changed": 3, "class": "hk_id", "found": {"hk_id": 3}}}}


def test_pseudonym_is_keyed_and_canonical() -> None:
    assert pseudonym(KEY, "phone", "9123 4567") == pseudonym(KEY, "phone", "91234567")
    assert pseudonym(KEY, "phone", "91234567") != pseudonym(b"another key 16 bytes", "phone",
                                                           "91234567")
    assert "91234567" not in pseudonym(KEY, "phone", "91234567")


def test_generalise_temporal_month_and_band() -> None:
    frame = pl.DataFrame({"born": [dt.date(1990, 5, 17), None], "visit": ["2024年3月5日", "x"],
                          "age": [34, 7]})
    plan = [ColumnPlan("born", "generalise", to="year"),
            ColumnPlan("visit", "generalise", to="month"),
            ColumnPlan("age", "generalise", to="band", width=5)]
    out, _ = deidentify(frame, plan, KEY)
    assert out["born"].to_list() == ["1990", None]
    assert out["visit"].to_list() == ["2024-03", None]
    assert out["age"].to_list() == ["30-34", "5-9"]


def test_short_key_and_missing_column() -> None:
    frame = pl.DataFrame({"a": ["x"]})
    with pytest.raises(DeidError, match="at least 16 bytes"):
        deidentify(frame, [], b"short")
    with pytest.raises(DeidError, match="column 'b' of the plan is not in this partition"):
        deidentify(frame, [ColumnPlan("b", "keep")], KEY)


@pytest.mark.parametrize(("raw", "message"), [
    ([], "the config must be a mapping"),
    ({"colums": {}}, "unknown key 'colums'"),
    ({"columns": {"a": {"action": "hide"}}}, "columns.a.action: 'hide' is not one of"),
    ({"columns": {"a": {"action": "pseudonymise", "class": "ssn"}}}, "unknown personal-data"),
    ({"threshold": 2}, "threshold: must be a number in (0, 1]"),
])
def test_config_errors(raw: object, message: str) -> None:
    with pytest.raises(DeidError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        DeidConfig.from_mapping(raw)


def test_regions() -> None:
    assert region_of("深圳市") == "Guangdong (GBA)"
    assert region_of(" Sha Tin ") == "Hong Kong - New Territories"
    assert region_of("灣仔區") == "Hong Kong - Hong Kong Island"
    assert region_of("Atlantis") == "other"
