"""What the admin plane needs from the rest of the process, injected at assembly."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from harbourgate.config import AdminToken
from harbourgate.identity.model import Application
from harbourgate.store import Store


def _unclassified(_application: Application) -> dict[str, Any] | None:
    return None


@dataclass
class AdminServices:
    """The admin API's dependencies; tests pass fakes, `harbourgate serve` the real ones.

    `classify` is the policy's verdict on an application:
    `{"tier": ..., "rule": ..., "citation": ..., "reason": ...}`, or None without a policy.
    """

    store: Store
    tokens: tuple[AdminToken, ...]
    route_names: Callable[[], Collection[str]]  # known model routes (model_preference)
    on_change: Callable[[], None]  # after every committed change: reload the runtime
    audit: Callable[[str, dict[str, Any]], str | None]  # (action, details) -> audit id
    classify: Callable[[Application], dict[str, Any] | None] = _unclassified

    def committed(self, action: str, details: dict[str, Any]) -> str | None:
        """After a change has been committed: reload the runtime, then audit the action.

        In this order so that the audit record never precedes the state it describes;
        returns the audit entry id for the response.
        """
        self.on_change()
        return self.audit(action, details)
