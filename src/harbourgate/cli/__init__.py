"""The `harbourgate` command: thin, each subcommand lives in the module that owns it.

Subcommands are imported lazily, and `--help` lists them from the table below without
importing any, so `harbourgate --help` does not pay for FastAPI, SQLAlchemy or the policy
compiler, and a missing optional extra only breaks its own command (with a message that
names the extra to install).
"""

from __future__ import annotations

import importlib

import click

# command name -> ("module:attribute" of a click.Command, the one-line help --help shows)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("harbourgate.cli.serve:serve", "Run the gateway (data plane and admin API)."),
    "stand-in": ("harbourgate.cli.serve:stand_in",
                 "A local OpenAI- and Anthropic-compatible stand-in provider."),
    "policy": ("harbourgate.cli.policy:policy", "Check, test and explain policy bundles."),
    "audit": ("harbourgate.cli.audit:audit",
              "Verify the audit log, export evidence, print inclusion proofs."),
    "redact": ("harbourgate.cli.privacy:redact",
               "Pseudonymise personal data in files (or stdin)."),
    "deid": ("harbourgate.cli.privacy:deid", "De-identify a CSV or Parquet dataset."),
    "directive": ("harbourgate.cli.directive:directive",
                  "Issue, list, revoke and simulate directives."),
    "demo": ("harbourgate.cli.demo:demo", "Replay the June 2026 directive shock end to end."),
    "config": ("harbourgate.cli.config:config_group",
               "Check a configuration file; print its JSON Schema."),
    "usage": ("harbourgate.cli.usage:usage",
              "Usage and quota state of a deployment (tokens, requests, cost, refusals)."),
}

# the top-level module an optional extra brings -> the extra
EXTRAS: dict[str, str] = {
    "polars": "deid",
    "openai": "demo",
    "anthropic": "demo",
    "httpx": "demo",
    "ray": "ray",
    "opentelemetry": "otel",
}


class MissingExtra(click.ClickException):
    """A command needs an optional extra that is not installed: exit 2, naming it."""

    exit_code = 2

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"this command needs the {module!r} package, which is part of an "
                         f"optional extra: pip install 'harbourgate[{extra}]'")


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr = entry[0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            module = (exc.name or "").split(".")[0]
            if module not in EXTRAS:
                raise
            raise MissingExtra(module, EXTRAS[module]) from None


@click.group(cls=LazyGroup)
@click.version_option(package_name="harbourgate")
def main() -> None:
    """Harbourgate: an AI governance gateway (OpenAI- and Anthropic-compatible)."""
