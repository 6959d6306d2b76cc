"""Server-rendered pages (Jinja2 + htmx). Autoescaping is on for every template."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from accord.errors import NotAuthenticated
from accord.golden import customers
from accord.govern import identity
from accord.store.engine import writing
from accord.web.api import set_session_cookie
from accord.web.auth import (
    CSRF_COOKIE,
    ActorDep,
    ConnDep,
    check_csrf,
    end_session,
    new_csrf_token,
    workspace,
)
from accord.workspace import Workspace

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    response = templates.TemplateResponse(
        request, name, context | {"csrf_token": token}, status_code=status_code
    )
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
    return response


def render_error(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", {"status": status, "message": message}, status)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/customers", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "/customers") -> HTMLResponse:  # noqa: A002
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


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
        context = {"next": _safe_next(next), "error": exc.message, "username": username}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
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


@router.get("/customers")
def customer_list(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    result = customers.search(conn, actor, q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    context = {"actor": actor, "q": q, "page": page, "result": result, "page_size": PAGE_SIZE}
    # htmx asks for the rows only while the user types in the search box
    name = "_customer_rows.html" if request.headers.get("hx-request") else "customers.html"
    return render(request, name, context)


@router.get("/customers/{golden_id}")
def customer_page(request: Request, golden_id: str, actor: ActorDep, conn: ConnDep) -> Response:
    customer = customers.get(conn, actor, golden_id)
    if customer["status"] == "merged" and customer["merged_into"]:
        return RedirectResponse(f"/customers/{customer['merged_into']}", status_code=303)
    return render(request, "customer.html", {"actor": actor, "customer": customer})


def _safe_next(target: str) -> str:
    """Only local paths: never redirect a signed-in user to another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/customers"
    return target
