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

The console (a browser) signs in once with its token (`POST /admin/v1/session`) and then
holds a session instead: an HttpOnly, SameSite=Strict cookie that is stateless, signed
with a key derived from the admin token itself (so every worker and replica accepts it,
and removing the token from the config ends its sessions), and that expires. A session
authenticates like the token it came from; every change (any method but GET and HEAD)
must also carry the session's CSRF token in `X-CSRF-Token`, which a page of another
origin cannot read. A bearer token, when sent, takes precedence over the cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from harbourgate.admin.errors import ApiError
from harbourgate.admin.services import AdminServices
from harbourgate.config import AdminToken

OPERATOR = "operator"
AUDITOR = "auditor"

SESSION_COOKIE = "harbourgate_session"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_S = 8 * 3600  # a working day; then the console asks for the token again
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION_CONTEXT = b"harbourgate console session v1"

_bearer = HTTPBearer(auto_error=False, scheme_name="admin token",
                     description="An admin token (HARBOURGATE_ADMIN_TOKEN or admin_tokens).")
_session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                               scheme_name="console session",
                               description="A console session (POST /admin/v1/session); "
                                           "changes also need its X-CSRF-Token header.")


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of an admin endpoint: its role and a fingerprint of its token.

    The fingerprint (first 12 hex characters of the token's SHA-256) tells audit readers
    which token acted without recording the token.
    """

    role: str
    token_id: str
    name: str | None = None  # the holder named by the config (`admin_tokens[].name`)
    via: str = "token"  # "token" (Authorization: Bearer) or "console" (a session cookie)

    def as_details(self) -> dict[str, str]:
        details = {"role": self.role, "token_id": self.token_id}
        if self.name is not None:
            details["name"] = self.name
        if self.via != "token":
            details["via"] = self.via
        return details


@dataclass(frozen=True, slots=True)
class Session:
    """A console session, as its cookie proves it."""

    actor: Actor
    expires_at: int  # Unix seconds
    csrf_token: str
    cookie: str

    def to_json(self) -> dict[str, Any]:
        return {"role": self.actor.role, "name": self.actor.name,
                "token_id": self.actor.token_id, "expires_at": _iso(self.expires_at),
                "csrf_token": self.csrf_token}


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    role: str
    name: str | None
    session_key: bytes  # signs this token's sessions; derived, so every replica has it


class TokenTable:
    """The configured tokens, kept as digests (and the keys that sign their sessions)."""

    def __init__(self, tokens: tuple[AdminToken, ...]) -> None:
        self._entries = tuple(
            _Entry(_digest(t.token), t.role, t.name,
                   hmac.new(_digest(t.token), _SESSION_CONTEXT, hashlib.sha256).digest())
            for t in tokens)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def authenticate(self, token: str | None) -> Actor:
        """The actor this token speaks for; `ApiError` 401 if none."""
        return _actor(self._match(token))

    def _match(self, token: str | None) -> _Entry:
        if not self._entries:
            raise _unauthenticated("the admin API is disabled: no admin token is configured; "
                                   "set HARBOURGATE_ADMIN_TOKEN (16+ characters) or "
                                   "admin_tokens in the config, then restart")
        if not token:
            raise _unauthenticated("missing admin token; send Authorization: Bearer TOKEN")
        given = _digest(token)
        found: _Entry | None = None
        for entry in self._entries:
            if hmac.compare_digest(given, entry.digest) and found is None:
                found = entry
        if found is None:
            raise _unauthenticated("unknown admin token")
        return found

    def open_session(self, token: str | None, *, now: float | None = None,
                     ttl_s: int = SESSION_TTL_S) -> Session:
        """Sign in: a new session for this token (`ApiError` 401 if it is not one)."""
        entry = self._match(token)
        expires = int(now if now is not None else time.time()) + ttl_s
        payload = _b64(json.dumps({"t": entry.digest.hex()[:16], "e": expires,
                                   "n": secrets.token_hex(8)}, separators=(",", ":")).encode())
        signature = _b64(hmac.new(entry.session_key, payload.encode(), hashlib.sha256).digest())
        return self._session(entry, f"{payload}.{signature}", expires)

    def session(self, cookie: str, *, now: float | None = None) -> Session:
        """The session a cookie proves; `ApiError` 401 when it is forged, stale or expired."""
        payload, _, signature = cookie.partition(".")
        try:
            claims = json.loads(_unb64(payload))
            token_id, expires = claims["t"], claims["e"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            token_id = expires = None
        if not isinstance(token_id, str) or type(expires) is not int:
            raise _no_session("the console session cookie is malformed; sign in again")
        given = signature.encode("utf-8", "replace")
        found: _Entry | None = None
        for entry in self._entries:  # the signature as text: one spelling only is valid
            expected = _b64(hmac.new(entry.session_key, payload.encode("utf-8", "replace"),
                                     hashlib.sha256).digest()).encode()
            if (hmac.compare_digest(given, expected) and entry.digest.hex()[:16] == token_id
                    and found is None):
                found = entry
        if found is None:
            raise _no_session("the console session is not valid (its token is no longer "
                              "configured, or the cookie was altered); sign in again")
        if expires <= (now if now is not None else time.time()):
            raise _no_session("the console session has expired; sign in again",
                              code="session_expired")
        return self._session(found, cookie, expires)

    @staticmethod
    def _session(entry: _Entry, cookie: str, expires: int) -> Session:
        csrf = _b64(hmac.new(entry.session_key, b"csrf\0" + cookie.encode(),
                             hashlib.sha256).digest())
        return Session(actor=_actor(entry, via="console"), expires_at=expires,
                       csrf_token=csrf, cookie=cookie)


class RoleGuard:
    """A route dependency: authenticate, then require one of `roles`."""

    def __init__(self, *roles: str) -> None:
        self.roles = frozenset(roles)

    def __call__(self, request: Request,
                 _credentials: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(_bearer)] = None,
                 _cookie: Annotated[str | None, Depends(_session_cookie)] = None) -> Actor:
        return self.check(request)

    def check(self, request: Request) -> Actor:
        actor = authenticate(request)
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
            guard.check(request)


def authenticate(request: Request) -> Actor:
    """The caller: its bearer token, or else its console session (whose changes must
    carry the CSRF token); `ApiError` 401/403 otherwise."""
    table = tokens_of(request)
    token = _bearer_token(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if token is not None or not cookie:
        return table.authenticate(token)
    session = table.session(cookie)
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent:
            raise ApiError(403, "csrf_failed", "a console change must carry the session's "
                           "CSRF token in the X-CSRF-Token header; it is missing")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise ApiError(403, "csrf_failed", "the X-CSRF-Token header does not match this "
                           "console session; reload the console")
    request.state.session = session
    return session.actor


def _actor(entry: _Entry, via: str = "token") -> Actor:
    return Actor(role=entry.role, token_id=entry.digest.hex()[:12], name=entry.name, via=via)


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "invalid_admin_token", message, headers={"WWW-Authenticate": "Bearer"})


def _no_session(message: str, code: str = "invalid_session") -> ApiError:
    return ApiError(401, code, message)


__all__ = ["AUDITOR", "CSRF_HEADER", "OPERATOR", "SESSION_COOKIE", "SESSION_TTL_S", "Actor",
           "Operator", "Reader", "RoleGuard", "Services", "Session", "TokenTable",
           "authenticate", "authorize_route", "requires", "services_of"]
