"""The `sandbox:` seed of the config, applied idempotently at every start.

What is missing is inserted; what exists is left alone, because the admin API may have
changed it since (a suspended participant stays suspended across restarts). Problems are
`ConfigError`s naming the seed entry (`sandbox.applications[0].participant`), since the
fix is in the config file.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from harbourgate.config import ConfigError, SandboxSeed
from harbourgate.identity import model
from harbourgate.quotas.model import Quota
from harbourgate.store.applications import application_exists, register_application
from harbourgate.store.errors import Conflict, InvalidReference
from harbourgate.store.participants import admit_participant, participant_exists
from harbourgate.store.quotas import check_scope, insert_missing
from harbourgate.store.state import bump_state_version

PARTICIPANT_KEYS = ("id", "name", "jurisdiction", "status", "screening")
APPLICATION_KEYS = ("id", "participant", "participant_id", "name", "use_cases",
                    "data_categories", "data_origin", "model_preference",
                    "transfer_mechanisms", "status")
_ATTEMPTS = 3  # another replica seeding at the same moment makes an attempt conflict


@dataclass(frozen=True, slots=True)
class SeedResult:
    """The ids the seed inserted (empty when everything was there already)."""

    participants: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.participants or self.applications)


def apply_seed(engine: sa.Engine, seed: SandboxSeed, *,
               route_names: Collection[str] | None = None,
               source: str = "<config>",
               audit: Callable[[sa.Connection, SeedResult], object] | None = None,
               ) -> SeedResult:
    """Insert the seed's missing participants and applications in one transaction.

    `route_names`, when given, checks each application's `model_preference`. The state
    version is bumped only when something was inserted, and then `audit(conn, result)`
    records it in the same transaction.
    """
    people = [_participant(item, i, source) for i, item in enumerate(seed.participants)]
    apps = [_application(item, i, source, route_names) for i, item in enumerate(seed.applications)]
    for attempt in range(_ATTEMPTS):
        try:
            return _insert_missing(engine, people, apps, source, audit)
        except Conflict:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _insert_missing(engine: sa.Engine, people: list[dict[str, Any]],
                    apps: list[tuple[str, dict[str, Any]]], source: str,
                    audit: Callable[[sa.Connection, SeedResult], object] | None
                    ) -> SeedResult:
    added_people: list[str] = []
    added_apps: list[str] = []
    with engine.begin() as conn:
        for values in people:
            if not participant_exists(conn, values["id"]):
                admit_participant(conn, **values)
                added_people.append(values["id"])
        for key, values in apps:
            if application_exists(conn, values["id"]):
                continue
            try:
                register_application(conn, **values)
            except InvalidReference as exc:
                raise ConfigError(f"no participant {exc.id!r} in the database or the seed; "
                                  "add it under sandbox.participants", source=source,
                                  key=key) from exc
            added_apps.append(values["id"])
        result = SeedResult(tuple(added_people), tuple(added_apps))
        if result.changed:
            bump_state_version(conn)
            if audit is not None:
                audit(conn, result)
    return result


def _participant(item: Mapping[str, Any], i: int, source: str) -> dict[str, Any]:
    where = f"sandbox.participants[{i}]"
    _known_keys(item, PARTICIPANT_KEYS, where, source)
    check = _Checker(where, source)
    values = {
        "id": check("id", item.get("id"), model.check_id),
        "name": check("name", item.get("name", item.get("id")), model.check_name),
        "jurisdiction": check("jurisdiction", item.get("jurisdiction"), model.check_country),
        "status": check("status", item.get("status", "admitted"),
                        lambda v: model.check_one_of(v, model.PARTICIPANT_STATUSES)),
        "screening": check("screening", item.get("screening", "clear"),
                           lambda v: model.check_one_of(v, model.SCREENING_RESULTS)),
    }
    return values


def _application(item: Mapping[str, Any], i: int, source: str,
                 route_names: Collection[str] | None) -> tuple[str, dict[str, Any]]:
    where = f"sandbox.applications[{i}]"
    _known_keys(item, APPLICATION_KEYS, where, source)
    check = _Checker(where, source)
    owner_key = "participant_id" if "participant_id" in item else "participant"
    if "participant" in item and "participant_id" in item \
            and item["participant"] != item["participant_id"]:
        raise ConfigError("participant and participant_id disagree; give one of them",
                          source=source, key=f"{where}.participant")

    def route(name: str) -> str:
        if route_names is not None and name not in route_names:
            raise ValueError(f"{name!r} is not a configured route; routes: "
                             f"{', '.join(sorted(route_names))}")
        return name

    values: dict[str, Any] = {
        "id": check("id", item.get("id"), model.check_id),
        "participant_id": check(owner_key, item.get(owner_key), model.check_id),
        "name": check("name", item.get("name", item.get("id")), model.check_name),
        "use_cases": check.each("use_cases", item.get("use_cases", []), model.check_use_case),
        "data_categories": check.each("data_categories", item.get("data_categories", []),
                                      model.check_category),
        "data_origin": None if item.get("data_origin") is None else
        check("data_origin", item["data_origin"], model.check_country),
        "model_preference": check.each("model_preference", item.get("model_preference", []),
                                       route),
        "transfer_mechanisms": check.each("transfer_mechanisms",
                                          item.get("transfer_mechanisms", []),
                                          model.check_transfer_mechanism),
        "status": check("status", item.get("status", "active"),
                        lambda v: model.check_one_of(v, model.APPLICATION_STATUSES)),
    }
    return f"{where}.{owner_key}", values


class _Checker:
    """Runs a `model.check_*` on a seed value, turning its ValueError into a ConfigError."""

    def __init__(self, where: str, source: str) -> None:
        self.where = where
        self.source = source

    def __call__(self, key: str, value: Any, check: Callable[[str], str]) -> str:
        if value is None:
            raise ConfigError("is required", source=self.source, key=f"{self.where}.{key}")
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, not {type(value).__name__}",
                              source=self.source, key=f"{self.where}.{key}")
        try:
            return check(value)
        except ValueError as exc:
            raise ConfigError(str(exc), source=self.source, key=f"{self.where}.{key}") from None

    def each(self, key: str, values: Any, check: Callable[[str], str]) -> list[str]:
        if not isinstance(values, list | tuple):
            raise ConfigError(f"must be a list, not {type(values).__name__}",
                              source=self.source, key=f"{self.where}.{key}")
        checked = [self(f"{key}[{n}]", value, check) for n, value in enumerate(values)]
        try:
            model.check_unique(checked)
        except ValueError as exc:
            raise ConfigError(str(exc), source=self.source, key=f"{self.where}.{key}") from None
        return checked


def _known_keys(item: Mapping[str, Any], known: tuple[str, ...], where: str,
                source: str) -> None:
    unknown = sorted(set(item) - set(known))
    if unknown:
        raise ConfigError(f"unknown key; takes {', '.join(known)}", source=source,
                          key=f"{where}.{unknown[0]}")


def apply_quota_seed(engine: sa.Engine, quotas: Collection[Quota], *,
                     source: str = "<config>",
                     audit: Callable[[sa.Connection, list[str]], object] | None = None
                     ) -> list[str]:
    """Insert the config's quotas that are not stored yet (by id); what exists is left
    alone, since the admin API may have changed it. A scope naming an unknown participant,
    application or key is a `ConfigError` naming `quotas[i].scope.<key>`. The state
    version is bumped only when something was inserted, and then `audit(conn, ids)` records
    it in the same transaction."""
    with engine.begin() as conn:
        for i, quota in enumerate(quotas):
            try:
                check_scope(conn, quota)
            except InvalidReference as exc:
                raise ConfigError(f"no {exc.kind} {exc.id!r} in the database or the seed",
                                  source=source, key=f"quotas[{i}].{exc.field}") from None
        added = insert_missing(conn, quotas)
        if added:
            bump_state_version(conn)
            if audit is not None:
                audit(conn, added)
    return added
