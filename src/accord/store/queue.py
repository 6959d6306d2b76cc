"""The durable work queue between intake and matching (table `work_item`).

Every channel stores records through `records.store_versions` / `store_remaps`, which
queue each record they change in the same transaction: a record is stored and queued, or
neither. One row per record: a record that changes again while it waits keeps its place
and gets a new token, so the queue never holds a record twice and a worker always matches
its latest version.

A worker takes a batch in two steps:
1. `claim` (its own short transaction): lease the oldest claimable rows for a while;
   other workers skip them (SKIP LOCKED on PostgreSQL; SQLite has one writer at a time).
2. In the transaction that writes the outcome: `hold` locks the leased rows again (a
   worker whose lease ran out and was taken over learns it here and rolls back), then
   `complete` deletes the rows whose token is unchanged and releases the others, which
   changed meanwhile, to be matched again.

A full resolve matches every record: it marks the rows it will cover as it starts reading
and removes them when it commits (`mark_covered`, `remove_covered`).

A worker killed anywhere loses nothing (its rows come back when the lease runs out) and
duplicates nothing (the outcome and the deletion commit together or not at all).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, update

from accord.store.dialect import insert_rows
from accord.store.tables import work_item
from accord.store.types import utcnow

MAX_ATTEMPTS = 5  # a row taken this many times without success waits for `retry_failed`


@dataclass(frozen=True)
class Claim:
    """A leased queue row: the record to match and the token it had when taken."""

    id: int
    system: str
    source_id: str
    token: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.system, self.source_id)


@dataclass(frozen=True)
class QueueStats:
    waiting: int  # claimable now, or once a lease or a back-off runs out
    leased: int  # taken by a worker right now
    failed: int  # given up after MAX_ATTEMPTS; `accord worker retry` queues them again
    oldest: datetime | None  # when the longest-waiting record was queued

    def as_dict(self) -> dict[str, Any]:
        return {
            "waiting": self.waiting,
            "leased": self.leased,
            "failed": self.failed,
            "oldest": self.oldest.isoformat() if self.oldest else None,
        }


def enqueue(conn: Connection, entity_type: str, system: str, source_ids: Sequence[str]) -> None:
    """Queue records of one system for matching (again), in the caller's transaction."""
    if not source_ids:
        return
    now = utcnow()
    token = uuid.uuid4().hex  # one per call: what matters is that it differs from before
    insert_rows(
        conn,
        work_item,
        [
            {
                "system": system,
                "source_id": source_id,
                "entity_type": entity_type,
                "token": token,
                "enqueued_at": now,
                "attempts": 0,
                "last_error": None,
            }
            for source_id in dict.fromkeys(source_ids)
        ],
        replace_on=["system", "source_id"],
        keep=["enqueued_at"],  # it keeps its place and its age
    )


def claim(
    conn: Connection,
    entity_type: str,
    worker: str,
    *,
    limit: int,
    lease: timedelta,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[Claim]:
    """Lease up to `limit` of the oldest claimable rows to `worker`."""
    now = utcnow()
    claimable = (
        select(work_item.c.id)
        .where(
            work_item.c.entity_type == entity_type,
            work_item.c.attempts < max_attempts,
            (work_item.c.lease_until.is_(None)) | (work_item.c.lease_until < now),
        )
        .order_by(work_item.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # not rendered on SQLite: one writer there
    )
    rows = conn.execute(
        update(work_item)
        .where(work_item.c.id.in_(claimable.scalar_subquery()))
        .values(lease_owner=worker, lease_until=now + lease, attempts=work_item.c.attempts + 1)
        .returning(work_item.c.id, work_item.c.system, work_item.c.source_id, work_item.c.token)
    ).all()
    return sorted((Claim(r.id, r.system, r.source_id, r.token) for r in rows), key=lambda c: c.id)


def hold(conn: Connection, worker: str, claims: Sequence[Claim]) -> list[Claim]:
    """Lock the rows `worker` still holds, in the caller's transaction, and return their
    claims; a row whose lease was taken over by another worker is left out."""
    if not claims:
        return []
    held = set(
        conn.execute(
            select(work_item.c.id)
            .where(work_item.c.id.in_([c.id for c in claims]), work_item.c.lease_owner == worker)
            .with_for_update()
        ).scalars()
    )
    return [c for c in claims if c.id in held]


def complete(conn: Connection, worker: str, claims: Sequence[Claim]) -> int:
    """Remove the rows matched as taken; release those that changed since (they are
    matched again). Returns how many were released. Call after `hold`, in its
    transaction."""
    if not claims:
        return 0
    conn.execute(
        delete(work_item).where(
            work_item.c.id == bindparam("b_id"),
            work_item.c.token == bindparam("b_token"),
            work_item.c.lease_owner == worker,
        ),
        [{"b_id": c.id, "b_token": c.token} for c in claims],
    )
    released = conn.execute(
        update(work_item)
        .where(work_item.c.id.in_([c.id for c in claims]), work_item.c.lease_owner == worker)
        .values(lease_owner=None, lease_until=None, attempts=0)
    )
    return released.rowcount or 0


def fail(
    conn: Connection, worker: str, claims: Sequence[Claim], error: str, *, retry_in: timedelta
) -> None:
    """Give rows back after a failure, with the error, not claimable for `retry_in`."""
    if not claims:
        return
    conn.execute(
        update(work_item)
        .where(work_item.c.id.in_([c.id for c in claims]), work_item.c.lease_owner == worker)
        .values(lease_owner=None, lease_until=utcnow() + retry_in, last_error=error[:2000])
    )


def mark_covered(conn: Connection, entity_type: str) -> None:
    """Note each row's token as a full resolve starts reading: that resolve matches every
    record as it reads it, so when it commits, `remove_covered` drops the rows it covered
    (and keeps any queued again since). A resolve that dies leaves only this mark."""
    conn.execute(
        update(work_item)
        .where(work_item.c.entity_type == entity_type)
        .values(covered_token=work_item.c.token)
    )


def remove_covered(conn: Connection, entity_type: str) -> None:
    """Drop the rows a full resolve covered, in its transaction (see `mark_covered`)."""
    conn.execute(
        delete(work_item).where(
            work_item.c.entity_type == entity_type,
            work_item.c.covered_token == work_item.c.token,
        )
    )


def retry_failed(conn: Connection, max_attempts: int = MAX_ATTEMPTS) -> int:
    """Queue the rows given up on again. Returns how many."""
    result = conn.execute(
        update(work_item)
        .where(work_item.c.attempts >= max_attempts)
        .values(attempts=0, lease_owner=None, lease_until=None)
    )
    return result.rowcount or 0


def backlog(conn: Connection) -> int:
    """Rows waiting or being worked on (what the push API's bound is compared with)."""
    return int(conn.execute(select(func.count()).select_from(work_item)).scalar_one())


def stats(conn: Connection, max_attempts: int = MAX_ATTEMPTS) -> QueueStats:
    now = utcnow()
    failed = work_item.c.attempts >= max_attempts
    leased = (work_item.c.lease_owner.is_not(None)) & (work_item.c.lease_until >= now)
    row = conn.execute(
        select(
            func.count().filter(~failed & ~leased),
            func.count().filter(leased),
            func.count().filter(failed),
            func.min(work_item.c.enqueued_at),
        )
    ).one()
    return QueueStats(int(row[0]), int(row[1]), int(row[2]), row[3])


def failures(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent errors, for `accord worker status`."""
    rows = conn.execute(
        select(
            work_item.c.system,
            work_item.c.source_id,
            work_item.c.attempts,
            work_item.c.last_error,
        )
        .where(work_item.c.last_error.is_not(None))
        .order_by(work_item.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]
