"""Who is asking: a system by its API key, or a person by their session cookie."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from accord.errors import NotAllowed, NotAuthenticated
from accord.govern import identity
from accord.govern.permissions import Actor
from accord.store.engine import writing
from accord.workspace import Workspace

SESSION_COOKIE = "accord_session"
CSRF_COOKIE = "accord_csrf"
CSRF_FIELD = "csrf_token"


def workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.workspace
    return ws


def read_connection(ws: Annotated[Workspace, Depends(workspace)]) -> Iterator[Connection]:
    with ws.engine.connect() as conn:
        yield conn


def current_actor(request: Request, ws: Annotated[Workspace, Depends(workspace)]) -> Actor:
    """The authenticated actor; raises NotAuthenticated (401, or a redirect to sign-in)."""
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if not key and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    with writing(ws.engine) as conn:  # a session slides forward as it is used
        if key:
            return identity.actor_for_api_key(conn, key)
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            return identity.actor_for_session(conn, token)
    raise NotAuthenticated("sign in, or send an API key in X-API-Key")


def check_csrf(request: Request, submitted: str | None) -> None:
    """Double-submit check for forms: the hidden field must equal the CSRF cookie."""
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not submitted or not secrets.compare_digest(expected, submitted):
        raise NotAllowed("the form expired or did not come from this site; reload and retry")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


ActorDep = Annotated[Actor, Depends(current_actor)]
ConnDep = Annotated[Connection, Depends(read_connection)]
