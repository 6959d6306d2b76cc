"""Linked records (orders, invoices, tickets): storing them, and reading them through
the crosswalk. A linked record names its customer by the source id of the customer's
record; the golden customer is found by joining that to `crosswalk` when read, so a
merge, split or steward decision moves the records with their customer and nothing here
is rewritten."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Connection, and_, case, exists, func, select

from accord.store.dialect import insert_rows
from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import crosswalk, linked_record, quarantine, record_head

OrphanReason = Literal["unresolved", "customer_quarantined", "no_customer_record"]

# what a linked record is, as read: everything but the internal id
_COLUMNS = (
    linked_record.c.system,
    linked_record.c.kind,
    linked_record.c.source_id,
    linked_record.c.customer_system,
    linked_record.c.customer_source_id,
    linked_record.c.occurred_at,
    linked_record.c.amount,
    linked_record.c.currency,
    linked_record.c.status,
    linked_record.c.title,
    linked_record.c.issues,
    linked_record.c.payload,
    linked_record.c.mapping_version,
    linked_record.c.load_id,
    linked_record.c.first_seen_at,
    linked_record.c.updated_at,
)
_ATTACHED = and_(
    crosswalk.c.system == linked_record.c.customer_system,
    crosswalk.c.source_id == linked_record.c.customer_source_id,
)


def stored(
    conn: Connection, system: str, kind: str, source_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """source id -> (content hash, mapping version) of those of `source_ids` stored."""
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(source_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(
                linked_record.c.source_id,
                linked_record.c.content_hash,
                linked_record.c.mapping_version,
            ).where(
                linked_record.c.system == system,
                linked_record.c.kind == kind,
                linked_record.c.source_id.in_(source_ids[start : start + LOOKUP_CHUNK]),
            )
        )
        found.update({r.source_id: (r.content_hash, r.mapping_version) for r in rows})
    return found


def store(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert linked records, or replace the stored ones of the same (system, kind,
    source id), keeping when each was first seen. Each row holds every column but `id`;
    a source id appears once in `rows`."""
    insert_rows(
        conn,
        linked_record,
        rows,
        replace_on=["system", "kind", "source_id"],
        keep=("first_seen_at",),
    )


def of_customer(
    conn: Connection, golden_id: str, *, kind: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the linked records of the golden customer's member records, newest
    first (those without a time last), and how many there are in all."""
    where = [crosswalk.c.golden_id == golden_id]
    if kind is not None:
        where.append(linked_record.c.kind == kind)
    joined = crosswalk.join(linked_record, _ATTACHED)
    total = conn.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
    rows = conn.execute(
        select(*_COLUMNS)
        .select_from(joined)
        .where(*where)
        .order_by(linked_record.c.occurred_at.desc().nulls_last(), linked_record.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [dict(r._mapping) for r in rows], int(total)


def kinds_of_customer(conn: Connection, golden_id: str) -> dict[str, int]:
    """kind -> how many linked records of that kind the golden customer has."""
    rows = conn.execute(
        select(linked_record.c.kind, func.count())
        .select_from(crosswalk.join(linked_record, _ATTACHED))
        .where(crosswalk.c.golden_id == golden_id)
        .group_by(linked_record.c.kind)
    )
    return {kind: int(count) for kind, count in sorted(rows)}


def amounts_of_customer(conn: Connection, golden_id: str) -> list[tuple[str, str, str | None]]:
    """(kind, amount, currency) of each of the golden customer's linked records that has
    an amount, as stored (decimal text)."""
    rows = conn.execute(
        select(linked_record.c.kind, linked_record.c.amount, linked_record.c.currency)
        .select_from(crosswalk.join(linked_record, _ATTACHED))
        .where(crosswalk.c.golden_id == golden_id, linked_record.c.amount.is_not(None))
    )
    return [(r.kind, r.amount, r.currency) for r in rows]


def _orphaned() -> Any:
    return ~exists().where(_ATTACHED)


def orphans(
    conn: Connection, *, system: str | None, kind: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the linked records no golden customer holds the customer record of
    (in arrival order), each with the reason when it can be told, and how many there
    are in all. The reason is `unresolved` when the customer record is stored but not
    matched yet, `customer_quarantined` when it waits in quarantine (an open entry of
    that id), and `no_customer_record` when neither: it never came, or the id is wrong."""
    where = [_orphaned()]
    if system is not None:
        where.append(linked_record.c.system == system)
    if kind is not None:
        where.append(linked_record.c.kind == kind)
    total = conn.execute(select(func.count()).select_from(linked_record).where(*where)).scalar_one()
    stored_customer = exists().where(
        record_head.c.system == linked_record.c.customer_system,
        record_head.c.source_id == linked_record.c.customer_source_id,
    )
    quarantined_customer = exists().where(
        quarantine.c.system == linked_record.c.customer_system,
        quarantine.c.source_id == linked_record.c.customer_source_id,
        quarantine.c.status == "open",
    )
    reason = case(
        (stored_customer, "unresolved"),
        (quarantined_customer, "customer_quarantined"),
        else_="no_customer_record",
    ).label("reason")
    rows = conn.execute(
        select(*_COLUMNS, reason)
        .where(*where)
        .order_by(linked_record.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [dict(r._mapping) for r in rows], int(total)


def orphan_counts(conn: Connection) -> dict[str, int]:
    """system -> how many of its linked records are orphans (read from the customer
    index, one lookup in the crosswalk's key per record)."""
    rows = conn.execute(
        select(linked_record.c.system, func.count())
        .where(_orphaned())
        .group_by(linked_record.c.system)
    )
    return {system: int(count) for system, count in rows}


def summary(conn: Connection) -> list[dict[str, Any]]:
    """Per system and kind: linked records stored, and of those attached to a golden
    customer (the rest are orphans)."""
    attached = exists().where(_ATTACHED)
    rows = conn.execute(
        select(
            linked_record.c.system,
            linked_record.c.kind,
            func.count().label("records"),
            func.count().filter(attached).label("attached"),
        )
        .group_by(linked_record.c.system, linked_record.c.kind)
        .order_by(linked_record.c.system, linked_record.c.kind)
    )
    return [
        {
            "system": r.system,
            "kind": r.kind,
            "records": int(r.records),
            "attached": int(r.attached),
            "orphans": int(r.records) - int(r.attached),
        }
        for r in rows
    ]
