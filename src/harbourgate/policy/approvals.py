"""The approval of a high-risk application, as `POST .../approvals` takes it: validated here.

The policy only needs the expiry of the latest non-revoked approval
(`ApplicationFacts.approval_expires_at`); this module checks what an operator submits, so
the admin API and any CLI give the same precise errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harbourgate.policy.errors import Problems
from harbourgate.policy.timeutil import format_instant, parse_instant

KEYS = ("approver", "conditions", "expires_at")


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    approver: str
    conditions: str
    expires_at: datetime


def parse_approval(data: Any, *, now: datetime, source: str = "approval") -> ApprovalRequest:
    """Validate `{"approver", "conditions", "expires_at"}`; `PolicyError` lists every problem.

    `now` is the caller's clock (aware): an approval that has already expired is refused.
    """
    problems = Problems(source)
    if not isinstance(data, Mapping):
        problems.add("an approval must be an object with approver, conditions and expires_at")
        problems.raise_if_any()
    for key in data:
        if key not in KEYS:
            problems.add(f"unknown key {key!r}", fix=f"an approval takes: {', '.join(KEYS)}")
    approver = data.get("approver")
    if not isinstance(approver, str) or not approver.strip():
        problems.add("approver is required: who approved the application",
                     fix='add "approver": "Sandbox committee, 2026-06-01 meeting"')
        approver = ""
    conditions = data.get("conditions", "")
    if conditions is None:
        conditions = ""
    if not isinstance(conditions, str):
        problems.add("conditions must be text", fix='write "conditions": "human review of ..."')
        conditions = ""
    expires: datetime | None = None
    if data.get("expires_at") is None:
        problems.add("expires_at is required: every approval expires",
                     fix='add "expires_at": "2027-01-01T00:00:00Z"')
    else:
        try:
            expires = parse_instant(data["expires_at"])
        except ValueError as exc:
            problems.add(f"expires_at: {exc}")
        else:
            if expires <= now:
                problems.add(f"expires_at {format_instant(expires)} is not in the future "
                             f"(now {format_instant(now)}): the approval would never be valid",
                             fix="give a future expiry")
    problems.raise_if_any()
    assert expires is not None
    return ApprovalRequest(approver.strip(), conditions.strip(), expires)
