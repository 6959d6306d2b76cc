"""The outbox of golden changes (table `golden_change`) and each target's place in it
(table `sync_cursor`).

Golden records change in one place, `golden.resolve.write_clusters`, for full and
incremental resolves and steward decisions alike; it records each change here in the
same transaction, so a change is in the outbox if and only if it was committed. Targets
read the outbox in order from their cursor, each at its own pace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

from accord.store import golden as golden_store
from accord.store.dialect import insert_new, insert_rows, next_ids, upsert
from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import counter, golden_change, golden_record, sync_cursor
from accord.store.types import utcnow

CREATED, UPDATED, MERGED, RETIRED = "created", "updated", "merged", "retired"
REPAIR = "repair"  # the golden values again, for one target whose records drifted
PRUNED_TO = "outbox_pruned_to"  # the `counter` row: changes up to here may be gone
SNAPSHOT_CHUNK = 5_000  # customers a snapshot records at a time


@dataclass(frozen=True)
class Change:
    id: int
    golden_id: str
    change: str
    data: dict[str, Any] | None
    sources: dict[str, str] | None
    fields: list[str] | None  # None: every field (a new customer)
    merged_into: str | None
    target: str | None  # a repair for this target only; None: for every target
    changed_at: datetime

    @property
    def tombstone(self) -> bool:
        return self.change in (MERGED, RETIRED)


# in the order of Change's fields
_COLUMNS = (
    golden_change.c.id,
    golden_change.c.golden_id,
    golden_change.c.change,
    golden_change.c.data,
    golden_change.c.sources,
    golden_change.c.fields,
    golden_change.c.merged_into,
    golden_change.c.target,
    golden_change.c.changed_at,
)


def record(conn: Connection, changes: Sequence[dict[str, Any]]) -> None:
    """Add changes (golden_id, change, data, sources, fields, merged_into; target for a
    repair meant for one target only) in the caller's transaction, numbered in the order
    given."""
    if not changes:
        return
    now = utcnow()
    ids = next_ids(conn, golden_change, len(changes))
    insert_rows(
        conn,
        golden_change,
        [
            {
                "id": change_id,
                "golden_id": c["golden_id"],
                "change": c["change"],
                "data": c.get("data"),
                "sources": c.get("sources"),
                "fields": c.get("fields"),
                "merged_into": c.get("merged_into"),
                "target": c.get("target"),
                "changed_at": now,
            }
            for change_id, c in zip(ids, changes, strict=True)
        ],
    )


def sources_of(data: Mapping[str, Any], lineage: Mapping[str, Any]) -> dict[str, str]:
    """field -> the system its golden value came from (a change's `sources`)."""
    return {field: lineage[field]["system"] for field in data if field in lineage}


def record_repairs(conn: Connection, target: str, customers: Mapping[str, Iterable[str]]) -> int:
    """A `repair` change for `target` only per customer (golden id -> the canonical
    fields to note as drifted), carrying its golden values as they are now; customers no
    longer active are left out (their merge or retirement is a change of its own).
    Returns how many were recorded."""
    content = golden_store.content_of(conn, sorted(customers))
    changes = [
        {
            "golden_id": golden_id,
            "change": REPAIR,
            "data": content[golden_id][0],
            "sources": sources_of(*content[golden_id]),
            "fields": sorted(customers[golden_id]),
            "target": target,
        }
        for golden_id in sorted(customers)
        if golden_id in content
    ]
    record(conn, changes)
    return len(changes)


def after(conn: Connection, change_id: int, limit: int) -> list[Change]:
    """Up to `limit` changes after `change_id`, in order."""
    rows = conn.execute(
        select(*_COLUMNS)
        .where(golden_change.c.id > change_id)
        .order_by(golden_change.c.id)
        .limit(limit)
    )
    return [Change(*row) for row in rows]


@dataclass(frozen=True)
class Heading:
    """What a change is, without its values: enough to tell whom it concerns."""

    id: int
    golden_id: str
    change: str
    fields: list[str] | None
    target: str | None

    @property
    def tombstone(self) -> bool:
        return self.change in (MERGED, RETIRED)


def headings_after(
    conn: Connection, change_id: int, limit: int, *, below: int | None = None
) -> list[Heading]:
    """Up to `limit` changes after `change_id` (and before `below`, when given), in
    order, without their values."""
    bounds = [golden_change.c.id > change_id]
    if below is not None:
        bounds.append(golden_change.c.id < below)
    rows = conn.execute(
        select(
            golden_change.c.id,
            golden_change.c.golden_id,
            golden_change.c.change,
            golden_change.c.fields,
            golden_change.c.target,
        )
        .where(*bounds)
        .order_by(golden_change.c.id)
        .limit(limit)
    )
    return [Heading(*row) for row in rows]


def by_id(conn: Connection, change_ids: Sequence[int]) -> dict[int, Change]:
    """These changes, by id."""
    found: dict[int, Change] = {}
    for start in range(0, len(change_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(*_COLUMNS).where(
                golden_change.c.id.in_(change_ids[start : start + LOOKUP_CHUNK])
            )
        )
        found.update({row[0]: Change(*row) for row in rows})
    return found


def last_id(conn: Connection) -> int:
    return int(conn.execute(select(func.max(golden_change.c.id))).scalar() or 0)


def cursor(conn: Connection, target: str) -> int:
    """The last change planned for `target` (0 when it has taken none)."""
    found = conn.execute(
        select(sync_cursor.c.change_id).where(sync_cursor.c.target == target)
    ).scalar()
    return int(found or 0)


def advance(conn: Connection, target: str, change_id: int) -> None:
    upsert(
        conn,
        sync_cursor,
        [{"target": target, "change_id": change_id, "updated_at": utcnow()}],
        ["target"],
        keep=("lease_owner", "lease_until"),
    )


def claim(conn: Connection, target: str, owner: str, until: datetime) -> bool:
    """Hold (or keep holding) the right to deliver to `target` until `until`; false when
    another owner holds it and its lease has not run out."""
    now = utcnow()
    insert_new(conn, sync_cursor, {"target": target, "change_id": 0, "updated_at": now})
    result = conn.execute(
        update(sync_cursor)
        .where(
            sync_cursor.c.target == target,
            or_(
                sync_cursor.c.lease_owner.is_(None),
                sync_cursor.c.lease_owner == owner,
                sync_cursor.c.lease_until < now,
            ),
        )
        .values(lease_owner=owner, lease_until=until)
    )
    return bool(result.rowcount)


def hold(conn: Connection, target: str, owner: str, until: datetime) -> bool:
    """Renew `owner`'s hold on `target` until `until`, only if it is still `owner`'s: the
    fence a dispatcher puts first in each transaction that plans or records deliveries.
    False when another owner took the target over (this one's lease ran out meanwhile):
    the caller must roll back, as what it did may have been done by the new owner too.
    The row stays locked to the end of the caller's transaction, so no other owner can
    take over between the fence and the commit."""
    result = conn.execute(
        update(sync_cursor)
        .where(sync_cursor.c.target == target, sync_cursor.c.lease_owner == owner)
        .values(lease_until=until)
    )
    return bool(result.rowcount)


def release(conn: Connection, target: str, owner: str) -> None:
    conn.execute(
        update(sync_cursor)
        .where(sync_cursor.c.target == target, sync_cursor.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def pruned_to(conn: Connection) -> int:
    """The highest change id pruning has removed (0 when nothing was): a target whose
    cursor is behind it cannot replay the outbox and starts from a snapshot."""
    found = conn.execute(select(counter.c.value).where(counter.c.name == PRUNED_TO)).scalar()
    return int(found or 0)


def cursors(conn: Connection) -> dict[str, int]:
    """Each target's cursor (the targets that ever planned)."""
    return {
        t: int(c) for t, c in conn.execute(select(sync_cursor.c.target, sync_cursor.c.change_id))
    }


def prune(conn: Connection, change_ids: Sequence[int]) -> int:
    """Remove these changes (the caller has checked that no target needs them) and
    note how far pruning went; returns how many were removed."""
    removed = 0
    for start in range(0, len(change_ids), LOOKUP_CHUNK):
        chunk = change_ids[start : start + LOOKUP_CHUNK]
        removed += conn.execute(delete(golden_change).where(golden_change.c.id.in_(chunk))).rowcount
    if change_ids:
        highest = max(change_ids)
        insert_new(conn, counter, {"name": PRUNED_TO, "value": 0})
        conn.execute(
            update(counter)
            .where(counter.c.name == PRUNED_TO, counter.c.value < highest)
            .values(value=highest)
        )
    return removed


def snapshot(conn: Connection, target: str, fields: Iterable[str]) -> int:
    """Start `target` from now: its cursor moves to the outbox's head and a `repair`
    change for it alone is recorded for every active customer, carrying its golden
    values. For a target whose earlier changes were pruned. Returns the customers."""
    advance(conn, target, last_id(conn))
    wanted = sorted(fields)
    active = list(
        conn.execute(
            select(golden_record.c.golden_id)
            .where(golden_record.c.status == "active")
            .order_by(golden_record.c.golden_id)
        ).scalars()
    )
    for start in range(0, len(active), SNAPSHOT_CHUNK):
        chunk = active[start : start + SNAPSHOT_CHUNK]
        record_repairs(conn, target, dict.fromkeys(chunk, wanted))
    return len(active)
