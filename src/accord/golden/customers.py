"""Reading customers: the one service the CLI and the web call, with the acting identity,
so permission checks cannot be skipped by a new endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from accord.errors import InputRejected, NotFound
from accord.govern.permissions import Actor, Permission, require
from accord.paging import Page, check_window
from accord.store import golden as golden_store
from accord.store import records as record_store
from accord.store import relationships as relationship_store
from accord.store import search as search_store
from accord.store.search import STATUSES, Filters

MAX_QUERY_CHARS = 200


@dataclass(frozen=True)
class CustomerPage(Page):
    """A page of a search: `total` hits, or at least `total` when `more` (the count
    stops at a cap, `store.search.COUNT_CAP`, so no search passes over every customer)."""

    more: bool = False


def search(
    conn: Connection,
    actor: Actor,
    text: str | None = None,
    *,
    system: str | None = None,
    country: str | None = None,
    status: str = "active",
    limit: int = 50,
    offset: int = 0,
) -> CustomerPage:
    """Golden customers whose name, email, phone, city, postcode, tax id or ids contain
    `text`, in name order, then (when those are few) the ones a typo or so away, best
    first; with a record from `system`, in `country`, of `status` (active by default)."""
    require(actor, Permission.CUSTOMERS_READ)
    check_window(limit, offset)
    text = _without_nul(text).strip()
    if len(text) > MAX_QUERY_CHARS:
        raise InputRejected(f"a search is at most {MAX_QUERY_CHARS} characters")
    if status not in STATUSES:
        raise InputRejected(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    filters = Filters(
        system=_without_nul(system) or None,
        country=_without_nul(country).upper() or None,
        status=status,
    )
    hits = search_store.search(conn, text, filters, limit, offset)
    return CustomerPage(hits.items, hits.total, limit, offset, more=hits.more)


def _without_nul(value: str | None) -> str:
    """`value` without NUL characters, which no stored text holds (and PostgreSQL's
    text cannot)."""
    return (value or "").replace("\x00", "")


def get(conn: Connection, actor: Actor, golden_id: str) -> dict[str, Any]:
    """One golden customer with lineage and members. A merged id answers with
    `status: merged` and `merged_into`, so old references still lead somewhere."""
    require(actor, Permission.CUSTOMERS_READ)
    row = golden_store.get(conn, golden_id)
    if row is None:
        raise NotFound(f"no customer {golden_id!r}")
    active = row["status"] == "active"
    row["members"] = golden_store.members(conn, golden_id) if active else []
    row["relationships"] = relationship_store.of_customer(conn, golden_id) if active else []
    return row


def source_record(conn: Connection, actor: Actor, system: str, source_id: str) -> dict[str, Any]:
    """One source record: every stored version, newest first, and its golden customer.
    A connected system may read only its own records."""
    require(actor, Permission.RECORDS_READ)
    if actor.kind == "system" and actor.name != system:
        raise NotFound(f"no record {source_id!r} in {system!r}")
    found = record_store.source_record_versions(conn, system, source_id)
    if not found:
        raise NotFound(f"no record {source_id!r} in {system!r}")
    link = golden_store.crosswalk_of(conn, system, source_id)
    return {"system": system, "source_id": source_id, "golden": link, "versions": found}
