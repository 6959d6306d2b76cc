"""Accord's errors as HTTP responses, in one place."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError

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
from accord.web.params import NUL_REFUSED

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


log = logging.getLogger(__name__)


class ProblemOut(BaseModel):
    where: str = Field(description="the part of the request: query.limit, body.records.3, ...")
    message: str


class ErrorOut(BaseModel):
    """Every error of the API has this shape."""

    error: str = Field(
        description="the kind: NotAuthenticated, NotAllowed, NotFound, Conflict, TooLarge, "
        "InputRejected, RateLimited, Overloaded"
    )
    message: str = Field(description="what is wrong, for a person")
    hint: str | None = Field(default=None, description="what to do about it")
    problems: list[ProblemOut] | None = Field(
        default=None, description="each part of the request that is not valid (422 only)"
    )


def _described(text: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": text}


# Documented on every API route, so clients (and schemathesis) know each answer's shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _described("not signed in, or an unknown or revoked API key"),
    403: _described("signed in, but without the permission the route needs"),
    404: _described("no such thing, or not one this actor may see"),
    409: _described("in conflict with the current state"),
    413: _described("the request is larger than allowed"),
    422: _described("the request is not valid; `problems` says where"),
    429: _described("over the rate limit; retry after Retry-After seconds"),
    503: _described("too busy (matching backlog); retry after Retry-After seconds"),
}


MACHINE_PATHS = ("/openapi.json", "/metrics")  # read by programs: JSON errors, never a page


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.url.path not in MACHINE_PATHS


def status_of(exc: AccordError) -> int:
    """The HTTP status of an Accord error (500 for one no status is given to)."""
    return next((status for kind, status in STATUS.items() if isinstance(exc, kind)), 500)


def _where(location: Any) -> str:
    return ".".join(str(part) for part in location)


def nul_refused(request: Request) -> Response | None:
    """A 422 for a request whose address holds NUL (`%00`), which no store keeps; None
    for any other. Checked before routing, for every route at once."""
    if "\x00" not in request.url.path and b"%00" not in request.scope["query_string"]:
        return None
    return _rejected(
        request, f"the address: {NUL_REFUSED}", [{"where": "query", "message": NUL_REFUSED}]
    )


def _rejected(request: Request, message: str, problems: list[dict[str, str]]) -> Response:
    if wants_html(request):
        from accord.web.pages.common import render_error  # noqa: PLC0415

        return render_error(request, 422, message)
    body = {"error": "InputRejected", "message": message, "problems": problems}
    return JSONResponse(jsonable_encoder(body), status_code=422)


def register(app: FastAPI) -> None:
    @app.exception_handler(DataError)
    def unstorable(request: Request, exc: DataError) -> Response:
        # The last line of defence: a value the database refuses (out of its range, or a
        # character it cannot keep) that no check before it caught. The request changed
        # nothing (its transaction rolled back); the log keeps the database's words.
        log.warning(
            "the store refused a value in %s %s: %s", request.method, request.url.path, exc.orig
        )
        message = (
            "a value in the request is out of range or holds a character the store cannot keep"
        )
        return _rejected(request, message, [{"where": "request", "message": message}])

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"where": _where(error.get("loc", ())), "message": str(error.get("msg", ""))}
            for error in exc.errors()
        ]
        summary = "; ".join(f"{p['where']}: {p['message']}" for p in problems[:5])
        return _rejected(request, f"the request is not valid: {summary}", problems)

    @app.exception_handler(AccordError)
    def handle(request: Request, exc: AccordError) -> Response:
        status = status_of(exc)
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
