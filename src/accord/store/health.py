"""The aggregate reads behind the health figures (`runtime/health.py`): each is one
statement over an index, bounded by a time window or by one target, so it stays fast
at millions of records (a test checks SQLite's query plans)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, or_, select, union_all

from accord.store.dialect import seconds_between
from accord.store.queue import MAX_ATTEMPTS
from accord.store.sync import DEAD, PENDING, SENT, held_by
from accord.store.tables import (
    golden_change,
    golden_record,
    match_wait,
    quarantine,
    source_record,
    sync_delivery,
    work_item,
)
from accord.store.types import UTCDateTime


def nearest_rank(percent: int, count: int) -> int:
    """The rank (from 1) of the `percent`th percentile of `count` sorted values: the
    smallest value with at least `percent`% of them at or below it."""
    return max(1, -(-percent * count // 100))


@dataclass(frozen=True)
class Arrivals:
    """What came in from one system lately: versions stored, entries quarantined."""

    stored_hour: int = 0
    stored_day: int = 0
    quarantined_hour: int = 0
    quarantined_day: int = 0


def _ranked(value: Any, partition: Sequence[Any] = (), *, also: Sequence[Any] = ()) -> Any:
    """`value` as `seconds`, ranked from the smallest (`rank`, from 1) within each
    `partition` (all rows when none), with the partition's count (`total`): the rows a
    nearest-rank percentile is picked from, sorted by the database. `also`: columns to
    select besides. The caller adds its tables and conditions."""
    by = list(partition) or None
    return select(
        *also,
        value.label("seconds"),
        func.row_number().over(partition_by=by, order_by=value).label("rank"),
        func.count().over(partition_by=by).label("total"),
    )


def _nearest(ranked: Any, percent: int) -> Any:
    """The rank of the `percent`th percentile among `ranked`'s `total` (`nearest_rank`,
    in SQL)."""
    return (percent * ranked.c.total + 99) // 100


def arrivals(conn: Connection, system: str, *, hour: datetime, day: datetime) -> Arrivals:
    """What came in from `system` since `day`, and of that since `hour` (`hour` >=
    `day`): two ranges of the (system, time) indexes."""
    stored_hour, stored_day = conn.execute(
        select(func.count().filter(source_record.c.received_at >= hour), func.count()).where(
            source_record.c.system == system, source_record.c.received_at >= day
        )
    ).one()
    filed_hour, filed_day = conn.execute(
        select(func.count().filter(quarantine.c.created_at >= hour), func.count()).where(
            quarantine.c.system == system, quarantine.c.created_at >= day
        )
    ).one()
    return Arrivals(int(stored_hour), int(stored_day), int(filed_hour), int(filed_day))


@dataclass(frozen=True)
class Queue:
    """One system's records on the work queue."""

    backlog: int = 0  # waiting to be matched or being matched now
    failed: int = 0  # given up on after MAX_ATTEMPTS (`accord worker retry`)
    oldest: datetime | None = None  # when the longest-waiting of the backlog was queued


def queues(conn: Connection) -> dict[str, Queue]:
    """system -> its records on the work queue (the queue is the backlog: one pass)."""
    failed = work_item.c.attempts >= MAX_ATTEMPTS
    rows = conn.execute(
        select(
            work_item.c.system,
            func.count().filter(~failed),
            func.count().filter(failed),
            func.min(work_item.c.enqueued_at).filter(~failed),
        ).group_by(work_item.c.system)
    ).all()
    return {
        system: Queue(int(backlog), int(given_up), oldest)
        for system, backlog, given_up, oldest in rows
    }


@dataclass(frozen=True)
class Finished:
    """Deliveries to one target finished (sent or dead) in a window."""

    sent: int
    dead: int
    with_errors: int  # dead, or sent after a failed attempt


def finished(conn: Connection, target: str, since: datetime) -> Finished:
    state = sync_delivery.c.state
    sent, dead, with_errors = conn.execute(
        select(
            func.count().filter(state == SENT),
            func.count().filter(state == DEAD),
            func.count().filter(or_(state == DEAD, sync_delivery.c.attempts > 1)),
        ).where(
            sync_delivery.c.target == target,
            sync_delivery.c.finished_at >= since,
            state.in_([SENT, DEAD]),
        )
    ).one()
    return Finished(int(sent), int(dead), int(with_errors))


def latencies_at(
    conn: Connection, target: str, since: datetime, ranks: Sequence[int]
) -> dict[int, float]:
    """rank -> seconds from the golden change to its delivery, for the deliveries to
    `target` sent since `since`, ranked from the quickest (1) on: the nearest-rank
    percentiles, sorted by the database."""
    if not ranks:
        return {}
    latency = seconds_between(
        golden_change.c.changed_at, sync_delivery.c.finished_at, conn.dialect.name
    )
    ranked = (
        _ranked(latency)
        .select_from(
            sync_delivery.join(golden_change, golden_change.c.id == sync_delivery.c.change_id)
        )
        .where(
            sync_delivery.c.target == target,
            sync_delivery.c.finished_at >= since,
            sync_delivery.c.state == SENT,
        )
        .subquery()
    )
    rows = conn.execute(
        select(ranked.c.rank, ranked.c.seconds).where(ranked.c.rank.in_(sorted(set(ranks))))
    )
    return {int(rank): max(float(seconds), 0.0) for rank, seconds in rows}


@dataclass(frozen=True)
class Waits:
    """One system's records matched in a window: how many, and how long they waited
    from received (queued) to golden, at each percentile asked for."""

    matched: int
    seconds: dict[int, float] = field(default_factory=dict)  # percent -> seconds


def waits(conn: Connection, since: datetime, percents: Sequence[int]) -> dict[str, Waits]:
    """system -> its records matched since `since` (`match_wait`) and the nearest-rank
    percentiles of their waits: the smallest wait with at least p% of them at or under
    it, rank ceil(p * count / 100). One statement over the window's range of the
    `matched_at` index, every system at once, ranked and counted by the database; a
    system with nothing matched in the window is absent."""
    ranked = (
        _ranked(match_wait.c.seconds, [match_wait.c.system], also=[match_wait.c.system])
        .where(match_wait.c.matched_at >= since)
        .subquery()
    )
    rank_of = {p: _nearest(ranked, p) for p in sorted(set(percents))}
    rows = conn.execute(
        select(ranked.c.system, ranked.c.seconds, ranked.c.rank, ranked.c.total).where(
            or_(ranked.c.rank == 1, *(ranked.c.rank == rank for rank in rank_of.values()))
        )
    ).all()
    totals: dict[str, int] = {}
    by_rank: dict[str, dict[int, float]] = {}
    for system, seconds, rank, total in rows:
        totals[system] = int(total)
        by_rank.setdefault(system, {})[int(rank)] = max(float(seconds), 0.0)
    return {
        system: Waits(total, {p: by_rank[system][nearest_rank(p, total)] for p in rank_of})
        for system, total in totals.items()
    }


def active_customers(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(golden_record)
            .where(golden_record.c.status == "active")
        ).scalar_one()
    )


def customers_held(conn: Connection, target: str) -> int:
    """Active customers `target` holds a record of (`store.sync.held_by`)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(golden_record)
            .where(golden_record.c.status == "active", held_by(target))
        ).scalar_one()
    )


# ---- over time: the same figures in buckets of a window (the health page's charts)
#
# `edges` are the buckets' bounds, oldest first: bucket i holds [edges[i], edges[i+1]).
# Each read is one statement over one index range bounded by the window (per system or
# target, so the (system, time) indexes serve it), bucketed by a CASE over the edges,
# which both stores run alike.


def _bucket(column: Any, edges: Sequence[datetime]) -> Any:
    """The bucket a time falls in, for times within [edges[0], edges[-1])."""
    last = len(edges) - 2
    return case(*((column < edge, i) for i, edge in enumerate(edges[1:-1])), else_=last)


def _in_window(column: Any, edges: Sequence[datetime]) -> Any:
    return and_(column >= edges[0], column < edges[-1])


def _range_counts(
    conn: Connection, column: Any, where: Any, edges: Sequence[datetime]
) -> list[int]:
    """Rows matching `where` with `column` in each bucket: one count over an index range
    a bucket, in one statement. Cheaper than grouping by a computed bucket, which reads
    every row of the window through an expression and a sort."""
    counts = conn.execute(
        select(
            *(
                select(func.count()).where(where, column >= start, column < end).scalar_subquery()
                for start, end in itertools.pairwise(edges)
            )
        )
    ).one()
    return [int(c) for c in counts]


def stored_over(conn: Connection, system: str, edges: Sequence[datetime]) -> list[int]:
    """Record versions stored from `system` in each bucket: ranges of (system,
    received_at)."""
    where = source_record.c.system == system
    return _range_counts(conn, source_record.c.received_at, where, edges)


def quarantined_over(conn: Connection, system: str, edges: Sequence[datetime]) -> list[int]:
    """Quarantine entries filed for `system` in each bucket: ranges of (system,
    created_at)."""
    return _range_counts(conn, quarantine.c.created_at, quarantine.c.system == system, edges)


@dataclass(frozen=True)
class Percentile:
    """One bucket's values: how many, and the nearest-rank `percent`th of them."""

    count: int
    value: float


def waits_over(
    conn: Connection, edges: Sequence[datetime], percent: int
) -> dict[str, dict[int, Percentile]]:
    """system -> bucket -> the records matched in it and the nearest-rank `percent`th
    of their waits from received to golden (`match_wait`, a range of its `matched_at`
    index; kept a day, so buckets further back are empty)."""
    bucket = _bucket(match_wait.c.matched_at, edges)
    ranked = (
        _ranked(
            match_wait.c.seconds,
            [match_wait.c.system, bucket],
            also=[match_wait.c.system, bucket.label("bucket")],
        )
        .where(_in_window(match_wait.c.matched_at, edges))
        .subquery()
    )
    rows = conn.execute(
        select(ranked.c.system, ranked.c.bucket, ranked.c.seconds, ranked.c.total).where(
            ranked.c.rank == _nearest(ranked, percent)
        )
    )
    found: dict[str, dict[int, Percentile]] = {}
    for system, at, seconds, total in rows:
        found.setdefault(system, {})[int(at)] = Percentile(int(total), max(float(seconds), 0.0))
    return found


def backlog_at(conn: Connection, moments: Sequence[datetime]) -> dict[str, list[int]]:
    """system -> its records waiting to be matched at each of `moments` (all within the
    last day): those matched since, that had been received by then (`match_wait`: a
    record waited from `matched_at - seconds`), and those still on the work queue that
    had been received by then. Records given up on count as waiting."""
    if not moments:
        return {}
    dialect = conn.dialect.name
    waited = match_wait.c.seconds
    found: dict[str, list[int]] = {}
    matched_since = conn.execute(
        select(
            match_wait.c.system,
            *(
                func.count().filter(
                    match_wait.c.matched_at > moment,
                    waited
                    >= seconds_between(
                        literal(moment, UTCDateTime), match_wait.c.matched_at, dialect
                    ),
                )
                for moment in moments
            ),
        )
        .where(match_wait.c.matched_at > min(moments))
        .group_by(match_wait.c.system)
    )
    still_queued = conn.execute(
        select(
            work_item.c.system,
            *(func.count().filter(work_item.c.enqueued_at <= moment) for moment in moments),
        ).group_by(work_item.c.system)
    )
    for system, *counts in [*matched_since, *still_queued]:
        before = found.setdefault(system, [0] * len(moments))
        found[system] = [a + int(b) for a, b in zip(before, counts, strict=True)]
    return found


@dataclass(frozen=True)
class DeliveryBuckets:
    """Deliveries to one target finished in each bucket."""

    sent: list[int]
    dead: list[int]
    with_errors: list[int]  # dead, or sent after a failed attempt


def finished_over(conn: Connection, target: str, edges: Sequence[datetime]) -> DeliveryBuckets:
    """Ranges of (target, finished_at), one a bucket, in one statement."""
    state = sync_delivery.c.state
    finished = sync_delivery.c.finished_at
    buckets = [
        select(
            literal(i).label("bucket"),
            func.count().filter(state == SENT),
            func.count().filter(state == DEAD),
            func.count().filter(or_(state == DEAD, sync_delivery.c.attempts > 1)),
        ).where(
            sync_delivery.c.target == target,
            finished >= start,
            finished < end,
            state.in_([SENT, DEAD]),
        )
        for i, (start, end) in enumerate(itertools.pairwise(edges))
    ]
    rows = sorted(conn.execute(union_all(*buckets)).all())  # by bucket
    return DeliveryBuckets(
        [int(r[1]) for r in rows], [int(r[2]) for r in rows], [int(r[3]) for r in rows]
    )


def delivery_latency_over(
    conn: Connection, target: str, edges: Sequence[datetime], percent: int
) -> dict[int, Percentile]:
    """bucket -> the deliveries to `target` sent in it and the nearest-rank `percent`th
    of their latencies from golden change to delivery."""
    latency = seconds_between(
        golden_change.c.changed_at, sync_delivery.c.finished_at, conn.dialect.name
    )
    bucket = _bucket(sync_delivery.c.finished_at, edges)
    ranked = (
        _ranked(latency, [bucket], also=[bucket.label("bucket")])
        .select_from(
            sync_delivery.join(golden_change, golden_change.c.id == sync_delivery.c.change_id)
        )
        .where(
            sync_delivery.c.target == target,
            _in_window(sync_delivery.c.finished_at, edges),
            sync_delivery.c.state == SENT,
        )
        .subquery()
    )
    rows = conn.execute(
        select(ranked.c.bucket, ranked.c.seconds, ranked.c.total).where(
            ranked.c.rank == _nearest(ranked, percent)
        )
    )
    return {
        int(at): Percentile(int(total), max(float(seconds), 0.0)) for at, seconds, total in rows
    }


def deliveries_waiting_at(conn: Connection, target: str, moments: Sequence[datetime]) -> list[int]:
    """Deliveries to `target` planned and not yet finished at each of `moments`: those
    finished since (a range of (target, finished_at)) and those pending now (of
    (target, state)), that had been planned by then. Outbox changes not yet planned
    into deliveries are not counted: nothing records when a target's cursor passed
    them."""
    if not moments:
        return []
    created = sync_delivery.c.created_at
    finished = sync_delivery.c.finished_at
    later = conn.execute(
        select(*(func.count().filter(created <= m, finished > m) for m in moments)).where(
            sync_delivery.c.target == target, finished > min(moments)
        )
    ).one()
    pending = conn.execute(
        select(*(func.count().filter(created <= m) for m in moments)).where(
            sync_delivery.c.target == target, sync_delivery.c.state == PENDING
        )
    ).one()
    return [int(a) + int(b) for a, b in zip(later, pending, strict=True)]
