"""Server-rendered pages (Jinja2 + htmx), one module an area. Every page but sign-in
declares the permission it needs (`accord.web.auth.needs`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from accord.web.auth import csrf_protected
from accord.web.pages import (
    account,
    audit,
    customer,
    customers,
    health,
    quarantine,
    review,
    session,
    users,
)
from accord.web.pages.common import render_error

# every form of every page is checked for its CSRF token (`auth.csrf_protected`)
router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protected)])
for module in (session, account, users, customers, customer, review, quarantine, health, audit):
    router.include_router(module.router)

__all__ = ["render_error", "router"]
