"""The registry snapshot the data plane serves from: everything, in one read."""

from __future__ import annotations

from collections import defaultdict
from types import MappingProxyType

import sqlalchemy as sa

from harbourgate.identity.model import Approval, Registry
from harbourgate.store.applications import to_application
from harbourgate.store.approvals import to_approval
from harbourgate.store.keys import to_api_key
from harbourgate.store.participants import to_participant
from harbourgate.store.schema import api_keys, applications, approvals, participants
from harbourgate.store.state import state_version


def load_registry(engine: sa.Engine) -> Registry:
    """All participants and applications, live keys and unrevoked approvals.

    The version is read first: whatever the tables hold afterwards is at least that new,
    so a poller that sees a higher version later reloads, and no change is ever missed.
    """
    with engine.connect() as conn:
        version = state_version(conn)
        people = {p.id: p for p in map(to_participant, conn.execute(
            sa.select(participants).order_by(participants.c.id)))}
        apps = {a.id: a for a in map(to_application, conn.execute(
            sa.select(applications).order_by(applications.c.id)))}
        keys = {k.key_hash: k for k in map(to_api_key, conn.execute(
            sa.select(api_keys).where(api_keys.c.revoked_at.is_(None))))}
        granted: defaultdict[str, list[Approval]] = defaultdict(list)
        for approval in map(to_approval, conn.execute(
                sa.select(approvals).where(approvals.c.revoked_at.is_(None))
                .order_by(approvals.c.created_at, approvals.c.id))):
            granted[approval.application_id].append(approval)
    return Registry(
        version=version,
        participants=MappingProxyType(people),
        applications=MappingProxyType(apps),
        keys=MappingProxyType(keys),
        approvals=MappingProxyType({app: tuple(items) for app, items in granted.items()}),
    )
