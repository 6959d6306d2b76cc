"""Users and roles (administrators): every user with their role, state, second factor
and last sign-in; create one, change a role, deactivate or reactivate, reset a lost
second factor. Each change is a form of its own, posted with the CSRF token."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accord.errors import Conflict, InputRejected, NotFound
from accord.govern import users
from accord.govern.permissions import Actor, Permission, Role
from accord.store.engine import writing
from accord.web.auth import needs, workspace
from accord.web.errors import status_of
from accord.web.pages.common import render
from accord.web.sign_in import mfa_roles
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)
Admin = Annotated[Actor, needs(Permission.USERS_MANAGE)]
WorkspaceDep = Annotated[Workspace, Depends(workspace)]
Username = Annotated[str, Form(max_length=150)]
DONE = {
    "created": "Created {user}.",
    "role": "Changed the role of {user}.",
    "deactivated": "Deactivated {user}; their sessions have ended.",
    "reactivated": "Reactivated {user}.",
    "mfa_reset": "Reset the two-step sign-in of {user}; their sessions have ended.",
}


@router.get("/users")
def users_page(
    request: Request, actor: Admin, ws: WorkspaceDep, done: str = "", user: str = ""
) -> HTMLResponse:
    notice = DONE[done].format(user=user) if done in DONE and user else None
    return _page(request, actor, ws, notice=notice)


@router.post("/users")
def create_user(
    request: Request,
    actor: Admin,
    ws: WorkspaceDep,
    username: Username,
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=32)],
) -> Response:
    try:
        with writing(ws.engine) as conn:
            users.create(conn, actor, username, password, _role(role))
    except (InputRejected, Conflict) as exc:
        form = {"username": username, "role": role}
        return _page(request, actor, ws, error=exc.message, form=form, status=status_of(exc))
    return _done("created", username.strip())


@router.post("/users/role")
def change_role(
    request: Request,
    actor: Admin,
    ws: WorkspaceDep,
    username: Username,
    role: Annotated[str, Form(max_length=32)],
) -> Response:
    try:
        with writing(ws.engine) as conn:
            users.change_role(conn, actor, username, _role(role), mfa_roles=mfa_roles(ws))
    except (InputRejected, Conflict, NotFound) as exc:
        return _page(request, actor, ws, error=exc.message, status=status_of(exc))
    return _done("role", username)


@router.post("/users/active")
def set_active(
    request: Request,
    actor: Admin,
    ws: WorkspaceDep,
    username: Username,
    active: Annotated[bool, Form()],
) -> Response:
    try:
        with writing(ws.engine) as conn:
            users.set_active(conn, actor, username, active=active)
    except (Conflict, NotFound) as exc:
        return _page(request, actor, ws, error=exc.message, status=status_of(exc))
    return _done("reactivated" if active else "deactivated", username)


@router.post("/users/mfa-reset")
def reset_mfa(
    request: Request,
    actor: Admin,
    ws: WorkspaceDep,
    username: Username,
) -> Response:
    try:
        with writing(ws.engine) as conn:
            users.reset_mfa(conn, actor, username)
    except (Conflict, NotFound) as exc:
        return _page(request, actor, ws, error=exc.message, status=status_of(exc))
    return _done("mfa_reset", username)


def _page(
    request: Request,
    actor: Actor,
    ws: Workspace,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    with ws.engine.connect() as conn:
        listed = users.list_users(conn, actor)
    context: dict[str, Any] = {
        "actor": actor,
        "users": listed,
        "roles": [str(role) for role in users.PERSON_ROLES],
        "mfa_required": {str(role) for role in mfa_roles(ws)},
        "notice": notice,
        "error": error,
        "form": form or {"username": "", "role": str(Role.VIEWER)},
    }
    return render(request, "users.html", context, status_code=status)


def _role(value: str) -> Role:
    if value not in {str(role) for role in users.PERSON_ROLES}:
        raise InputRejected(f"{value!r} is not a role a person holds")
    return Role(value)


def _done(what: str, username: str) -> RedirectResponse:
    return RedirectResponse(f"/users?{urlencode({'done': what, 'user': username})}", 303)
