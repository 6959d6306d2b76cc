"""Server-rendered pages (Jinja2 + htmx), one module an area. Every page but sign-in
declares the permission it needs (`accord.web.auth.needs`)."""

from __future__ import annotations

from fastapi import APIRouter

from accord.web.pages import account, customer, customers, session, users
from accord.web.pages.common import render_error

router = APIRouter(include_in_schema=False)
for module in (session, customers, customer, account, users):
    router.include_router(module.router)

__all__ = ["render_error", "router"]
