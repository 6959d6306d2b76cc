"""What every page shares: the templates (autoescaped), rendering with the CSRF token,
and the `can` test templates use to show only what the signed-in person may use."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from accord.govern.permissions import Actor, Permission, allowed
from accord.web.auth import CSRF_COOKIE, new_csrf_token

templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
PAGE_SIZE = 50


def can(actor: Actor | None, permission: str) -> bool:
    """In templates: `{% if can(actor, "matches:decide") %}`. Only hides what the route
    refuses anyway: the route's own permission check is the one that counts."""
    return actor is not None and allowed(actor, Permission(permission))


templates.env.globals["can"] = can


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


def safe_next(target: str) -> str:
    """Only local paths: never redirect a signed-in user to another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/customers"
    return target
