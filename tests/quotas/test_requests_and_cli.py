"""The declared maximum of a request in each shape, and `harbourgate usage` on a
deployment's data (table and --json)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harbourgate import config
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.cli import main
from harbourgate.quotas.requests import declared_max_output
from harbourgate.store import Store
from harbourgate.store import quotas as stored
from harbourgate.store.registry import apply_seed
from harbourgate.store.seed import apply_quota_seed


def test_declared_maximum_per_shape() -> None:
    assert declared_max_output("openai", {"max_tokens": 50}) == 50
    assert declared_max_output("openai", {"max_tokens": 50, "max_completion_tokens": 70}) == 70
    assert declared_max_output("anthropic", {"max_tokens": 1024}) == 1024
    assert declared_max_output("responses", {"max_output_tokens": 9}) == 9
    assert declared_max_output("responses", {"max_tokens": 9}) is None
    assert declared_max_output("openai", {"max_tokens": True}) is None
    assert declared_max_output("openai", {}) is None


def test_usage_prints_a_table_and_json(tmp_path: Path) -> None:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(f"""data_dir: {tmp_path}
sandbox: {{participants: [{{id: acme, name: Acme, jurisdiction: HK}}]}}
quotas:
  - {{id: acme-month, scope: {{participant: acme}}, budget: {{tokens: 5000000, period: month}}}}
""", encoding="utf-8")
    settings = config.load(path, environ={})
    store = Store(settings.effective_database_url)
    store.migrate()
    apply_seed(store.engine, settings.sandbox)
    apply_quota_seed(store.engine, settings.quotas)
    log = AuditLog(store.engine, Signer("t/audit", Ed25519PrivateKey.generate()))
    log.start()
    for n, served in enumerate(("fable-5", "fable-5", "glm-5.2")):
        log.append_sync({"kind": "request", "participant": "acme", "application": "acme-app",
                         "key": "key_1", "model_requested": "fable-5", "model_served": served,
                         "decision": "allow" if served == "fable-5" else "reroute",
                         "status": 200, "usage": {"input_tokens": 100 * (n + 1),
                                                  "output_tokens": 10}, "cost": 0.25})
    log.append_sync({"kind": "request", "participant": "acme", "application": "acme-app",
                     "key": "key_1", "model_requested": "fable-5", "model_served": None,
                     "decision": "deny", "status": 429, "code": "quota_exceeded",
                     "quota": "acme-month"})
    log.close()
    with store.read() as conn:
        assert [q["id"] for q in stored.list_quotas(conn)] == ["acme-month"]
    store.close()

    runner = CliRunner()
    as_json = runner.invoke(main, ["usage", "--config", str(path), "--json", "--by", "route",
                                   "--since", "2000-01-01"])
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert {r["route"]: (r["requests"], r["input_tokens"], r["refusals"])
            for r in body["data"]} == {"fable-5": (3, 300, {"acme-month": 1}),
                                       "glm-5.2": (1, 300, {})}
    assert body["quotas"][0]["id"] == "acme-month"

    table = runner.invoke(main, ["usage", "--config", str(path), "--since", "2000-01-01"],
                          env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "acme" in table.output and "0.7500" in table.output  # three answers at 0.25
    assert "acme-month: 1" in table.output
    assert "Quotas in force" in table.output and "5000000 tokens per month" in table.output

    bad = runner.invoke(main, ["usage", "--config", str(path), "--since", "June"])
    assert bad.exit_code == 2 and "--since: 'June' is not an ISO-8601 time" in bad.output
    missing = runner.invoke(main, ["usage", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "cannot read the file" in missing.output
