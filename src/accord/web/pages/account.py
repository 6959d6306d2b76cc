"""A person's own account: their role and their second factor, which they set up here
(a new secret as a QR code, confirmed with its first code; recovery codes shown once)
or turn off with a current code when their role does not require one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accord.errors import Conflict, InputRejected, NotAllowed, NotAuthenticated
from accord.govern import identity
from accord.govern.identity import Purpose
from accord.govern.permissions import Actor, Permission
from accord.store.engine import writing
from accord.web.auth import needs, workspace
from accord.web.errors import status_of
from accord.web.pages.common import render
from accord.web.pages.session import enrolment_context
from accord.web.sign_in import mfa_roles, throttled
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)
Person = Annotated[Actor, needs(Permission.ACCOUNT_OWN)]
WorkspaceDep = Annotated[Workspace, Depends(workspace)]
Code = Annotated[str, Form(max_length=32)]
DONE = {"off": "Two-step sign-in is off."}
ENDED = "That set-up has ended (it took too long, or had too many wrong codes); start again."


@router.get("/account")
def account_page(request: Request, actor: Person, ws: WorkspaceDep, done: str = "") -> HTMLResponse:
    return _account(request, actor, ws, notice=DONE.get(done))


@router.post("/account/mfa")
def start_enrolment(request: Request, actor: Person, ws: WorkspaceDep) -> HTMLResponse:
    try:
        with writing(ws.engine) as conn:
            pending = identity.start_enrolment(conn, actor)
    except Conflict as exc:
        return _account(request, actor, ws, error=exc.message, status=409)
    return _enrol_form(request, actor, pending)


@router.post("/account/mfa/confirm")
def confirm_enrolment(
    request: Request,
    actor: Person,
    ws: WorkspaceDep,
    token: Annotated[str, Form(max_length=100)],
    code: Code,
) -> Response:
    try:
        with throttled(request, actor.name, failures=(InputRejected,)):
            codes = identity.confirm_enrolment(ws.engine, actor, token, code)
    except InputRejected as exc:
        try:
            with ws.engine.connect() as conn:
                pending = identity.pending(conn, token, Purpose.ACCOUNT)
        except NotAuthenticated:
            return _account(request, actor, ws, error=ENDED, status=409)
        return _enrol_form(request, actor, pending, error=exc.message, status=422)
    except NotAuthenticated:
        return _account(request, actor, ws, error=ENDED, status=409)
    except Conflict as exc:
        return _account(request, actor, ws, error=exc.message, status=409)
    context = {"actor": actor, "codes": codes, "continue_to": "/account"}
    return render(request, "mfa_recovery.html", context)


@router.post("/account/mfa/off")
def turn_off(request: Request, actor: Person, ws: WorkspaceDep, code: Code) -> Response:
    try:
        with throttled(request, actor.name, failures=(InputRejected,)):
            identity.disable_mfa(ws.engine, actor, code, mfa_roles=mfa_roles(ws))
    except (InputRejected, NotAllowed, Conflict) as exc:
        return _account(request, actor, ws, error=exc.message, status=status_of(exc))
    return RedirectResponse("/account?done=off", status_code=303)


def _account(
    request: Request,
    actor: Actor,
    ws: Workspace,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    with ws.engine.connect() as conn:
        mfa = identity.mfa_status(conn, actor.user_id or 0)
    context: dict[str, Any] = {
        "actor": actor,
        "mfa": mfa,
        "required": actor.role in mfa_roles(ws),
        "notice": notice,
        "error": error,
    }
    return render(request, "account.html", context, status_code=status)


def _enrol_form(
    request: Request,
    actor: Actor,
    pending: identity.Pending,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = enrolment_context(pending) | {
        "actor": actor,
        "action": "/account/mfa/confirm",
        "token": pending.token,
        "error": error,
        "required": False,
    }
    return render(request, "mfa_enrol.html", context, status_code=status)
