"""`harbourgate usage`: tokens, requests, cost and quota refusals of a deployment.

Reads the decisions index of `--config`'s database directly (like `harbourgate audit`),
grouped by participant, application, key or route per period, the same figures as
`GET /admin/v1/usage`; then the quotas in force. `--json` prints the rows as JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from harbourgate.admin.records import parse_since
from harbourgate.cli.common import InputError, load_settings
from harbourgate.store import create_engine
from harbourgate.store import decisions as index
from harbourgate.store.quotas import list_quotas

BY = ("participant", "application", "key", "route")
PERIODS = ("hour", "day", "week", "month")


@click.command()
@click.option("--since", help="ISO-8601 date or instant (default: the start of this month)")
@click.option("--until", help="ISO-8601 date or instant (default: now)")
@click.option("--by", type=click.Choice(BY), default="participant", show_default=True,
              help="group by")
@click.option("--period", type=click.Choice(PERIODS), default="day", show_default=True,
              help="one row per period")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              envvar="HARBOURGATE_CONFIG_FILE",
              help="the deployment's configuration file (as for serve)")
def usage(since: str | None, until: str | None, by: str, period: str, as_json: bool,
          config_file: str | None) -> None:
    """Usage and quota state of a deployment: requests, tokens in and out, cost, and
    refusals by quota, per period."""
    settings = load_settings(config_file)
    window = {}
    for name, value in (("since", since or datetime.now(UTC).strftime("%Y-%m-01")),
                        ("until", until)):
        if value is None:
            window[name] = None
            continue
        try:
            window[name] = parse_since(value)
        except ValueError as exc:
            raise InputError(f"--{name}: {exc}") from None
    if window["since"] and window["until"] and window["until"] <= window["since"]:
        raise InputError("--until must be later than --since")
    url = settings.effective_database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise InputError(f"no database at {url[len('sqlite:///'):]}; check data_dir (or "
                         "database_url) in the configuration, or pass --config")
    engine = create_engine(url)
    try:
        if not {"decisions", "quotas"} <= set(sa.inspect(engine).get_table_names()):
            raise InputError("the database has no usage index yet; start `harbourgate serve` "
                             "once with this configuration to upgrade it")
        rows = index.usage(engine, index.Filters(since=window["since"], until=window["until"]),
                           by=by, period=period)
        with engine.connect() as conn:
            quotas = list_quotas(conn)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"by": by, "period": period, "data": rows, "quotas": quotas},
                              indent=2))
        return
    _print(rows, quotas, by, window["since"])


def _print(rows: list[dict], quotas: list[dict], by: str, since: datetime | None) -> None:
    out = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"Usage since {since:%Y-%m-%d %H:%M} UTC" if since else "Usage")
    for name in ("period", by, "requests", "input", "output", "cache read", "cache write",
                 "reasoning", "cost", "quota refusals"):
        table.add_column(name, justify="left" if name in ("period", by, "quota refusals")
                         else "right")
    for row in rows:
        refusals = ", ".join(f"{q}: {n}" for q, n in row["refusals"].items())
        table.add_row(row["period"], row[by], str(row["requests"]), str(row["input_tokens"]),
                      str(row["output_tokens"]), str(row["cache_read_tokens"]),
                      str(row["cache_write_tokens"]), str(row["reasoning_tokens"]),
                      f"{row['cost']:.4f}", refusals or "-")
    if rows:
        out.print(table)
    else:
        out.print("No recorded requests in this window.")
    if not quotas:
        out.print("No quotas set.")
        return
    limits = Table(title="Quotas in force")
    for name in ("id", "scope", "requests/min", "tokens/min", "budget", "on exhausted"):
        limits.add_column(name)
    for q in quotas:
        budget = q.get("budget") or {}
        amount = budget.get("tokens", budget.get("cost"))
        unit = "tokens" if "tokens" in budget else "cost"
        limits.add_row(q["id"], ", ".join(f"{k}={v}" for k, v in q["scope"].items()),
                       str(q.get("requests_per_minute") or "-"),
                       str(q.get("tokens_per_minute") or "-"),
                       f"{amount} {unit} per {budget['period']}" if budget else "-",
                       q.get("on_exhausted", "refuse"))
    out.print(limits)
