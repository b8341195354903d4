"""`harbourgate config check [FILE]` and `harbourgate config schema`."""

from __future__ import annotations

import click

from harbourgate.cli.common import InputError, echo_json, json_option


@click.group("config")
def config_group() -> None:
    """Check a configuration file; print its JSON Schema."""


@config_group.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@json_option
def check(file: str | None, as_json: bool) -> None:
    """Validate FILE (default: the embedded default) without starting anything.

    Exit 0 when it is valid, 2 with the file, the key and the fix when it is not.
    Environment overrides (HARBOURGATE_<SECTION>_<KEY>) are applied, as serve does.
    """
    from harbourgate import config
    from harbourgate.observe import telemetry

    try:
        settings = config.load(file)
        telemetry.check_available(settings.telemetry)
    except (config.ConfigError, telemetry.TelemetryUnavailable) as exc:
        if as_json:
            echo_json({"ok": False, "file": file, "error": str(exc),
                       "key": getattr(exc, "key", None)})
            raise SystemExit(2) from None
        raise InputError(f"configuration error: {exc}") from None
    summary = {"ok": True, "file": settings.source, "routes": [r.name for r in settings.routes],
               "database": "postgresql" if settings.database_url else "sqlite",
               "redis": bool(settings.redis_url),
               "telemetry": bool(settings.telemetry.otlp_endpoint),
               "logging": {"level": settings.logging.level, "format": settings.logging.format,
                           "access": settings.logging.access}}
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{settings.source}: OK ({len(settings.routes)} routes: "
               f"{', '.join(summary['routes']) or 'none'}; database {summary['database']}"
               f"{', redis' if summary['redis'] else ''}"
               f"{', OpenTelemetry' if summary['telemetry'] else ''})")


@config_group.command()
def schema() -> None:
    """Print the JSON Schema of the configuration file."""
    from harbourgate import configschema

    click.echo(configschema.render(), nl=False)
