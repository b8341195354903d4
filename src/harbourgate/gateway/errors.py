"""Errors as the caller's SDK expects them, in each API shape (Responses errors are
OpenAI-shaped, but a Responses stream ends with its own `error` event).

Every refusal carries `type`, `code` and a human `message`; policy refusals add `rule`,
`citation` and `audit_id`. The status and code pairs are fixed by PRODUCT.md §4.1.
"""

from __future__ import annotations

from typing import Any

import orjson

# code -> (OpenAI error type, Anthropic error type)
_TYPES: dict[str, tuple[str, str]] = {
    "invalid_request": ("invalid_request_error", "invalid_request_error"),
    "invalid_api_key": ("authentication_error", "authentication_error"),
    "invalid_attestation": ("authentication_error", "authentication_error"),
    "tier_prohibited": ("permission_error", "permission_error"),
    "approval_required": ("permission_error", "permission_error"),
    "participant_suspended": ("permission_error", "permission_error"),
    "model_not_found": ("not_found_error", "not_found_error"),
    "not_found": ("not_found_error", "not_found_error"),
    "method_not_allowed": ("invalid_request_error", "invalid_request_error"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "legal_restriction": ("permission_error", "permission_error"),
    "quota_exceeded": ("rate_limit_error", "rate_limit_error"),
    "quota_unavailable": ("api_error", "overloaded_error"),
    "upstream_error": ("api_error", "api_error"),
    "upstream_rate_limited": ("rate_limit_error", "rate_limit_error"),
    "upstream_overloaded": ("server_error", "overloaded_error"),
    "upstream_timeout": ("api_error", "api_error"),
    "internal_error": ("api_error", "api_error"),
    "audit_unavailable": ("api_error", "overloaded_error"),
}


class GatewayError(Exception):
    """A refusal with its HTTP status and stable code; `extra` adds rule/citation/audit_id."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self, shape: str) -> bytes:
        openai_type, anthropic_type = _TYPES.get(self.code, ("api_error", "api_error"))
        detail: dict[str, Any] = {"code": self.code, "message": self.message}
        if shape == "anthropic":
            return orjson.dumps({"type": "error", "error": {"type": anthropic_type, **detail,
                                 **({"param": self.param} if self.param else {}),
                                 **self.extra}})
        return orjson.dumps({"error": {"type": openai_type, **detail, "param": self.param,
                                       **self.extra}})

    def sse(self, shape: str) -> bytes:
        """The same error as a server-sent event, for a stream that has already begun."""
        if shape == "anthropic":
            return b"event: error\ndata: " + self.body(shape) + b"\n\n"
        if shape == "responses":  # the Responses API's `error` event
            return b"event: error\ndata: " + orjson.dumps(
                {"type": "error", "code": self.code, "message": self.message,
                 "param": self.param, **self.extra}) + b"\n\n"
        return b"data: " + self.body(shape) + b"\n\n"


def invalid(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_request", message, param=param)
