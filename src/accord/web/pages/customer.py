"""The customer 360: one golden customer, its values with their lineage, its member
records by system, its linked orders, invoices and tickets, its relationships, a
timeline of its changes, and splitting a member record out (unmerge)."""

from __future__ import annotations

from itertools import groupby
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from accord.errors import AccordError, InputRejected, NotFound
from accord.golden import customers
from accord.golden.timeline import timeline
from accord.govern.permissions import Actor, Permission, allowed
from accord.linked import service as linked
from accord.steward import service as steward
from accord.store.engine import writing
from accord.web.auth import ConnDep, needs, workspace
from accord.web.pages.common import render
from accord.web.pages.customers import Reader
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)
Decider = Annotated[Actor, needs(Permission.MATCHES_DECIDE)]
RECENT = 5  # linked records shown per kind
TIMELINE_PAGE = 15
# (relationship type, direction from this customer) -> what the other customer is to it
RELATION_HEADINGS = {
    ("contact_of", "outgoing"): "Contact of",
    ("contact_of", "incoming"): "Contacts",
    ("subsidiary_of", "outgoing"): "Parent company",
    ("subsidiary_of", "incoming"): "Subsidiaries",
}


@router.get("/customers/{golden_id}")
def customer_page(
    request: Request, golden_id: str, actor: Reader, conn: ConnDep, split_out: str = ""
) -> Response:
    customer = customers.get(conn, actor, golden_id)
    if customer["status"] == "merged" and customer["merged_into"]:
        query = f"?{urlencode({'split_out': split_out})}" if split_out else ""
        return RedirectResponse(f"/customers/{customer['merged_into']}{query}", status_code=303)
    active = customer["status"] == "active"
    context = {
        "actor": actor,
        "customer": customer,
        "members_by_system": _by_system(customer["members"]),
        "linked": linked.summary_of_customer(conn, actor, golden_id, recent=RECENT)
        if active
        else None,
        "relations": _relations(customer["relationships"]),
        "timeline": timeline(conn, actor, golden_id, limit=TIMELINE_PAGE),
        "split": _split_result(conn, actor, split_out),
    }
    return render(request, "customer.html", context)


@router.get("/customers/{golden_id}/timeline")
def customer_timeline(
    request: Request, golden_id: str, actor: Reader, conn: ConnDep, offset: str = "0"
) -> HTMLResponse:
    """Older events: a fragment for htmx ("Show older"), or a page of their own."""
    if not offset.isdigit():
        raise InputRejected("offset must be a whole number")
    found = timeline(conn, actor, golden_id, limit=TIMELINE_PAGE, offset=int(offset))
    context = {"actor": actor, "timeline": found, "golden_id": golden_id}
    name = "_timeline.html" if request.headers.get("hx-request") else "customer_timeline.html"
    return render(request, name, context)


@router.get("/customers/{golden_id}/split")
def confirm_split(
    request: Request,
    golden_id: str,
    actor: Decider,
    conn: ConnDep,
    system: str = "",
    source_id: str = "",
) -> HTMLResponse:
    """The confirm step of splitting one member record out."""
    customer = customers.get(conn, actor, golden_id)
    member = _member(customer, system, source_id)
    context = {"actor": actor, "customer": customer, "member": member}
    return render(request, "customer_split.html", context)


@router.post("/customers/{golden_id}/split")
def split(
    request: Request,
    golden_id: str,
    actor: Decider,
    ws: Annotated[Workspace, Depends(workspace)],
    system: Annotated[str, Form(max_length=64)] = "",
    source_id: Annotated[str, Form(max_length=256)] = "",
    note: Annotated[str, Form(max_length=10_000)] = "",  # the service says what is too long
) -> RedirectResponse:
    """Split the record out (each decided different from every member that stays) and
    show the customer again, with where the record went."""
    if not system or not source_id:
        raise InputRejected("say which member record to split out")
    key = (system, source_id)
    with writing(ws.engine) as conn:
        steward.split(conn, actor, golden_id, [key], note.strip(), now_in=ws.project)
    query = urlencode({"split_out": f"{system}:{source_id}"})
    return RedirectResponse(f"/customers/{golden_id}?{query}", status_code=303)


# ---- what the page shows


def _by_system(members: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Member records grouped by system (members come ordered by system)."""
    return [(system, list(group)) for system, group in groupby(members, lambda m: m["system"])]


def _relations(relationships: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The related customers under what they are to this one, parents first."""
    out = []
    for (kind, direction), heading in RELATION_HEADINGS.items():
        related = [r for r in relationships if r["type"] == kind and r["direction"] == direction]
        if related:
            out.append((heading, related))
    return out


def _member(customer: dict[str, Any], system: str, source_id: str) -> dict[str, Any]:
    if customer["status"] != "active":
        raise NotFound(f"no active customer {customer['golden_id']!r}")
    members: list[dict[str, Any]] = customer["members"]
    for member in members:
        if (member["system"], member["source_id"]) == (system, source_id):
            return member
    raise NotFound(f"{system}:{source_id} is not a member record of {customer['golden_id']}")


def _split_result(conn: Connection, actor: Actor, split_out: str) -> dict[str, Any] | None:
    """Where a record split out just now went: shown after a split. Nothing when the
    value names no record the actor may read."""
    system, _, source_id = split_out.partition(":")
    if not source_id or not allowed(actor, Permission.RECORDS_READ):
        return None
    try:
        found = customers.source_record(conn, actor, system, source_id)
    except AccordError:
        return None
    golden = (found["golden"] or {}).get("golden_id")
    return {"system": system, "source_id": source_id, "golden_id": golden}
