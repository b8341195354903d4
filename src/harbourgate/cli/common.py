"""What every command shares: reading the configuration, failing with exit 2 on bad input."""

from __future__ import annotations

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
