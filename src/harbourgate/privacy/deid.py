"""Dataset de-identification for cross-border sharing, with polars.

Three steps, each usable alone:

1. `DeidConfig` — per-column rules from YAML (or defaults: detect everything);
2. `plan_columns(sample, config)` — decides per column, from a sample, what to do:
   `pseudonymise` (the column holds identifiers: every value becomes a keyed pseudonym),
   `scan` (free text with some personal data: values found inside are replaced),
   `generalise` (year, month, age band, region), `drop`, or `keep`;
3. `deidentify(frame, plan, key)` — pure: DataFrame in, DataFrame and `PartitionReport`
   out, no I/O and no global state, so a Ray (or any) worker can run it per partition and
   the reports be merged with `PartitionReport.merge`.

Pseudonyms are keyed hashes: ``phone_3f2a9c0d1e2b4a5c`` = class + the first 16 hex digits of
HMAC-SHA256(key, class + value in canonical form). The same key gives the same pseudonym for
the same value in every file and every partition, so joins across shared files still work;
without the key they cannot be reversed or recomputed from a guessed value. Detection
scans each value with its column name as context ("phone: 91234567"), so a bare number in a
`phone` column is recognised as one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from harbourgate.privacy.classes import CLASSES, UnknownClassError
from harbourgate.privacy.pseudonymise import canonical
from harbourgate.privacy.regions import UNKNOWN_REGION, region_of
from harbourgate.privacy.scanner import Scanner

ACTIONS = ("detect", "pseudonymise", "scan", "generalise", "drop", "keep")
GENERALISATIONS = ("year", "month", "band", "region")
MIN_KEY_BYTES = 16


class DeidError(ValueError):
    """A problem the user can fix (bad config, unreadable dataset): the message says how."""


@dataclass(frozen=True)
class ColumnRule:
    """What the config says about one column."""

    action: str = "detect"
    kind: str | None = None  # class for `pseudonymise` (names the pseudonym's prefix)
    to: str | None = None  # for `generalise`: year | month | band | region
    width: int = 10  # band width for `to: band`


@dataclass(frozen=True)
class DeidConfig:
    columns: Mapping[str, ColumnRule] = field(default_factory=dict)
    sample_rows: int = 1000
    threshold: float = 0.5  # share of sampled values that must BE a value of one class
    default: str = "detect"  # for columns the config does not name: detect | keep

    @classmethod
    def load(cls, path: str | Path) -> DeidConfig:
        """Read a YAML file; errors name the file and the key."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise DeidError(f"{path}: cannot read the config ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise DeidError(f"{path}: invalid YAML: {exc}") from exc
        return cls.from_mapping(raw or {}, source=str(path))

    @classmethod
    def from_mapping(cls, raw: Any, *, source: str = "<config>") -> DeidConfig:
        if not isinstance(raw, dict):
            raise DeidError(f"{source}: the config must be a mapping with a `columns:` key")
        unknown = sorted(set(raw) - {"columns", "sample_rows", "threshold", "default"})
        if unknown:
            raise DeidError(f"{source}: unknown key {unknown[0]!r}; use columns, sample_rows, "
                            "threshold, default")
        columns_raw = raw.get("columns") or {}
        if not isinstance(columns_raw, dict):
            raise DeidError(f"{source}: columns: must map column names to rules")
        columns = {str(name): _rule(rule, f"{source}: columns.{name}")
                   for name, rule in columns_raw.items()}
        sample_rows = raw.get("sample_rows", 1000)
        threshold = raw.get("threshold", 0.5)
        default = raw.get("default", "detect")
        if not isinstance(sample_rows, int) or isinstance(sample_rows, bool) or sample_rows < 1:
            raise DeidError(f"{source}: sample_rows: must be a positive whole number")
        if not isinstance(threshold, int | float) or not 0 < threshold <= 1:
            raise DeidError(f"{source}: threshold: must be a number in (0, 1]")
        if default not in ("detect", "keep"):
            raise DeidError(f"{source}: default: must be detect or keep, not {default!r}")
        return cls(columns, sample_rows, float(threshold), default)


def _rule(raw: Any, where: str) -> ColumnRule:
    if isinstance(raw, str):
        raw = {"action": raw}
    if not isinstance(raw, dict):
        raise DeidError(f"{where}: must be an action name or a mapping with action:")
    unknown = sorted(set(raw) - {"action", "class", "to", "width"})
    if unknown:
        raise DeidError(f"{where}: unknown key {unknown[0]!r}; use action, class, to, width")
    action = raw.get("action", "detect")
    if action not in ACTIONS:
        raise DeidError(f"{where}.action: {action!r} is not one of {', '.join(ACTIONS)}")
    kind = raw.get("class")
    if kind is not None and kind not in CLASSES:
        raise DeidError(f"{where}.class: {UnknownClassError(str(kind))}")
    to = raw.get("to")
    if action == "generalise" and to not in GENERALISATIONS:
        raise DeidError(f"{where}.to: generalise needs to: one of {', '.join(GENERALISATIONS)}")
    width = raw.get("width", 10)
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise DeidError(f"{where}.width: must be a positive whole number")
    return ColumnRule(action, kind, to, width)


@dataclass(frozen=True)
class ColumnPlan:
    """The decision for one column, and the evidence (class counts in the sample)."""

    column: str
    action: str
    kind: str | None = None
    to: str | None = None
    width: int = 10
    sampled: int = 0
    found: Mapping[str, int] = field(default_factory=dict)
    reason: str = ""


@dataclass
class ColumnReport:
    action: str
    kind: str | None = None
    to: str | None = None
    changed: int = 0
    found: Counter[str] = field(default_factory=Counter)
    unmapped: int = 0  # `region` values with no known region (set to "other")
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "changed": self.changed}
        if self.kind:
            out["class"] = self.kind
        if self.to:
            out["to"] = self.to
        if self.found:
            out["found"] = {c: self.found[c] for c in CLASSES if self.found[c]}
        if self.unmapped:
            out["unmapped"] = self.unmapped
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class PartitionReport:
    """What one `deidentify` call found and changed: counts only, never values."""

    rows: int = 0
    columns: dict[str, ColumnReport] = field(default_factory=dict)

    def merge(self, other: PartitionReport) -> PartitionReport:
        """Add another partition's report to this one (returns self)."""
        self.rows += other.rows
        for name, col in other.columns.items():
            mine = self.columns.setdefault(
                name, ColumnReport(col.action, col.kind, col.to, reason=col.reason))
            mine.changed += col.changed
            mine.found.update(col.found)
            mine.unmapped += col.unmapped
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows,
                "columns": {name: col.to_dict() for name, col in self.columns.items()}}


# ---- planning ------------------------------------------------------------------------------


def _context_text(column: str, value: str) -> tuple[str, int]:
    prefix = f"{column}: "
    return prefix + value, len(prefix)


def plan_columns(sample: pl.DataFrame, config: DeidConfig,
                 scanner: Scanner | None = None) -> list[ColumnPlan]:
    """Decide each column's action from a sample of its rows (the config's rules first)."""
    scanner = scanner or Scanner()
    missing = sorted(set(config.columns) - set(sample.columns))
    if missing:
        raise DeidError(f"the config names column {missing[0]!r}, which the dataset does not "
                        f"have; its columns are {', '.join(sample.columns)}")
    plans = []
    for name in sample.columns:
        rule = config.columns.get(name)
        if rule is None:
            rule = ColumnRule(action=config.default)
        if rule.action in ("drop", "keep", "generalise"):
            plans.append(ColumnPlan(name, rule.action, rule.kind, rule.to, rule.width,
                                    reason="configured"))
            continue
        values = [str(v) for v in sample.get_column(name).drop_nulls().head(config.sample_rows)
                  if str(v).strip()]
        whole: Counter[str] = Counter()
        found: Counter[str] = Counter()
        for value in values:
            text, offset = _context_text(name, value.strip())
            spans = scanner.find(text)
            found.update(kind for _, _, kind in spans)
            if len(spans) == 1 and spans[0][0] == offset and spans[0][1] == len(text):
                whole[spans[0][2]] += 1
        if rule.action == "pseudonymise":
            kind = rule.kind or (whole.most_common(1)[0][0] if whole else None)
            plans.append(ColumnPlan(name, "pseudonymise", kind, sampled=len(values),
                                    found=dict(found), reason="configured"))
        elif rule.action == "scan":
            plans.append(ColumnPlan(name, "scan", sampled=len(values), found=dict(found),
                                    reason="configured"))
        elif whole and whole.most_common(1)[0][1] >= config.threshold * len(values):
            kind, count = whole.most_common(1)[0]
            plans.append(ColumnPlan(name, "pseudonymise", kind, sampled=len(values),
                                    found=dict(found),
                                    reason=f"{count} of {len(values)} sampled values are {kind}"))
        elif found:
            plans.append(ColumnPlan(name, "scan", sampled=len(values), found=dict(found),
                                    reason=f"{sum(found.values())} values found inside "
                                           f"{len(values)} sampled texts"))
        else:
            plans.append(ColumnPlan(name, "keep", sampled=len(values),
                                    reason="no personal data in the sample"))
    return plans


# ---- the pure per-partition function -------------------------------------------------------


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """``kind_<16 hex>``: the keyed hash of the value's canonical form."""
    digest = hmac.new(key, f"{kind}\x00{canonical(kind, value)}".encode(), hashlib.sha256)
    return f"{kind}_{digest.hexdigest()[:16]}"


def deidentify(frame: pl.DataFrame, plan: Sequence[ColumnPlan], key: bytes,
               scanner: Scanner | None = None) -> tuple[pl.DataFrame, PartitionReport]:
    """Apply `plan` to one partition. Pure: same inputs, same outputs; no I/O."""
    if len(key) < MIN_KEY_BYTES:
        raise DeidError(f"the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes")
    scanner = scanner or Scanner()
    report = PartitionReport(rows=frame.height)
    drop: list[str] = []
    columns: list[pl.Series] = []
    for step in plan:
        if step.column not in frame.columns:
            raise DeidError(f"column {step.column!r} of the plan is not in this partition")
        series = frame.get_column(step.column)
        col = ColumnReport(step.action, step.kind, step.to, reason=step.reason)
        report.columns[step.column] = col
        if step.action == "drop":
            drop.append(step.column)
            col.changed = series.len()
        elif step.action == "pseudonymise":
            columns.append(_pseudonymise_column(series, step.kind or "value", key, col))
        elif step.action == "scan":
            columns.append(_scan_column(series, key, scanner, col))
        elif step.action == "generalise":
            columns.append(_generalise_column(series, step, col))
    out = frame.with_columns(columns) if columns else frame
    return (out.drop(drop) if drop else out), report


def _pseudonymise_column(series: pl.Series, kind: str, key: bytes,
                         col: ColumnReport) -> pl.Series:
    text = series.cast(pl.Utf8)
    uniques = text.drop_nulls().unique().to_list()
    mapping = {v: pseudonym(key, kind, v) for v in uniques}
    col.changed = text.drop_nulls().len()
    col.found[kind] += col.changed
    return text.replace_strict(mapping, default=None, return_dtype=pl.Utf8).alias(series.name)


def _scan_column(series: pl.Series, key: bytes, scanner: Scanner,
                 col: ColumnReport) -> pl.Series:
    name = series.name

    def replace(value: str) -> str:
        text, offset = _context_text(name, value)
        found = scanner.find(text)
        if not found:
            return value
        col.changed += 1
        pieces, pos = [], offset
        for start, end, kind in found:
            start = max(start, offset)
            if end <= start:
                continue
            col.found[kind] += 1
            pieces += [text[pos:start], pseudonym(key, kind, text[start:end])]
            pos = end
        pieces.append(text[pos:])
        return "".join(pieces)

    text = series.cast(pl.Utf8)
    return text.map_elements(replace, return_dtype=pl.Utf8, skip_nulls=True).alias(name)


_YEAR = r"((?:1[89]|20)\d\d)"
_MONTH = r"((?:1[89]|20)\d\d)[-/.年](0?[1-9]|1[0-2])"


def _generalise_column(series: pl.Series, step: ColumnPlan, col: ColumnReport) -> pl.Series:
    name = series.name
    col.changed = series.drop_nulls().len()
    if step.to in ("year", "month"):
        if series.dtype.is_temporal():
            fmt = "%Y" if step.to == "year" else "%Y-%m"
            return series.dt.strftime(fmt).alias(name)
        text = series.cast(pl.Utf8)
        if step.to == "year":
            return text.str.extract(_YEAR, 1).alias(name)
        frame = text.str.extract_groups(_MONTH)
        year = frame.struct.field("1")
        month = frame.struct.field("2").str.zfill(2)
        return (year + "-" + month).alias(name)
    if step.to == "band":
        number = series.cast(pl.Float64, strict=False) if series.dtype == pl.Utf8 else series
        number = number.cast(pl.Float64, strict=False)
        low = (number // step.width * step.width).cast(pl.Int64)
        high = low + (step.width - 1)
        return (low.cast(pl.Utf8) + "-" + high.cast(pl.Utf8)).alias(name)
    # region
    text = series.cast(pl.Utf8)
    uniques = text.drop_nulls().unique().to_list()
    mapping = {v: region_of(v) for v in uniques}
    col.unmapped = int(text.is_in([v for v, r in mapping.items() if r == UNKNOWN_REGION]).sum())
    return text.replace_strict(mapping, default=None, return_dtype=pl.Utf8).alias(name)


# ---- files ---------------------------------------------------------------------------------

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_dataset(path: str | Path) -> pl.DataFrame:
    """CSV (every column read as text, so leading zeros survive) or Parquet."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DeidError(f"{path}: unknown format {path.suffix!r}; use .csv or .parquet")
    try:
        if fmt == "csv":
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except FileNotFoundError as exc:
        raise DeidError(f"{path}: no such file") from exc
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DeidError(f"{path}: cannot read it as {fmt}: {exc}") from exc


def write_dataset(frame: pl.DataFrame, path: str | Path) -> None:
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DeidError(f"{path}: unknown output format {path.suffix!r}; use .csv or .parquet")
    if fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)


def default_output(path: str | Path) -> Path:
    """``people.csv`` -> ``people.deid.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.deid{path.suffix}")


def deid_dataset(
    source: str | Path,
    out: str | Path,
    key: bytes,
    config: DeidConfig | None = None,
    *,
    batch_rows: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ColumnPlan], PartitionReport]:
    """Read `source`, plan from a sample, de-identify in batches, write `out`.

    `progress(rows_done, rows_total)` is called after each batch.
    """
    config = config or DeidConfig()
    frame = read_dataset(source)
    plan = plan_columns(frame.head(config.sample_rows), config)
    scanner = Scanner()
    report = PartitionReport()
    parts: list[pl.DataFrame] = []
    total = frame.height
    for offset in range(0, max(total, 1), batch_rows):
        part, part_report = deidentify(frame.slice(offset, batch_rows), plan, key, scanner)
        parts.append(part)
        report.merge(part_report)
        if progress:
            progress(min(offset + batch_rows, total), total)
    write_dataset(pl.concat(parts) if parts else frame, out)
    return plan, report


def key_from(env: Mapping[str, str], name: str | None = None,
             file: str | Path | None = None) -> bytes:
    """The HMAC key from a file (raw bytes, stripped) or an environment variable."""
    if file is not None:
        try:
            key = Path(file).read_bytes().strip()
        except OSError as exc:
            raise DeidError(f"{file}: cannot read the key file ({exc.strerror})") from exc
        where = f"the key file {file}"
    else:
        name = name or "HARBOURGATE_DEID_KEY"
        value = env.get(name)
        if not value:
            raise DeidError(f"no pseudonymisation key: set the environment variable {name} to a "
                            f"secret of at least {MIN_KEY_BYTES} bytes (or use --key-file)")
        key = value.encode()
        where = f"the environment variable {name}"
    if len(key) < MIN_KEY_BYTES:
        raise DeidError(f"{where} holds a key of {len(key)} bytes; use at least "
                        f"{MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)")
    return key


def plan_summary(plan: Iterable[ColumnPlan]) -> list[dict[str, Any]]:
    return [{"column": p.column, "action": p.action, "class": p.kind, "to": p.to,
             "reason": p.reason} for p in plan]

