"""`/admin/v1/session`: the console signs in with an admin token and holds a session.

The token is sent once, in the body; the answer sets the session cookie (HttpOnly,
SameSite=Strict, limited to /admin/) and gives the CSRF token the page must echo in
`X-CSRF-Token` on every change. Signing in and out are audit entries naming the holder.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from harbourgate.admin.auth import (
    SESSION_COOKIE,
    SESSION_TTL_S,
    Reader,
    Services,
    Session,
    authenticate,
    tokens_of,
)
from harbourgate.admin.errors import ApiError
from harbourgate.admin.services import AdminServices

router = APIRouter(tags=["session"])

COOKIE_PATH = "/admin/"


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=4096, description="an admin token")


class SessionOut(BaseModel):
    role: str
    name: str | None
    token_id: str
    expires_at: str
    csrf_token: str = Field(description="send it back in X-CSRF-Token on every change")


@router.post("/admin/v1/session", response_model=SessionOut)
def sign_in(body: SignIn, request: Request, response: Response,
            services: Services) -> dict[str, Any]:
    """Exchange an admin token for a console session (cookie + CSRF token)."""
    session = tokens_of(request).open_session(body.token)
    response.set_cookie(SESSION_COOKIE, session.cookie, max_age=SESSION_TTL_S, path=COOKIE_PATH,
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    response.headers["Cache-Control"] = "no-store"
    _audit(services, "console.sign_in", {"actor": session.actor.as_details(),
                                          "expires_at": session.to_json()["expires_at"]})
    return session.to_json()


@router.get("/admin/v1/session", response_model=SessionOut)
def show_session(actor: Reader, request: Request, response: Response) -> dict[str, Any]:
    """The session this cookie proves: who, which role, until when, its CSRF token."""
    session: Session | None = getattr(request.state, "session", None)
    if session is None:
        raise ApiError(400, "invalid_request", f"{actor.role} token sent as a bearer token: "
                       "sessions are for the console; sign in with POST /admin/v1/session")
    response.headers["Cache-Control"] = "no-store"
    return session.to_json()


@router.delete("/admin/v1/session")
def sign_out(request: Request, response: Response, services: Services) -> dict[str, bool]:
    """Sign out: the cookie is cleared whatever its state; a valid session's sign-out
    (with its CSRF token) is audited."""
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True,
                           samesite="strict", secure=request.url.scheme == "https")
    if request.cookies.get(SESSION_COOKIE):
        try:
            actor = authenticate(request)
        except ApiError:
            return {"signed_out": True}
        _audit(services, "console.sign_out", {"actor": actor.as_details()})
    return {"signed_out": True}


def _audit(services: AdminServices, action: str, details: dict[str, Any]) -> None:
    """Record a sign-in or sign-out: it changes no state, so there is nothing to reload."""
    with services.store.transaction() as conn:
        services.record(conn, action, details)
