"""`harbourgate audit verify | export | prove`: the auditor's commands, on a deployment's data.

They read the database and key of `--config` (or the embedded default) and never write
to the log. Exit codes: 0 ok, 1 the log failed verification, 2 usage or input error.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from rich.console import Console

from harbourgate.audit import merkle, storage
from harbourgate.audit.export import ExportError, export_bundle, latest_verified_checkpoint
from harbourgate.audit.keys import SigningKeyError, load_signer
from harbourgate.audit.note import NoteError, Verifier
from harbourgate.audit.tree import TreeCache, TreeCorruptionError
from harbourgate.audit.verify import Report, VerifyInputError, verify_log
from harbourgate.cli.common import InputError, echo_json, json_option, load_settings, progress
from harbourgate.config import Settings
from harbourgate.store import create_engine


class CheckFailed(click.ClickException):
    """A verification that failed: exit 1."""

    exit_code = 1


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                             help="the deployment's configuration file (as for serve)")


@click.group()
def audit() -> None:
    """Verify the tamper-evident audit log, export evidence, print inclusion proofs."""


def _engine(settings: Settings) -> sa.Engine:
    url = settings.effective_database_url
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            raise InputError(f"no database at {path}; check data_dir (or database_url) in the "
                             "configuration, or pass --config")
    return create_engine(url)


def _verifier(settings: Settings, key: str | None) -> Verifier:
    """The pinned verifier key (--key, text or a file holding it) or the deployment's own."""
    try:
        if key:
            text = Path(key).read_text(encoding="utf-8") if Path(key).is_file() else key
            return Verifier.from_vkey(text)
        return load_signer(settings, create=False).verifier
    except NoteError as exc:
        raise InputError(f"--key: {exc}; pass the text GET /admin/v1/audit/key returns") from None
    except SigningKeyError as exc:
        raise InputError(f"{exc}; or pass the log's verifier key with --key") from None


key_option = click.option("--key", help="the log's verifier key (text or file), to pin it "
                          "instead of trusting the deployment's key file")


@audit.command()
@config_option
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False),
              help="a checkpoint saved earlier: the log must still contain that tree")
@key_option
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def verify(config_path: str | None, checkpoint_file: str | None, key: str | None,
           as_json: bool) -> None:
    """Recompute the whole tree and check it against every signed checkpoint."""
    settings = load_settings(config_path)
    saved = None
    if checkpoint_file:
        try:
            saved = Path(checkpoint_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--checkpoint {checkpoint_file}: cannot read it ({exc})") from None
    verifier = _verifier(settings, key)
    engine = _engine(settings)
    try:
        with progress("verifying") as update:
            report = verify_log(engine, verifier, origin=settings.audit.origin,
                                saved_checkpoint=saved, progress=update)
    except VerifyInputError as exc:
        where = f"--checkpoint {checkpoint_file}: " if "saved checkpoint" in str(exc) else ""
        raise InputError(where + str(exc)) from None
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report, settings)
    if not report.ok:
        sys.exit(1)


def _print_report(report: Report, settings: Settings) -> None:
    out = Console(highlight=False, soft_wrap=True)
    root = base64.b64encode(report.root).decode()
    out.print(f"log [bold]{settings.audit.origin}[/]: {report.entries} entries, root {root}")
    out.print(f"checkpoints verified: {report.checkpoints} (latest size "
              f"{report.latest_checkpoint if report.latest_checkpoint is not None else '-'})")
    if report.saved_checkpoint is not None:
        out.print(f"saved checkpoint: size {report.saved_checkpoint}")
    if report.pending:
        out.print(f"awaiting integration: {report.pending}")
    if report.unsigned:
        out.print(f"not yet covered by a checkpoint: {report.unsigned}")
    if report.ok:
        out.print("[green]OK[/]: every entry and checkpoint verifies")
        return
    for f in report.findings:
        out.print(f"[red]FAIL[/] {f.kind}: {f.message}")
    out.print("\n[bold]What to do[/]")
    for line in report.what_to_do:
        out.print(line)


@audit.command()
@config_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="the directory to write (default: DATA_DIR/exports/audit-SIZE)")
@key_option
@json_option
def export(config_path: str | None, out_dir: str | None, key: str | None,
           as_json: bool) -> None:
    """Write an evidence bundle: entries, the latest checkpoint, the verifier key."""
    settings = load_settings(config_path)
    verifier = _verifier(settings, key)
    engine = _engine(settings)
    try:
        checkpoint = latest_verified_checkpoint(engine, verifier, settings.audit.origin)
        size = checkpoint.size if checkpoint else 0
        out = Path(out_dir) if out_dir else settings.data_dir / "exports" / f"audit-{size}"
        with progress("exporting") as update:
            result = export_bundle(engine, verifier, out, settings.audit.origin,
                                   progress=update)
    except ExportError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"cannot write the bundle: {exc}") from None
    finally:
        engine.dispose()
    if as_json:
        echo_json({"directory": str(result.directory), "entries": result.entries,
                   "tree_size": result.checkpoint.size, "verifier_key": verifier.vkey})
        return
    click.echo(f"exported {result.entries} entries and the checkpoint of size "
               f"{result.checkpoint.size} to {result.directory}")
    click.echo(f"verify with: python {result.directory / 'verify_evidence.py'} {result.directory} "
               f"--key '{verifier.vkey}'")


@audit.command()
@click.argument("entry_id")
@config_option
@click.option("--tree-size", type=int, help="the tree to prove inclusion in "
              "(default: the latest signed checkpoint)")
@key_option
def prove(entry_id: str, config_path: str | None, tree_size: int | None,
          key: str | None) -> None:
    """Print the inclusion proof of entry ENTRY_ID (JSON, RFC 9162 §2.1.3)."""
    settings = load_settings(config_path)
    verifier = _verifier(settings, key)
    engine = _engine(settings)
    try:
        entry = storage.find_entry(engine, entry_id)
        if entry is None:
            raise InputError(f"no audit entry with id {entry_id!r}; the id is the "
                             "X-Harbourgate-Audit header or an error's audit_id")
        if entry.index is None:
            raise InputError(f"audit entry {entry_id} is not yet integrated into the tree; "
                             "retry in a second")
        checkpoint = latest_verified_checkpoint(engine, verifier, settings.audit.origin)
        size = tree_size if tree_size is not None else (checkpoint.size if checkpoint else 0)
        tree = TreeCache(lambda start, end: storage.read_leaves(engine, start, end))
        start = 0
        for leaves in storage.iter_leaves(engine, 0):
            tree.extend([merkle.leaf_hash(leaf) for leaf in leaves], start)
            start += len(leaves)
        if not 0 < size <= tree.size:
            raise InputError(f"--tree-size {size} is outside the tree, which has {tree.size} "
                             "entries" if tree_size is not None else
                             "the log has no signed checkpoint yet; pass --tree-size")
        if entry.index >= size:
            raise InputError(f"audit entry {entry_id} has index {entry.index}, so a tree of size "
                             f"{size} does not contain it; pass --tree-size > {entry.index}")
        hashes = tree.inclusion_proof(entry.index, size)
    except (TreeCorruptionError, storage.LogIntegrityError) as exc:
        raise CheckFailed(str(exc)) from None
    finally:
        engine.dispose()
    leaf_hash = merkle.leaf_hash(entry.leaf)
    signed = checkpoint is not None and checkpoint.size == size
    if signed:
        assert checkpoint is not None
        try:
            merkle.verify_inclusion(entry.index, size, leaf_hash, hashes, checkpoint.root)
        except merkle.ProofError as exc:
            raise CheckFailed(f"the proof does not verify against the signed checkpoint "
                              f"({exc}): run `harbourgate audit verify`") from None
    click.echo(json.dumps({
        "id": entry.id, "index": entry.index, "tree_size": size,
        "leaf_hash": base64.b64encode(leaf_hash).decode(),
        "hashes": [base64.b64encode(h).decode() for h in hashes],
        "checkpoint": checkpoint.note if signed and checkpoint else None,
    }, indent=2))
