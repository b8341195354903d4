"""Fixtures for the audit tests: a signer, and logs on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Signer
from harbourgate.store import Store

ORIGIN = "test.harbourgate/audit"


@pytest.fixture
def signer() -> Signer:
    return Signer(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def make_log(signer: Signer) -> Iterator[Callable[..., AuditLog]]:
    """Open (and start) an AuditLog on a database URL; everything is closed afterwards."""
    opened: list[tuple[AuditLog, Store]] = []

    def make(url: str, start: bool = True, **options: Any) -> AuditLog:
        store = Store(url)
        store.migrate()
        log = AuditLog(store.engine, signer, **options)
        if start:
            log.start()
        opened.append((log, store))
        return log

    yield make
    for log, store in reversed(opened):
        log.close()
        store.close()
