"""The audit endpoints of the admin API (PRODUCT.md §4.2), as a router.

    app.include_router(audit_router(lambda: services.audit_log),
                       prefix="/admin/v1", dependencies=[Depends(require_auditor)])

The router knows nothing of admin authentication: whoever includes it adds the auditor /
operator dependency. Errors have the admin API's shape
`{"error": {"type", "code", "message", "param"}}`: 404 `not_found`, 400 `invalid_request`.
The work (proofs, signing, reads) is blocking, so the handlers are plain `def` and run in
the threadpool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse

from harbourgate.audit.errors import EntryNotFoundError, InvalidProofRequestError
from harbourgate.audit.log import AuditLog


def _error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    return JSONResponse({"error": {"type": kind, "code": code, "message": message,
                                   "param": param}}, status_code=status)


def _guard(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except EntryNotFoundError as exc:
        return _error(404, "not_found", str(exc), "id")
    except InvalidProofRequestError as exc:
        return _error(400, "invalid_request", str(exc), exc.param)


def _size(value: str | None, param: str) -> int | None:
    """Parse a size query parameter ourselves, so a bad one is a 400 in our error shape."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidProofRequestError(f"{param} must be a whole number, not {value!r}",
                                       param) from None


_NOT_FOUND = {"description": "unknown entry id, or not yet integrated"}
_INVALID = {"description": "a size or index outside the tree, or first > second"}


def audit_router(get_log: Callable[[], AuditLog]) -> APIRouter:
    """The router for /audit/...; mount it under /admin/v1 with the admin auth dependency."""
    router = APIRouter(prefix="/audit", tags=["audit"])

    @router.get("/checkpoint", response_class=PlainTextResponse,
                responses={404: {"description": "no checkpoint signed yet"}})
    def checkpoint() -> Any:
        """The latest signed tree head, as a C2SP signed note."""
        return _guard(lambda: PlainTextResponse(get_log().checkpoint().note))

    @router.get("/key", response_class=PlainTextResponse)
    def key() -> PlainTextResponse:
        """The log's verifier key (signed-note vkey: name+keyid+base64 key)."""
        return PlainTextResponse(get_log().verifier_key + "\n")

    @router.get("/entries/{entry_id}", responses={404: _NOT_FOUND})
    def entry(entry_id: str) -> Any:
        """An entry: its id, leaf index, exact leaf bytes (base64) and the parsed record."""
        return _guard(lambda: get_log().entry(entry_id).to_json())

    @router.get("/entries/{entry_id}/proof", responses={404: _NOT_FOUND, 400: _INVALID})
    def inclusion(entry_id: str, tree_size: str | None = Query(
            None, description="the tree size (default: the latest signed checkpoint)")) -> Any:
        """The inclusion proof of an entry (RFC 9162 §2.1.3)."""
        return _guard(lambda: get_log().inclusion_proof(
            entry_id, _size(tree_size, "tree_size")).to_json())

    @router.get("/consistency", responses={400: _INVALID})
    def consistency(first: str | None = Query(None, description="the older tree size (>= 1)"),
                    second: str | None = Query(None, description="the newer tree size")) -> Any:
        """The consistency proof between two tree sizes (RFC 9162 §2.1.4)."""

        def prove() -> Any:
            m, n = _size(first, "first"), _size(second, "second")
            if m is None or n is None:
                missing = "first" if m is None else "second"
                raise InvalidProofRequestError(f"{missing} is required: "
                                               "?first=M&second=N", missing)
            return get_log().consistency_proof(m, n).to_json()

        return _guard(prove)

    return router
