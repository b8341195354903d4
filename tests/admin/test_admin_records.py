"""`admin.records`: request records read back from the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harbourgate.admin.records import parse_since, recorded_requests
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.store import Store
from tests.admin.admin_support import request_record


@pytest.fixture
def log(database_url: str) -> Iterator[AuditLog]:
    store = Store(database_url)
    store.migrate()
    log = AuditLog(store.engine, Signer("test.harbourgate/audit", Ed25519PrivateKey.generate()))
    log.start()
    yield log
    log.close()
    store.close()


def test_newest_first_filtered_and_paged(log: AuditLog) -> None:
    written = []
    for i in range(9):
        decision = ("allow", "reroute", "deny")[i % 3]
        written.append((log.append_sync(request_record(
            decision=decision, application="a" if i < 5 else "b")), decision))
        log.append_sync({"kind": "admin", "action": "noise", "i": i})

    def ids(**filters: Any) -> list[str]:
        return [str(r["id"]) for r in recorded_requests(log.engine, page=2, **filters)]

    assert ids() == [i for i, _ in reversed(written)]
    assert ids(decision="deny") == [i for i, d in reversed(written) if d == "deny"]
    assert ids(application="b", decision="allow") == [written[6][0]]
    newest = next(recorded_requests(log.engine))
    recent = list(recorded_requests(log.engine, since=parse_since(str(newest["ts"]))))
    assert recent[0]["id"] == newest["id"]  # others may share its millisecond
    assert {r["ts"] for r in recent} == {newest["ts"]}
    assert ids(since=datetime(2999, 1, 1, tzinfo=UTC)) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-06-01", datetime(2026, 6, 1, tzinfo=UTC)),
    ("2026-06-01T08:00:00+08:00", datetime(2026, 6, 1, tzinfo=UTC)),
    (" 2026-06-01T00:00:00Z ", datetime(2026, 6, 1, tzinfo=UTC)),
])
def test_since_accepts_instants_and_dates(text: str, expected: datetime) -> None:
    assert parse_since(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("2026-13-01", "'2026-13-01' is not a calendar date"),
    ("2026-06-01 08:00", "2026-06-01 08:00 has no time zone"),
    ("soon", "'soon' is not an ISO-8601 time"),
])
def test_since_refuses_what_it_cannot_place(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_since(text)
