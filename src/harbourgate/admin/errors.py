"""Admin API errors: one JSON shape for every failure, as the data plane's OpenAI shape.

`{"error": {"type", "code", "message", "param"}}` with the status of the table below.
FastAPI's own failures (validation 422, unknown path, wrong method) are translated into
it, so a client handles exactly one error format.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from harbourgate.store.errors import Conflict, InvalidReference, NotFound, StoreError

log = logging.getLogger("harbourgate.admin")

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    500: "api_error",
    503: "api_error",
}

_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
# For a route's `responses=`: what a create with an explicit id may answer.
CONFLICT: dict[int | str, dict[str, object]] = {
    409: {"description": "`conflict`: that id is taken", "content": _ERROR_CONTENT}}


class ErrorDetail(BaseModel):
    type: str
    code: str
    message: str
    param: str | None = None


class ErrorBody(BaseModel):
    """Every admin API error."""

    error: ErrorDetail


class ApiError(Exception):
    """An error answer: raise it anywhere in a route."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, param=self.param,
                              headers=self.headers)


def invalid(param: str, message: str) -> ApiError:
    """A 400 `invalid_request` about `param` (the message should name it too)."""
    return ApiError(400, "invalid_request", message, param=param)


def error_response(status: int, code: str, message: str, *, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"type": TYPES.get(status, "api_error"), "code": code,
                      "message": message, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_store_error(exc: StoreError) -> ApiError:
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", exc.message)
    if isinstance(exc, Conflict):
        return ApiError(409, "conflict", exc.message, param="id")
    if isinstance(exc, InvalidReference):
        return invalid(exc.field, exc.message)
    return ApiError(400, "invalid_request", exc.message)


def from_validation_error(exc: RequestValidationError) -> ApiError:
    """The first problem pydantic found, as a message that names the field."""
    errors = exc.errors()
    if not errors:
        return ApiError(400, "invalid_request", "the request is invalid")
    error = errors[0]
    kind = error.get("type", "")
    where, *path = error.get("loc", ()) or ("body",)
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "malformed")
        return ApiError(400, "invalid_request",
                        f"the body is not valid JSON ({reason}); send a JSON object")
    if not path:
        if kind == "missing":
            return ApiError(400, "invalid_request", "the request needs a JSON object body")
        if where == "body":
            return ApiError(400, "invalid_request", "the body must be a JSON object, not "
                            f"{_json_type(error.get('input'))}")
        return ApiError(400, "invalid_request", f"the {where} is invalid: {error.get('msg')}")
    field = _dotted(path)
    param = str(path[0])
    if kind == "missing":
        message = f"{field} is required"
    elif kind == "extra_forbidden":
        message = f"{field} is not a field of this request; check the spelling"
    elif kind == "too_short":
        least = (error.get("ctx") or {}).get("min_length", 1)
        message = f"{field}: must list at least {least} {'entry' if least == 1 else 'entries'}"
    elif error.get("input", "") is None:
        message = f"{field} must not be null"
    elif kind == "value_error":
        message = f"{field}: {(error.get('ctx') or {}).get('error', error.get('msg'))}"
    else:
        text = str(error.get("msg", "is invalid"))
        message = f"{field}: {text[:1].lower()}{text[1:]}"
    return invalid(param, message)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts on this path (Starlette names only the first).

    Read from the OpenAPI document, which sees routes however deeply routers are nested.
    """
    state = request.app.state
    if getattr(state, "route_methods", None) is None:
        state.route_methods = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
             {method.upper() for method in operations})
            for path, operations in request.app.openapi().get("paths", {}).items()]
    methods: set[str] = set()
    for pattern, route_methods in state.route_methods:
        if pattern.match(request.url.path):
            methods |= route_methods
    return sorted(methods)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _dotted(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def install(app: FastAPI, *, authorize_failed_body: Any = None) -> None:
    """Register the handlers that give every failure the admin error shape.

    `authorize_failed_body(request)`, when given, runs before a validation error is
    reported, so that a caller without the right token learns nothing about the body:
    FastAPI decodes the JSON body before it runs a route's dependencies.
    """

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StoreError)
    async def _store_error(_request: Request, exc: StoreError) -> JSONResponse:
        return from_store_error(exc).response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if authorize_failed_body is not None:
            try:
                authorize_failed_body(request)
            except ApiError as denied:
                return denied.response()
        return from_validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, "not_found",
                                  f"no such endpoint: {request.method} {request.url.path}")
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            return error_response(405, "method_not_allowed",
                                  f"{request.method} is not allowed on {request.url.path}; "
                                  f"use {' or '.join(allowed)}",
                                  headers={"Allow": ", ".join(allowed)})
        return error_response(exc.status_code, "http_error", str(exc.detail),
                              headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("admin API: %s %s failed", request.method, request.url.path)
        return error_response(500, "internal_error",
                              "the admin API failed unexpectedly; the server log has details")
