"""`/admin/v1/decisions`: request records of the real audit log, newest first, filtered."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from harbourgate.admin import records
from harbourgate.audit.log import AuditLog
from tests.admin.admin_support import AUDITOR, OPERATOR, error_of, request_record

DECISIONS = "/admin/v1/decisions"


@pytest.fixture
def recorded(live: TestClient, audit_log: AuditLog,
             sandbox: Any) -> list[str]:
    """Five requests of two applications around an admin action; their ids, oldest first."""
    sandbox("acme-research")
    sandbox("acme-chat", use_cases=("assistant.general",))
    ids = [
        audit_log.append_sync(request_record()),
        audit_log.append_sync(request_record(decision="reroute", served="glm-5.2",
                                             nationality=["HK"])),
        audit_log.append_sync({"kind": "admin", "action": "key.issue"}),
        audit_log.append_sync(request_record(application="acme-chat",
                                             use_cases=("assistant.general",))),
        audit_log.append_sync(request_record(decision="deny", served=None, status=451,
                                             code="legal_restriction", nationality=["HK"],
                                             fallback="none")),
        audit_log.append_sync({"kind": "stream_interrupted", "application": "acme-research"}),
        audit_log.append_sync(request_record(decision="deny", served=None, status=400,
                                             code="invalid_request", with_context=False)),
    ]
    return [i for n, i in enumerate(ids) if n not in (2, 5)]


def ids_of(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["data"]]


def test_newest_first_request_records_only(live: TestClient, recorded: list[str]) -> None:
    response = live.get(DECISIONS, headers=AUDITOR)
    assert ids_of(response) == recorded[::-1]
    assert response.json()["has_more"] is False
    newest = response.json()["data"][0]
    assert newest["kind"] == "request" and newest["code"] == "invalid_request"
    assert newest["ts"].endswith("Z")


def test_filters(live: TestClient, recorded: list[str]) -> None:
    assert ids_of(live.get(DECISIONS + "?decision=deny", headers=AUDITOR)) == \
        [recorded[4], recorded[3]]
    assert ids_of(live.get(DECISIONS + "?application=acme-chat", headers=AUDITOR)) == \
        [recorded[2]]
    assert ids_of(live.get(DECISIONS + "?application=acme-research&decision=reroute",
                           headers=AUDITOR)) == [recorded[1]]


def test_limit_and_has_more(live: TestClient, recorded: list[str]) -> None:
    response = live.get(DECISIONS + "?limit=2", headers=OPERATOR)
    assert ids_of(response) == [recorded[4], recorded[3]]
    assert response.json()["has_more"] is True
    exact = live.get(DECISIONS + "?limit=5", headers=OPERATOR)
    assert len(ids_of(exact)) == 5 and exact.json()["has_more"] is False


def test_since_bounds_the_window(live: TestClient, audit_log: AuditLog,
                                 recorded: list[str]) -> None:
    newest = live.get(DECISIONS + "?limit=1", headers=AUDITOR).json()["data"][0]
    assert ids_of(live.get(DECISIONS, headers=AUDITOR,
                           params={"since": newest["ts"]}))[0] == newest["id"]
    assert ids_of(live.get(DECISIONS + "?since=2999-01-01", headers=AUDITOR)) == []
    assert len(ids_of(live.get(DECISIONS + "?since=2000-01-01T00:00:00%2B08:00",
                               headers=AUDITOR))) == 5


@pytest.mark.parametrize(("query", "param", "message"), [
    ("since=yesterday", "since",
     "since: 'yesterday' is not an ISO-8601 time such as 2026-06-12T00:00:00Z"),
    ("since=2026-06-12T00:00:00", "since",
     "since: 2026-06-12T00:00:00 has no time zone; add Z for UTC (e.g. 2026-06-12T00:00:00Z)"),
    ("since=2026-02-30", "since", "since: '2026-02-30' is not a calendar date"),
    ("decision=refuse", "decision", "decision: 'refuse' is not one of allow, reroute, deny"),
    ("limit=0", "limit", "limit: must be a whole number from 1 to 1000, not '0'"),
    ("limit=1001", "limit", "limit: must be a whole number from 1 to 1000, not '1001'"),
    ("limit=ten", "limit", "limit: must be a whole number from 1 to 1000, not 'ten'"),
    ("application=ghost", "application", "application: no application with id 'ghost'"),
])
def test_a_bad_query_is_400(live: TestClient, query: str, param: str, message: str) -> None:
    response = live.get(f"{DECISIONS}?{query}", headers=AUDITOR)
    assert response.status_code == 400
    assert error_of(response) == {"type": "invalid_request_error", "code": "invalid_request",
                                  "param": param, "message": message}


def test_decisions_need_a_token(live: TestClient) -> None:
    response = live.get(DECISIONS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_admin_token"


def test_the_reader_pages_through_a_long_log(audit_log: AuditLog) -> None:
    written = [audit_log.append_sync(request_record(time=f"2026-06-01T09:00:{i:02d}Z"))
               for i in range(25)]
    found = list(records.recorded_requests(audit_log.engine, page=4))
    assert [r["id"] for r in found] == written[::-1]
    assert [r["id"] for r in records.recorded_requests(audit_log.engine, page=25)] == \
        written[::-1]
