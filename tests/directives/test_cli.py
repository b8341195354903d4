"""`harbourgate directive ...`: issue, list and revoke against a served admin API;
simulate on a real SQLite deployment with recorded traffic."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner, Result

from harbourgate import config
from harbourgate.admin import AdminServices, create_admin_app
from harbourgate.audit.keys import load_signer
from harbourgate.audit.log import AuditLog
from harbourgate.cli.directive import directive
from harbourgate.directives import Directive
from harbourgate.policy.yamlsrc import parse_text
from harbourgate.runtime import Runtime
from harbourgate.store import Store, registry
from harbourgate.store.directives import issue_directive
from tests.admin.admin_support import AUDITOR_TOKEN, OPERATOR_TOKEN, request_record

DEPLOYMENT = """
data_dir: {data}
sandbox:
  participants: [{{id: acme, name: Acme, jurisdiction: HK}}]
  applications:
    - {{id: acme-research, participant: acme, name: Research, use_cases: [research.b2b],
       data_origin: HK, model_preference: [fable-5, mythos-5, glm-5.2, qwen-local]}}
"""
JUNE_YAML = """\
# the June directive, as an authority's text would be typed in
authority: US Department of Commerce
citation: "Order to Anthropic of 2026-06-12"
title: Frontier models for US nationals only
models: [fable-5, mythos-5]
permit_only: {nationality: [US]}
effective_from: 2026-06-12T00:00:00Z
effective_until: null
"""


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Path, config.Settings, Store]]:
    """A deployment directory: config, migrated and seeded SQLite database, signing key."""
    path = tmp_path / "harbourgate.yaml"
    path.write_text(DEPLOYMENT.format(data=tmp_path / "data"), encoding="utf-8")
    settings = config.load(path, environ={})
    settings.data_dir.mkdir()
    store = Store(settings.effective_database_url)
    store.migrate()
    registry.apply_seed(store.engine, settings.sandbox,
                        route_names=[r.name for r in settings.routes], source=settings.source)
    yield path, settings, store
    store.close()


@pytest.fixture
def june_file(tmp_path: Path) -> Path:
    path = tmp_path / "june.yaml"
    path.write_text(JUNE_YAML, encoding="utf-8")
    return path


def run(*args: str, token: str | None = OPERATOR_TOKEN) -> Result:
    env = {"HARBOURGATE_ADMIN_TOKEN": token or "", "HARBOURGATE_URL": None, "COLUMNS": "200"}
    return CliRunner().invoke(directive, list(args), env=env)  # type: ignore[arg-type]


# --- simulate, on the deployment's data ---------------------------------------------------------

@pytest.fixture
def recorded(deployment: tuple[Path, config.Settings, Store]) -> Path:
    path, settings, store = deployment
    log = AuditLog(store.engine, load_signer(settings))
    log.start()
    try:
        log.append_sync(request_record(nationality=["HK"], sub="sha256:00000000000000hk",
                                       time="2026-06-01T09:00:00Z"))
        log.append_sync(request_record(nationality=["US"], time="2026-06-01T09:00:01Z"))
        log.append_sync(request_record(time="2026-06-01T09:00:02Z"))
        log.append_sync({"kind": "admin", "action": "key.issue"})
    finally:
        log.close()
    return path


def test_simulate_prints_who_is_affected(recorded: Path, june_file: Path) -> None:
    result = run("simulate", str(june_file), "--since", "2000-01-01", "--config", str(recorded),
                 token=None)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Proposed directive: Frontier models for US nationals only" in text
    assert "Would be rerouted" in text
    assert "fable-5" in text and "glm-5.2" in text
    assert "sha256:00000000000000hk" in text
    assert "(unverified)" in text


def test_simulate_as_json(recorded: Path, june_file: Path) -> None:
    result = run("simulate", str(june_file), "--since", "2000-01-01T00:00:00Z", "--config",
                 str(recorded), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["totals"] == {"records": 3, "replayed": 3, "skipped": 0, "unaffected": 1,
                              "already_refused": 0, "affected": 2, "rerouted": 2,
                              "no_permitted_model": 0}
    assert body["reroutes"] == [{"application": "acme-research", "participant": "acme",
                                 "from": "fable-5", "to": "glm-5.2", "requests": 2}]
    # `since` is when the log recorded the traffic (its entries' ts): here, today
    later = run("simulate", str(june_file), "--since", "2999-01-01", "--config",
                str(recorded), "--json")
    assert json.loads(later.output)["totals"]["records"] == 0


def test_simulate_refuses_a_bad_file_with_its_line(deployment: tuple[Path, Any, Any],
                                                   tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(JUNE_YAML.replace("[fable-5, mythos-5]", "[fable-5, gpt-9]"),
                    encoding="utf-8")
    result = run("simulate", str(path), "--since", "2026-06-01", "--config",
                 str(deployment[0]))
    assert result.exit_code == 2
    assert (f"the directive is invalid:\n  {path}:5: models: unknown model 'gpt-9' (fix: use "
            "a route name: embed-small, fable-5, glm-5.2, mythos-5, qwen-local)") in \
        result.output


@pytest.mark.parametrize(("since", "message"), [
    ("June", "--since: 'June' is not an ISO-8601 time such as 2026-06-12T00:00:00Z"),
    ("2026-06-01T00:00:00", "--since: 2026-06-01T00:00:00 has no time zone; add Z for UTC"),
])
def test_simulate_refuses_a_bad_since(deployment: tuple[Path, Any, Any], june_file: Path,
                                      since: str, message: str) -> None:
    result = run("simulate", str(june_file), "--since", since, "--config", str(deployment[0]))
    assert result.exit_code == 2
    assert message in result.output


def test_simulate_needs_since_and_a_database(tmp_path: Path, june_file: Path) -> None:
    missing = run("simulate", str(june_file))
    assert missing.exit_code == 2
    assert "Missing option '--since'" in missing.output
    empty = tmp_path / "empty.yaml"
    empty.write_text(f"data_dir: {tmp_path / 'nowhere'}\n", encoding="utf-8")
    result = run("simulate", str(june_file), "--since", "2026-06-01", "--config", str(empty))
    assert result.exit_code == 2
    assert f"no database at {tmp_path / 'nowhere' / 'harbourgate.db'}" in result.output
    assert not (tmp_path / "nowhere").exists()  # simulate never creates one


def test_simulate_refuses_a_directive_already_in_force(recorded: Path, june_file: Path,
                                                      tmp_path: Path) -> None:
    settings = config.load(recorded, environ={})
    store = Store(settings.effective_database_url)
    with store.change() as conn:
        issue_directive(conn, Directive.from_dict({**_june(), "id": "us-doc"}))
    store.close()
    path = tmp_path / "again.yaml"
    path.write_text("id: us-doc\n" + JUNE_YAML, encoding="utf-8")
    result = run("simulate", str(path), "--since", "2026-06-01", "--config", str(recorded))
    assert result.exit_code == 2
    assert "directive us-doc is already in force" in result.output


def _june() -> dict[str, Any]:
    data: dict[str, Any] = dict(parse_text(JUNE_YAML, "june"))
    return data


# --- issue, list, revoke, against a served admin API ---------------------------------------

class Served:
    def __init__(self, url: str, runtime: Runtime, store: Store) -> None:
        self.url, self.runtime, self.store = url, runtime, store


@pytest.fixture
def served(deployment: tuple[Path, config.Settings, Store]) -> Iterator[Served]:
    """The admin API as `harbourgate serve` wires it, on uvicorn in a thread."""
    _, settings, store = deployment
    runtime = Runtime(settings, store)
    log = AuditLog(store.engine, load_signer(settings))
    log.start()
    services = AdminServices.for_runtime(
        runtime, tokens=(config.AdminToken(OPERATOR_TOKEN, "operator"),
                         config.AdminToken(AUDITOR_TOKEN, "auditor")),
        audit=lambda conn, action, details: log.record_in(conn,
            {"kind": "admin", "action": action, **details}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_admin_app(services), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline, "the admin API did not start"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", runtime, store)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        log.close()


def test_issue_list_revoke(served: Served, june_file: Path) -> None:
    issued = run("issue", str(june_file), "--url", served.url)
    assert issued.exit_code == 0, issued.output
    [stored] = served.runtime.snapshot.directives
    assert issued.output.startswith(f"Issued {stored.id}: Frontier models for US nationals "
                                    "only (US Department of Commerce)\n")
    assert "governs fable-5, mythos-5; permits only nationality US" in issued.output
    assert "from 2026-06-12T00:00:00Z until revoked: in force now" in issued.output
    assert f"revoke with `harbourgate directive revoke {stored.id}`" in issued.output

    listed = run("list", "--url", served.url, token=AUDITOR_TOKEN)
    assert listed.exit_code == 0, listed.output
    assert stored.id in listed.output and "in force" in listed.output
    as_json = json.loads(run("list", "--url", served.url, "--json").output)
    assert [d["id"] for d in as_json["data"]] == [stored.id]

    revoked = run("revoke", stored.id, "--url", served.url)
    assert revoked.exit_code == 0, revoked.output
    assert revoked.output.startswith(f"Revoked {stored.id} at ")
    assert served.runtime.snapshot.directives == ()
    again = run("revoke", stored.id, "--url", served.url)
    assert again.exit_code == 0
    assert "was already revoked at" in again.output and "nothing changed" in again.output
    assert "No directives (issued)." in run("list", "--status", "issued", "--url",
                                            served.url).output


def test_issue_validates_the_file_before_sending(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(JUNE_YAML.replace("effective_until: null",
                                      "effective_until: 2026-06-01T00:00:00Z"),
                    encoding="utf-8")
    version = served.store.state_version()
    result = run("issue", str(path), "--url", served.url)
    assert result.exit_code == 2
    assert (f"{path}:8: effective_until 2026-06-01T00:00:00Z is not after effective_from "
            "2026-06-12T00:00:00Z") in result.output
    assert served.store.state_version() == version


def test_the_server_refusal_is_printed(served: Served, tmp_path: Path,
                                       june_file: Path) -> None:
    path = tmp_path / "unknown.yaml"
    path.write_text(JUNE_YAML.replace("mythos-5]", "gpt-9]"), encoding="utf-8")
    unknown = run("issue", str(path), "--url", served.url)
    assert unknown.exit_code == 2
    assert ("the server refused (400 invalid_request): the directive is invalid: models: "
            "unknown model 'gpt-9'") in unknown.output
    auditor = run("issue", str(june_file), "--url", served.url, token=AUDITOR_TOKEN)
    assert auditor.exit_code == 2
    assert ("the server refused (403 forbidden): the auditor role may not do this; it needs "
            "an operator token") in auditor.output
    missing = run("revoke", "dir_nothing", "--url", served.url)
    assert missing.exit_code == 2
    assert "the server refused (404 not_found): no directive with id 'dir_nothing'" in \
        missing.output
    wrong = run("list", "--url", served.url, token="not-a-token-of-this-deployment")
    assert wrong.exit_code == 2
    assert "(401 invalid_admin_token): unknown admin token" in wrong.output


def test_without_a_token_or_a_server(june_file: Path) -> None:
    no_token = run("list", token=None)
    assert no_token.exit_code == 2
    assert "HARBOURGATE_ADMIN_TOKEN is not set" in no_token.output
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    refused = run("issue", str(june_file), "--url", f"http://127.0.0.1:{port}")
    assert refused.exit_code == 2
    assert f"cannot reach the deployment at http://127.0.0.1:{port}" in refused.output
    assert "is `harbourgate serve` running there?" in refused.output
    bad_url = run("list", "--url", "127.0.0.1:8080")
    assert bad_url.exit_code == 2
    assert "give an http:// or https:// URL" in bad_url.output


def test_the_url_comes_from_the_environment(served: Served) -> None:
    result = CliRunner().invoke(directive, ["list"], env={
        "HARBOURGATE_ADMIN_TOKEN": OPERATOR_TOKEN, "HARBOURGATE_URL": served.url})
    assert result.exit_code == 0, result.output
    assert "No directives (all)." in result.output


def test_issue_reads_json_too(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "june.json"
    path.write_text(json.dumps({**_june(), "id": "us-doc-json"}), encoding="utf-8")
    result = run("issue", str(path), "--url", served.url, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["id"], body["status"], body["in_force"]) == ("us-doc-json", "issued", True)
    assert body["audit_id"]
