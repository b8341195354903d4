"""The registry's repository, in one namespace: `registry.issue_key(conn, app_id)`.

Participants, applications, keys and approvals (each in its own module), the state
version every change bumps, the snapshot the data plane loads and the config seed.
Write functions take an open connection, so a caller composes a change and its
`bump_state_version` in one transaction (`Store.change()` does both).
"""

from __future__ import annotations

import sqlalchemy as sa

from harbourgate.identity.model import ApiKey
from harbourgate.store.applications import (
    application_exists,
    get_application,
    list_applications,
    register_application,
    update_application,
)
from harbourgate.store.approvals import (
    get_approval,
    list_approvals,
    record_approval,
    revoke_approval,
)
from harbourgate.store.keys import (
    IssuedKey,
    find_key,
    get_key,
    issue_key,
    list_keys,
    revoke_key,
    to_api_key,
)
from harbourgate.store.participants import (
    admit_participant,
    get_participant,
    list_participants,
    participant_exists,
    update_participant,
)
from harbourgate.store.schema import api_keys
from harbourgate.store.seed import SeedResult, apply_seed
from harbourgate.store.snapshot import load_registry
from harbourgate.store.state import bump_state_version, state_version

__all__ = [
    "IssuedKey", "SeedResult", "active_keys", "admit_participant", "application_exists",
    "apply_seed",
    "bump_state_version", "find_key", "get_application", "get_approval", "get_key",
    "get_participant", "issue_key", "list_applications", "list_approvals", "list_keys",
    "list_participants", "load_registry", "participant_exists", "record_approval",
    "register_application", "revoke_approval", "revoke_key", "state_version",
    "update_application", "update_participant",
]


def active_keys(conn: sa.Connection) -> list[ApiKey]:
    """Every key not revoked, of every application."""
    query = sa.select(api_keys).where(api_keys.c.revoked_at.is_(None)).order_by(api_keys.c.id)
    return [to_api_key(row) for row in conn.execute(query)]
