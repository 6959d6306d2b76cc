"""Who is asking: a system by its API key, or a person by their session cookie."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from sqlalchemy import Connection

from accord.errors import NotAllowed, NotAuthenticated
from accord.govern import identity
from accord.govern.permissions import Actor, Permission, require
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
    """The authenticated actor; raises NotAuthenticated (401, or a redirect to sign-in).
    Checking is a read; only a session due to slide forward costs a write."""
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if not key and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    token = request.cookies.get(SESSION_COOKIE)
    if not key and not token:
        raise NotAuthenticated("sign in, or send an API key in X-API-Key")
    with ws.engine.connect() as conn:
        if key:
            return identity.actor_for_api_key(conn, key)
        check = identity.check_session(conn, token or "")
    if check.needs_touch:
        with writing(ws.engine) as conn:
            identity.touch_session(conn, token or "")
    return check.actor


def end_session(request: Request, response: Response, ws: Workspace, actor: Actor) -> None:
    """Sign out: delete the session behind the cookie, and the cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with writing(ws.engine) as conn:
            identity.sign_out(conn, token, actor=actor)
    response.delete_cookie(SESSION_COOKIE)


def check_csrf(request: Request, submitted: str | None) -> None:
    """Double-submit check for forms: the hidden field must equal the CSRF cookie."""
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not submitted or not secrets.compare_digest(expected, submitted):
        raise NotAllowed("the form expired or did not come from this site; reload and retry")


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def csrf_protected(request: Request) -> None:
    """Every page route's guard: a request that could change something carries the CSRF
    token, as the form field or (htmx) the X-CSRF-Token header. Runs before the route's
    own checks and before its form is validated, so no form is ever acted on without it."""
    if request.method not in UNSAFE_METHODS:
        return
    submitted = request.headers.get("x-csrf-token")
    if submitted is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    check_csrf(request, submitted)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


class Needs:
    """A route's declared permission, as a dependency: the actor, if they hold it.
    Routes say `actor: Annotated[Actor, needs(Permission.X)]`; a test walks the app's
    routes and checks that each one but sign-in and health declares one."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        require(actor, self.permission)
        return actor


def needs(permission: Permission) -> Any:
    return Depends(Needs(permission))


ActorDep = Annotated[Actor, Depends(current_actor)]
ConnDep = Annotated[Connection, Depends(read_connection)]
