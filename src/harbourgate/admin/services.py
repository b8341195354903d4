"""What the admin plane needs from the rest of the process, injected at assembly."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from harbourgate.audit.errors import AuditWriteError
from harbourgate.config import AdminToken
from harbourgate.identity.model import Application
from harbourgate.store import Store

if TYPE_CHECKING:
    from harbourgate.runtime import Runtime, Snapshot


def _unclassified(_application: Application) -> dict[str, Any] | None:
    return None


def _no_snapshot() -> Snapshot | None:
    return None


@dataclass
class AdminServices:
    """The admin API's dependencies; tests pass fakes, `harbourgate serve` the real ones.

    `classify` is the policy's verdict on an application:
    `{"tier": ..., "rule": ..., "citation": ..., "reason": ...}`, or None without a policy.
    `snapshot` is the runtime snapshot in force (routes, registry, compiled policy and
    directives): the policy, explain and simulate endpoints read it, and answer 503
    while it is None.
    """

    store: Store
    tokens: tuple[AdminToken, ...]
    route_names: Callable[[], Collection[str]]  # known model routes (model_preference)
    on_change: Callable[[], None]  # after every committed change: reload the runtime
    # (connection, action, details) -> audit entry id, recorded in that open transaction
    audit: Callable[[sa.Connection, str, dict[str, Any]], str]
    classify: Callable[[Application], dict[str, Any] | None] = _unclassified
    snapshot: Callable[[], Snapshot | None] = _no_snapshot

    @classmethod
    def for_runtime(cls, runtime: Runtime, *, tokens: tuple[AdminToken, ...],
                    audit: Callable[[sa.Connection, str, dict[str, Any]], str]
                    ) -> AdminServices:
        """The services of a serving process: everything read from `runtime`'s snapshot,
        and every change reloaded and announced to the other replicas (`Runtime.changed`)."""
        def current() -> Snapshot:
            return runtime.snapshot

        return cls(store=runtime.store, tokens=tokens,
                   route_names=lambda: runtime.snapshot.routes.keys(),
                   on_change=runtime.changed, audit=audit,
                   classify=policy_classifier(current), snapshot=current)

    def current(self) -> Snapshot:
        """The runtime snapshot in force; a 503 `policy_unavailable` answer without one."""
        found = self.snapshot()
        if found is None:
            from harbourgate.admin.errors import ApiError

            raise ApiError(503, "policy_unavailable", "no policy is loaded in this process; "
                           "the policy, explain and simulate endpoints need a running gateway")
        return found

    def record(self, conn: sa.Connection, action: str, details: dict[str, Any]) -> str:
        """Audit a change inside the transaction that makes it, so the two commit together
        or not at all; returns the audit entry id for the response.

        When the log cannot record (damaged, writer stopped) the change is refused: a 503
        `audit_unavailable`, and the transaction rolls back.
        """
        try:
            return self.audit(conn, action, details)
        except AuditWriteError as exc:
            from harbourgate.admin.errors import ApiError

            raise ApiError(503, "audit_unavailable", "the change was not made: it could not "
                           f"be recorded in the audit log ({exc})",
                           headers={"Retry-After": "30"}) from None

    def changed(self) -> None:
        """After a change has been committed: reload the runtime (and tell the replicas)."""
        self.on_change()


def policy_classifier(snapshot: Callable[[], Snapshot | None]
                      ) -> Callable[[Application], dict[str, Any] | None]:
    """`classify` for `AdminServices`: the tier the snapshot's compiled policy gives an
    application (`PolicySnapshot.classify(...).to_dict()`), read afresh on every call so a
    policy reload is seen at once."""
    from harbourgate.runtime import application_facts

    def classify(application: Application) -> dict[str, Any] | None:
        current = snapshot()
        if current is None:
            return None
        facts = application_facts(application, current.registry)
        result: dict[str, Any] = current.policy.classify(facts).to_dict()
        return result

    return classify
