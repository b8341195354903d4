"""`/admin/v1/quotas` and `/admin/v1/usage`: set, list, remove, audited, in force at once;
bad input is a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.audit.log import AuditLog
from harbourgate.runtime import Runtime
from harbourgate.store import Store
from tests.admin.admin_support import AUDITOR, OPERATOR, Recorder, error_of, request_record

QUOTAS = "/admin/v1/quotas"
ACME_QWEN = {"id": "acme-qwen", "scope": {"participant": "acme", "route": "qwen-local"},
             "requests_per_minute": 600, "tokens_per_minute": 200000,
             "budget": {"tokens": 50000000, "period": "month"}, "on_exhausted": "reroute"}


def test_set_list_show_replace_remove(client: TestClient, recorder: Recorder,
                                      research: dict[str, Any]) -> None:
    made = client.post(QUOTAS, headers=OPERATOR, json=ACME_QWEN)
    assert made.status_code == 201, made.text
    body = made.json()
    assert {k: body[k] for k in ACME_QWEN} == ACME_QWEN
    assert body["audit_id"].startswith("aud_") and body["created_at"].endswith("Z")
    action, details = recorder.audits[-1]
    assert action == "quota.set" and details["quota"]["id"] == "acme-qwen"
    assert details["created"] is True and details["actor"]["role"] == "operator"
    reloads = recorder.reloads
    assert client.get(QUOTAS, headers=AUDITOR).json() == {
        "data": [{k: v for k, v in body.items() if k != "audit_id"}], "next_cursor": None}
    assert client.get(f"{QUOTAS}/acme-qwen", headers=AUDITOR).json()["tokens_per_minute"] \
        == 200000

    replaced = client.post(QUOTAS, headers=OPERATOR, json={**ACME_QWEN,
                                                          "requests_per_minute": 60})
    assert replaced.status_code == 200
    assert replaced.json()["requests_per_minute"] == 60
    assert replaced.json()["created_at"] == body["created_at"]
    assert recorder.audits[-1][1]["created"] is False and recorder.reloads == reloads + 1

    removed = client.delete(f"{QUOTAS}/acme-qwen", headers=OPERATOR)
    assert removed.status_code == 200 and removed.json()["removed"] is True
    assert recorder.audits[-1][0] == "quota.remove"
    assert recorder.audits[-1][1]["quota_id"] == "acme-qwen"
    assert client.get(QUOTAS, headers=AUDITOR).json()["data"] == []
    gone = client.delete(f"{QUOTAS}/acme-qwen", headers=OPERATOR)
    assert gone.status_code == 404
    assert error_of(gone)["message"] == "no quota with id 'acme-qwen'"


def test_paging(client: TestClient, acme: dict[str, Any]) -> None:
    for n in range(5):
        assert client.post(QUOTAS, headers=OPERATOR, json={
            "id": f"q{n}", "scope": {"participant": "acme"},
            "requests_per_minute": 10 + n}).status_code == 201
    first = client.get(QUOTAS + "?limit=2", headers=AUDITOR).json()
    assert [q["id"] for q in first["data"]] == ["q0", "q1"] and first["next_cursor"] == "q1"
    second = client.get(QUOTAS, headers=AUDITOR,
                        params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [q["id"] for q in second["data"]] == ["q2", "q3"]
    last = client.get(QUOTAS, headers=AUDITOR,
                      params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [q["id"] for q in last["data"]] == ["q4"] and last["next_cursor"] is None


def test_an_auditor_changes_nothing(client: TestClient, acme: dict[str, Any]) -> None:
    denied = client.post(QUOTAS, headers=AUDITOR, json={"scope": {"participant": "acme"},
                                                       "requests_per_minute": 5})
    assert denied.status_code == 403
    assert client.delete(f"{QUOTAS}/x", headers=AUDITOR).status_code == 403
    assert client.get(QUOTAS).status_code == 401


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"scope": {"participant": "acme"}}, "requests_per_minute",
     "requests_per_minute: a quota needs at least one limit: requests_per_minute, "
     "tokens_per_minute or budget"),
    ({"scope": {"participant": "acme"}, "requests_per_minute": -5}, "requests_per_minute",
     "requests_per_minute: must be positive, not -5 (remove the key for no limit)"),
    ({"scope": {"participant": "acme"}, "tokens_per_minute": 10**13}, "tokens_per_minute",
     "tokens_per_minute: 10000000000000 is beyond any real limit (at most 1e+12)"),
    ({"scope": {"participant": "acme"}, "budget": {"tokens": 5, "period": "year"}},
     "budget.period", "budget.period: must be one of day, week, month, not 'year'"),
    ({"scope": {"participant": "acme"}, "budget": {"cost": "lots", "period": "day"}},
     "budget.cost", "budget.cost: must be a number, not 'lots'"),
    ({"scope": {"team": "a"}, "requests_per_minute": 5}, "scope.team",
     "scope.team: unknown scope key; a scope takes participant, application, key, route"),
    ({"scope": {"route": "gpt-9"}, "requests_per_minute": 5}, "scope.route",
     "scope.route: 'gpt-9' is not a configured route; routes: fable-5, glm-5.2, mythos-5, "
     "qwen-local"),
    ({"scope": {"participant": "ghost"}, "requests_per_minute": 5}, "scope.participant",
     "scope.participant: no participant with id 'ghost'"),
    ({"scope": {"application": "ghost"}, "requests_per_minute": 5}, "scope.application",
     "scope.application: no application with id 'ghost'"),
    ({"scope": {"key": "key_ghost"}, "requests_per_minute": 5}, "scope.key",
     "scope.key: no api key with id 'key_ghost'"),
    ({"scope": {"participant": "acme"}, "requests_per_minute": 5, "on_exhausted": "wait"},
     "on_exhausted", "on_exhausted: must be one of refuse, reroute, not 'wait'"),
    ([1, 2], "quota", "quota: must be a mapping with scope and at least one limit"),
])
def test_bad_quotas_are_400_naming_the_field(client: TestClient, recorder: Recorder,
                                             acme: dict[str, Any], body: Any, param: str,
                                             message: str) -> None:
    before = len(recorder.audits)
    response = client.post(QUOTAS, headers=OPERATOR, json=body)
    assert response.status_code == 400, response.text
    assert error_of(response) == {"type": "invalid_request_error", "code": "invalid_request",
                                  "param": param, "message": message}
    assert len(recorder.audits) == before
    assert client.get(QUOTAS, headers=AUDITOR).json()["data"] == []


def test_a_quota_is_in_force_at_once_here_and_on_the_next_poll_elsewhere(
        live: TestClient, runtime: Runtime, store: Store, sandbox: Any,
        audit_log: AuditLog) -> None:
    sandbox("acme-research")
    replica = Runtime(runtime.settings, store)
    assert not replica.snapshot.quotas
    made = live.post(QUOTAS, headers=OPERATOR, json=ACME_QWEN)
    assert made.status_code == 201
    assert [q.id for q in runtime.snapshot.quotas.quotas] == ["acme-qwen"]
    replica._poll()  # what every replica's watcher does every 50-250 ms
    covering = replica.snapshot.quotas.covering("acme", "acme-research", "k", "qwen-local")
    assert [q.id for q in covering] == ["acme-qwen"]
    assert replica.snapshot.quotas.covering("acme", "acme-research", "k", "fable-5") == ()
    entry = audit_log.entry(made.json()["audit_id"])
    assert entry.record["action"] == "quota.set"
    assert entry.record["quota"]["scope"] == ACME_QWEN["scope"]
    live.delete(f"{QUOTAS}/acme-qwen", headers=OPERATOR)
    replica._poll()
    assert not replica.snapshot.quotas


# --- usage -------------------------------------------------------------------------------------

def _usage(i: int, o: int, cost: float, **extra: Any) -> dict[str, Any]:
    record = request_record(**extra)
    record.update(usage={"input_tokens": i, "output_tokens": o, "cache_read_tokens": 1,
                         "cache_write_tokens": 0, "reasoning_tokens": 2}, cost=cost)
    return record


def test_usage_by_participant_application_and_route(live: TestClient, audit_log: AuditLog,
                                                    sandbox: Any) -> None:
    sandbox("acme-research")
    sandbox("acme-chat", use_cases=("assistant.general",))
    audit_log.append_sync(_usage(100, 10, 0.5))
    audit_log.append_sync(_usage(200, 20, 0.25, served="glm-5.2", decision="reroute"))
    audit_log.append_sync(_usage(50, 5, 0.125, application="acme-chat",
                                 use_cases=("assistant.general",)))
    refused = request_record(decision="deny", served=None, status=429, code="quota_exceeded")
    refused["quota"] = "acme-rpm"
    audit_log.append_sync(refused)
    audit_log.append_sync({"kind": "admin", "action": "key.issue"})

    by_participant = live.get("/admin/v1/usage?by=participant&period=month", headers=AUDITOR)
    assert by_participant.status_code == 200, by_participant.text
    [row] = by_participant.json()["data"]
    assert row == {"period": row["period"], "participant": "acme", "requests": 4,
                   "input_tokens": 350, "output_tokens": 35, "cache_read_tokens": 3,
                   "cache_write_tokens": 0, "reasoning_tokens": 6, "cost": 0.875,
                   "refusals": {"acme-rpm": 1}}
    assert len(row["period"]) == 7  # YYYY-MM

    rows = live.get("/admin/v1/usage?by=route&period=day", headers=AUDITOR).json()["data"]
    assert {r["route"]: (r["requests"], r["input_tokens"], r["refusals"]) for r in rows} == {
        "fable-5": (3, 150, {"acme-rpm": 1}), "glm-5.2": (1, 200, {})}
    apps = live.get("/admin/v1/usage?by=application&period=week", headers=AUDITOR).json()
    assert {r["application"]: r["output_tokens"] for r in apps["data"]} == \
        {"acme-research": 30, "acme-chat": 5}
    assert live.get("/admin/v1/usage?since=2999-01-01", headers=AUDITOR).json()["data"] == []


@pytest.mark.parametrize(("query", "param", "message"), [
    ("by=planet", "by", "by: 'planet' is not one of participant, application, key, route"),
    ("period=year", "period", "period: 'year' is not one of hour, day, week, month"),
    ("since=last-week", "since",
     "since: 'last-week' is not an ISO-8601 time such as 2026-06-12T00:00:00Z"),
    ("since=2026-06-02&until=2026-06-01", "until", "until: must be later than since"),
])
def test_bad_usage_queries_are_400(live: TestClient, query: str, param: str,
                                   message: str) -> None:
    response = live.get(f"/admin/v1/usage?{query}", headers=AUDITOR)
    assert response.status_code == 400
    assert error_of(response) == {"type": "invalid_request_error", "code": "invalid_request",
                                  "param": param, "message": message}
