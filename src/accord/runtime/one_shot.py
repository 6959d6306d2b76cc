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
outcome or counts; its loads record what it did.
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

from sqlalchemy import Engine

from accord.config.loader import Project
from accord.errors import AccordError, Conflict
from accord.runtime.scheduler import LEASE, Clock, plan
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
    lease: timedelta = LEASE,
    clock: Clock = utcnow,
) -> Iterator[Hold]:
    """Hold `system`'s `channel` while the block runs (see the module's text); raises
    Conflict, having read nothing, when a worker or another command holds it. The
    block should stop soon after `hold.lost` is set (the lease could not be renewed and
    a worker took the channel over); the lease lost is then raised as Conflict once the
    block has ended."""
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
    try:
        yield hold
        ended_well = True
    finally:
        done.set()
        renewer.join()
        try:
            with writing(engine) as conn:
                schedule_store.release(conn, system, channel, owner, now=clock())
        except Exception:
            if ended_well:
                raise
            log.exception("%s %s: the lease could not be given up; it runs out", system, channel)
    if hold.lost.is_set():
        raise Conflict(
            f"{system}'s {channel}: the lease could not be renewed and a worker took the "
            "channel over; this command stopped after its current file, page or batch",
            hint="what was loaded is kept; the worker goes on from there",
        )


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
            hold.lost.set()
            return
