"""The `harbourgate` command: thin, each subcommand lives in the module that owns it.

Subcommands are imported lazily so that `harbourgate stand-in` does not pay for the
policy compiler, and a broken optional dependency only breaks its own command.
"""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "serve": "harbourgate.cli.serve:serve",
    "stand-in": "harbourgate.cli.serve:stand_in",
    "policy": "harbourgate.cli.policy:policy",
    "audit": "harbourgate.cli.audit:audit",
    "redact": "harbourgate.cli.privacy:redact",
    "deid": "harbourgate.cli.privacy:deid",
    "directive": "harbourgate.cli.directive:directive",
    "demo": "harbourgate.cli.demo:demo",
    "usage": "harbourgate.cli.usage:usage",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup)
@click.version_option(package_name="harbourgate")
def main() -> None:
    """Harbourgate: an AI governance gateway (OpenAI- and Anthropic-compatible)."""
