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

Each row removed as matched leaves how long it waited in `match_wait` (from `enqueued_at`
to the matching transaction: the received-to-golden latency integration health reports),
written by the same statement set in the same transaction, one INSERT ... SELECT per
batch; rows older than `KEEP_WAITS` are pruned there too, at most `PRUNE_AT_ONCE` at a time.

A worker killed anywhere loses nothing (its rows come back when the lease runs out) and
duplicates nothing (the outcome and the deletion commit together or not at all).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, literal, select, update

from accord.store.dialect import insert_rows, seconds_between
from accord.store.tables import match_wait, work_item
from accord.store.types import UTCDateTime, utcnow

MAX_ATTEMPTS = 5  # a row taken this many times without success waits for `retry_failed`
KEEP_WAITS = timedelta(days=1)  # how long a matched record's wait is kept (health reads 1h)
PRUNE_AT_ONCE = 10_000  # waits older than KEEP_WAITS deleted by one batch, at most


@dataclass(frozen=True)
class Claim:
    """A leased queue row: the record to match and the token it had when taken."""

    id: int
    system: str
    source_id: str
    token: str
    # set by `hold`: the record was queued again since it was taken (a newer token)
    changed: bool = False

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
    claims, each marked `changed` if its record was queued again since it was taken; a
    row whose lease was taken over by another worker is left out."""
    if not claims:
        return []
    rows = conn.execute(
        select(work_item.c.id, work_item.c.token)
        .where(work_item.c.id.in_([c.id for c in claims]), work_item.c.lease_owner == worker)
        .with_for_update()
    )
    tokens = {row.id: row.token for row in rows}
    return [replace(c, changed=tokens[c.id] != c.token) for c in claims if c.id in tokens]


def complete(conn: Connection, worker: str, claims: Sequence[Claim]) -> int:
    """Remove the rows matched as taken, recording how long each waited (`match_wait`);
    release those that changed since (they are matched again, and keep their place).
    Returns how many were released. `claims` are what `hold` returned, in its
    transaction: the rows are locked, so the tokens it read are the ones seen here."""
    if not claims:
        return 0
    matched = [c.id for c in claims if not c.changed]
    changed = [c.id for c in claims if c.changed]
    if matched:
        mine = and_(work_item.c.id.in_(matched), work_item.c.lease_owner == worker)
        _record_waits(conn, mine)
        conn.execute(delete(work_item).where(mine))
    if not changed:
        return 0
    released = conn.execute(
        update(work_item)
        .where(work_item.c.id.in_(changed), work_item.c.lease_owner == worker)
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


def remove_covered(conn: Connection, entity_type: str) -> datetime:
    """Drop the rows a full resolve covered, recording how long each has waited
    (`match_wait`), in its transaction (see `mark_covered`). The rows go as the writes
    begin, so that the resolve takes their locks in the same order as intake does (then
    the audit counter); the waits are recorded as ending then, and `end_covered_waits`
    moves them to the end of the writes. Returns the time recorded."""
    covered = (work_item.c.entity_type == entity_type) & (
        work_item.c.covered_token == work_item.c.token
    )
    now = _record_waits(conn, covered)
    conn.execute(delete(work_item).where(covered))
    return now


def end_covered_waits(conn: Connection, recorded_at: datetime) -> None:
    """Move the waits `remove_covered` recorded at `recorded_at` to now: a full resolve
    calls it last in its write transaction, so a record's wait ends with the writes that
    made its golden record (at a million records, minutes after they began). Matching
    writes one transaction at a time (`MATCHING_LOCK`), so no other waits carry that time."""
    now = utcnow()
    shift = (now - recorded_at).total_seconds()
    if shift <= 0:
        return
    conn.execute(
        update(match_wait)
        .where(match_wait.c.matched_at == recorded_at)
        .values(matched_at=now, seconds=match_wait.c.seconds + shift)
    )


def _record_waits(conn: Connection, rows: Any) -> datetime:
    """For each queue row `rows` selects, about to be removed as matched: its system and
    how long it has waited, from `enqueued_at` to now, in one INSERT ... SELECT; then
    prune waits older than KEEP_WAITS (an index range, PRUNE_AT_ONCE at most).
    Returns the time recorded as the end of the waits."""
    now = utcnow()
    at = literal(now, UTCDateTime)
    waited = seconds_between(work_item.c.enqueued_at, at, conn.dialect.name)
    conn.execute(
        match_wait.insert().from_select(
            ["system", "matched_at", "seconds"],
            select(work_item.c.system, at, waited).where(rows),
        )
    )
    prune_waits(conn, now - KEEP_WAITS)
    return now


def prune_waits(conn: Connection, before: datetime, *, limit: int = PRUNE_AT_ONCE) -> int:
    """Delete up to `limit` recorded waits of records matched before `before`. Returns
    how many."""
    old = select(match_wait.c.id).where(match_wait.c.matched_at < before).limit(limit)
    result = conn.execute(delete(match_wait).where(match_wait.c.id.in_(old.scalar_subquery())))
    return result.rowcount or 0


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
