"""A channel run by hand (`accord drop scan`, `accord poll`, `accord broker consume`)
holds the channel the way a worker's scheduled run does: through the lease on its row in
`intake_schedule` (`store/intake_schedule.py`). So a command does not scan a folder, poll
a window or consume a stream that a worker is working on at the same moment, and no
worker starts that channel while the command runs.

`holding` takes the lease (whatever the schedule says; the row is made if no worker has
made it yet), renews it while the command runs, and gives it up however the command ends:
done, failed or interrupted (Ctrl-C). A command killed outright leaves its lease to run
out, as a worker does. A worker holding the channel is refused with who, since when, and
what to do. A run by hand notes its start as the channel's last start (what a refusal
says "since" of, and what a timing changed later counts from, as from a worker's run),
and changes nothing else of the schedule: not the next due time, not the last run's
outcome or counts (but for a pause noted in them, which was that run's alone); its loads
record what it did.

A command that could not renew its lease before it ran out (the store too slow or
unreachable for that long) may find the channel taken over, by a renewal or when it
gives the lease up. It stops after the file, page or batch in hand, and `LeaseLost` is
raised once its block has ended, so that the command shows what it stored first, then
says the lease was lost, who took the channel and what to do.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Connection, Engine

from accord.config.loader import Project
from accord.errors import AccordError, Conflict
from accord.runtime.scheduler import LEASE, Clock, plan, shown_duration
from accord.store import intake_schedule as schedule_store
from accord.store.engine import writing
from accord.store.intake_schedule import ChannelRow
from accord.store.types import utcnow

log = logging.getLogger(__name__)

BY_HAND = "by hand: "  # how a lease holder that is a command, not a worker, is named


@dataclass
class Hold:
    """The lease a command holds on one channel while it runs."""

    system: str
    channel: str
    owner: str
    lost: threading.Event = field(default_factory=threading.Event)  # taken over: stop
    taken_by: str | None = None  # who held the channel when the loss was found, if anyone


class LeaseLost(Conflict):
    """A run by hand lost its channel's lease part way: it ran out, not renewed, and a
    worker or another command took the channel over. What the run stored stays stored."""


def owner_shown(owner: str | None) -> str:
    """A lease holder as a sentence names it (pure)."""
    if owner is None:
        return "another worker or command (its run has ended since)"
    if owner.startswith(BY_HAND):
        return f"another run by hand ({owner.removeprefix(BY_HAND)})"
    return f"worker {owner}"


def lease_lost(hold: Hold, lease: timedelta, *, stopped: bool) -> LeaseLost:
    """What a command says once it has found its lease taken over (pure): `stopped`, by
    a renewal, and it stopped after the file, page or batch in hand; else as it ended."""
    taker = owner_shown(hold.taken_by)
    when = (
        "this command stopped after the file, page or batch in hand"
        if stopped
        else "this command found out as it ended"
    )
    return LeaseLost(
        f"{hold.system}'s {hold.channel}: this run lost its lease: it ran out (not renewed "
        f"within {shown_duration(lease)}) and {taker} took the channel over; {when}. What "
        "it stored (shown above) stays stored",
        hint=f"{'the next run' if hold.taken_by is None else taker} goes on from there, and "
        "nothing is stored twice (`accord worker status DIR` shows the channel). A lease "
        "runs out when the command cannot reach the store, or the store is too slow, to "
        "renew it: look into that before running this again",
    )


def owner_name(command: str, actor: str) -> str:
    """The lease holder's name for a command run by `actor` in this process."""
    return f"{BY_HAND}{command}, {actor}, {socket.gethostname()}:{os.getpid()}"


def busy(system: str, channel: str, row: ChannelRow) -> Conflict:
    """The refusal of a run by hand while `row`'s lease is held: who holds it, since
    when, and what to do (pure)."""
    owner = row.lease_owner or "?"
    since = (
        "" if row.last_started_at is None else f" since {row.last_started_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    until = "" if row.lease_until is None else f"{row.lease_until:%Y-%m-%d %H:%M:%S} UTC"
    if owner.startswith(BY_HAND):
        return Conflict(
            f"{system}'s {channel} is being run by hand ({owner.removeprefix(BY_HAND)})"
            f"{since}; nothing was read",
            hint="wait for that command to end, then run this again (if it was killed, "
            f"its lease runs out at {until})",
        )
    return Conflict(
        f"{system}'s {channel} is running in worker {owner}{since}; nothing was read",
        hint="wait for it to end, or stop that worker, then run this again (`accord worker "
        "status DIR` shows the run; if the worker is gone, its lease runs out at "
        f"{until})",
    )


@contextmanager
def holding(
    engine: Engine,
    project: Project,
    system: str,
    channel: str,
    *,
    command: str,
    actor: str,
    lease: timedelta | None = None,
    clock: Clock = utcnow,
) -> Iterator[Hold]:
    """Hold `system`'s `channel` while the block runs (see the module's text); raises
    Conflict, having read nothing, when a worker or another command holds it. The
    block should stop soon after `hold.lost` is set (the lease ran out before it could
    be renewed, and another took the channel over); once the block has ended, a lease
    lost (found by a renewal, or by the release at the end) is raised as `LeaseLost`,
    for the command to say after what it stored. `lease`: a worker's (LEASE) by default."""
    lease = LEASE if lease is None else lease
    planned = next((p for p in plan(project) if (p.system, p.channel) == (system, channel)), None)
    if planned is None:
        raise AccordError(f"{system} has no {channel} block in accord.yaml")
    owner = owner_name(command, actor)
    now = clock()
    with writing(engine) as conn:
        schedule_store.register(
            conn,
            system,
            channel,
            timing=str(planned.timing),
            due_at=planned.timing.first_due(now),
            now=now,
        )
        taken = schedule_store.hold(conn, system, channel, owner, now=now, lease=lease)
        row = None if taken else schedule_store.read(conn, system, channel)
    if row is not None:
        raise busy(system, channel, row)
    hold = Hold(system, channel, owner)
    done = threading.Event()
    renewer = threading.Thread(
        target=_renew,
        args=(engine, hold, lease, clock, done),
        name=f"accord-hold-{system}-{channel}",
        daemon=True,
    )
    renewer.start()
    ended_well = False
    released = True
    try:
        yield hold
        ended_well = True
    finally:
        done.set()
        renewer.join()
        try:
            with writing(engine) as conn:
                released = schedule_store.release(conn, system, channel, owner, now=clock())
                if not released and not hold.lost.is_set():  # taken over since the last renewal
                    hold.taken_by = _holder(conn, system, channel)
        except Exception:
            if ended_well:
                raise
            log.exception("%s %s: the lease could not be given up; it runs out", system, channel)
    stopped = hold.lost.is_set()
    if stopped or not released:
        raise lease_lost(hold, lease, stopped=stopped)


def _renew(
    engine: Engine, hold: Hold, lease: timedelta, clock: Clock, done: threading.Event
) -> None:
    """Renew the lease every quarter of it until `done`; set `hold.lost` when another
    took it over. A renewal that fails (the store unreachable) is tried again."""
    every = lease.total_seconds() / 4
    while not done.wait(every):
        now = clock()
        try:
            with writing(engine) as conn:
                kept = schedule_store.renew(
                    conn, hold.system, hold.channel, hold.owner, until=now + lease, now=now
                )
        except Exception:  # noqa: BLE001  (tried again in a quarter of the lease)
            log.warning("%s %s: cannot renew the lease", hold.system, hold.channel)
            continue
        if not kept:
            try:
                with engine.connect() as conn:
                    hold.taken_by = _holder(conn, hold.system, hold.channel)
            except Exception:  # noqa: BLE001  (who it was is a detail of the message)
                log.warning(
                    "%s %s: cannot read who took the channel over", hold.system, hold.channel
                )
            hold.lost.set()
            return


def _holder(conn: Connection, system: str, channel: str) -> str | None:
    row = schedule_store.read(conn, system, channel)
    return None if row is None else row.lease_owner
