"""Bounded names for metrics, exported telemetry and log lines.

A model name comes from the caller, so it is kept only when it names a configured route;
anything else is ``other``. That bounds the series a valid key can create, and keeps a
made-up "model name" (which could carry any text) out of logs and telemetry.
"""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"
NONE = "none"

_routes: frozenset[str] = frozenset()


def configure(route_names: Iterable[str]) -> None:
    """Declare the configured route names (each process, at start)."""
    global _routes
    _routes = frozenset(route_names)


def model(name: str | None) -> str:
    """`name` when it is a configured route, ``none`` when absent, else ``other``."""
    if not name:
        return NONE
    return name if name in _routes else OTHER
