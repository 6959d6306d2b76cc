"""Customer search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from accord.golden import customers
from accord.govern.permissions import Actor, Permission
from accord.web.auth import ConnDep, needs
from accord.web.pages.common import PAGE_SIZE, render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, needs(Permission.CUSTOMERS_READ)]


@router.get("/customers")
def customer_list(
    request: Request,
    actor: Reader,
    conn: ConnDep,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    result = customers.search(conn, actor, q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    context = {"actor": actor, "q": q, "page": page, "result": result, "page_size": PAGE_SIZE}
    # htmx asks for the rows only while the user types in the search box
    name = "_customer_rows.html" if request.headers.get("hx-request") else "customers.html"
    return render(request, name, context)
