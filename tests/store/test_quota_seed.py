"""The config's `quotas:` seed: inserted once by id, never overwriting admin changes, and
a scope naming something unknown is a ConfigError naming the entry."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from harbourgate import app, config
from harbourgate.audit.storage import read_leaves
from harbourgate.config import DEFAULT_SANDBOX, ConfigError, SandboxSeed
from harbourgate.quotas import parse_quota
from harbourgate.store import Store, registry
from harbourgate.store import quotas as stored
from harbourgate.store.seed import apply_quota_seed

SANDBOX = SandboxSeed(participants=tuple(DEFAULT_SANDBOX["participants"]),
                      applications=tuple(DEFAULT_SANDBOX["applications"]))
QUOTAS = (parse_quota({"id": "acme-rpm", "scope": {"participant": "acme"},
                       "requests_per_minute": 60}),
          parse_quota({"scope": {"application": "acme-research", "route": "qwen-local"},
                       "tokens_per_minute": 1000, "on_exhausted": "reroute"}))


def test_inserted_once_and_admin_changes_survive(store: Store) -> None:
    registry.apply_seed(store.engine, SANDBOX)
    version = store.state_version()
    assert apply_quota_seed(store.engine, QUOTAS) == ["acme-rpm", QUOTAS[1].id]
    assert store.state_version() == version + 1
    with store.change() as conn:  # an operator raises the limit through the API
        stored.set_quota(conn, parse_quota({"id": "acme-rpm", "scope": {"participant": "acme"},
                                            "requests_per_minute": 600}))
    assert apply_quota_seed(store.engine, QUOTAS) == []
    assert store.state_version() == version + 2  # the operator's change only
    with store.read() as conn:
        loaded = {q.id: q for q in stored.load_quotas(conn)}
    assert loaded["acme-rpm"].requests_per_minute == 600
    assert loaded[QUOTAS[1].id] == QUOTAS[1]


def test_an_unknown_scope_names_the_entry(store: Store) -> None:
    registry.apply_seed(store.engine, SANDBOX)
    bad = (*QUOTAS, parse_quota({"scope": {"key": "key_nobody"}, "requests_per_minute": 1}))
    with pytest.raises(ConfigError) as caught:
        apply_quota_seed(store.engine, bad, source="harbourgate.yaml")
    assert caught.value.key == "quotas[2].scope.key"
    assert str(caught.value) == ("harbourgate.yaml: quotas[2].scope.key: no api key "
                                 "'key_nobody' in the database or the seed")
    with store.read() as conn:
        assert stored.list_quotas(conn) == []  # nothing of a bad seed is applied


def test_serve_start_seeds_and_audits(tmp_path: Path) -> None:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(f"""data_dir: {tmp_path}
sandbox: {{participants: [{{id: acme, name: Acme, jurisdiction: HK}}]}}
quotas:
  - {{id: acme-rpm, scope: {{participant: acme}}, requests_per_minute: 60}}
""", encoding="utf-8")
    settings = config.load(path, environ={})
    app.prepare(settings)
    app.prepare(settings)  # a restart changes nothing
    store = Store(settings.effective_database_url)
    try:
        with store.read() as conn:
            assert [q["id"] for q in stored.list_quotas(conn)] == ["acme-rpm"]
        records = [orjson.loads(leaf) for leaf in read_leaves(store.engine, 0, 1000)]
        seeded = [r for r in records if r.get("action") == "quotas.seed"]
        assert [(r["quotas"], r["actor"], r["source"]) for r in seeded] == \
            [(["acme-rpm"], "config", str(path))]
    finally:
        store.close()
