"""Approvals as submitted by an operator: valid ones, and precise errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from harbourgate.policy import PolicyError
from harbourgate.policy.approvals import ApprovalRequest, parse_approval

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)


def errors(data: object) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_approval(data, now=NOW)
    return [str(p) for p in info.value.problems]


def test_a_valid_approval() -> None:
    assert parse_approval({"approver": " Committee ", "conditions": "human review",
                           "expires_at": "2027-01-01T08:00:00+08:00"}, now=NOW) == \
        ApprovalRequest("Committee", "human review", datetime(2027, 1, 1, tzinfo=UTC))


def test_an_expiry_in_the_past_or_now_is_refused() -> None:
    assert errors({"approver": "C", "expires_at": "2026-06-01T00:00:00Z"}) == [
        "approval: expires_at 2026-06-01T00:00:00Z is not in the future (now "
        "2026-06-12T09:00:00Z): the approval would never be valid (fix: give a future expiry)"]
    assert errors({"approver": "C", "expires_at": "2026-06-12T09:00:00Z"})


def test_missing_and_wrong_fields() -> None:
    assert errors({"conditions": 3, "expires_at": "2027-01-01", "by": "x"}) == [
        "approval: unknown key 'by' (fix: an approval takes: approver, conditions, expires_at)",
        "approval: approver is required: who approved the application (fix: add \"approver\": "
        "\"Sandbox committee, 2026-06-01 meeting\")",
        "approval: conditions must be text (fix: write \"conditions\": \"human review of ...\")",
        "approval: expires_at: 2027-01-01 has no time zone; add Z for UTC "
        "(e.g. 2026-06-12T00:00:00Z)"]
    assert errors({"approver": "C"}) == [
        "approval: expires_at is required: every approval expires "
        "(fix: add \"expires_at\": \"2027-01-01T00:00:00Z\")"]
    assert errors([]) == ["approval: an approval must be an object with approver, conditions "
                          "and expires_at"]
