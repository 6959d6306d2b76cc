"""Deliveries of golden changes to each target (table `sync_delivery`), what Accord
knows of the records it writes there (`sync_record`), and conflicts (`sync_conflict`).

A delivery is `pending` until it is `sent`, or `dead` once given up (a dead letter,
which `replay` makes pending again). One customer's deliveries to a target go out in
the order of its changes: only a customer's earliest pending delivery is ever due.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    exists,
    func,
    or_,
    select,
    text,
    update,
)

from accord.store.dialect import driver_values, insert_rows
from accord.store.engine import json_text, json_value
from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import (
    crosswalk,
    golden_change,
    golden_record,
    sync_conflict,
    sync_cursor,
    sync_delivery,
    sync_record,
)
from accord.store.types import utcnow

PENDING, SENT, DEAD = "pending", "sent", "dead"


@dataclass(frozen=True)
class Delivery:
    target: str
    change_id: int
    golden_id: str
    attempts: int


@dataclass(frozen=True)
class KnownRecord:
    """A record in a target, as Accord last saw it."""

    record_id: str
    golden_id: str
    origin: str  # accord: Accord created it; member: the target's own record of the customer
    etag: str | None
    fields: dict[str, Any] | None
    deleted: bool


@dataclass(frozen=True)
class Outcome:
    """How one attempt at a delivery ended."""

    change_id: int
    state: str
    attempts: int
    due_at: datetime
    status: int | None = None
    error: str | None = None
    detail: dict[str, Any] | None = None


def plan(conn: Connection, target: str, changes: Sequence[tuple[int, str]]) -> None:
    """Add a pending delivery to `target` for each (change id, golden id)."""
    if not changes:
        return
    now = utcnow()
    insert_rows(
        conn,
        sync_delivery,
        [
            {
                "target": target,
                "change_id": change_id,
                "golden_id": golden_id,
                "state": PENDING,
                "attempts": 0,
                "due_at": now,
                "created_at": now,
            }
            for change_id, golden_id in changes
        ],
    )


def due(conn: Connection, target: str, now: datetime, limit: int) -> list[Delivery]:
    """Up to `limit` deliveries that may go now, oldest first: pending, due, and the
    earliest pending one of their customer (a later change waits for an earlier one)."""
    rows = conn.execute(
        select(sync_delivery.c.change_id, sync_delivery.c.golden_id, sync_delivery.c.attempts)
        .where(
            sync_delivery.c.target == target,
            sync_delivery.c.state == PENDING,
            sync_delivery.c.due_at <= now,
        )
        .order_by(sync_delivery.c.change_id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    earliest = _earliest_pending(conn, target, sorted({r.golden_id for r in rows}))
    return [
        Delivery(target, row.change_id, row.golden_id, row.attempts)
        for row in rows
        if earliest.get(row.golden_id) == row.change_id
    ]


def _earliest_pending(conn: Connection, target: str, golden_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(golden_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(sync_delivery.c.golden_id, func.min(sync_delivery.c.change_id))
            .where(
                sync_delivery.c.target == target,
                sync_delivery.c.state == PENDING,
                sync_delivery.c.golden_id.in_(golden_ids[start : start + LOOKUP_CHUNK]),
            )
            .group_by(sync_delivery.c.golden_id)
        )
        found.update({golden_id: int(change_id) for golden_id, change_id in rows})
    return found


def next_due(conn: Connection, target: str) -> datetime | None:
    """When the next pending delivery to `target` comes due (None: nothing pending)."""
    value: datetime | None = conn.execute(
        select(func.min(sync_delivery.c.due_at)).where(
            sync_delivery.c.target == target, sync_delivery.c.state == PENDING
        )
    ).scalar()
    return value


def finish(conn: Connection, target: str, outcomes: Sequence[Outcome]) -> None:
    """Record how these deliveries' attempts ended, in one statement on PostgreSQL (the
    outcomes as arrays, unnested), and on SQLite straight through the driver's
    `executemany` (`dialect.driver_values`): SQLAlchemy's per-row parameter handling
    cost more than the UPDATE itself (a round records up to `batch_size` outcomes)."""
    if not outcomes:
        return
    now = utcnow()
    columns: dict[str, list[Any]] = {
        "state": [o.state for o in outcomes],
        "attempts": [o.attempts for o in outcomes],
        "due_at": [o.due_at for o in outcomes],
        "last_status": [o.status for o in outcomes],
        "last_error": [o.error for o in outcomes],
        "outcome": [o.detail for o in outcomes],
        "finished_at": [now if o.state != PENDING else None for o in outcomes],
    }
    if conn.dialect.name == "postgresql":
        conn.execute(
            _FINISH_FROM_ARRAYS,
            {
                "target": target,
                "change_ids": [o.change_id for o in outcomes],
                "states": columns["state"],
                "attempts": columns["attempts"],
                "due_ats": columns["due_at"],
                "statuses": columns["last_status"],
                "errors": columns["last_error"],
                "outcomes": [_written(d) for d in columns["outcome"]],
                "finished": columns["finished_at"],
            },
        )
        return
    converted = [
        driver_values(conn, sync_delivery, name, column) for name, column in columns.items()
    ]
    assignments = ", ".join(f"{name} = ?" for name in columns)
    conn.exec_driver_sql(
        f"UPDATE sync_delivery SET {assignments} WHERE target = ? AND change_id = ?",
        [
            (*row, target, o.change_id)
            for row, o in zip(zip(*converted, strict=True), outcomes, strict=True)
        ],
    )


_FINISH_FROM_ARRAYS = text(
    """
    UPDATE sync_delivery AS d
    SET state = v.state, attempts = v.attempts, due_at = v.due_at,
        last_status = v.last_status, last_error = v.last_error,
        outcome = CAST(v.outcome AS jsonb), finished_at = v.finished_at
    FROM unnest(
        CAST(:change_ids AS bigint[]), CAST(:states AS varchar[]),
        CAST(:attempts AS integer[]), CAST(:due_ats AS timestamptz[]),
        CAST(:statuses AS integer[]), CAST(:errors AS text[]),
        CAST(:outcomes AS text[]), CAST(:finished AS timestamptz[])
    ) AS v(change_id, state, attempts, due_at, last_status, last_error, outcome, finished_at)
    WHERE d.target = :target AND d.change_id = v.change_id
    """
)


def known_records(
    conn: Connection, target: str, golden_ids: Sequence[str]
) -> dict[str, list[KnownRecord]]:
    """golden id -> the records of `target` Accord has written or read for it."""
    found: dict[str, list[KnownRecord]] = {}
    for start in range(0, len(golden_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(*_KNOWN)
            .where(
                sync_record.c.target == target,
                sync_record.c.golden_id.in_(golden_ids[start : start + LOOKUP_CHUNK]),
            )
            .order_by(sync_record.c.record_id)
        )
        for row in rows:
            known = _known(row)
            found.setdefault(known.golden_id, []).append(known)
    return found


def known_by_id(conn: Connection, target: str, record_ids: Sequence[str]) -> dict[str, KnownRecord]:
    found: dict[str, KnownRecord] = {}
    for start in range(0, len(record_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(*_KNOWN).where(
                sync_record.c.target == target,
                sync_record.c.record_id.in_(record_ids[start : start + LOOKUP_CHUNK]),
            )
        )
        found.update({row[0]: _known(row) for row in rows})
    return found


# what a round needs of a known record, in KnownRecord's order (not when it was noted)
_KNOWN = (
    sync_record.c.record_id,
    sync_record.c.golden_id,
    sync_record.c.origin,
    sync_record.c.etag,
    sync_record.c.fields,
    sync_record.c.deleted,
)


def _known(row: Any) -> KnownRecord:
    record_id, golden_id, origin, etag, fields, deleted = row
    return KnownRecord(record_id, golden_id, origin, etag, _read(fields), bool(deleted))


# What targets send back is kept as JSON text, not in a document column: PostgreSQL's
# jsonb cannot hold \u0000, and a target's field may; the text escapes it.
def _written(value: Any) -> str | None:
    return None if value is None else json_text(value)


def _read(stored: str | None) -> Any:
    return None if stored is None else json_value(stored)


def _conflict_row(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found["ours"], found["theirs"] = _read(found["ours"]), _read(found["theirs"])
    return found


def member_records(
    conn: Connection, system: str, golden_ids: Sequence[str]
) -> dict[str, list[str]]:
    """golden id -> the source ids of `system`'s records linked to it (the crosswalk)."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(golden_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(crosswalk.c.golden_id, crosswalk.c.source_id)
            .where(
                crosswalk.c.system == system,
                crosswalk.c.golden_id.in_(golden_ids[start : start + LOOKUP_CHUNK]),
            )
            .order_by(crosswalk.c.source_id)
        )
        for golden_id, source_id in rows:
            found.setdefault(golden_id, []).append(source_id)
    return found


def save_records(conn: Connection, target: str, records: Iterable[KnownRecord]) -> None:
    now = utcnow()
    rows = {
        r.record_id: {
            "target": target,
            "record_id": r.record_id,
            "golden_id": r.golden_id,
            "origin": r.origin,
            "etag": r.etag,
            "fields": _written(r.fields),
            "deleted": r.deleted,
            "updated_at": now,
        }
        for r in records
    }
    insert_rows(conn, sync_record, list(rows.values()), replace_on=["target", "record_id"])


def add_conflicts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        now = utcnow()
        insert_rows(
            conn,
            sync_conflict,
            [
                r
                | {"ours": _written(r["ours"]), "theirs": _written(r["theirs"]), "created_at": now}
                for r in rows
            ],
        )


def conflicts(
    conn: Connection,
    target: str | Sequence[str] | None = None,
    *,
    waiting: bool = False,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The latest conflicts, of one target, of these, or of all."""
    query = select(sync_conflict).order_by(sync_conflict.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where(sync_conflict.c.target.in_(_names(target)))
    if waiting:
        query = query.where(sync_conflict.c.kept == "waiting")
    return [_conflict_row(r) for r in conn.execute(query)]


@dataclass(frozen=True)
class Outgoing:
    """What waits to go out to one target."""

    pending: int  # deliveries planned, not yet sent (or waiting for their next attempt)
    unplanned: int  # outbox changes after the target's cursor
    dead: int  # dead letters, until replayed
    oldest: datetime | None  # when the oldest change still waiting happened

    @property
    def waiting(self) -> int:
        return self.pending + self.unplanned


def outgoing(conn: Connection, target: str) -> Outgoing:
    counts: dict[str, int] = dict(
        conn.execute(
            select(sync_delivery.c.state, func.count())
            .where(sync_delivery.c.target == target, sync_delivery.c.state.in_([PENDING, DEAD]))
            .group_by(sync_delivery.c.state)
        ).all()
    )
    cursor = (
        select(func.coalesce(func.max(sync_cursor.c.change_id), 0))
        .where(sync_cursor.c.target == target)
        .scalar_subquery()
    )
    unplanned = conn.execute(
        select(func.count()).select_from(golden_change).where(golden_change.c.id > cursor)
    ).scalar_one()
    earliest_pending = (
        select(func.min(sync_delivery.c.change_id))
        .where(sync_delivery.c.target == target, sync_delivery.c.state == PENDING)
        .scalar_subquery()
    )
    first_unplanned = (
        select(func.min(golden_change.c.id)).where(golden_change.c.id > cursor).scalar_subquery()
    )
    oldest = conn.execute(
        select(func.min(golden_change.c.changed_at)).where(
            or_(golden_change.c.id == earliest_pending, golden_change.c.id == first_unplanned)
        )
    ).scalar()
    return Outgoing(int(counts.get(PENDING, 0)), int(unplanned), int(counts.get(DEAD, 0)), oldest)


@dataclass(frozen=True)
class TargetStats:
    outgoing: Outgoing
    sent: int
    last_sent: datetime | None
    last_error: str | None
    conflicts_waiting: int


def stats(conn: Connection, target: str) -> TargetStats:
    """What waits for `target`, what was sent, the last error, conflicts waiting."""
    sent, last_sent = conn.execute(
        select(func.count(), func.max(sync_delivery.c.finished_at)).where(
            sync_delivery.c.target == target, sync_delivery.c.state == SENT
        )
    ).one()
    last_error = conn.execute(
        select(sync_delivery.c.last_error)
        .where(sync_delivery.c.target == target, sync_delivery.c.last_error.is_not(None))
        .order_by(sync_delivery.c.change_id.desc())
        .limit(1)
    ).scalar()
    waiting = conn.execute(
        select(func.count())
        .select_from(sync_conflict)
        .where(sync_conflict.c.target == target, sync_conflict.c.kept == "waiting")
    ).scalar_one()
    return TargetStats(outgoing(conn, target), int(sent), last_sent, last_error, int(waiting))


def dead_letters(
    conn: Connection, target: str | Sequence[str] | None = None, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Dead letters, of one target, of these, or of all, in order."""
    query = (
        select(sync_delivery)
        .where(sync_delivery.c.state == DEAD)
        .order_by(sync_delivery.c.target, sync_delivery.c.change_id)
        .limit(limit)
    )
    if target is not None:
        query = query.where(sync_delivery.c.target.in_(_names(target)))
    return [dict(r._mapping) for r in conn.execute(query)]


def _names(target: str | Sequence[str]) -> list[str]:
    return [target] if isinstance(target, str) else list(target)


def replay(conn: Connection, target: str, change_ids: Sequence[int] | None = None) -> int:
    """Make dead deliveries to `target` pending again (these, or all of them); returns
    how many. They go in the order of their changes, as before."""
    condition = and_(sync_delivery.c.target == target, sync_delivery.c.state == DEAD)
    if change_ids is not None:
        condition = and_(condition, sync_delivery.c.change_id.in_(list(change_ids)))
    result = conn.execute(
        update(sync_delivery)
        .where(condition)
        .values(state=PENDING, attempts=0, due_at=utcnow(), finished_at=None)
    )
    return int(result.rowcount or 0)


def held_by(target: str) -> ColumnElement[bool]:
    """A condition on `golden_record`: `target` holds a record of the customer, one of
    its own linked to it (the crosswalk) or one Accord created there and has not seen
    deleted."""
    member = exists().where(
        crosswalk.c.golden_id == golden_record.c.golden_id, crosswalk.c.system == target
    )
    own = exists().where(
        sync_record.c.golden_id == golden_record.c.golden_id,
        sync_record.c.target == target,
        sync_record.c.deleted.is_(False),
    )
    return or_(member, own)


def customers_without_records(conn: Connection, target: str) -> list[str]:
    """Active golden customers `target` holds no record of (`held_by`)."""
    rows = conn.execute(
        select(golden_record.c.golden_id)
        .where(golden_record.c.status == "active", ~held_by(target))
        .order_by(golden_record.c.golden_id)
    )
    return [r.golden_id for r in rows]


def member_ids(conn: Connection, system: str) -> list[str]:
    """The source ids of `system`'s records in the crosswalk."""
    rows = conn.execute(select(crosswalk.c.source_id).where(crosswalk.c.system == system))
    return [r.source_id for r in rows]


def live_records(conn: Connection, target: str) -> list[str]:
    """The records Accord created in `target` and has not seen deleted."""
    rows = conn.execute(
        select(sync_record.c.record_id).where(
            sync_record.c.target == target,
            sync_record.c.origin == "accord",
            sync_record.c.deleted.is_(False),
        )
    )
    return [r.record_id for r in rows]


def get_conflict(conn: Connection, conflict_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(sync_conflict).where(sync_conflict.c.id == conflict_id)).first()
    return _conflict_row(row) if row is not None else None


def decide_conflict(conn: Connection, conflict_id: int, kept: str, actor: str) -> bool:
    """Settle a conflict left to a steward; false when it was not waiting (any more)."""
    result = conn.execute(
        update(sync_conflict)
        .where(sync_conflict.c.id == conflict_id, sync_conflict.c.kept == "waiting")
        .values(kept=kept, decided_by=actor, decided_at=utcnow())
    )
    return bool(result.rowcount)


def latest_conflicts(
    conn: Connection, target: str, record_ids: Sequence[str]
) -> dict[str, dict[str, tuple[Any, Any, str]]]:
    """record id -> field -> (ours, theirs, kept) of the latest conflict recorded on it:
    the same conflict met again is settled the same way (a steward's decision holds)."""
    found: dict[str, dict[str, tuple[Any, Any, str]]] = {}
    for start in range(0, len(record_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(
                sync_conflict.c.record_id,
                sync_conflict.c.field,
                sync_conflict.c.ours,
                sync_conflict.c.theirs,
                sync_conflict.c.kept,
            )
            .where(
                sync_conflict.c.target == target,
                sync_conflict.c.record_id.in_(record_ids[start : start + LOOKUP_CHUNK]),
            )
            .order_by(sync_conflict.c.id)
        )
        for record_id, name, ours, theirs, kept in rows:
            found.setdefault(record_id, {})[name] = (_read(ours), _read(theirs), kept)
    return found


def prune_sent(conn: Connection, targets: Sequence[str], before: datetime) -> int:
    """Remove the deliveries sent before `before` (their outcome stays in the target);
    returns how many."""
    removed = 0
    for target in targets:
        removed += conn.execute(
            sync_delivery.delete().where(
                sync_delivery.c.target == target,
                sync_delivery.c.state == SENT,
                sync_delivery.c.finished_at < before,
            )
        ).rowcount
    return removed


def unneeded_changes(
    conn: Connection, targets: Sequence[str], low: int, high: int, before: datetime
) -> list[int]:
    """The outbox changes with ids in (low, high], made before `before`, that no delivery
    of these targets refers to and no conflict waiting for a steward was met on."""
    candidates = set(
        conn.execute(
            select(golden_change.c.id).where(
                golden_change.c.id > low,
                golden_change.c.id <= high,
                golden_change.c.changed_at < before,
            )
        ).scalars()
    )
    if not candidates:
        return []
    for target in targets:  # the primary key (target, change_id) serves each range
        candidates -= set(
            conn.execute(
                select(sync_delivery.c.change_id).where(
                    sync_delivery.c.target == target,
                    sync_delivery.c.change_id > low,
                    sync_delivery.c.change_id <= high,
                )
            ).scalars()
        )
    candidates -= set(
        conn.execute(
            select(sync_conflict.c.change_id).where(
                sync_conflict.c.kept == "waiting",
                sync_conflict.c.change_id > low,
                sync_conflict.c.change_id <= high,
            )
        ).scalars()
    )
    return sorted(candidates)
