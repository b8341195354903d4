"""`store.directives`: issue, read, list and revoke, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harbourgate.directives import Directive
from harbourgate.store import Conflict, NotFound, Store
from harbourgate.store.directives import (
    get_directive,
    issue_directive,
    list_directives,
    revoke_directive,
)
from tests.admin.admin_support import JUNE


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    yield store
    store.close()


def test_a_directive_reads_back_as_issued(store: Store) -> None:
    with store.change() as conn:
        stored = issue_directive(conn, Directive.from_dict({**JUNE, "notes": "by fax"}))
    assert stored.id.startswith("dir_") and stored.status == "issued"
    with store.read() as conn:
        again = get_directive(conn, stored.id)
    assert again == stored
    assert again.directive.extra == {"notes": "by fax"}
    assert again.to_dict() == {**JUNE, "notes": "by fax", "id": stored.id,
                               "issued_at": stored.issued_at, "revoked_at": None,
                               "status": "issued"}


def test_ids_are_unique(store: Store) -> None:
    with store.change() as conn:
        issue_directive(conn, Directive.from_dict({**JUNE, "id": "us-doc"}))
    with pytest.raises(Conflict, match="a directive with id 'us-doc' already exists"), \
            store.change() as conn:
        issue_directive(conn, Directive.from_dict({**JUNE, "id": "us-doc"}))


def test_revoking_is_idempotent_and_listing_filters(store: Store) -> None:
    with store.change() as conn:
        first = issue_directive(conn, Directive.from_dict({**JUNE, "id": "a-first"}))
        second = issue_directive(conn, Directive.from_dict({**JUNE, "id": "b-second"}))
    with store.transaction() as conn:
        revoked, newly = revoke_directive(conn, first.id)
    assert newly and revoked.status == "revoked" and revoked.revoked_at
    with store.transaction() as conn:
        again, newly = revoke_directive(conn, first.id)
    assert not newly and again == revoked
    with store.read() as conn:
        assert [d.id for d in list_directives(conn)] == ["a-first", "b-second"]
        assert [d.id for d in list_directives(conn, include_revoked=False)] == [second.id]


def test_unknown_ids_are_not_found(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(NotFound, match="no directive with id 'dir_none'"):
            revoke_directive(conn, "dir_none")
        with pytest.raises(NotFound, match="no directive with id 'dir_none'"):
            get_directive(conn, "dir_none")
