"""The admin API as one FastAPI app: `create_admin_app(services)`.

Routes carry their full `/admin/v1/...` paths, so the process's top-level ASGI app can
hand it every `/admin/` request unchanged. The OpenAPI document is served, without a
token, at /admin/v1/openapi.json and the docs UI at /admin/v1/docs; everything else
needs an admin token (`harbourgate.admin.auth`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from harbourgate import __version__
from harbourgate.admin import (
    applications,
    approvals,
    decisions,
    directives,
    errors,
    keys,
    participants,
    policy,
    quotas,
    session,
)
from harbourgate.admin.auth import TokenTable, authorize_route
from harbourgate.admin.services import AdminServices
from harbourgate.console import swagger_ui_html

__all__ = ["OPENAPI_URL", "AdminServices", "create_admin_app"]

OPENAPI_URL = "/admin/v1/openapi.json"
DOCS_URL = "/admin/v1/docs"

_ERRORS = {
    "400": "Invalid request: the message and `param` name the field",
    "401": "Missing or unknown admin token",
    "403": "The token's role may not do this",
}


def create_admin_app(services: AdminServices, *,
                     routers: Iterable[APIRouter] = ()) -> FastAPI:
    """The admin API over `services`; `routers` adds more (e.g. the audit endpoints).

    Extra routers declare full paths and guard each route with `auth.Operator` or
    `auth.Reader`; their errors get the same shape.
    """
    app = FastAPI(
        title="Harbourgate admin API",
        version=__version__,
        description="Admit participants, register applications, issue and revoke keys, "
                    "record approvals, issue, revoke and simulate directives, read the "
                    "policy and the recorded decisions. Authenticate with "
                    "`Authorization: Bearer TOKEN`.",
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served below, with its assets from the package (air-gapped)
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.services = services
    app.state.tokens = TokenTable(services.tokens)
    errors.install(app, authorize_failed_body=authorize_route)
    for router in (participants.router, applications.router, keys.router, approvals.router,
                   directives.router, policy.router, decisions.router, session.router,
                   quotas.router,
                   *routers):
        app.include_router(router)

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(swagger_ui_html(OPENAPI_URL, f"{app.title} - Swagger UI"))

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


_WRITES = ("post", "patch", "delete")
_UNRECORDED = ("`audit_unavailable`: the change could not be recorded in the audit log, so "
               "it was not made (with `Retry-After`)")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, corrected: validation fails with 400 in our error shape (not
    422), and every guarded route documents 401/403."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ErrorDetail"] = errors.ErrorDetail.model_json_schema()
    schemas["ErrorBody"] = errors.ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}")
    schemas["ErrorBody"].pop("$defs", None)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, description in _ERRORS.items():
                responses.setdefault(status, {"description": description, "content": error})
            if "{" in path:
                responses.setdefault("404", {"description": "No such id", "content": error})
            if method in _WRITES and not path.endswith(("/simulate", "/explain")):
                responses.setdefault("503", {"description": _UNRECORDED, "content": error})
    app.openapi_schema = document
    return document
