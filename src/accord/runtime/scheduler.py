"""The intake scheduler: runs each system's pull channels (the file drop, the SQL poll,
the broker) inside the long-running worker, when accord.yaml says.

When a channel runs (`plan`, `Timing`; pure):
- by default, every `every:` of its block (drop 1m, poll 5m, broker 1m), counted from
  the start of its last run, whatever that run's outcome: a source that is down is tried
  again `every` later, not in a tight loop;
- a system with `sync: batch` and a `schedule:` (cron, in UTC) runs its pull channels at
  the schedule's times instead (a broker drains what is waiting, then stops until the
  next time);
- a system with `sync: realtime` has its broker consumed continuously: one connection
  and subscription, fetch after fetch, until the worker stops. A continuous run that
  fails (the server is down) is tried again after a pause that grows from 5 seconds to 2
  minutes.
A run stopped part way (the worker was asked to stop) is due again at once, so the next
worker to come finishes what it left.

A broker run, continuous or scheduled, pauses while the work queue's backlog is at
ACCORD_MAX_BACKLOG (`intake/backpressure.py`): it fetches nothing, keeps its lease, looks
at the backlog again every second and goes on once it is below 90% of the bound. `accord
worker status` shows the pause while it lasts; the run's message counts the pauses.

Several worker processes may run the scheduler at once: a channel runs only after its row
in `intake_schedule` has been claimed (`store/intake_schedule.py`), so one system's
channel never runs twice at the same time, and a restart respects the due time stored
there. The holder renews its lease while the run lasts; a holder that dies leaves the
lease to run out, and the channel runs again elsewhere.

Each run in hand has a thread of its own, so a long file on one system does not hold up
another system's poll. A run that fails is recorded with its message and tried again at
its next due time; it never stops the worker or the other channels. When the worker
stops, each run in hand finishes its current file, page or fetch, and stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cronsim import CronSim
from sqlalchemy import Engine

from accord.config.intake import cron_expression
from accord.config.loader import Project
from accord.errors import AccordError
from accord.intake import broker, drop, poll
from accord.intake.backpressure import WHAT_TO_DO, BacklogReading, Pause, resume_below
from accord.intake.load import LoadReport
from accord.settings import Settings
from accord.store import intake_schedule as schedule_store
from accord.store.engine import writing
from accord.store.types import utcnow

log = logging.getLogger(__name__)

ChannelName = Literal["drop", "poll", "broker"]
CHANNELS: tuple[ChannelName, ...] = ("drop", "poll", "broker")
LEASE = timedelta(minutes=2)  # a run's hold on its channel, renewed while it lasts
TICK = 1.0  # seconds between looks at what is due
RETRY_FIRST = timedelta(seconds=5)  # a failed continuous run is tried again after this,
RETRY_MOST = timedelta(minutes=2)  # doubling with each failure in a row, up to this
PAUSED_LOOK = 1.0  # seconds between looks at the backlog while a broker is paused

Clock = Callable[[], datetime]
COUNTED = ("read", "new", "changed", "unchanged", "quarantined", "flagged")


# ---- when a channel runs (pure)


def shown_duration(span: timedelta) -> str:
    """A duration as accord.yaml writes it: `5m`, `1h30m`, `90s`, `500ms`."""
    millis = round(span.total_seconds() * 1000)
    if millis % 1000:
        return f"{millis}ms"
    seconds = millis // 1000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def next_cron_time(expression: str, after: datetime) -> datetime:
    """The first time the five-field cron `expression` (UTC) names strictly after
    `after` (aware)."""
    return next(CronSim(expression, after.astimezone(UTC)))


@dataclass(frozen=True)
class Timing:
    """When a channel runs: every `every`, at the `cron` times, or (neither) continuously."""

    every: timedelta | None = None
    cron: str | None = None  # five fields, UTC

    @property
    def kind(self) -> str:
        return "cron" if self.cron else "every" if self.every else "continuous"

    def __str__(self) -> str:
        if self.cron:
            return f'cron "{self.cron}"'
        if self.every:
            return f"every {shown_duration(self.every)}"
        return "continuous"

    def first_due(self, now: datetime) -> datetime:
        """When a channel never run is due: at once, or at the next cron time."""
        return next_cron_time(self.cron, now) if self.cron else now

    def due_after(
        self, outcome: str, *, started: datetime, finished: datetime, failures: int
    ) -> datetime:
        """When a channel is due again after a run that started and finished at these
        times with this `outcome` (ok, failed, stopped), `failures` being the failed runs
        in a row counting this one."""
        if outcome == "stopped":
            return finished  # cut short: the next worker finishes it
        if self.cron:  # a cron time that passed while the run lasted is not caught up
            return next_cron_time(self.cron, finished)
        if self.every:
            return started + self.every
        if outcome == "failed":
            pause = RETRY_FIRST * (1 << min(max(failures - 1, 0), 16))
            return finished + min(pause, RETRY_MOST)
        return finished

    def due_when_changed(self, last_started: datetime | None, now: datetime) -> datetime:
        """When a channel is due after the project gave it this timing in place of
        another: `every` from its last start, the next cron time, or at once."""
        if self.every and last_started is not None:
            return last_started + self.every
        return self.first_due(now)


@dataclass(frozen=True)
class PlannedChannel:
    """A pull channel of one system, and when it runs."""

    system: str
    channel: ChannelName
    timing: Timing

    @property
    def name(self) -> str:
        return f"{self.system} {self.channel}"


def plan(project: Project) -> list[PlannedChannel]:
    """Every pull channel of every system, in accord.yaml's order, with its timing; see
    the module's text."""
    planned: list[PlannedChannel] = []
    for name, system in project.config.systems.items():
        intake = system.intake
        cron = (
            cron_expression(system.schedule) if system.sync == "batch" and system.schedule else None
        )
        blocks: list[tuple[ChannelName, Any]] = [
            ("drop", intake.drop),
            ("poll", intake.poll),
            ("broker", intake.broker),
        ]
        for channel, block in blocks:
            if block is None:
                continue
            if cron is not None:
                timing = Timing(cron=cron)
            elif channel == "broker" and system.sync == "realtime":
                timing = Timing()
            else:
                timing = Timing(every=block.every)
            planned.append(PlannedChannel(name, channel, timing))
    return planned


# ---- one run of a channel (the adapters)


@dataclass
class RunResult:
    outcome: str  # ok, failed, stopped
    message: str
    load_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _add(counts: dict[str, int], report: LoadReport) -> None:
    for name in COUNTED:
        counts[name] = counts.get(name, 0) + int(getattr(report, name))
    counts["loads"] = counts.get("loads", 0) + 1


def _summary(counts: dict[str, int]) -> str:
    shown = [f"{counts.get(n, 0)} {n}" for n in ("new", "changed", "quarantined")]
    return f"{counts.get('read', 0)} records read: " + ", ".join(shown)


def _run_drop(
    engine: Engine, project: Project, system: str, *, actor: str, stopping: Callable[[], bool]
) -> RunResult:
    results = drop.scan_once(engine, project, system, actor=actor, should_stop=stopping)
    counts = {"files": len(results), "failed_files": 0}
    load_id = None
    failed = []
    for result in results:
        if result.load is not None:
            _add(counts, result.load)
            load_id = result.load.load_id
        if result.status == drop.FAILED:
            counts["failed_files"] += 1
            failed.append(f"{result.name}: {result.error} (see {result.report_path})")
    if not results:
        return RunResult("ok", "no file waiting", None, counts)
    message = f"{len(results)} file(s), {_summary(counts)}"
    if failed:
        message += f"; {len(failed)} failed: " + "; ".join(failed)
    return RunResult("ok", message, load_id, counts)


def _run_poll(
    engine: Engine, project: Project, system: str, *, actor: str, stopping: Callable[[], bool]
) -> RunResult:
    report = poll.poll_once(engine, project, system, actor=actor, should_stop=stopping)
    counts: dict[str, int] = {}
    _add(counts, report)
    message = _summary(counts)
    if report.unplaced:
        counts["unplaced"] = report.unplaced
        message += f"; {poll.unplaced_text(report.unplaced)}"
    return RunResult("ok", message, report.load_id, counts)


def _run_broker(
    engine: Engine,
    project: Project,
    system: str,
    *,
    actor: str,
    stopping: Callable[[], bool],
    wait: Callable[[float], object],
    note: Callable[[dict[str, int]], None],
    continuous: bool,
    environ: Mapping[str, str] | None,
    max_backlog: int | None,
    reading: BacklogReading | None,
) -> RunResult:
    counts: dict[str, int] = {"messages": 0}
    load_id = None
    with broker.Consumer(
        engine,
        project,
        system,
        actor=actor,
        environ=environ,
        max_backlog=max_backlog,
        reading=reading,
    ) as consumer:
        while not stopping():
            report = consumer.fetch()
            if report.status == "paused":
                if "paused_backlog" not in counts:
                    _log_pause(system, consumer)
                _noted_pause(counts, consumer)
                note(dict(counts))
                wait(PAUSED_LOOK)  # the messages wait in the stream meanwhile
                continue
            if "paused_backlog" in counts:  # resumed
                log.info(
                    "%s broker: resumed, the backlog is under %s records (%ss paused in all)",
                    system,
                    f"{resume_below(counts['paused_bound']):,}",
                    round(consumer.paused_seconds()),
                )
                _noted_pause(counts, consumer)
                note(dict(counts))
            if report.status != "idle":
                counts["messages"] += report.messages
                if report.load_id:
                    _add(counts, report)
                    load_id = report.load_id
                note(dict(counts))
            if not continuous and (report.status == "idle" or report.pending == 0):
                break
        _noted_pause(counts, consumer)
    message = f"{counts['messages']} message(s), {_summary(counts)}"
    if consumer.pauses:
        message += (
            f"; paused {consumer.pauses} time(s), {counts['paused_seconds']}s in all, "
            "while the backlog was at ACCORD_MAX_BACKLOG"
        )
    if consumer.pause is not None:
        message += f"; ended while paused: {consumer.pause.explained()}"
    return RunResult("ok", message, load_id, counts)


def _log_pause(system: str, consumer: broker.Consumer) -> None:
    pause = consumer.pause
    if pause is None:
        return
    log.warning(
        "%s broker: paused, fetching nothing: %s. The messages stay in stream %s, "
        "unacknowledged (nothing is lost), and fetching resumes once fewer than %s records "
        "wait. To catch up sooner, %s",
        system,
        pause.explained(),
        consumer.config.stream,
        f"{resume_below(pause.bound):,}",
        WHAT_TO_DO,
    )


def _noted_pause(counts: dict[str, int], consumer: broker.Consumer) -> None:
    """The consumer's pauses in the run's counts; the one in force as `paused_backlog`
    and `paused_bound` (what `accord worker status` shows; `intake_schedule.IN_FORCE`,
    dropped when the next run takes the channel)."""
    if consumer.pauses:
        counts["pauses"] = consumer.pauses
        counts["paused_seconds"] = round(consumer.paused_seconds())
    pause = consumer.pause
    if pause is None:
        for key in schedule_store.IN_FORCE:
            counts.pop(key, None)
    else:
        counts["paused_backlog"] = pause.backlog
        counts["paused_bound"] = pause.bound


def run_channel(
    engine: Engine,
    project: Project,
    planned: PlannedChannel,
    *,
    actor: str,
    stopping: Callable[[], bool],
    note: Callable[[dict[str, int]], None],
    environ: Mapping[str, str] | None = None,
    wait: Callable[[float], object] | None = None,
    max_backlog: int | None = None,
    reading: BacklogReading | None = None,
) -> RunResult:
    """Run one channel once (a continuous broker: until `stopping()`). Raises whatever
    the channel raises; `IntakeScheduler` records it. `wait(seconds)` pauses a broker
    held back by the backlog (default: sleeps, looking at `stopping` every 0.1s);
    `max_backlog` is its bound (default: ACCORD_MAX_BACKLOG)."""
    system = planned.system
    if planned.channel == "drop":
        return _run_drop(engine, project, system, actor=actor, stopping=stopping)
    if planned.channel == "poll":
        return _run_poll(engine, project, system, actor=actor, stopping=stopping)
    return _run_broker(
        engine,
        project,
        system,
        actor=actor,
        stopping=stopping,
        wait=wait or _sleeper(stopping),
        note=note,
        continuous=planned.timing.kind == "continuous",
        environ=environ,
        max_backlog=max_backlog,
        reading=reading,
    )


def _sleeper(stopping: Callable[[], bool]) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not stopping() and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    return sleep


def _failure(exc: Exception) -> str:
    if isinstance(exc, AccordError):
        return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


# ---- the scheduler


@dataclass
class _Run:
    """A channel run in hand: its thread, when it started, and how to stop it."""

    planned: PlannedChannel
    started: datetime
    renewed: datetime
    stop: threading.Event = field(default_factory=threading.Event)
    counts: dict[str, int] | None = None
    thread: threading.Thread | None = None
    shown_paused: bool = False  # whether the counts last written show a pause in force

    def paused(self) -> bool:
        return self.counts is not None and "paused_backlog" in self.counts

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class IntakeScheduler:
    """Runs the project's pull channels when they are due (see the module's text).
    `run` loops until told to stop; `step`, `heartbeat` and `join` are its parts, for a
    caller that drives the time itself (`clock`)."""

    def __init__(
        self,
        engine: Engine,
        project: Project,
        *,
        name: str | None = None,
        lease: timedelta = LEASE,
        clock: Clock = utcnow,
        environ: Mapping[str, str] | None = None,
        max_backlog: int | None = None,
    ) -> None:
        self.engine = engine
        self.project = project
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.actor = f"worker:{self.name}"
        self.lease = lease
        self.clock = clock
        self.environ = environ
        # the brokers' bound (default: ACCORD_MAX_BACKLOG), and one reading for them all
        self.max_backlog = Settings().max_backlog if max_backlog is None else max_backlog
        self.reading = BacklogReading()
        self.channels = plan(project)
        self.runs: dict[tuple[str, str], _Run] = {}
        self._registered = False

    # ---- the parts

    def register(self) -> None:
        """Give every planned channel its row, and a new due time where the project
        changed its timing since the row was written."""
        now = self.clock()
        with writing(self.engine) as conn:
            for planned in self.channels:
                timing = str(planned.timing)
                row = schedule_store.read(conn, planned.system, planned.channel)
                if row is None:
                    schedule_store.register(
                        conn,
                        planned.system,
                        planned.channel,
                        timing=timing,
                        due_at=planned.timing.first_due(now),
                        now=now,
                    )
                elif row.timing != timing:
                    due = planned.timing.due_when_changed(row.last_started_at, now)
                    schedule_store.retime(
                        conn, planned.system, planned.channel, timing=timing, due_at=due, now=now
                    )
                    log.info("%s: now %s (was %s), due %s", planned.name, timing, row.timing, due)
        self._registered = True

    def step(self) -> list[PlannedChannel]:
        """Claim every channel that is due and not in hand here, and start each on a
        thread of its own. Returns the channels started."""
        if not self._registered:
            self.register()
        self._reap()
        now = self.clock()
        with self.engine.connect() as conn:  # a read first: most looks find nothing due
            rows = {(r.system, r.channel): r for r in schedule_store.read_all(conn)}
        started: list[PlannedChannel] = []
        for planned in self.channels:
            key = (planned.system, planned.channel)
            row = rows.get(key)
            if key in self.runs or row is None or row.due_at > now or row.held(now):
                continue
            now = self.clock()
            with writing(self.engine) as conn:
                taken = schedule_store.claim(
                    conn, planned.system, planned.channel, self.name, now=now, lease=self.lease
                )
            if not taken:
                continue
            run = _Run(planned, started=now, renewed=now)
            run.thread = threading.Thread(
                target=self._execute,
                args=(run,),
                name=f"accord-intake-{planned.system}-{planned.channel}",
                daemon=True,
            )
            self.runs[key] = run
            run.thread.start()
            started.append(planned)
        return started

    def heartbeat(self) -> None:
        """Renew the lease of each run in hand that has used a quarter of it, or whose
        broker has paused or resumed since (and note the counts of the run so far). A
        run whose lease another worker has taken over is told to stop."""
        for run in list(self.runs.values()):
            if not run.alive():
                continue
            now = self.clock()
            paused = run.paused()
            if now - run.renewed < self.lease / 4 and paused == run.shown_paused:
                continue
            planned = run.planned
            with writing(self.engine) as conn:
                kept = schedule_store.renew(
                    conn,
                    planned.system,
                    planned.channel,
                    self.name,
                    until=now + self.lease,
                    now=now,
                    counts=run.counts,
                )
            if kept:
                run.renewed = now
                run.shown_paused = paused
            else:
                log.warning(
                    "%s: the lease ran out and another worker took the channel over; "
                    "stopping this run after its current file, page or fetch",
                    planned.name,
                )
                run.stop.set()

    def stop(self) -> None:
        """Ask each run in hand to stop after its current file, page or fetch."""
        for run in self.runs.values():
            run.stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the runs in hand to end (at most `timeout` seconds in all). True
        when none is left running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for run in list(self.runs.values()):
            if run.thread is None:
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            run.thread.join(left)
        self._reap()
        return not self.runs

    def _reap(self) -> None:
        for key, run in list(self.runs.items()):
            if not run.alive():
                del self.runs[key]

    # ---- the loop

    def run(self, stop: threading.Event, *, tick: float = TICK) -> None:
        """Run channels as they fall due until `stop` is set, then stop the runs in hand
        and wait for them. An error of the scheduler's own (the store unreachable) is
        logged and tried again after a pause that grows to a minute."""
        if not self.channels:
            log.info("intake: no system has a drop, poll or broker block; nothing to schedule")
            return
        log.info(
            "intake: %s",
            "; ".join(f"{p.name} {p.timing}" for p in self.channels),
        )
        pause = tick
        while not stop.is_set():
            try:
                self.step()
                self.heartbeat()
                pause = tick
            except Exception:
                log.exception(
                    "intake scheduler %s: cannot read or claim the schedule; trying again in %.0fs",
                    self.name,
                    pause,
                )
                stop.wait(pause)
                pause = min(pause * 2, 60.0)
                continue
            stop.wait(tick)
        self.stop()
        while not self.join(timeout=tick):
            names = ", ".join(r.planned.name for r in self.runs.values())
            log.info("intake: waiting for %s to finish its current file, page or fetch", names)
            try:
                self.heartbeat()  # a long file keeps its channel while it is finished
            except Exception:  # noqa: BLE001
                log.warning("intake: cannot renew the leases of %s", names)

    # ---- one run, on its own thread

    def _execute(self, run: _Run) -> None:
        planned = run.planned

        def note(counts: dict[str, int]) -> None:
            run.counts = counts

        try:
            result = run_channel(
                self.engine,
                self.project,
                planned,
                actor=self.actor,
                stopping=run.stop.is_set,
                note=note,
                environ=self.environ,
                wait=run.stop.wait,
                max_backlog=self.max_backlog,
                reading=self.reading,
            )
            if run.stop.is_set():
                result.outcome = "stopped"
        except Exception as exc:  # any failure is recorded; the worker goes on
            if not isinstance(exc, AccordError):  # a bug, or the store down: its traceback
                log.exception("%s failed", planned.name)
            result = RunResult("failed", _failure(exc), counts=run.counts or {})
        self._record(run, result)

    def _record(self, run: _Run, result: RunResult) -> None:
        planned = run.planned
        finished = self.clock()
        try:
            with writing(self.engine) as conn:
                row = schedule_store.read(conn, planned.system, planned.channel)
                failures = (row.failures if row else 0) + (result.outcome == "failed")
                due = planned.timing.due_after(
                    result.outcome, started=run.started, finished=finished, failures=failures
                )
                kept = schedule_store.finish(
                    conn,
                    planned.system,
                    planned.channel,
                    self.name,
                    now=finished,
                    outcome=result.outcome,
                    message=result.message,
                    load_id=result.load_id,
                    counts=result.counts,
                    due_at=due,
                )
        except Exception:
            log.exception(
                "%s: the run ended (%s: %s) but could not be recorded; the channel runs "
                "again once its lease runs out",
                planned.name,
                result.outcome,
                result.message,
            )
            return
        if not kept:
            log.warning(
                "%s: the run ended (%s), but another worker had taken the channel over",
                planned.name,
                result.outcome,
            )
        elif result.outcome == "failed":
            log.error(
                "%s failed: %s; tried again at %s (%s in a row). Fix the cause; `accord "
                "worker status` shows the last outcome",
                planned.name,
                result.message,
                due.isoformat(timespec="seconds"),
                failures,
            )
        else:
            log.info(
                "%s %s: %s; next at %s",
                planned.name,
                result.outcome,
                result.message,
                due.isoformat(timespec="seconds"),
            )


# ---- what `accord worker status` shows


@dataclass(frozen=True)
class ChannelStatus:
    system: str
    channel: str
    timing: str
    held_by: str | None  # the worker running it now
    last_started_at: datetime | None
    last_finished_at: datetime | None
    outcome: str | None  # ok, failed, stopped; None before the first run ends
    message: str | None
    load_id: int | None
    counts: dict[str, Any] | None
    failures: int
    next_due: datetime | None  # None while continuous and held

    @property
    def pause(self) -> Pause | None:
        """The backlog that holds the broker running now back, if it does (noted with
        the run's counts: the figure may be up to 30 seconds old). Only the holder's
        own: a claim or hold drops the pause the holder before noted."""
        counts = self.counts or {}
        if self.held_by is None or "paused_backlog" not in counts:
            return None
        return Pause(int(counts["paused_backlog"]), int(counts.get("paused_bound", 0)))


def status(engine: Engine, project: Project, now: datetime | None = None) -> list[ChannelStatus]:
    """Each planned channel: its timing, who runs it now, its last run and when it is
    due next (for a channel no worker has seen yet, when it would be)."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = {(r.system, r.channel): r for r in schedule_store.read_all(conn)}
    found: list[ChannelStatus] = []
    for planned in plan(project):
        row = rows.get((planned.system, planned.channel))
        if row is None:
            found.append(
                ChannelStatus(
                    planned.system,
                    planned.channel,
                    str(planned.timing),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    0,
                    planned.timing.first_due(now),
                )
            )
            continue
        held = row.held(now)
        continuous = planned.timing.kind == "continuous"
        due = None if held and continuous else row.due_at
        if row.timing != str(planned.timing):  # changed in accord.yaml since
            due = planned.timing.due_when_changed(row.last_started_at, now)
        found.append(
            ChannelStatus(
                row.system,
                row.channel,
                str(planned.timing),
                row.lease_owner if held else None,
                row.last_started_at,
                row.last_finished_at,
                row.last_outcome,
                row.last_message,
                row.last_load_id,
                row.last_counts,
                row.failures,
                due,
            )
        )
    return found
