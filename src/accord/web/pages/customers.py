"""Customer search: text, typo-tolerant, narrowed by system, country and status."""

from __future__ import annotations

from functools import cache
from typing import Annotated
from urllib.parse import urlencode

import pycountry
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from accord.golden import customers
from accord.govern.permissions import Actor, Permission
from accord.store.search import COUNT_CAP, STATUSES
from accord.web.auth import ConnDep, needs, workspace
from accord.web.pages.common import PAGE_SIZE, render, render_error
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, needs(Permission.CUSTOMERS_READ)]


@router.get("/customers")
def customer_list(
    request: Request,
    actor: Reader,
    conn: ConnDep,
    ws: Annotated[Workspace, Depends(workspace)],
    q: Annotated[str, Query(max_length=200)] = "",
    system: Annotated[str, Query(max_length=64)] = "",
    country: Annotated[str, Query(max_length=2)] = "",
    status: Annotated[str, Query(max_length=16)] = "active",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    systems = sorted(ws.project.config.systems)
    problem = _unknown_filter(systems, system, country.upper(), status)
    if problem:
        return render_error(request, 422, problem)
    result = customers.search(
        conn,
        actor,
        q,
        system=system,
        country=country,
        status=status,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    chosen = {"q": q, "system": system, "country": country.upper(), "status": status}
    context = {
        "actor": actor,
        **chosen,
        "page": page,
        "result": result,
        "count_cap": COUNT_CAP,
        "systems": systems,
        "countries": countries(),
        "statuses": STATUSES,
        "previous_url": _page_url(chosen, page - 1) if page > 1 else None,
        "next_url": _page_url(chosen, page + 1) if _has_next(result, page) else None,
    }
    # htmx asks for the rows only while the user types or picks a filter
    name = "_customer_rows.html" if request.headers.get("hx-request") else "customers.html"
    return render(request, name, context)


@cache
def countries() -> list[tuple[str, str]]:
    """(ISO 3166 alpha-2 code, name) of every country, by name."""
    return sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda c: c[1])


def _unknown_filter(systems: list[str], system: str, country: str, status: str) -> str | None:
    if system and system not in systems:
        return f"there is no system {system!r} in this project"
    if country and country not in {code for code, _ in countries()}:
        return f"{country!r} is not an ISO 3166 country code"
    if status not in STATUSES:
        return f"status must be one of {', '.join(STATUSES)}"
    return None


def _has_next(result: customers.CustomerPage, page: int) -> bool:
    if result.more:  # counted to the cap only: a full page may have more after it
        return len(result.items) == PAGE_SIZE
    return page * PAGE_SIZE < result.total


def _page_url(chosen: dict[str, str], page: int) -> str:
    params = {k: v for k, v in chosen.items() if v and not (k == "status" and v == "active")}
    return "/customers?" + urlencode(params | {"page": page})
