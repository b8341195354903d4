"""`directives.simulate`: recorded requests replayed under a proposed directive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from harbourgate import config
from harbourgate.directives import Directive, DirectiveError
from harbourgate.directives.simulate import render, simulate
from harbourgate.runtime import Snapshot, build_snapshot, load_bundle
from harbourgate.store import Store, registry
from harbourgate.store.directives import issue_directive
from tests.admin.admin_support import JUNE, request_record

CONFIG = """
data_dir: {data}
sandbox:
  participants:
    - {{id: acme, name: Acme, jurisdiction: HK}}
    - {{id: beta, name: Beta, jurisdiction: HK}}
  applications:
    - {{id: acme-research, participant: acme, name: Research, use_cases: [research.b2b],
       data_origin: HK, model_preference: [fable-5, mythos-5, glm-5.2, qwen-local]}}
    - {{id: beta-us-only, participant: beta, name: US only, use_cases: [research.b2b],
       data_origin: HK, model_preference: [fable-5, mythos-5]}}
    - {{id: acme-scoring, participant: acme, name: Scoring, use_cases: [social_scoring],
       data_origin: HK, model_preference: [fable-5, glm-5.2]}}
"""
# JUNE is effective from 2026-06-12; the recorded traffic is from before it.
BEFORE = "2026-06-01T09:00:00Z"
RULE = "directive:us-doc"


def deployment(tmp_path: Path) -> Snapshot:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(CONFIG.format(data=tmp_path), encoding="utf-8")
    conf = config.load(path, environ={})
    store = Store(f"sqlite:///{tmp_path / 'harbourgate.db'}")
    store.migrate()
    registry.apply_seed(store.engine, conf.sandbox, route_names=[r.name for r in conf.routes],
                        source=conf.source)
    try:
        return build_snapshot(conf, store, load_bundle(conf))
    finally:
        store.close()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshot]:
    yield deployment(tmp_path_factory.mktemp("simulate"))


def june(**changes: Any) -> Directive:
    return Directive.from_dict({**JUNE, "id": "us-doc", **changes})


def rec(**kw: Any) -> dict[str, Any]:
    kw.setdefault("time", BEFORE)
    return request_record(**kw)


def test_who_is_rerouted_who_is_cut_off_and_who_notices_nothing(snapshot: Snapshot) -> None:
    records = [
        rec(nationality=["HK"], sub="sha256:hk"),                    # rerouted to glm-5.2
        rec(nationality=["HK"], sub="sha256:hk"),                    # again, same user
        rec(nationality=["US", "HK"], sub="sha256:us"),              # inside: unaffected
        rec(),                                                       # unverified: rerouted
        rec(nationality=["HK"], model="glm-5.2", served="glm-5.2"),  # other model: unaffected
        rec(nationality=["HK"], model="mythos-5"),                   # rerouted to glm-5.2
        rec(application="beta-us-only", participant="beta", nationality=["CN"],
            sub="sha256:cn"),                                        # no permitted model
        rec(nationality=["HK"], fallback="none", sub="sha256:hk"),   # refuses fallback
        rec(model="embed-small", endpoint="embeddings"),             # other class: unaffected
        rec(application="acme-scoring", use_cases=("social_scoring",),
            nationality=["HK"]),                                     # refused today already
    ]
    result = simulate(records, snapshot, june()).to_dict()
    assert result["totals"] == {
        "records": 10, "replayed": 10, "skipped": 0, "unaffected": 4, "already_refused": 1,
        "affected": 6, "rerouted": 4, "no_permitted_model": 2}
    assert result["reroutes"] == [
        {"application": "acme-research", "participant": "acme", "from": "fable-5",
         "to": "glm-5.2", "requests": 3},
        {"application": "acme-research", "participant": "acme", "from": "mythos-5",
         "to": "glm-5.2", "requests": 1},
    ]
    refused = {(r["application"], r["model_requested"], r["requests"]): r
               for r in result["no_permitted_model"]}
    assert set(refused) == {("beta-us-only", "fable-5", 1), ("acme-research", "fable-5", 1)}
    for r in refused.values():
        assert (r["code"], r["rule"], r["citation"]) == (
            "legal_restriction", RULE, "Order to Anthropic of 2026-06-12")
        assert "fable-5, mythos-5 only for verified end users with nationality US" in \
            r["message"]
    top = result["affected"][0]
    assert top == {"application": "acme-research", "participant": "acme",
                   "end_user": "sha256:hk", "verified": True, "nationality": ["HK"],
                   "model_requested": "fable-5", "outcome": "rerouted",
                   "served_now": "fable-5", "served_after": "glm-5.2", "requests": 2}
    unverified = [a for a in result["affected"] if not a["verified"]]
    assert unverified == [{
        "application": "acme-research", "participant": "acme", "end_user": None,
        "verified": False, "nationality": None, "model_requested": "fable-5",
        "outcome": "rerouted", "served_now": "fable-5", "served_after": "glm-5.2",
        "requests": 1}]
    assert all("US" not in (a["nationality"] or []) for a in result["affected"])
    assert result["applications"] == [
        {"application": "acme-research", "participant": "acme", "requests": 8,
         "unaffected": 3, "affected": 5, "rerouted": 4, "no_permitted_model": 1},
        {"application": "acme-scoring", "participant": "acme", "requests": 1,
         "unaffected": 1, "affected": 0, "rerouted": 0, "no_permitted_model": 0},
        {"application": "beta-us-only", "participant": "beta", "requests": 1,
         "unaffected": 0, "affected": 1, "rerouted": 0, "no_permitted_model": 1},
    ]
    assert result["evaluation"]["moved_to_effective_from"] == 10
    assert result["window"] == {"first": BEFORE, "last": BEFORE}
    assert result["directive"]["rule"] == RULE
    assert result["policy"] == str(snapshot.policy.version)


def test_the_current_preference_order_decides_where_traffic_goes(snapshot: Snapshot) -> None:
    """The recorded served model does not matter: the replay uses today's routes and order."""
    result = simulate([rec(nationality=["HK"], decision="reroute", served="qwen-local")],
                      snapshot, june()).to_dict()
    assert result["reroutes"][0]["from"] == "fable-5"
    assert result["reroutes"][0]["to"] == "glm-5.2"


def test_records_that_cannot_be_replayed_are_counted_by_reason(snapshot: Snapshot) -> None:
    gone_model = rec(nationality=["HK"])
    gone_model["context"]["model"]["name"] = "fable-4"
    unreadable = rec()
    unreadable["context"]["request"]["time"] = "yesterday"
    records = [
        {"kind": "admin", "action": "key.issue"},
        rec(with_context=False, decision="deny", served=None, status=400,
            code="invalid_request"),
        rec(application="ghost-app", nationality=["HK"]),
        gone_model,
        unreadable,
        {**rec(), "endpoint": "models"},
        rec(nationality=["HK"]),
    ]
    result = simulate(records, snapshot, june()).to_dict()
    assert result["skipped"] == {"not_a_request": 1, "other_endpoint": 1, "no_context": 1,
                                 "unreadable_context": 1, "unknown_application": 1,
                                 "unknown_model": 1}
    assert result["totals"]["records"] == 7
    assert result["totals"]["skipped"] == 6
    assert result["totals"]["replayed"] == result["totals"]["affected"] == 1


def test_requests_after_the_directive_ends_are_unaffected(snapshot: Snapshot) -> None:
    ended = june(effective_from="2026-05-01T00:00:00Z", effective_until="2026-06-05T00:00:00Z")
    records = [rec(nationality=["HK"], time="2026-06-01T00:00:00Z"),
               rec(nationality=["HK"], time="2026-06-10T00:00:00Z")]
    result = simulate(records, snapshot, ended).to_dict()
    assert result["evaluation"] == {
        "rule": result["evaluation"]["rule"], "effective_from": "2026-05-01T00:00:00Z",
        "moved_to_effective_from": 0, "after_effective_until": 1}
    assert (result["totals"]["affected"], result["totals"]["unaffected"]) == (1, 1)
    assert result["window"] == {"first": "2026-06-01T00:00:00Z", "last": "2026-06-10T00:00:00Z"}


def test_a_directive_by_export_tag_and_residence(snapshot: Snapshot) -> None:
    by_tag = Directive.from_dict({**JUNE, "models": None, "export_tags": ["us-frontier"],
                                  "permit_only": {"residence": ["US"]}})
    records = [rec(nationality=["US"])]  # a US national living elsewhere (no residence)
    result = simulate(records, snapshot, by_tag).to_dict()
    assert result["totals"]["rerouted"] == 1
    assert result["directive"]["rule"].startswith("directive:sha256-")


def test_a_directive_already_in_force_cannot_be_proposed(tmp_path: Path) -> None:
    deployment(tmp_path)  # the database, seeded
    store = Store(f"sqlite:///{tmp_path / 'harbourgate.db'}")
    with store.change() as conn:
        issue_directive(conn, june())
    conf = config.load(tmp_path / "harbourgate.yaml", environ={})
    snap = build_snapshot(conf, store, load_bundle(conf))
    store.close()
    with pytest.raises(DirectiveError) as info:
        simulate([], snap, june())
    assert [str(p) for p in info.value.problems] == [
        "directive: directive us-doc is already in force (fix: simulate a proposal with "
        "another id (or none), or revoke the one in force)"]
    # the same text without the id is a new proposal, simulated on top of the one in force
    assert simulate([rec(nationality=["HK"])], snap,
                    june(id=None)).to_dict()["totals"]["affected"] == 0


def test_the_affected_list_is_bounded_but_totals_count_everything(snapshot: Snapshot) -> None:
    records = [rec(nationality=["HK"], sub=f"sha256:{i:016x}") for i in range(5)]
    result = simulate(records, snapshot, june(), affected_limit=2).to_dict()
    assert len(result["affected"]) == 2
    assert result["affected_omitted"] == 3
    assert result["totals"]["affected"] == 5


def test_render_shows_reroutes_refusals_and_people(snapshot: Snapshot) -> None:
    records = [rec(nationality=["HK"], sub="sha256:hk"),
               rec(application="beta-us-only", participant="beta", nationality=["CN"])]
    console = Console(record=True, width=200)
    console.print(render(simulate(records, snapshot, june()).to_dict()))
    text = console.export_text()
    assert "Proposed directive: Frontier models for US nationals only (US Department of " \
           "Commerce)" in text
    assert "governs fable-5, mythos-5; permits only nationality US" in text
    assert "Would be rerouted" in text and "glm-5.2" in text
    assert "Would be left with no permitted model" in text
    assert f"{RULE} (legal_restriction)" in text
    assert "sha256:hk" in text


def test_render_says_when_nobody_notices(snapshot: Snapshot) -> None:
    console = Console(record=True, width=200)
    console.print(render(simulate([rec(nationality=["US"])], snapshot, june()).to_dict()))
    assert "Nobody in the recorded traffic would notice this directive." in \
        console.export_text()


# --- properties ---------------------------------------------------------------------------------

NATIONALITIES = st.one_of(st.none(), st.lists(st.sampled_from(["US", "HK", "CN", "GB"]),
                                              min_size=1, max_size=2, unique=True))
RECORDS = st.lists(st.builds(
    lambda nat, model, app, fallback: rec(
        nationality=nat, model=model, fallback=fallback,
        application=app[0], participant=app[1], use_cases=app[2]),
    NATIONALITIES, st.sampled_from(["fable-5", "mythos-5", "glm-5.2", "qwen-local"]),
    st.sampled_from([("acme-research", "acme", ("research.b2b",)),
                     ("beta-us-only", "beta", ("research.b2b",)),
                     ("acme-scoring", "acme", ("social_scoring",))]),
    st.sampled_from(["auto", "none"])), max_size=30)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=RECORDS, permitted=st.lists(st.sampled_from(["US", "HK", "CN", "GB"]),
                                           min_size=1, max_size=3, unique=True))
def test_the_accounts_add_up_and_permitted_users_never_notice(
        snapshot: Snapshot, records: list[dict[str, Any]], permitted: list[str]) -> None:
    result = simulate(records, snapshot,
                      june(permit_only={"nationality": permitted})).to_dict()
    t = result["totals"]
    assert t["replayed"] == len(records) == t["unaffected"] + t["affected"]
    assert t["affected"] == t["rerouted"] + t["no_permitted_model"]
    assert sum(a["requests"] for a in result["applications"]) == t["replayed"]
    assert sum(a["requests"] for a in result["affected"]) == t["affected"]
    assert sum(r["requests"] for r in result["reroutes"]) == t["rerouted"]
    assert sum(r["requests"] for r in result["no_permitted_model"]) == t["no_permitted_model"]
    for group in result["affected"]:
        # a directive only closes models: nobody refused today is served after it, and
        # verified users inside permit_only are never touched
        assert group["served_now"] is not None
        assert group["model_requested"] in ("fable-5", "mythos-5")
        assert not (group["verified"] and set(group["nationality"]) & set(permitted))
