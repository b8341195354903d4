"""`/admin/v1/decisions` on the index: more filters, cursor paging, and the stats plots."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient

from harbourgate.audit.log import AuditLog
from tests.admin.admin_support import AUDITOR, error_of, request_record

DECISIONS = "/admin/v1/decisions"
STATS = "/admin/v1/decisions/stats"


@pytest.fixture
def many(live: TestClient, audit_log: AuditLog, sandbox: Any) -> list[dict[str, Any]]:
    """25 requests of two participants, three decisions and two rules; oldest first."""
    sandbox("acme-research")
    sandbox("globex-lab", participant="globex")
    written = []
    for n in range(25):
        decision = ("allow", "reroute", "deny")[n % 3]
        record = request_record(decision=decision,
                                served={"allow": "fable-5", "reroute": "glm-5.2",
                                        "deny": None}[decision],
                                status=451 if decision == "deny" else 200,
                                code="legal_restriction" if decision == "deny" else None,
                                **({"application": "globex-lab", "participant": "globex"}
                                   if n % 5 == 0 else {}))
        record["rule"] = "export.us_only" if decision != "allow" else None
        record["id_hint"] = n
        entry = audit_log.append_sync(record)
        written.append({"id": entry, **record})
    return written


def _all_pages(live: TestClient, query: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        params: dict[str, Any] = {**dict(parse_qsl(query)), "limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = live.get(DECISIONS, params=params, headers=AUDITOR).json()
        seen += [r["id"] for r in body["data"]]
        assert body["has_more"] == (body["next_cursor"] is not None)
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


def test_cursor_paging_walks_everything_once_newest_first(live: TestClient,
                                                          many: list[dict[str, Any]]) -> None:
    expected = [r["id"] for r in many][::-1]
    assert _all_pages(live, "", 7) == expected
    assert _all_pages(live, "", 25) == expected
    page = live.get(DECISIONS + "?limit=3", headers=AUDITOR).json()["data"]
    assert [r["index"] for r in page] == sorted((r["index"] for r in page), reverse=True)
    assert page[0]["id_hint"] == 24  # the record as the log holds it


def test_filters_combine(live: TestClient, many: list[dict[str, Any]]) -> None:
    def ids(where: Any) -> list[str]:
        return [r["id"] for r in many if where(r)][::-1]

    assert _all_pages(live, "participant=globex", 2) == ids(lambda r: r["participant"] ==
                                                             "globex")
    assert _all_pages(live, "model=glm-5.2", 4) == ids(lambda r: r["model_served"] == "glm-5.2")
    assert _all_pages(live, "model=fable-5", 100) == [r["id"] for r in many][::-1]  # asked
    assert _all_pages(live, "rule=export.us_only&decision=deny", 3) == \
        ids(lambda r: r["decision"] == "deny")
    newest = live.get(DECISIONS + "?limit=1", headers=AUDITOR).json()["data"][0]
    assert newest["id"] not in _all_pages(live, f"until={newest['ts']}", 100)


@pytest.mark.parametrize(("query", "param", "message"), [
    ("cursor=garbage", "cursor",
     "cursor: not a cursor this server handed out; pass next_cursor unchanged"),
    ("participant=ghost", "participant", "participant: no participant with id 'ghost'"),
    ("until=tomorrow", "until",
     "until: 'tomorrow' is not an ISO-8601 time such as 2026-06-12T00:00:00Z"),
])
def test_bad_queries(live: TestClient, query: str, param: str, message: str) -> None:
    response = live.get(f"{DECISIONS}?{query}", headers=AUDITOR)
    assert response.status_code == 400
    assert error_of(response) == {"type": "invalid_request_error", "code": "invalid_request",
                                  "param": param, "message": message}


def test_stats_count_by_decision_and_by_model(live: TestClient,
                                              many: list[dict[str, Any]]) -> None:
    body = live.get(STATS + "?bucket=minute&by=decision", headers=AUDITOR).json()
    assert body["bucket"] == "minute" and body["by"] == "decision"
    totals: dict[str, int] = {}
    for point in body["series"]:
        assert point["t"].endswith(":00Z") and len(point["t"]) == 20
        for name, n in point["counts"].items():
            totals[name] = totals.get(name, 0) + n
    assert totals == {"allow": 9, "reroute": 8, "deny": 8}
    by_model = live.get(STATS + "?bucket=day&by=model", headers=AUDITOR).json()["series"]
    merged: dict[str, int] = {}
    for point in by_model:
        for name, n in point["counts"].items():
            merged[name] = merged.get(name, 0) + n
    assert merged == {"fable-5": 9, "glm-5.2": 8, "(none)": 8}
    globex = live.get(STATS + "?participant=globex&bucket=hour", headers=AUDITOR).json()
    assert sum(sum(p["counts"].values()) for p in globex["series"]) == 5


@pytest.mark.parametrize(("query", "param", "message"), [
    ("bucket=second", "bucket", "bucket: 'second' is not one of minute, hour, day"),
    ("by=rule", "by", "by: 'rule' is not one of decision, model"),
    ("bucket=minute&since=2026-01-01&until=2026-06-01", "since",
     "since: 2026-01-01T00:00:00Z to 2026-06-01T00:00:00Z is more than 10000 minutes; "
     "narrow it or use a larger bucket"),
])
def test_bad_stats_queries(live: TestClient, query: str, param: str, message: str) -> None:
    response = live.get(f"{STATS}?{query}", headers=AUDITOR)
    assert response.status_code == 400
    assert error_of(response) == {"type": "invalid_request_error", "code": "invalid_request",
                                  "param": param, "message": message}
