"""The customer page: one golden customer, its values with their lineage, its member
records."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from accord.golden import customers
from accord.web.auth import ConnDep
from accord.web.pages.common import render
from accord.web.pages.customers import Reader

router = APIRouter(include_in_schema=False)


@router.get("/customers/{golden_id}")
def customer_page(request: Request, golden_id: str, actor: Reader, conn: ConnDep) -> Response:
    customer = customers.get(conn, actor, golden_id)
    if customer["status"] == "merged" and customer["merged_into"]:
        return RedirectResponse(f"/customers/{customer['merged_into']}", status_code=303)
    return render(request, "customer.html", {"actor": actor, "customer": customer})
