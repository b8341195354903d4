"""The in-memory state the hot path reads: one immutable `Snapshot`, swapped whole.

The database is the source of truth; a change (new key, revoked key, application,
approval, directive) is committed there and bumps `state_version`. Every process rebuilds
its snapshot from the database and swaps one reference, so a request sees either the old
state or the new one, never a mix. Processes learn of a change three ways, fastest first:
the process that made it reloads at once; it announces the change (Redis pub/sub when
`redis_url` is set); and every process polls the version as the safety net (every 50 ms on
SQLite, where the read is local and costs microseconds; every 250 ms on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harbourgate import policy
from harbourgate.config import RouteConfig, Settings
from harbourgate.enforce import model_facts
from harbourgate.identity.model import ApiKey, Application, Participant, Registry
from harbourgate.policy.timeutil import parse_instant
from harbourgate.quotas.gate import EMPTY as EMPTY_QUOTAS
from harbourgate.quotas.gate import QuotaSet
from harbourgate.store import Store
from harbourgate.store.directives import StoredDirective, list_directives
from harbourgate.store.quotas import load_quotas
from harbourgate.store.snapshot import load_registry
from harbourgate.store.state import VersionProbe

log = logging.getLogger("harbourgate.runtime")

CHANNEL = "harbourgate:state"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an API key speaks for, with the policy facts about them precomputed."""

    key: ApiKey
    application: Application
    participant: Participant
    app_facts: policy.ApplicationFacts
    participant_facts: policy.ParticipantFacts


@dataclass(frozen=True)
class Snapshot:
    """Routes, registry, directives and the compiled policy as of one state version."""

    version: int
    routes: Mapping[str, RouteConfig]
    facts: Mapping[str, policy.ModelFacts]  # by route name
    registry: Registry
    callers: Mapping[str, Caller]  # by SHA-256 hex of the key
    policy: policy.PolicySnapshot
    directives: tuple[StoredDirective, ...]
    policy_header: str
    quotas: QuotaSet = EMPTY_QUOTAS  # in force: what the quota gate checks

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


def application_facts(app: Application, registry: Registry) -> policy.ApplicationFacts:
    expiry: datetime | None = None
    for approval in registry.approvals.get(app.id, ()):
        when = parse_instant(approval.expires_at)
        if expiry is None or when > expiry:
            expiry = when
    return policy.ApplicationFacts(
        id=app.id, use_cases=app.use_cases, data_categories=app.data_categories,
        data_origin=app.data_origin, transfer_mechanisms=app.transfer_mechanisms,
        status=app.status, approval_expires_at=expiry)


def participant_facts(p: Participant) -> policy.ParticipantFacts:
    return policy.ParticipantFacts(id=p.id, jurisdiction=p.jurisdiction, status=p.status,
                                   screening=p.screening)


def build_snapshot(settings: Settings, store: Store, bundle: policy.Bundle) -> Snapshot:
    """Read the registry and directives once, compile the policy, index for the hot path."""
    reg = load_registry(store.engine)
    with store.engine.connect() as conn:
        directives = tuple(list_directives(conn, include_revoked=False))
        quotas = QuotaSet(load_quotas(conn))
    compiled = policy.compile(bundle, [d.directive for d in directives])
    callers: dict[str, Caller] = {}
    facts_of: dict[str, policy.ApplicationFacts] = {}
    for key_hash in reg.keys:
        found = reg.identify(key_hash)
        if found is not None:
            key, app, part = found
            if app.id not in facts_of:
                facts_of[app.id] = application_facts(app, reg)
            callers[key_hash] = Caller(key, app, part, facts_of[app.id], participant_facts(part))
    return Snapshot(
        version=reg.version,
        routes=MappingProxyType({r.name: r for r in settings.routes}),
        facts=MappingProxyType({r.name: model_facts(r) for r in settings.routes}),
        registry=reg,
        callers=MappingProxyType(callers),
        policy=compiled,
        directives=directives,
        policy_header=str(compiled.version),
        quotas=quotas,
    )


def load_bundle(settings: Settings) -> policy.Bundle:
    """The bundle of the configured packs and files (raises `policy.PolicyError`)."""
    return policy.load_bundle(settings.policy.packs, settings.policy.bundles)


def _bundle_mtimes(settings: Settings) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in settings.policy.bundles:
        path = Path(item)
        files = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
        for f in files:
            try:
                out[str(f)] = f.stat().st_mtime
            except OSError:
                out[str(f)] = -1.0
    return out


class Runtime:
    """Holds the current snapshot and keeps it fresh."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.bundle = load_bundle(settings)
        self.bundle_error: str | None = None
        self._mtimes = _bundle_mtimes(settings)
        self._lock = threading.Lock()
        self.snapshot = build_snapshot(settings, store, self.bundle)
        self.poll_interval = 0.05 if store.is_sqlite else 0.25
        self._redis: Any = None

    def reload(self) -> Snapshot:
        """Rebuild from the database and swap (one assignment: atomic for readers)."""
        with self._lock:  # one rebuild at a time, so an older read never lands last
            old = self.snapshot
            self.snapshot = build_snapshot(self.settings, self.store, self.bundle)
            if self.snapshot.policy_header != old.policy_header:  # a directive or bundle moved
                log.info("policy in force changed at state version %s: %s (was %s)",
                         self.snapshot.version, self.snapshot.policy_header,
                         old.policy_header)
            return self.snapshot

    def changed(self) -> None:
        """After this process committed a change: reload now, then tell the others."""
        self.reload()
        self.announce()

    def announce(self) -> None:
        if not self.settings.redis_url:
            return
        try:
            import redis

            if self._redis is None:
                self._redis = redis.Redis.from_url(self.settings.redis_url,
                                                   socket_timeout=2)
            self._redis.publish(CHANNEL, str(self.snapshot.version))
        except Exception:  # polling still carries the change within a second
            log.warning("could not announce a state change over Redis", exc_info=True)

    def _reload_bundle_if_changed(self) -> bool:
        mtimes = _bundle_mtimes(self.settings)
        if mtimes == self._mtimes:
            return False
        self._mtimes = mtimes
        try:
            self.bundle = load_bundle(self.settings)
        except policy.PolicyError as exc:
            self.bundle_error = str(exc)
            log.error("the changed policy bundle is invalid; keeping version %s: %s",
                      self.snapshot.policy_header, exc)
            return False
        self.bundle_error = None
        log.info("policy bundle reloaded")
        return True

    def _poll(self) -> None:
        bundle_changed = self._reload_bundle_if_changed()
        if bundle_changed or self.store.state_version() != self.snapshot.version:
            self.reload()

    async def watch(self) -> None:
        """Poll the state version (and bundle files); reload when something moved.

        On SQLite the version is read on the loop through a kept connection
        (`VersionProbe`); a reload, and every read on PostgreSQL, runs in a thread.
        """
        probe = VersionProbe(self.store.engine) if self.store.is_sqlite else None
        try:
            while True:
                await asyncio.sleep(self.poll_interval)
                try:
                    if probe is None or self._moved(probe):
                        await asyncio.to_thread(self._poll)
                except Exception:  # a database hiccup must not kill the watcher
                    log.exception("could not refresh the snapshot; keeping the current one")
        finally:
            if probe is not None:
                probe.close()

    def _moved(self, probe: VersionProbe) -> bool:
        return probe.read() != self.snapshot.version \
            or _bundle_mtimes(self.settings) != self._mtimes

    async def listen(self) -> None:
        """Reload as soon as another process announces a change over Redis."""
        if not self.settings.redis_url:
            return
        import redis.asyncio as aioredis

        while True:
            client = aioredis.Redis.from_url(self.settings.redis_url)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await asyncio.to_thread(self.reload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Redis subscription lost; polling carries changes meanwhile",
                            exc_info=True)
                await asyncio.sleep(1)
            finally:
                await client.aclose()


