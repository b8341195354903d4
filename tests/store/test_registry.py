"""The registry repository on SQLite and PostgreSQL: participants, applications, keys,
approvals, the state version and the snapshot."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from harbourgate.identity.keys import hash_key
from harbourgate.identity.model import Application, Participant
from harbourgate.store import Conflict, InvalidReference, NotFound, Store, registry, schema


@pytest.fixture
def acme(store: Store) -> Participant:
    with store.change() as conn:
        return registry.admit_participant(conn, id="acme", name="Acme Research",
                                          jurisdiction="HK")


@pytest.fixture
def research(store: Store, acme: Participant) -> Application:
    with store.change() as conn:
        return registry.register_application(
            conn, id="acme-research", participant_id="acme", name="Research assistant",
            use_cases=["research.b2b"], data_categories=["person_name"], data_origin="HK",
            model_preference=["fable-5", "glm-5.2"], transfer_mechanisms=["gba_standard_contract"])


# participants

def test_an_admitted_participant_reads_back(store: Store, acme: Participant) -> None:
    with store.read() as conn:
        assert registry.get_participant(conn, "acme") == acme
    assert acme.status == "admitted"
    assert acme.screening == "clear"
    assert acme.created_at.endswith("Z") and len(acme.created_at) == 20


def test_a_duplicate_participant_id_is_a_conflict(store: Store, acme: Participant) -> None:
    with pytest.raises(Conflict) as caught, store.change() as conn:
        registry.admit_participant(conn, id="acme", name="Other", jurisdiction="US")
    assert str(caught.value) == "a participant with id 'acme' already exists"
    with store.read() as conn:
        assert registry.get_participant(conn, "acme").name == "Acme Research"


def test_an_unknown_participant_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as caught, store.read() as conn:
        registry.get_participant(conn, "nobody")
    assert str(caught.value) == "no participant with id 'nobody'"


def test_without_an_id_the_name_makes_one(store: Store) -> None:
    with store.change() as conn:
        first = registry.admit_participant(conn, name="Ünïcode Labs Ltd.", jurisdiction="HK")
        second = registry.admit_participant(conn, name="Unicode Labs Ltd", jurisdiction="HK")
        third = registry.admit_participant(conn, name="港大", jurisdiction="HK")
    assert first.id == "unicode-labs-ltd"
    assert second.id.startswith("unicode-labs-ltd-") and len(second.id) == len(first.id) + 7
    assert third.id == "participant"


def test_a_participant_can_be_suspended_and_renamed(store: Store, acme: Participant) -> None:
    with store.change() as conn:
        changed = registry.update_participant(conn, "acme", status="suspended", name="Acme")
    assert (changed.status, changed.name, changed.jurisdiction) == ("suspended", "Acme", "HK")
    assert changed.updated_at >= acme.updated_at
    with store.read() as conn:
        assert registry.list_participants(conn, status="suspended") == [changed]
        assert registry.list_participants(conn, status="admitted") == []


def test_updating_an_unknown_participant_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound), store.change() as conn:
        registry.update_participant(conn, "nobody", status="suspended")


def test_only_declared_participant_fields_can_change(store: Store, acme: Participant) -> None:
    with pytest.raises(TypeError, match="cannot change created_at, id"), store.change() as conn:
        registry.update_participant(conn, "acme", id="x", created_at="now")


def test_participants_list_oldest_first(store: Store) -> None:
    with store.change() as conn:
        for pid in ("b", "a", "c"):
            registry.admit_participant(conn, id=pid, name=pid.upper(), jurisdiction="HK")
        # same second: the id breaks the tie, so the order is stable
        assert [p.id for p in registry.list_participants(conn)] == ["a", "b", "c"]


# applications

def test_an_application_reads_back_with_tuples(store: Store, research: Application) -> None:
    with store.read() as conn:
        assert registry.get_application(conn, "acme-research") == research
    assert research.use_cases == ("research.b2b",)
    assert research.model_preference == ("fable-5", "glm-5.2")
    assert research.transfer_mechanisms == ("gba_standard_contract",)


def test_an_application_of_an_unknown_participant_names_participant_id(store: Store) -> None:
    with pytest.raises(InvalidReference) as caught, store.change() as conn:
        registry.register_application(conn, participant_id="ghost", name="X",
                                      use_cases=["research.b2b"])
    assert caught.value.field == "participant_id"
    assert str(caught.value) == "participant_id: no participant with id 'ghost'"


def test_a_duplicate_application_id_is_a_conflict(store: Store, research: Application) -> None:
    with pytest.raises(Conflict, match="an application with id 'acme-research' already exists"), \
            store.change() as conn:
        registry.register_application(conn, id="acme-research", participant_id="acme",
                                      name="Again")


def test_an_application_update_replaces_lists(store: Store, research: Application) -> None:
    with store.change() as conn:
        changed = registry.update_application(
            conn, "acme-research", model_preference=("qwen-local",), data_origin=None,
            status="suspended")
    assert changed.model_preference == ("qwen-local",)
    assert changed.data_origin is None
    assert changed.status == "suspended"
    assert changed.use_cases == research.use_cases


def test_updating_an_unknown_application_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no application with id 'x'"), store.change() as conn:
        registry.update_application(conn, "x", name="Y")


def test_applications_list_per_participant(store: Store, research: Application) -> None:
    with store.change() as conn:
        registry.admit_participant(conn, id="beta", name="Beta", jurisdiction="SG")
        other = registry.register_application(conn, participant_id="beta", name="Beta bot",
                                              use_cases=["assistant.general"])
    with store.read() as conn:
        assert registry.list_applications(conn, participant_id="beta") == [other]
        assert {a.id for a in registry.list_applications(conn)} == {"acme-research", "beta-bot"}


# keys

def test_an_issued_key_is_found_by_its_hash(store: Store, research: Application) -> None:
    with store.change() as conn:
        issued = registry.issue_key(conn, "acme-research")
    with store.read() as conn:
        assert registry.find_key(conn, hash_key(issued.key)) == issued.record
        assert registry.find_key(conn, hash_key(issued.key + "x")) is None
        assert registry.list_keys(conn, "acme-research") == [issued.record]
    assert issued.record.prefix == issued.key[:11]


def test_the_plain_key_is_stored_nowhere(store: Store, research: Application) -> None:
    with store.change() as conn:
        issued = registry.issue_key(conn, "acme-research")
    with store.read() as conn:
        rows = conn.execute(sa.select(schema.api_keys)).all()
    assert rows and all(issued.key not in str(tuple(row)) for row in rows)
    assert issued.key not in repr(issued)


def test_a_key_for_an_unknown_application_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no application with id 'ghost'"), \
            store.change() as conn:
        registry.issue_key(conn, "ghost")
    with pytest.raises(NotFound, match="no application with id 'ghost'"), store.read() as conn:
        registry.list_keys(conn, "ghost")


def test_revoking_twice_keeps_the_first_revocation(store: Store, research: Application) -> None:
    with store.change() as conn:
        issued = registry.issue_key(conn, "acme-research")
    with store.change() as conn:
        first, newly = registry.revoke_key(conn, issued.record.id)
    assert newly and first.revoked_at is not None
    with store.change() as conn:
        again, newly_again = registry.revoke_key(conn, issued.record.id)
    assert not newly_again
    assert again.revoked_at == first.revoked_at
    with store.read() as conn:
        assert registry.active_keys(conn) == []
        assert registry.find_key(conn, issued.record.key_hash) == first  # still recognisable


def test_revoking_an_unknown_key_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no key with id 'key_0000000000000000'"), \
            store.change() as conn:
        registry.revoke_key(conn, "key_0000000000000000")


# approvals

def test_approvals_are_recorded_listed_and_revoked(store: Store, research: Application) -> None:
    with store.change() as conn:
        approval = registry.record_approval(conn, "acme-research", approver="Committee",
                                            conditions="human review",
                                            expires_at="2099-01-01T00:00:00Z")
    assert approval.id.startswith("apr_")
    assert approval.valid_at("2030-01-01T00:00:00Z")
    assert not approval.valid_at("2099-01-01T00:00:00Z")
    with store.change() as conn:
        revoked, newly = registry.revoke_approval(conn, approval.id)
        assert newly and revoked.revoked_at is not None
        assert not registry.revoke_approval(conn, approval.id)[1]
    assert not revoked.valid_at("2030-01-01T00:00:00Z")
    with store.read() as conn:
        assert registry.list_approvals(conn, "acme-research") == [revoked]


def test_approvals_of_an_unknown_application_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound), store.change() as conn:
        registry.record_approval(conn, "ghost", approver="A", expires_at="2099-01-01T00:00:00Z")
    with pytest.raises(NotFound, match="no approval with id 'apr_x'"), store.change() as conn:
        registry.revoke_approval(conn, "apr_x")


# state version

def test_every_change_bumps_the_state_version_once(store: Store) -> None:
    assert store.state_version() == 0
    with store.change() as conn:
        registry.admit_participant(conn, id="a", name="A", jurisdiction="HK")
        registry.admit_participant(conn, id="b", name="B", jurisdiction="HK")
    assert store.state_version() == 1
    with store.transaction() as conn:
        assert registry.bump_state_version(conn) == 2
        assert registry.state_version(conn) == 2


def test_a_failed_change_neither_persists_nor_bumps(store: Store, acme: Participant) -> None:
    before = store.state_version()
    with pytest.raises(Conflict), store.change() as conn:
        registry.admit_participant(conn, id="new", name="New", jurisdiction="HK")
        registry.admit_participant(conn, id="acme", name="Dup", jurisdiction="HK")
    assert store.state_version() == before
    with store.read() as conn, pytest.raises(NotFound):
        registry.get_participant(conn, "new")


def test_a_missing_version_row_is_recreated(store: Store) -> None:
    with store.transaction() as conn:
        conn.execute(schema.state_version.delete())
        assert registry.state_version(conn) == 0
        assert registry.bump_state_version(conn) == 1


# snapshot

def test_the_snapshot_holds_live_keys_and_approvals_only(store: Store,
                                                         research: Application) -> None:
    with store.change() as conn:
        live = registry.issue_key(conn, "acme-research")
        dead = registry.issue_key(conn, "acme-research")
        registry.revoke_key(conn, dead.record.id)
        kept = registry.record_approval(conn, "acme-research", approver="C",
                                        expires_at="2099-01-01T00:00:00Z")
        gone = registry.record_approval(conn, "acme-research", approver="C",
                                        expires_at="2099-01-01T00:00:00Z")
        registry.revoke_approval(conn, gone.id)
    snapshot = registry.load_registry(store.engine)
    assert snapshot.version == store.state_version()
    assert set(snapshot.keys) == {hash_key(live.key)}
    assert snapshot.approvals_for("acme-research") == (kept,)
    assert snapshot.approvals_for("other") == ()
    key, application, participant = snapshot.identify(hash_key(live.key))  # type: ignore[misc]
    assert (key, application, participant.id) == (live.record, research, "acme")
    assert snapshot.identify(hash_key(dead.key)) is None
    with pytest.raises(TypeError):
        snapshot.keys["x"] = live.record  # type: ignore[index]


def test_an_empty_registry_loads(store: Store) -> None:
    snapshot = registry.load_registry(store.engine)
    assert (snapshot.version, dict(snapshot.participants), dict(snapshot.keys)) == (0, {}, {})


def test_a_sqlite_store_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(f"sqlite:///{tmp_path / 'hg.db'}")
    try:
        store.migrate()
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()
