"""`harbourgate demo`: the directive shock, replayed end to end (see `harbourgate.demo`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harbourgate.cli.common import InputError

DEMO_MODULES = ("openai", "anthropic", "httpx")


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the configuration, logs, database and checkpoint here (a new or "
                   "empty directory); default: a temporary directory, removed at the end.")
@click.option("--keep", is_flag=True, help="Keep the temporary directory and say where it is.")
@click.option("--phase-seconds", type=click.FloatRange(0.5, 60), default=4.0,
              show_default=True, help="How long traffic runs in each of the three phases.")
@click.option("--workers", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Gateway worker processes (more shows propagation across processes).")
def demo(data_dir: Path | None, keep: bool, phase_seconds: float, workers: int) -> None:
    """Replay the June 2026 directive shock on this machine and print the timeline.

    Starts a stand-in provider and a gateway on free 127.0.0.1 ports, drives traffic from
    several participants and attested end users with the OpenAI and Anthropic SDKs, issues
    the directive mid-run, revokes it, and verifies the audit log. Exit 0 when the story
    held, 1 otherwise (with what did not hold).
    """
    try:
        from harbourgate.demo import DemoError, run_demo
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in DEMO_MODULES:
            raise
        raise InputError(f"the demo drives the gateway with the official OpenAI and Anthropic "
                         f"SDKs, and {exc.name!r} is not installed: pip install "
                         f"'harbourgate[demo]' (./scripts/run does)") from None

    try:
        result = run_demo(data_dir=data_dir, keep=keep, phase_seconds=phase_seconds,
                          workers=workers)
    except DemoError as exc:  # only a bad --data-dir: nothing was started
        raise InputError(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("interrupted; the demo's processes are stopped", err=True)
        sys.exit(130)
    sys.exit(result.exit_code)
