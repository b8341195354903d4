"""The `sandbox:` seed: inserted once, never overwriting what the admin API changed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from harbourgate.config import DEFAULT_SANDBOX, ConfigError, SandboxSeed
from harbourgate.store import Store, registry


def seed(participants: list[dict[str, Any]] | None = None,
         applications: list[dict[str, Any]] | None = None) -> SandboxSeed:
    return SandboxSeed(participants=tuple(participants or ()),
                       applications=tuple(applications or ()))


DEFAULT = seed(DEFAULT_SANDBOX["participants"], DEFAULT_SANDBOX["applications"])
ROUTES = ("fable-5", "mythos-5", "glm-5.2", "qwen-local")


def test_the_default_seed_is_inserted_once(store: Store) -> None:
    first = registry.apply_seed(store.engine, DEFAULT, route_names=ROUTES)
    assert (first.participants, first.applications) == (("acme",), ("acme-research",))
    assert first.changed
    assert store.state_version() == 1
    again = registry.apply_seed(store.engine, DEFAULT, route_names=ROUTES)
    assert not again.changed
    assert store.state_version() == 1
    with store.read() as conn:
        app = registry.get_application(conn, "acme-research")
        assert registry.get_participant(conn, "acme").jurisdiction == "HK"
    assert app.participant_id == "acme"
    assert app.model_preference == ("fable-5", "mythos-5", "glm-5.2", "qwen-local")


def test_the_seed_and_its_audit_entry_commit_together(store: Store) -> None:
    recorded: list[registry.SeedResult] = []

    def refuse(_conn: Any, result: registry.SeedResult) -> None:
        recorded.append(result)
        raise RuntimeError("the audit log cannot record")

    with pytest.raises(RuntimeError, match="cannot record"):
        registry.apply_seed(store.engine, DEFAULT, route_names=ROUTES, audit=refuse)
    assert recorded[0].participants == ("acme",)
    with store.read() as conn:
        assert registry.list_participants(conn) == []
    assert store.state_version() == 0
    kept = registry.apply_seed(store.engine, DEFAULT, route_names=ROUTES,
                               audit=lambda _conn, result: recorded.append(result))
    assert kept.changed and recorded[-1] == kept
    registry.apply_seed(store.engine, DEFAULT, route_names=ROUTES,
                        audit=lambda _conn, result: recorded.append(result))
    assert len(recorded) == 2  # nothing inserted, nothing audited


def test_the_seed_never_overwrites_admin_changes(store: Store) -> None:
    registry.apply_seed(store.engine, DEFAULT)
    with store.change() as conn:
        registry.update_participant(conn, "acme", status="suspended")
        registry.update_application(conn, "acme-research", name="Renamed",
                                    model_preference=["qwen-local"])
    registry.apply_seed(store.engine, DEFAULT)
    with store.read() as conn:
        assert registry.get_participant(conn, "acme").status == "suspended"
        app = registry.get_application(conn, "acme-research")
    assert (app.name, app.model_preference) == ("Renamed", ("qwen-local",))


def test_missing_entries_are_added_to_an_existing_registry(store: Store) -> None:
    registry.apply_seed(store.engine, DEFAULT)
    bigger = seed([*DEFAULT_SANDBOX["participants"],
                   {"id": "beta", "name": "Beta", "jurisdiction": "SG"}],
                  [*DEFAULT_SANDBOX["applications"],
                   {"id": "beta-bot", "participant_id": "beta",
                    "use_cases": ["assistant.general"]}])
    result = registry.apply_seed(store.engine, bigger)
    assert (result.participants, result.applications) == (("beta",), ("beta-bot",))
    with store.read() as conn:
        assert registry.get_application(conn, "beta-bot").name == "beta-bot"  # name: the id


def test_an_application_may_name_an_already_stored_participant(store: Store) -> None:
    with store.change() as conn:
        registry.admit_participant(conn, id="gamma", name="Gamma", jurisdiction="HK")
    result = registry.apply_seed(store.engine, seed(applications=[
        {"id": "g", "participant": "gamma", "use_cases": ["research.b2b"]}]))
    assert result.applications == ("g",)


@pytest.mark.parametrize(("entry", "key", "message"), [
    ({"id": "a", "participant": "ghost"}, "sandbox.applications[0].participant",
     "no participant 'ghost' in the database or the seed"),
    ({"id": "a", "participant_id": "ghost"}, "sandbox.applications[0].participant_id",
     "no participant 'ghost'"),
    ({"id": "a", "participant": "acme", "participant_id": "other"},
     "sandbox.applications[0].participant", "participant and participant_id disagree"),
    ({"id": "a", "participant": "acme", "use_cases": ["mind_reading"]},
     "sandbox.applications[0].use_cases[0]", "'mind_reading' is not a known use case"),
    ({"id": "a", "participant": "acme", "model_preference": ["fable-5", "gpt-9"]},
     "sandbox.applications[0].model_preference[1]", "'gpt-9' is not a configured route"),
    ({"id": "a", "participant": "acme", "model_preference": ["fable-5", "fable-5"]},
     "sandbox.applications[0].model_preference", "lists 'fable-5' twice"),
    ({"id": "a", "participant": "acme", "data_origin": "china"},
     "sandbox.applications[0].data_origin", "ISO 3166-1 alpha-2"),
    ({"id": "a", "participant": "acme", "use_cases": "research.b2b"},
     "sandbox.applications[0].use_cases", "must be a list, not str"),
    ({"id": "a", "participant": "acme", "transfer_mechanisms": ["handshake"]},
     "sandbox.applications[0].transfer_mechanisms[0]", "not a known transfer mechanism"),
    ({"id": "a", "participant": "acme", "owner": "x"}, "sandbox.applications[0].owner",
     "unknown key"),
    ({"id": "a b", "participant": "acme"}, "sandbox.applications[0].id",
     "must be 1-64 letters"),
    ({"id": "a"}, "sandbox.applications[0].participant", "is required"),
])
def test_a_bad_seed_application_names_its_key(store: Store, entry: dict[str, Any], key: str,
                                              message: str) -> None:
    bad = seed(DEFAULT_SANDBOX["participants"], [entry])
    with pytest.raises(ConfigError) as caught:
        registry.apply_seed(store.engine, bad, route_names=ROUTES, source="hg.yaml")
    assert caught.value.key == key
    assert caught.value.source == "hg.yaml"
    assert message in str(caught.value)
    with store.read() as conn:
        assert registry.list_participants(conn) == []  # nothing half-applied


@pytest.mark.parametrize(("entry", "key", "message"), [
    ({"id": "p", "name": "P", "jurisdiction": "hk"}, "sandbox.participants[0].jurisdiction",
     "'hk' is not an ISO 3166-1 alpha-2 code (write it in capitals: HK)"),
    ({"id": "p", "name": "P"}, "sandbox.participants[0].jurisdiction", "is required"),
    ({"id": "p", "jurisdiction": "HK", "status": "banned"}, "sandbox.participants[0].status",
     "must be one of admitted, suspended"),
    ({"id": "p", "jurisdiction": "HK", "name": 5}, "sandbox.participants[0].name",
     "must be a string, not int"),
    ({"id": "p", "jurisdiction": "HK", "country": "HK"}, "sandbox.participants[0].country",
     "unknown key"),
])
def test_a_bad_seed_participant_names_its_key(store: Store, entry: dict[str, Any], key: str,
                                              message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        registry.apply_seed(store.engine, seed([entry]))
    assert caught.value.key == key
    assert message in str(caught.value)


def test_replicas_seeding_at_once_insert_each_entry_once(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(3)]
    stores[0].migrate()
    results: list[registry.SeedResult] = []
    failures: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def run(store: Store) -> None:
        try:
            start.wait()
            results.append(registry.apply_seed(store.engine, DEFAULT))
        except BaseException as exc:  # collected, asserted below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        assert sorted(r.participants for r in results) == [(), (), ("acme",)]
        assert sorted(r.applications for r in results) == [(), (), ("acme-research",)]
        assert stores[0].state_version() == 1
    finally:
        for store in stores:
            store.close()
