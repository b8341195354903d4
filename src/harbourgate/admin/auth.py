"""Who may call the admin API: bearer tokens with a role, checked per route.

`operator` may do everything; `auditor` may read (and use the few POST endpoints marked
read-only, such as simulate and explain). A route states who may call it with a typed
dependency, which also gives it the caller::

    @router.post("/admin/v1/participants")
    def admit(body: ParticipantIn, actor: Operator) -> ...

    @router.post("/admin/v1/directives/simulate")
    def simulate(body: ..., actor: Reader) -> ...   # a read-only POST: auditors too

Tokens are compared as SHA-256 digests with `hmac.compare_digest`, against every
configured token without stopping at the first match, so timing tells nothing about
which token or how much of it matched.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from harbourgate.admin.errors import ApiError
from harbourgate.admin.services import AdminServices
from harbourgate.config import AdminToken

OPERATOR = "operator"
AUDITOR = "auditor"

_bearer = HTTPBearer(auto_error=False, scheme_name="admin token",
                     description="An admin token (HARBOURGATE_ADMIN_TOKEN or admin_tokens).")


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of an admin endpoint: its role and a fingerprint of its token.

    The fingerprint (first 12 hex characters of the token's SHA-256) tells audit readers
    which token acted without recording the token.
    """

    role: str
    token_id: str

    def as_details(self) -> dict[str, str]:
        return {"role": self.role, "token_id": self.token_id}


class TokenTable:
    """The configured tokens, kept as digests."""

    def __init__(self, tokens: tuple[AdminToken, ...]) -> None:
        self._entries = tuple((_digest(t.token), t.role) for t in tokens)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def authenticate(self, token: str | None) -> Actor:
        """The actor this token speaks for; `ApiError` 401 if none."""
        if not self._entries:
            raise _unauthenticated("the admin API is disabled: no admin token is configured; "
                                   "set HARBOURGATE_ADMIN_TOKEN (16+ characters) or "
                                   "admin_tokens in the config, then restart")
        if not token:
            raise _unauthenticated("missing admin token; send Authorization: Bearer TOKEN")
        given = _digest(token)
        role: str | None = None
        for digest, entry_role in self._entries:
            if hmac.compare_digest(given, digest) and role is None:
                role = entry_role
        if role is None:
            raise _unauthenticated("unknown admin token")
        return Actor(role=role, token_id=given.hex()[:12])


class RoleGuard:
    """A route dependency: authenticate, then require one of `roles`."""

    def __init__(self, *roles: str) -> None:
        self.roles = frozenset(roles)

    def __call__(self, request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None,
                                        Depends(_bearer)] = None) -> Actor:
        return self.check(request, credentials.credentials if credentials else None)

    def check(self, request: Request, token: str | None) -> Actor:
        actor = tokens_of(request).authenticate(token)
        if actor.role not in self.roles:
            raise ApiError(403, "forbidden", f"the {actor.role} role may not do this; it needs "
                           f"an {' or '.join(sorted(self.roles))} token")
        return actor


def requires(*roles: str) -> Any:
    """`Depends(...)` for a route callable only with a token of one of `roles`."""
    return Depends(RoleGuard(*roles))


Operator = Annotated[Actor, requires(OPERATOR)]
"""The caller of a route that changes something: operators only."""

Reader = Annotated[Actor, requires(OPERATOR, AUDITOR)]
"""The caller of a route that only reads: operators and auditors."""


def services_of(request: Request) -> AdminServices:
    services: AdminServices = request.app.state.services
    return services


def tokens_of(request: Request) -> TokenTable:
    table: TokenTable = request.app.state.tokens
    return table


Services = Annotated[AdminServices, Depends(services_of)]
"""The injected `AdminServices`, as a route parameter."""


def authorize_route(request: Request) -> None:
    """Run the matched route's role check from outside FastAPI's dependency solving.

    FastAPI decodes a JSON body before a route's dependencies run, so a malformed body
    would otherwise be reported to a caller who is not even authenticated.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    for dependency in getattr(dependant, "dependencies", ()):
        guard = dependency.call
        if isinstance(guard, RoleGuard):
            guard.check(request, _bearer_token(request))


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "invalid_admin_token", message, headers={"WWW-Authenticate": "Bearer"})


__all__ = ["AUDITOR", "OPERATOR", "Actor", "Operator", "Reader", "RoleGuard",
           "Services", "TokenTable", "authorize_route", "requires", "services_of"]
