"""The in-memory state the hot path reads: one immutable `Snapshot`, swapped whole.

The database is the source of truth; a change (new key, revoked key, application, policy,
directive) is committed there and bumps `state_version`. Every process rebuilds its
snapshot from the database and swaps one reference, so a request sees either the old
state or the new one, never a mix. Processes learn of changes by polling the version (the
safety net, cheap) and, where configured, by announcements.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from harbourgate.config import RouteConfig, Settings
from harbourgate.identity.model import ApiKey, Application, Participant, Registry
from harbourgate.store import Store
from harbourgate.store.snapshot import load_registry

log = logging.getLogger("harbourgate.runtime")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an API key speaks for."""

    key: ApiKey
    application: Application
    participant: Participant


@dataclass(frozen=True)
class Snapshot:
    """Routes and the registry as of one state version, indexed for the hot path."""

    version: int
    routes: Mapping[str, RouteConfig]
    registry: Registry
    callers: Mapping[str, Caller]  # by SHA-256 hex of the key

    def candidates(self, route: RouteConfig, application: Application,
                   fallback: bool = True) -> list[RouteConfig]:
        """The asked-for route, then its substitutes in the application's preference order.

        Substitutes are active routes of the same capability class; without a preference
        order there are none, because an application never gets a model it did not choose.
        """
        out = [route]
        if not fallback:
            return out
        for name in application.model_preference:
            other = self.routes.get(name)
            if (other is not None and other.name != route.name and other.status == "active"
                    and other.capability_class == route.capability_class):
                out.append(other)
        return out


def build_snapshot(settings: Settings, store: Store) -> Snapshot:
    """Read the registry once and index it for the hot path."""
    reg = load_registry(store.engine)
    callers: dict[str, Caller] = {}
    for key_hash in reg.keys:
        found = reg.identify(key_hash)
        if found is not None:
            callers[key_hash] = Caller(*found)
    return Snapshot(
        version=reg.version,
        routes=MappingProxyType({r.name: r for r in settings.routes}),
        registry=reg,
        callers=MappingProxyType(callers),
    )


class Runtime:
    """Holds the current snapshot and keeps it fresh."""

    poll_interval_s = 0.25

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.snapshot = build_snapshot(settings, store)

    def reload(self) -> Snapshot:
        """Rebuild from the database and swap (one assignment: atomic for readers)."""
        self.snapshot = build_snapshot(self.settings, self.store)
        return self.snapshot

    def _current_version(self) -> int:
        return self.store.state_version()

    async def watch(self) -> None:
        """Poll the state version; reload when another process changed something."""
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                version = await asyncio.to_thread(self._current_version)
                if version != self.snapshot.version:
                    await asyncio.to_thread(self.reload)
            except Exception:  # a database hiccup must not kill the watcher
                log.exception("could not refresh the snapshot; keeping the current one")
