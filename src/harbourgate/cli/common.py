"""What every command shares: reading the configuration, failing with exit 2 on bad input,
progress on a terminal (and silence in a pipe), and JSON output.

Kept light: importing this module costs click and the config parser only, so
`harbourgate --help` and `harbourgate redact` start fast; Rich loads only when a bar shows.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from harbourgate import config


class InputError(click.ClickException):
    """A usage or input problem: exit 2 with a message that says what to fix (§4.3)."""

    exit_code = 2


def load_settings(path: str | None) -> config.Settings:
    """The settings, or exit 2 with the file, the key and the fix."""
    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise InputError(f"configuration error: {exc}") from None


ProgressCallback = Callable[[int, int | None], None]


@contextlib.contextmanager
def progress(label: str, *, enabled: bool | None = None) -> Iterator[ProgressCallback]:
    """A progress bar on stderr while the block runs, updated by calling what it yields
    with (done, total) (total None: unknown yet). Shown only when stderr is a terminal
    (`enabled` overrides), so piped output and logs stay clean; it disappears when done.

        with progress("verifying") as update:
            verify_log(..., progress=update)
    """
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _ignore(done: int, total: int | None = None) -> None:
    pass


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print machine-readable JSON instead of a table.")


def echo_json(value: Any) -> None:
    """Print `value` as indented JSON (dates and paths as strings)."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
