"""The FastAPI application: routes, static assets, security headers, error mapping."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from accord.govern.throttle import SignInThrottle
from accord.runtime.admission import Admission
from accord.runtime.heap import freeze_once
from accord.web import api, errors, metrics, pages, quarantine, webhooks
from accord.web.auth import ActorDep
from accord.workspace import Workspace, open_workspace

STATIC = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = errors.nul_refused(request) or await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    # what the process holds once started is kept out of the full garbage collections
    # (`runtime/heap.py`: they made the slowest push requests twice as slow)
    freeze_once()
    yield


def create_app(workspace: Workspace) -> FastAPI:
    app = FastAPI(
        title="Accord",
        summary="The customer hub: golden records with lineage, from every system.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind authentication
        lifespan=_lifespan,
    )
    app.state.workspace = workspace
    app.state.admission = Admission(workspace.settings)
    app.state.sign_in_throttle = SignInThrottle(workspace.settings)
    errors.register(app)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(quarantine.router)
    app.include_router(webhooks.router)
    app.include_router(metrics.router)
    app.include_router(pages.router)

    @app.get("/health", tags=["operations"])
    def health() -> JSONResponse:
        """Liveness and database reachability; the one route open without sign-in."""
        try:
            with workspace.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001  (any failure means: not healthy)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: ActorDep) -> dict[str, Any]:
        return app.openapi()

    return app


PROJECT_VARIABLE = "ACCORD_PROJECT_DIR"


def app_from_environment() -> FastAPI:
    """The app of the project named by ACCORD_PROJECT_DIR: what each process of a server
    with several (`accord serve --processes N`) builds for itself."""
    directory = os.environ.get(PROJECT_VARIABLE)
    if not directory:
        raise RuntimeError(f"{PROJECT_VARIABLE} names no project folder")
    workspace = open_workspace(Path(directory))
    workspace.project  # noqa: B018  (read the project before taking requests)
    return create_app(workspace)
