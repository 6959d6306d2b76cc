"""Signing in and out. Signing in is the password, then, for someone with a second
factor, a code (`/login/code`); someone whose role requires a second factor they have
not set up sets one up before anything else (`/login/enrol`). Between the steps the
browser holds a pending sign-in (a cookie for the /login pages, minutes long)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accord.errors import NotAuthenticated, RateLimited
from accord.govern import identity, mfa
from accord.govern.identity import Pending, Purpose, SignInEnded
from accord.govern.permissions import Actor
from accord.web.api import set_session_cookie
from accord.web.auth import ActorDep, end_session, workspace
from accord.web.pages.common import render, safe_next
from accord.web.sign_in import (
    PENDING_COOKIE,
    end_pending,
    mfa_roles,
    set_pending_cookie,
    throttled,
)
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)
WorkspaceDep = Annotated[Workspace, Depends(workspace)]
Next = Annotated[str, Form(max_length=500)]
Code = Annotated[str, Form(max_length=32)]
SESSION_ENDED = "Your session ended. Sign in again to continue."
STEP_PAGE = {Purpose.VERIFY: "/login/code", Purpose.ENROL: "/login/enrol"}


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/customers", status_code=303)


@router.get("/login")
def login_page(
    request: Request,
    next: str = "/customers",  # noqa: A002
    ended: bool = False,
) -> HTMLResponse:
    notice = SESSION_ENDED if ended else None
    return _login_form(request, next, notice=notice)


@router.post("/login")
def login(
    request: Request,
    ws: WorkspaceDep,
    username: Annotated[str, Form(max_length=150)],
    password: Annotated[str, Form(max_length=1024)],
    next: Next = "/customers",  # noqa: A002
) -> Response:
    try:
        with throttled(request, username):
            outcome = identity.begin_sign_in(ws.engine, username, password, mfa_roles=mfa_roles(ws))
    except RateLimited as exc:
        return _throttled(request, exc, _login_form, next, username=username)
    except NotAuthenticated as exc:
        return _login_form(request, next, error=exc.message, username=username, status=401)
    if isinstance(outcome, Pending):
        response = RedirectResponse(_with_next(STEP_PAGE[outcome.purpose], next), 303)
        set_pending_cookie(response, outcome, secure=ws.settings.secure_cookies)
        return response
    _, session = outcome
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, session.token, secure=ws.settings.secure_cookies)
    return response


@router.get("/login/code")
def code_page(request: Request, ws: WorkspaceDep, next: str = "/customers") -> Response:  # noqa: A002
    try:
        _pending(request, ws, Purpose.VERIFY)
    except NotAuthenticated as exc:
        return _login_form(request, next, error=exc.message)
    return _code_form(request, next)


@router.post("/login/code")
def enter_code(
    request: Request,
    ws: WorkspaceDep,
    code: Code,
    next: Next = "/customers",  # noqa: A002
) -> Response:
    token = request.cookies.get(PENDING_COOKIE, "")
    try:
        pending = _pending(request, ws, Purpose.VERIFY)
        with throttled(request, pending.username):
            _, session = identity.finish_sign_in(ws.engine, token, code)
    except RateLimited as exc:
        return _throttled(request, exc, _code_form, next)
    except SignInEnded as exc:
        ended = _login_form(request, next, error=exc.message, status=401)
        end_pending(ended)
        return ended
    except NotAuthenticated as exc:
        return _code_form(request, next, error=exc.message, status=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    end_pending(response)
    set_session_cookie(response, session.token, secure=ws.settings.secure_cookies)
    return response


@router.get("/login/enrol")
def enrol_page(request: Request, ws: WorkspaceDep, next: str = "/customers") -> Response:  # noqa: A002
    try:
        pending = _pending(request, ws, Purpose.ENROL)
    except NotAuthenticated as exc:
        return _login_form(request, next, error=exc.message)
    return _enrol_form(request, pending, next)


@router.post("/login/enrol")
def confirm_enrolment(
    request: Request,
    ws: WorkspaceDep,
    code: Code,
    next: Next = "/customers",  # noqa: A002
) -> Response:
    token = request.cookies.get(PENDING_COOKIE, "")
    try:
        pending = _pending(request, ws, Purpose.ENROL)
    except NotAuthenticated as exc:
        return _login_form(request, next, error=exc.message, status=401)
    try:
        with throttled(request, pending.username):
            actor, session, codes = identity.finish_enrolment(ws.engine, token, code)
    except RateLimited as exc:
        return _throttled(request, exc, _enrol_form, pending, next)
    except SignInEnded as exc:
        return _login_form(request, next, error=exc.message, status=401)
    except NotAuthenticated as exc:
        return _enrol_form(request, pending, next, error=exc.message, status=401)
    response = _recovery_codes(request, actor, codes, safe_next(next))
    end_pending(response)
    set_session_cookie(response, session.token, secure=ws.settings.secure_cookies)
    return response


@router.post("/logout")
def logout(
    request: Request,
    actor: ActorDep,
    ws: WorkspaceDep,
) -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    end_session(request, response, ws, actor)
    return response


def enrolment_context(pending: Pending) -> dict[str, Any]:
    """What the set-up form shows of a new secret: its QR code and its text."""
    secret = pending.secret or ""
    uri = mfa.provisioning_uri(secret, pending.username)
    return {
        "qr": mfa.qr_data_uri(uri),
        "secret": mfa.grouped(secret),
        "expires_at": pending.expires_at,
    }


def _pending(request: Request, ws: Workspace, purpose: Purpose) -> Pending:
    with ws.engine.connect() as conn:
        return identity.pending(conn, request.cookies.get(PENDING_COOKIE, ""), purpose)


def _with_next(page: str, target: str) -> str:
    return f"{page}?next={quote(safe_next(target), safe='/')}"


def _login_form(
    request: Request,
    next: str,  # noqa: A002
    *,
    error: str | None = None,
    notice: str | None = None,
    username: str = "",
    status: int = 200,
) -> HTMLResponse:
    context = {"next": safe_next(next), "error": error, "notice": notice, "username": username}
    return render(request, "login.html", context, status_code=status)


def _code_form(
    request: Request,
    next: str,  # noqa: A002
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = {"next": safe_next(next), "error": error}
    return render(request, "login_code.html", context, status_code=status)


def _enrol_form(
    request: Request,
    pending: Pending,
    next: str,  # noqa: A002
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = enrolment_context(pending) | {
        "action": "/login/enrol",
        "next": safe_next(next),
        "error": error,
        "required": True,
    }
    return render(request, "mfa_enrol.html", context, status_code=status)


def _recovery_codes(
    request: Request, actor: Actor, codes: tuple[str, ...], target: str
) -> HTMLResponse:
    context = {"actor": actor, "codes": codes, "continue_to": target}
    return render(request, "mfa_recovery.html", context)


def _throttled(
    request: Request, exc: RateLimited, form: Any, *args: Any, **kwargs: Any
) -> Response:
    """The form again, saying how long to wait, with 429 and Retry-After."""
    wait = f"Too many failed attempts. Try again in about {_duration(exc.retry_after)}."
    response: Response = form(request, *args, error=wait, status=429, **kwargs)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{round(seconds / 60)} minutes"
