"""`harbourgate redact` and `harbourgate deid`: thin commands over `harbourgate.privacy`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from harbourgate.privacy import CLASSES, Pseudonymiser, Scanner, parse_classes


class InputError(click.UsageError):
    """Exit 2 with a message that says what to fix."""


def _decode(data: bytes, source: str) -> str:
    if b"\x00" in data[:8192]:
        raise InputError(f"{source}: looks like a binary file (it contains NUL bytes); "
                         "redact reads UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it first, e.g. iconv -f GB18030 -t UTF-8"
        ) from None


def _read(files: tuple[str, ...]) -> list[tuple[str, str]]:
    if not files:
        return [("<stdin>", _decode(sys.stdin.buffer.read(), "<stdin>"))]
    inputs = []
    for name in files:
        if name == "-":
            inputs.append(("<stdin>", _decode(sys.stdin.buffer.read(), "<stdin>")))
            continue
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            raise InputError(f"{name}: cannot read it ({exc.strerror})") from None
        inputs.append((name, _decode(data, name)))
    return inputs


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--classes", "classes_spec", default=None, metavar="A,B",
              help=f"Classes to replace (default: all): {', '.join(CLASSES)}.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: also the spans (offsets in the input) and counts.")
def redact(files: tuple[str, ...], classes_spec: str | None, fmt: str) -> None:
    """Pseudonymise personal data in FILES (or stdin) and print the result.

    Every value becomes a token such as [PHONE_1]; one value gets one token across all
    inputs. The values themselves are never printed.
    """
    try:
        classes = parse_classes(classes_spec) if classes_spec is not None else CLASSES
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--classes") from None
    inputs = _read(files)
    scanner = Scanner()
    session = Pseudonymiser(classes, scanner=scanner).session()
    texts = [text for _, text in inputs]
    profile = scanner.scan_many(texts)
    outputs = session.pseudonymise_many(texts, profile)
    if fmt == "text":
        for out in outputs:
            click.echo(out, nl=False)
        return
    documents: list[dict[str, Any]] = []
    for i, ((source, _), out) in enumerate(zip(inputs, outputs, strict=True)):
        spans = [{"start": s.start, "end": s.end, "class": s.kind}
                 for s in profile.spans if s.part == i and s.kind in session.classes]
        counts: dict[str, int] = {}
        for span in spans:
            counts[span["class"]] = counts.get(span["class"], 0) + 1
        documents.append({"source": source, "text": out, "spans": spans, "counts": counts})
    click.echo(json.dumps({"inputs": documents, "counts": session.counts,
                           "classes": sorted(session.classes, key=CLASSES.index)},
                          ensure_ascii=False, indent=2))


@click.command()
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Output file (.csv or .parquet); default: DATASET with .deid before the suffix.")
@click.option("--key-env", default="HARBOURGATE_DEID_KEY", show_default=True,
              help="Environment variable holding the pseudonymisation key (HMAC-SHA256).")
@click.option("--key-file", type=click.Path(dir_okay=False), default=None,
              help="Read the key from this file instead.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML: per-column rules (pseudonymise, scan, generalise, drop, keep).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the JSON report; default: OUT with .report.json.")
def deid(dataset: str, out_path: str | None, key_env: str, key_file: str | None,
         config_path: str | None, report_path: str | None) -> None:
    """De-identify a CSV or Parquet DATASET for cross-border sharing.

    Columns of identifiers get keyed pseudonyms (the same value and key give the same
    pseudonym in every file), free-text columns have the values inside replaced, configured
    columns are generalised or dropped. Prints a table of what was found and changed.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from harbourgate.privacy.deid import (
        DeidConfig,
        DeidError,
        default_output,
        deid_dataset,
        key_from,
        plan_summary,
    )

    console = Console(stderr=True)
    try:
        key = key_from(os.environ, key_env, key_file)
        config = DeidConfig.load(config_path) if config_path else DeidConfig()
        out = Path(out_path) if out_path else default_output(dataset)
        if out.resolve() == Path(dataset).resolve():
            raise DeidError(f"{out}: the output would overwrite the dataset; choose --out")
        with Progress(TextColumn("[bold]de-identifying"), BarColumn(),
                      MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("rows", total=None)
            plan, report = deid_dataset(
                dataset, out, key, config,
                progress=lambda done, total: bar.update(task, completed=done, total=total))
    except DeidError as exc:
        raise InputError(str(exc)) from None
    result = {"dataset": dataset, "output": str(out), "plan": plan_summary(plan),
              **report.to_dict()}
    report_file = Path(report_path) if report_path else out.with_name(out.name + ".report.json")
    report_file.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    table = Table(title=f"{dataset} -> {out} ({report.rows:,} rows)")
    for heading in ("column", "action", "found", "changed", "why"):
        table.add_column(heading)
    for name, col in report.columns.items():
        found = ", ".join(f"{k}={v}" for k, v in col.to_dict().get("found", {}).items())
        action = col.action + (f" ({col.to})" if col.to else "")
        table.add_row(name, action, found or "-", f"{col.changed:,}", col.reason)
    console.print(table)
    console.print(f"report: {report_file}")
