"""Accord's errors as HTTP responses, in one place."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from accord.errors import (
    AccordError,
    Busy,
    Conflict,
    InputRejected,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    Overloaded,
    ProjectInvalid,
    RateLimited,
    TooLarge,
)
from accord.web.auth import SESSION_COOKIE

STATUS: dict[type[AccordError], int] = {
    NotAuthenticated: 401,
    NotAllowed: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,  # before InputRejected, which it is a kind of
    InputRejected: 422,
    RateLimited: 429,
    Overloaded: 503,
    ProjectInvalid: 500,
}


MACHINE_PATHS = ("/openapi.json", "/metrics")  # read by programs: JSON errors, never a page


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.url.path not in MACHINE_PATHS


def register(app: FastAPI) -> None:
    @app.exception_handler(AccordError)
    def handle(request: Request, exc: AccordError) -> Response:
        status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), 500)
        if wants_html(request):
            if status == 401:
                return _to_sign_in(request)
            from accord.web.pages.common import render_error  # noqa: PLC0415

            return render_error(request, status, exc.message)
        body: dict[str, str] = {"error": type(exc).__name__, "message": exc.message}
        if exc.hint:
            body["hint"] = exc.hint
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if isinstance(exc, Busy):
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse(body, status_code=status, headers=headers)


def _to_sign_in(request: Request) -> Response:
    """To the sign-in page, coming back here afterwards. A session cookie that no longer
    works (idle too long, past its limit, signed out elsewhere, deactivated) is dropped,
    and the page says the session ended."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"/login?next={quote(here, safe='/')}"
    ended = SESSION_COOKIE in request.cookies
    response = RedirectResponse(target + ("&ended=1" if ended else ""), status_code=303)
    if ended:
        response.delete_cookie(SESSION_COOKIE)
    return response
