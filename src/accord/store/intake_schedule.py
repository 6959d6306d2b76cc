"""When each pull channel of each system runs, and who runs it now (`intake_schedule`).

One row per (system, channel). A worker runs a channel only after it has claimed the
row: a conditional UPDATE that succeeds only when the channel is due and no other worker
holds an unexpired lease. Both backends settle two claims of one row the same way: on
SQLite one write transaction runs at a time; on PostgreSQL the second UPDATE waits for
the first to commit, then finds the lease taken and changes nothing. A holder that dies
leaves its lease to run out, and the row is claimable again.

A run by hand (`accord drop scan`, `accord poll`, `accord broker consume`) takes the same
lease with `hold`, whatever the due time, and gives it up with `release`: a worker does
not claim the channel meanwhile, and the command does not start while a worker holds it.

What the times mean (when a channel is due, what timing a row was worked out for) is the
scheduler's business (`runtime/scheduler.py`); the store only keeps and compares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update

from accord.store.dialect import insert_new
from accord.store.tables import intake_schedule as table

MAX_MESSAGE = 2000  # characters of a run's message kept
# Counts that say what holds the run in hand back now (a broker paused at the backlog
# bound: `runtime/scheduler.py`), not what a run did: a new holder starts without them.
IN_FORCE = ("paused_backlog", "paused_bound")


@dataclass(frozen=True)
class ChannelRow:
    system: str
    channel: str
    timing: str
    due_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None  # ok, failed, stopped; None before the first run ends
    last_message: str | None
    last_load_id: int | None
    last_counts: dict[str, Any] | None
    failures: int  # failed runs in a row

    def held(self, now: datetime) -> bool:
        """Whether a worker holds the channel at `now` (its lease has not run out)."""
        return self.lease_until is not None and self.lease_until >= now


def _row(found: Any) -> ChannelRow:
    return ChannelRow(**{column: getattr(found, column) for column in ChannelRow.__annotations__})


def read_all(conn: Connection) -> list[ChannelRow]:
    """Every channel's row, by system and channel."""
    rows = conn.execute(select(table).order_by(table.c.system, table.c.channel))
    return [_row(r) for r in rows]


def read(conn: Connection, system: str, channel: str) -> ChannelRow | None:
    found = conn.execute(
        select(table).where(table.c.system == system, table.c.channel == channel)
    ).first()
    return None if found is None else _row(found)


def register(
    conn: Connection, system: str, channel: str, *, timing: str, due_at: datetime, now: datetime
) -> bool:
    """Add the channel's row, due at `due_at`, unless it exists. True when added."""
    return insert_new(
        conn,
        table,
        {
            "system": system,
            "channel": channel,
            "timing": timing,
            "due_at": due_at,
            "failures": 0,
            "updated_at": now,
        },
    )


def retime(
    conn: Connection, system: str, channel: str, *, timing: str, due_at: datetime, now: datetime
) -> bool:
    """Set a new timing and the due time worked out for it, unless the row has that
    timing already (so several workers starting at once change it once). True when
    changed. A run in hand keeps its lease."""
    changed = conn.execute(
        update(table)
        .where(table.c.system == system, table.c.channel == channel, table.c.timing != timing)
        .values(timing=timing, due_at=due_at, updated_at=now)
        .returning(table.c.system)
    )
    return changed.first() is not None


def claim(
    conn: Connection, system: str, channel: str, owner: str, *, now: datetime, lease: timedelta
) -> bool:
    """Take the channel for `owner` until `now + lease`, if it is due at `now` and no
    lease on it is running. True when taken: the caller runs the channel, then calls
    `finish`."""
    return _take(conn, system, channel, owner, now=now, lease=lease, due=True)


def hold(
    conn: Connection, system: str, channel: str, owner: str, *, now: datetime, lease: timedelta
) -> bool:
    """Take the registered channel for `owner` until `now + lease`, due or not, if no
    lease on it is running (a run by hand). True when taken: the caller runs the
    channel, renews the lease while it lasts, then calls `release`."""
    return _take(conn, system, channel, owner, now=now, lease=lease, due=False)


def _take(
    conn: Connection,
    system: str,
    channel: str,
    owner: str,
    *,
    now: datetime,
    lease: timedelta,
    due: bool,
) -> bool:
    """Lease the channel to `owner` in one conditional UPDATE, if no lease on it is
    running (and, with `due`, if it is due): of several takers, one wins. What the
    last holder noted as in force (`IN_FORCE`: its pause) goes with its lease, so
    `accord worker status` never shows the new holder held back by it."""
    conditions = [
        table.c.system == system,
        table.c.channel == channel,
        or_(table.c.lease_until.is_(None), table.c.lease_until < now),
    ]
    if due:
        conditions.append(table.c.due_at <= now)
    taken = conn.execute(
        update(table)
        .where(*conditions)
        .values(lease_owner=owner, lease_until=now + lease, last_started_at=now, updated_at=now)
        .returning(table.c.last_counts)
    ).first()
    if taken is None:
        return False
    counts = taken.last_counts
    if counts and any(key in counts for key in IN_FORCE):  # in the same transaction
        kept = {key: value for key, value in counts.items() if key not in IN_FORCE}
        conn.execute(
            update(table)
            .where(table.c.system == system, table.c.channel == channel)
            .values(last_counts=kept)
        )
    return True


def release(conn: Connection, system: str, channel: str, owner: str, *, now: datetime) -> bool:
    """Give up `owner`'s lease taken by `hold`, recording nothing of the run (a run by
    hand leaves the next due time and the last run's outcome and counts as they were;
    `hold` noted its start and dropped a pause noted; its load records what it did).
    False when the lease is not `owner`'s (it ran out and another took the channel)."""
    released = conn.execute(
        update(table)
        .where(
            table.c.system == system,
            table.c.channel == channel,
            table.c.lease_owner == owner,
        )
        .values(lease_owner=None, lease_until=None, updated_at=now)
        .returning(table.c.system)
    )
    return released.first() is not None


def renew(
    conn: Connection,
    system: str,
    channel: str,
    owner: str,
    *,
    until: datetime,
    now: datetime,
    counts: dict[str, Any] | None = None,
) -> bool:
    """Extend `owner`'s lease to `until` (and note the run's counts so far). False when
    the channel is no longer `owner`'s: its lease ran out and another worker claimed it.
    (A lease that ran out unclaimed is still the owner's to renew.)"""
    values: dict[str, Any] = {"lease_until": until, "updated_at": now}
    if counts is not None:
        values["last_counts"] = counts
    renewed = conn.execute(
        update(table)
        .where(
            table.c.system == system,
            table.c.channel == channel,
            table.c.lease_owner == owner,
        )
        .values(values)
        .returning(table.c.system)
    )
    return renewed.first() is not None


def finish(
    conn: Connection,
    system: str,
    channel: str,
    owner: str,
    *,
    now: datetime,
    outcome: str,
    message: str | None,
    load_id: int | None,
    counts: dict[str, Any] | None,
    due_at: datetime,
) -> bool:
    """Record how `owner`'s run ended, when the channel is due next, and give up the
    lease. False, changing nothing, when the lease is no longer `owner`'s (another worker
    took the channel over after it ran out: that worker's run is the one recorded)."""
    ended = conn.execute(
        update(table)
        .where(
            table.c.system == system,
            table.c.channel == channel,
            table.c.lease_owner == owner,
        )
        .values(
            lease_owner=None,
            lease_until=None,
            last_finished_at=now,
            last_outcome=outcome,
            last_message=None if message is None else message[:MAX_MESSAGE],
            last_load_id=load_id,
            last_counts=counts,
            failures=_failures(outcome),
            due_at=due_at,
            updated_at=now,
        )
        .returning(table.c.system)
    )
    return ended.first() is not None


def _failures(outcome: str) -> Any:
    """Failed runs in a row: one more after a failure, none after a run that went well,
    as many as before after a run that was stopped part way."""
    if outcome == "failed":
        return table.c.failures + 1
    if outcome == "ok":
        return 0
    return table.c.failures
