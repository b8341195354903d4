"""`harbourgate directive issue | list | revoke | simulate`.

`issue`, `list` and `revoke` talk to a running deployment's admin API (`--url`, default
http://127.0.0.1:8080 or HARBOURGATE_URL; the token from HARBOURGATE_ADMIN_TOKEN), so the
change is stored, audited and propagated to every replica exactly as the API does it.
`issue` validates the file locally first, so a mistake is reported with its file and line
before anything is sent.

`simulate` works on the deployment's data directly, like `harbourgate audit`: it reads the
recorded traffic and the registry of `--config`'s database, compiles the configured policy
with the directives in force, and changes nothing.

Exit codes: 0 done, 2 usage or input error (a bad file, an unreachable server, a refusal
by the server: its message is printed).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from harbourgate import policy, runtime
from harbourgate.admin.records import parse_since, recorded_requests
from harbourgate.cli.common import InputError, load_settings
from harbourgate.cluster import ClusterError, check_cpus, connect
from harbourgate.directives import Directive, DirectiveError, load_directive_file
from harbourgate.directives.simulate import render
from harbourgate.directives.simulate import simulate as run_simulation
from harbourgate.directives.simulate_ray import RayJobError, count_entries, simulate_on_ray
from harbourgate.store import Store

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "HARBOURGATE_ADMIN_TOKEN"
TIMEOUT_S = 30.0

url_option = click.option("--url", envvar="HARBOURGATE_URL", default=DEFAULT_URL,
                          show_default=True, help="the deployment's base URL "
                          "(env HARBOURGATE_URL); the token comes from HARBOURGATE_ADMIN_TOKEN")
json_option = click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")


@click.group()
def directive() -> None:
    """Issue, list and revoke directives on a running deployment; simulate one first."""


@directive.command()
@click.argument("file", type=click.Path(dir_okay=False))
@url_option
@json_option
def issue(file: str, url: str, as_json: bool) -> None:
    """Issue the directive in FILE (YAML or JSON); it is in force on every replica within
    a second of the answer."""
    found = _read(file)
    body = Client(url).call("POST", "/admin/v1/directives", found.to_dict())
    if as_json:
        _print_json(body)
        return
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"Issued [bold]{body['id']}[/]: {body['title']} ({body['authority']})")
    out.print(f"  {_scope(body)}; permits only {_permit(body)}")
    window = f"from {body['effective_from'] or 'now'} until {body['effective_until'] or 'revoked'}"
    state = "in force now" if body.get("in_force") else "not yet in force"
    out.print(f"  {window}: {state}")
    out.print(f"  audit entry {body.get('audit_id')}; revoke with `harbourgate directive "
              f"revoke {body['id']}`")


@directive.command(name="list")
@url_option
@click.option("--status", type=click.Choice(["issued", "revoked", "all"]), default="all",
              show_default=True, help="which directives to list")
@json_option
def list_(url: str, status: str, as_json: bool) -> None:
    """The deployment's directives, in the order they were issued."""
    body = Client(url).call("GET", f"/admin/v1/directives?status={status}")
    if as_json:
        _print_json(body)
        return
    out = Console(highlight=False, soft_wrap=True)
    if not body["data"]:
        out.print(f"No directives ({status}).")
        return
    table = Table(title=f"Directives ({status})", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("in effect", no_wrap=True)
    table.add_column("title (authority)")
    table.add_column("governs → permits only")
    for d in body["data"]:
        state = ("revoked" if d["status"] == "revoked"
                 else "in force" if d.get("in_force") else "pending")
        window = f"{d['effective_from'] or 'now'}\n→ {d['effective_until'] or 'revoked'}"
        table.add_row(d["id"], state, window, f"{d['title']} ({d['authority']})",
                      f"{_scope(d, prefix=False)} → {_permit(d)}")
    out.print(table)


@directive.command()
@click.argument("directive_id", metavar="ID")
@url_option
@json_option
def revoke(directive_id: str, url: str, as_json: bool) -> None:
    """Revoke directive ID; revoking it again changes nothing."""
    path = "/admin/v1/directives/" + urllib.parse.quote(directive_id, safe="")
    body = Client(url).call("DELETE", path)
    if as_json:
        _print_json(body)
        return
    out = Console(highlight=False, soft_wrap=True)
    if body.get("audit_id") is None:
        out.print(f"{body['id']} was already revoked at {body['revoked_at']}; nothing changed")
    else:
        out.print(f"Revoked [bold]{body['id']}[/] at {body['revoked_at']} "
                  f"(audit entry {body['audit_id']})")


@directive.command(name="simulate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--since", required=True, help="replay traffic recorded since this instant "
              "(ISO-8601 with a zone, or a date: midnight UTC)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="the deployment's configuration file (as for serve)")
@json_option
@click.option("--rows", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="how many affected groups to show in the table")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None,
              metavar="[ADDRESS]",
              help="replay on Ray: join the cluster at ADDRESS (HOST:PORT or ray://HOST:PORT), "
                   "or without ADDRESS start a local Ray; needs harbourgate[ray]")
@click.option("--cpus", type=click.IntRange(1, 4096), default=None,
              help="CPUs of the local Ray that --ray starts (default: all of this machine's)")
def simulate(file: str, since: str, config_path: str | None, as_json: bool, rows: int,
             ray_address: str | None, cpus: int | None) -> None:
    """Replay recorded traffic under the directive in FILE, proposed, not issued: who would
    be affected, where they would be rerouted, who would be left with no permitted model.

    With --ray the log is exported in partitions and replayed on a Ray cluster; the
    result is the same.
    """
    try:
        check_cpus(ray_address, cpus)
    except ClusterError as exc:
        raise InputError(str(exc)) from None
    settings = load_settings(config_path)
    proposed = _read(file, known_models=[r.name for r in settings.routes])
    try:
        start = parse_since(since)
    except ValueError as exc:
        raise InputError(f"--since: {exc}") from None
    try:
        bundle = runtime.load_bundle(settings)
    except policy.PolicyError as exc:
        raise InputError(f"the configured policy is invalid:\n{exc}") from None
    store = _open_store(settings.effective_database_url)
    console = Console(stderr=True)
    try:
        snapshot = runtime.build_snapshot(settings, store, bundle)
        entries = count_entries(store.engine, since=start)
        with contextlib.ExitStack() as stack:
            where = "here"
            if ray_address is not None:
                stack.enter_context(connect(ray_address or None, cpus=cpus))
                where = f"on Ray at {ray_address}" if ray_address else "on a local Ray"
            bar = stack.enter_context(Progress(
                TextColumn(f"[bold]replaying {where}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("entries"), TimeRemainingColumn(), console=console,
                transient=True))
            task = bar.add_task("entries", total=entries)

            def progress(done: int) -> None:
                bar.update(task, completed=min(done, entries))

            if ray_address is None:
                result = run_simulation(recorded_requests(store.engine, since=start), snapshot,
                                        proposed, since=start, progress=progress)
            else:
                result = simulate_on_ray(store.engine, snapshot, proposed, since=start,
                                         progress=progress)
    except DirectiveError as exc:
        raise InputError(f"{file}: " + "; ".join(
            p.message + (f" (fix: {p.fix})" if p.fix else "") for p in exc.problems)) from None
    except (ClusterError, RayJobError) as exc:
        raise InputError(str(exc)) from None
    finally:
        store.close()
    if as_json:
        _print_json(result.to_dict())
    else:
        Console(highlight=False, soft_wrap=False).print(render(result.to_dict(), rows=rows))


# --- helpers ------------------------------------------------------------------------------------

class Client:
    """The admin API over HTTP with the operator's token; failures become `InputError`."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise InputError(f"--url {url!r}: give an http:// or https:// URL, e.g. "
                             f"{DEFAULT_URL}")
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise InputError(f"{TOKEN_ENV} is not set: export the deployment's admin token "
                             "(an operator token to issue or revoke)")
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body, default=str).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            raise InputError(_refusal(exc)) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InputError(f"cannot reach the deployment at {self.url} ({reason}); is "
                             "`harbourgate serve` running there? Pass --url or set "
                             "HARBOURGATE_URL") from None


def _refusal(exc: urllib.error.HTTPError) -> str:
    """The admin API's error message (`{"error": {...}}`), or what the server said."""
    raw = exc.read()
    try:
        error = json.loads(raw)["error"]
        message, code = error["message"], error["code"]
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", "replace").strip()[:300]
        return f"the server answered {exc.code}: {text or exc.reason}"
    return f"the server refused ({exc.code} {code}): {message}"


def _read(file: str, known_models: list[str] | None = None) -> Directive:
    try:
        return load_directive_file(file, known_models=known_models)
    except DirectiveError as exc:
        raise InputError("the directive is invalid:\n" +
                         "\n".join(f"  {p}" for p in exc.problems)) from None


def _open_store(url: str) -> Store:
    """The deployment's database, which must exist already (simulate never creates one)."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            raise InputError(f"no database at {path}; check data_dir (or database_url) in the "
                             "configuration, or pass --config")
    return Store(url)


def _scope(d: dict[str, Any], *, prefix: bool = True) -> str:
    parts = [*d.get("models", []), *(f"tag {t}" for t in d.get("export_tags", []))]
    return ("governs " if prefix else "") + ", ".join(parts)


def _permit(d: dict[str, Any]) -> str:
    return "; ".join(f"{k} {'/'.join(v)}" for k, v in d.get("permit_only", {}).items())


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))
