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

import csv
import hashlib
import hmac
import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from harbourgate.privacy.classes import CLASSES, UnknownClassError
from harbourgate.privacy.columns import hint
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
    """The decision for one column, and the evidence: what the name suggests (`hint`), how
    many values were sampled, the classes found in them, masked examples of what was found."""

    column: str
    action: str
    kind: str | None = None
    to: str | None = None
    width: int = 10
    sampled: int = 0
    found: Mapping[str, int] = field(default_factory=dict)
    reason: str = ""
    hint: str | None = None
    examples: tuple[str, ...] = ()

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
            out["found"] = {c: self.found[c] for c in sorted(self.found, key=_class_order)
                            if self.found[c]}
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


def mask(value: str) -> str:
    """A found value as the report may show it: separators kept, letters and digits starred
    but the first (and the last two of a long value): ``+852 9123 4567`` -> ``+8** **** **67``."""
    positions = [i for i, ch in enumerate(value) if ch.isalnum()]
    shown = {positions[0]} if positions else set()
    if len(positions) >= 8:
        shown.update(positions[-2:])
    return "".join(ch if i in shown or not ch.isalnum() else "*" for i, ch in enumerate(value))


EXAMPLES = 3


def plan_columns(sample: pl.DataFrame, config: DeidConfig, scanner: Scanner | None = None,
                 *, keep: Iterable[str] = ()) -> list[ColumnPlan]:
    """Decide each column's action from its name and a sample of its rows.

    The config's rules come first, then `keep` (the user's `--keep`); otherwise the safe
    default: a column whose name suggests personal data (`columns.hint`) is pseudonymised
    whole, whatever the sample shows; a column whose sampled values mostly are values of
    one class is pseudonymised; one with values found inside its texts is scanned; only a
    column with neither is kept, and its reason says so.
    """
    scanner = scanner or Scanner(recall=True)
    keep = set(keep)
    missing = sorted(set(config.columns) - set(sample.columns))
    if missing:
        raise DeidError(f"the config names column {missing[0]!r}, which the dataset does not "
                        f"have; its columns are {', '.join(sample.columns)}")
    unknown = sorted(keep - set(sample.columns))
    if unknown:
        raise DeidError(f"--keep {unknown[0]}: the dataset has no such column; its columns "
                        f"are {', '.join(sample.columns)}")
    return [_plan_column(name, sample.get_column(name), config, scanner, name in keep)
            for name in sample.columns]


def _plan_column(name: str, series: pl.Series, config: DeidConfig, scanner: Scanner,
                 kept: bool) -> ColumnPlan:
    rule = config.columns.get(name)
    suggested = hint(name)
    if rule is not None and rule.action in ("drop", "keep", "generalise"):
        return ColumnPlan(name, rule.action, rule.kind, rule.to, rule.width,
                          reason="configured", hint=suggested)
    values = [str(v).strip() for v in series.drop_nulls().head(config.sample_rows)]
    values = [v for v in values if v]
    whole: Counter[str] = Counter()
    found: Counter[str] = Counter()
    examples: dict[str, None] = {}
    for value in values:
        text, offset = _context_text(name, value)
        spans = scanner.find(text)
        found.update(kind for _, _, kind in spans)
        for start, end, _ in spans:
            if len(examples) < EXAMPLES:
                examples[mask(text[max(start, offset):end])] = None
        if len(spans) == 1 and spans[0][0] == offset and spans[0][1] == len(text):
            whole[spans[0][2]] += 1
    evidence = dict(found)
    seen = (f"{sum(found.values())} values found in {len(values)} sampled values"
            if found else f"nothing recognised in {len(values)} sampled values")
    named = f"the name suggests {suggested}" if suggested else "the name suggests nothing"
    top = whole.most_common(1)[0] if whole else None
    majority = top if top and top[1] >= config.threshold * len(values) else None

    def planned(action: str, kind: str | None, reason: str, shown: bool = True) -> ColumnPlan:
        sample_shown = tuple(examples) if shown else ()
        if action == "pseudonymise" and not sample_shown:
            sample_shown = tuple(dict.fromkeys(mask(v) for v in values[:EXAMPLES]))
        return ColumnPlan(name, action, kind, sampled=len(values), found=evidence,
                          reason=reason, hint=suggested, examples=sample_shown)

    if rule is not None and rule.action == "pseudonymise":
        kind = rule.kind or (top[0] if top else suggested)
        return planned("pseudonymise", kind, "configured")
    if rule is not None and rule.action == "scan":
        return planned("scan", None, "configured")
    if kept:
        return planned("keep", None, f"--keep ({named}; {seen})")
    if rule is None and config.default == "keep":
        return planned("keep", None, f"the config's default is keep ({named}; {seen})")
    if majority:
        kind, count = majority
        why = f"{count} of {len(values)} sampled values are {kind}"
        if suggested:
            why += f"; {named}"
        return planned("pseudonymise", kind, why)
    if suggested:
        kind = top[0] if top and suggested == "id" else suggested
        if found:
            why = f"{named}; {seen}"
        else:
            why = (f"{named}; {seen}, pseudonymised anyway (--keep {name} keeps it in "
                   "the clear)")
        return planned("pseudonymise", kind, why)
    if found:
        return planned("scan", None, f"{seen}; the values found inside are replaced")
    return planned("keep", None, f"no personal data: {seen}, and {named}", shown=False)


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
    scanner = scanner or Scanner(recall=True)
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
# (partition, plan, key) -> (partition de-identified, its report): what each worker runs.
Partitions = Callable[[Sequence[pl.DataFrame], Sequence[ColumnPlan], bytes],
                      Iterator[tuple[pl.DataFrame, PartitionReport]]]


def read_dataset(path: str | Path) -> pl.DataFrame:
    """CSV (every column read as text, so leading zeros survive) or Parquet.

    A file that does not parse is a `DeidError` naming the file, the row and the column.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DeidError(f"{path}: unknown format {path.suffix!r}; use .csv or .parquet")
    if not path.is_file():
        raise DeidError(f"{path}: no such file")
    try:
        if fmt == "csv":
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        where = _csv_problem(path) if fmt == "csv" else None
        if where:
            raise DeidError(f"{path}: {where}") from None
        raise DeidError(f"{path}: cannot read it as {fmt}: {exc}") from None


def _csv_problem(path: Path) -> str | None:
    """Where a CSV stops parsing: the row (1 = the header) and column, and what is wrong."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        prefix = data[line_start:exc.start].decode("utf-8", "replace")
        header = next(csv.reader(io.StringIO(data[:data.find(b"\n")].decode("utf-8",
                                                                               "replace"))), [])
        column = next(csv.reader(io.StringIO(prefix)), [""])
        name = header[len(column) - 1] if 0 < len(column) <= len(header) else "?"
        return (f"row {row}, column {len(column)} ({name!r}): not valid UTF-8 (byte "
                f"0x{data[exc.start]:02x}); convert it first, e.g. iconv -f GB18030 -t UTF-8")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] = []
    started = 1  # the line the row being read starts on
    try:
        for row in reader:
            if not header:
                header = row
            elif len(row) > len(header):
                return (f"row {started}, column {len(header) + 1}: {len(row)} fields where "
                        f"the header has {len(header)} ({', '.join(header)}); quote values "
                        "that contain commas")
            started = reader.line_num + 1
    except csv.Error as exc:
        return (f"row {started}: {exc} (a quoted value that is never closed, or a quote "
                "inside an unquoted value); double the quotes inside quoted values")
    return None


def write_dataset(frame: pl.DataFrame, path: str | Path) -> None:
    """Write `path` whole or not at all: into a temporary file beside it, then renamed."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DeidError(f"{path}: unknown output format {path.suffix!r}; use .csv or .parquet")
    partial = path.with_name(f".{path.name}.partial")
    frame = frame.rechunk()
    try:
        if fmt == "csv":
            frame.write_csv(partial)
        else:
            frame.write_parquet(partial)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DeidError(f"{path}: cannot write it ({exc.strerror})") from None
    finally:
        partial.unlink(missing_ok=True)


def check_output(source: str | Path, out: str | Path) -> Path:
    """The output path, refused before any work when it cannot be right."""
    out = Path(out)
    if FORMATS.get(out.suffix.lower()) is None:
        raise DeidError(f"{out}: unknown output format {out.suffix!r}; use .csv or .parquet")
    if out.resolve() == Path(source).resolve():
        raise DeidError(f"{out}: the output would overwrite the dataset; choose --out")
    if not out.parent.is_dir():
        raise DeidError(f"{out}: no such directory {out.parent}")
    return out


def default_output(path: str | Path) -> Path:
    """``people.csv`` -> ``people.deid.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.deid{path.suffix}")


def local_partitions(parts: Sequence[pl.DataFrame], plan: Sequence[ColumnPlan],
                     key: bytes) -> Iterator[tuple[pl.DataFrame, PartitionReport]]:
    """De-identify partitions one after the other in this process."""
    scanner = Scanner(recall=True)
    for part in parts:
        yield deidentify(part, plan, key, scanner)


def deid_dataset(
    source: str | Path,
    out: str | Path,
    key: bytes,
    config: DeidConfig | None = None,
    *,
    keep: Iterable[str] = (),
    batch_rows: int = 20_000,
    partitions: Partitions = local_partitions,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ColumnPlan], PartitionReport]:
    """Read `source`, plan from a sample, de-identify in partitions, write `out`.

    `partitions` runs the pure `deidentify` over the partitions, in order: here
    (`local_partitions`) or on a Ray cluster (`deid_ray.ray_partitions`); the output is
    the same bytes either way. `out` is written whole or not at all.
    `progress(rows_done, rows_total)` is called after each partition.
    """
    config = config or DeidConfig()
    out = check_output(source, out)
    frame = read_dataset(source)
    plan = plan_columns(frame.head(config.sample_rows), config, keep=keep)
    total = frame.height
    parts = [frame.slice(offset, batch_rows) for offset in range(0, max(total, 1), batch_rows)]
    report = PartitionReport()
    results: list[pl.DataFrame] = []
    done = 0
    for part, part_report in partitions(parts, plan, key):
        results.append(part)
        report.merge(part_report)
        done += part.height
        if progress:
            progress(done, total)
    if report.rows != total:
        raise DeidError(f"{len(results)} partitions came back with {report.rows} of {total} "
                        "rows; nothing was written")
    write_dataset(pl.concat(results), out)
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


def describe(plan: Iterable[ColumnPlan], report: PartitionReport) -> dict[str, Any]:
    """The report: per column its class, action and why, what the sample showed (counts and
    masked examples, never a value in the clear) and what the run changed; and the list of
    columns kept in the clear, each with its reason."""
    columns: dict[str, Any] = {}
    kept: dict[str, str] = {}
    for step in plan:
        counts = report.columns.get(step.column)
        columns[step.column] = {
            "action": step.action,
            "class": step.kind,
            "to": step.to,
            "hint": step.hint,
            "reason": step.reason,
            "sampled": step.sampled,
            "sample_found": {c: step.found[c] for c in CLASSES if step.found.get(c)},
            "examples": list(step.examples),
            "changed": counts.changed if counts else 0,
            "found": ({c: counts.found[c] for c in sorted(counts.found, key=_class_order)
                       if counts.found[c]} if counts else {}),
            "unmapped": counts.unmapped if counts else 0,
        }
        if step.action == "keep":
            kept[step.column] = step.reason
    return {"rows": report.rows, "columns": columns, "kept": kept}


def _class_order(kind: str) -> tuple[int, str]:
    return (CLASSES.index(kind) if kind in CLASSES else len(CLASSES), kind)
