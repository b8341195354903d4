"""The witness endpoints (PRODUCT.md §4.1): `GET /audit/checkpoint` and `GET /audit/key`.

Without authentication, so that anyone can hold the operator to the log: a witness saves
each checkpoint and asks for a consistency proof from the last one it saw (the admin API's
`/admin/v1/audit/consistency`, or `harbourgate audit verify --checkpoint`). `audit.public:
false` turns them off; then these paths are unknown, as any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import PlainTextResponse, Response

from harbourgate.admin.errors import error_response
from harbourgate.audit.errors import EntryNotFoundError
from harbourgate.audit.log import AuditLog

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CHECKPOINT = "/audit/checkpoint"
KEY = "/audit/key"
PATHS = (CHECKPOINT, KEY)


class Witness:
    """The ASGI app answering the two witness paths from one process's audit log."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(scope["method"], scope["path"])
        await response(scope, receive, send)

    async def answer(self, method: str, path: str) -> Response:
        if method not in ("GET", "HEAD"):
            return error_response(405, "method_not_allowed",
                                  f"{method} is not allowed on {path}; use GET",
                                  headers={"Allow": "GET, HEAD"})
        if path == KEY:
            return PlainTextResponse(self.log.verifier_key + "\n",
                                     headers={"Cache-Control": "max-age=3600"})
        try:
            signed = await asyncio.to_thread(self.log.checkpoint)
        except EntryNotFoundError as exc:
            return error_response(404, "not_found", str(exc))
        return PlainTextResponse(signed.note, headers={"Cache-Control": "no-cache"})
