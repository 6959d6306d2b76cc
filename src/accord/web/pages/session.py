"""Signing in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accord.errors import NotAuthenticated
from accord.govern import identity
from accord.store.engine import writing
from accord.web.api import set_session_cookie
from accord.web.auth import ActorDep, check_csrf, end_session, workspace
from accord.web.pages.common import render, safe_next
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/customers", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "/customers") -> HTMLResponse:  # noqa: A002
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    ws: Annotated[Workspace, Depends(workspace)],
    username: Annotated[str, Form(max_length=150)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/customers",  # noqa: A002
) -> Response:
    check_csrf(request, csrf_token)
    try:
        with writing(ws.engine) as conn:
            _, session = identity.sign_in(conn, username, password)
    except NotAuthenticated as exc:
        context = {"next": safe_next(next), "error": exc.message, "username": username}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, session.token, secure=ws.settings.secure_cookies)
    return response


@router.post("/logout")
def logout(
    request: Request,
    actor: ActorDep,
    ws: Annotated[Workspace, Depends(workspace)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> RedirectResponse:
    check_csrf(request, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    end_session(request, response, ws, actor)
    return response
