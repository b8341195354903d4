"""`harbourgate redact` and `harbourgate deid`: thin commands over `harbourgate.privacy`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

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
@click.option("--keep", "keep", multiple=True, metavar="COLUMN",
              help="Keep COLUMN in the clear although its name or sample suggests personal "
                   "data (repeatable).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the JSON report; default: OUT with .report.json.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None,
              metavar="[ADDRESS]",
              help="Run on Ray: join the cluster at ADDRESS (HOST:PORT or ray://HOST:PORT), or "
                   "without ADDRESS start a local Ray. Needs harbourgate[ray].")
@click.option("--cpus", type=click.IntRange(1, 4096), default=None,
              help="CPUs of the local Ray that --ray starts (default: all of this machine's).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def deid(dataset: str, out_path: str | None, key_env: str, key_file: str | None,
         config_path: str | None, keep: tuple[str, ...], report_path: str | None,
         ray_address: str | None, cpus: int | None, as_json: bool) -> None:
    """De-identify a CSV or Parquet DATASET for cross-border sharing.

    Columns of identifiers, and columns whose name suggests personal data (name, 姓名,
    phone, 電話, id, 身份證, address, 地址, email, 電郵, ...), get keyed pseudonyms (the same
    value and key give the same pseudonym in every file); free-text columns have the values
    inside replaced; configured columns are generalised or dropped. No column is kept in the
    clear without a reason in the report. The output is the same, byte for byte, with
    --ray as without.
    """
    from harbourgate.cluster import ClusterError, check_cpus, connect
    from harbourgate.privacy.deid import (
        DeidConfig,
        DeidError,
        check_output,
        default_output,
        deid_dataset,
        describe,
        key_from,
        local_partitions,
    )

    console = Console(stderr=True)
    try:
        check_cpus(ray_address, cpus)
        key = key_from(os.environ, key_env, key_file)
        config = DeidConfig.load(config_path) if config_path else DeidConfig()
        out = check_output(dataset, out_path or default_output(dataset))
        with contextlib.ExitStack() as stack:
            partitions = local_partitions
            where = "here"
            if ray_address is not None:
                from harbourgate.privacy.deid_ray import ray_partitions

                stack.enter_context(connect(ray_address or None, cpus=cpus))
                partitions = ray_partitions()
                where = f"on Ray at {ray_address}" if ray_address else "on a local Ray"
            with Progress(TextColumn(f"[bold]de-identifying {where}"), BarColumn(),
                          MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                          transient=True) as bar:
                task = bar.add_task("rows", total=None)
                plan, report = deid_dataset(
                    dataset, out, key, config, keep=keep, partitions=partitions,
                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    except (DeidError, ClusterError) as exc:
        raise InputError(str(exc)) from None
    result = {"dataset": dataset, "output": str(out), **describe(plan, report)}
    report_file = Path(report_path) if report_path else out.with_name(out.name + ".report.json")
    report_file.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    console.print(report_table(result))
    console.print(f"report: {report_file}")


def report_table(result: dict[str, Any]) -> Table:
    """The report as a table: one row per column, what it is, what was done and why."""
    table = Table(title=f"{result['dataset']} -> {result['output']} ({result['rows']:,} rows)")
    for heading in ("column", "class", "action", "found", "changed", "sample (masked)", "why"):
        table.add_column(heading, overflow="fold")
    for name, col in result["columns"].items():
        found = ", ".join(f"{k}={v}" for k, v in (col["found"] or col["sample_found"]).items())
        action = col["action"] + (f" ({col['to']})" if col["to"] else "")
        style = "yellow" if col["action"] == "keep" else None
        table.add_row(name, col["class"] or col["hint"] or "-", action, found or "-",
                      f"{col['changed']:,}", ", ".join(col["examples"]) or "-", col["reason"],
                      style=style)
    return table
