"""Reading linked records, behind the acting identity: a golden customer's (every
kind, newest first, a page at a time), and the orphans, whose customer record no golden
customer holds. The CLI and the web call these and nothing under them."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection

from accord.errors import InputRejected, NotFound
from accord.govern.permissions import Actor, Permission, require
from accord.paging import Page, check_window
from accord.store import golden as golden_store
from accord.store import linked as store

ORPHAN_REASONS: dict[str, str] = {
    "unresolved": "the customer record is stored but not matched yet: resolve, or wait "
    "for the worker",
    "customer_quarantined": "the customer record is in quarantine: correct and replay it",
    "no_customer_record": "no such customer record has arrived: load it, or fix the "
    "reference in the source",
}
MAX_KIND_CHARS = 32


def of_customer(
    conn: Connection,
    actor: Actor,
    golden_id: str,
    *,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """The golden customer's linked records, newest first, with how many of each kind it
    has. A merged or retired id has none: it answers with its status (and `merged_into`)
    so the caller can follow it. Raises NotFound for an unknown id."""
    require(actor, Permission.CUSTOMERS_READ)
    check_window(limit, offset)
    _check_kind(kind)
    customer = golden_store.get(conn, golden_id)
    if customer is None:
        raise NotFound(
            f"no customer {golden_id!r}", hint="`accord search DIR TEXT` finds customers"
        )
    items, total = store.of_customer(conn, golden_id, kind=kind, limit=limit, offset=offset)
    return {
        "golden_id": golden_id,
        "status": customer["status"],
        "merged_into": customer.get("merged_into"),
        "display_name": customer["display_name"],
        "kinds": store.kinds_of_customer(conn, golden_id),
        "page": Page([_shown(i) for i in items], total, limit, offset),
    }


def summary_of_customer(
    conn: Connection, actor: Actor, golden_id: str, *, recent: int
) -> list[dict[str, Any]]:
    """Per kind of the golden customer's linked records: how many, the sum of their
    amounts per currency (exact decimal text; records without an amount are not counted,
    amounts without a currency are summed under ""), and the `recent` newest. Raises
    NotFound for an unknown id."""
    require(actor, Permission.CUSTOMERS_READ)
    check_window(recent, 0)
    if golden_store.get(conn, golden_id) is None:
        raise NotFound(f"no customer {golden_id!r}")
    totals = _totals(store.amounts_of_customer(conn, golden_id))
    return [
        {
            "kind": kind,
            "count": count,
            "totals": totals.get(kind, {}),
            "recent": [
                _shown(i)
                for i in store.of_customer(conn, golden_id, kind=kind, limit=recent, offset=0)[0]
            ],
        }
        for kind, count in store.kinds_of_customer(conn, golden_id).items()
    ]


def _totals(amounts: Iterable[tuple[str, str, str | None]]) -> dict[str, dict[str, str]]:
    """kind -> currency -> the exact sum of the amounts."""
    sums: dict[str, dict[str, Decimal]] = {}
    for kind, amount, currency in amounts:
        try:
            value = Decimal(amount)
        except InvalidOperation:  # stored as read; the mapping flags such values
            continue
        per_currency = sums.setdefault(kind, {})
        per_currency[currency or ""] = per_currency.get(currency or "", Decimal(0)) + value
    return {
        kind: {currency: str(total) for currency, total in sorted(found.items())}
        for kind, found in sorted(sums.items())
    }


def orphans(
    conn: Connection,
    actor: Actor,
    *,
    system: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Linked records attached to no golden customer, oldest first, each with the reason
    (`ORPHAN_REASONS`). A connected system sees only its own."""
    require(actor, Permission.RECORDS_READ)
    check_window(limit, offset)
    _check_kind(kind)
    if actor.kind == "system":
        if system not in (None, actor.name):
            raise NotFound(f"no linked records of {system!r}")
        system = actor.name
    items, total = store.orphans(conn, system=system, kind=kind, limit=limit, offset=offset)
    return Page(
        [_shown(i) | {"hint": ORPHAN_REASONS[i["reason"]]} for i in items], total, limit, offset
    )


def summary(conn: Connection, actor: Actor) -> list[dict[str, Any]]:
    """Per system and kind: linked records stored, attached to a golden customer, and
    orphans."""
    require(actor, Permission.RECORDS_READ)
    return store.summary(conn)


def _check_kind(kind: str | None) -> None:
    if kind is not None and not 0 < len(kind) <= MAX_KIND_CHARS:
        raise InputRejected(f"a kind is 1 to {MAX_KIND_CHARS} characters")


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    occurred = item["occurred_at"]
    return item | {
        "occurred_at": None if occurred is None else occurred.isoformat(),
        "first_seen_at": item["first_seen_at"].isoformat(),
        "updated_at": item["updated_at"].isoformat(),
    }
