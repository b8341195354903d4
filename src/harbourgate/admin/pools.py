"""`GET /admin/v1/pools`: each pool's servers and their state, as this worker sees them.

Pools balance and eject per process, so the answer is the view of the worker that took
the request (its `process` id says which); `/metrics` aggregates all workers' counters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter

from harbourgate.admin.auth import Reader
from harbourgate.providers.base import Upstream
from harbourgate.providers.pool import pool_status


def pools_router(upstreams: Callable[[], Mapping[str, Upstream]]) -> APIRouter:
    """The router over the live adapters `upstreams()` returns."""
    router = APIRouter(tags=["pools"])

    @router.get("/admin/v1/pools")
    async def list_pools(_actor: Reader) -> dict[str, Any]:
        """Every route served by a pool: balancing, health check, and each server's state
        (healthy, ejected, half_open, probing, down), requests in flight, last error."""
        found = pool_status(upstreams())
        return {"process": os.getpid(),
                "data": [{"model": name, **status} for name, status in found.items()],
                "next_cursor": None}

    return router
