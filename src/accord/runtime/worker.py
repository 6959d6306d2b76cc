"""The matching worker: takes records from the durable work queue (`store/queue.py`) a
batch at a time and matches them incrementally against the customers already known.

Per batch: lease the oldest rows (one short transaction), then, in one transaction that
holds the matching lock, match the records' current versions, write golden records,
crosswalk and reviews, and remove the rows. Killed anywhere, a worker loses nothing (its
lease runs out and another worker, or itself restarted, takes the rows again) and
duplicates nothing (outcome and removal commit together). A record changed while it was
being matched keeps its row and is matched again; its order with other changes of the
same record is kept because a record has one row, leased to one worker at a time.

Incremental matching needs what a full resolve learns (the model and the match index);
until one has run, or when the match settings changed since, the worker runs a full
resolve instead, which matches every record and removes every row it covered.

A batch that fails is tried again record by record, so one bad record does not hold up
the others; a record that keeps failing is given up after `MAX_ATTEMPTS` and shown by
`accord worker status` until `accord worker retry` queues it again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from accord.config.loader import Project
from accord.errors import AccordError
from accord.golden.incremental import (
    IncrementalResolver,
    IncrementalUnavailable,
    match_batch,
)
from accord.golden.resolve import MATCHING_LOCK, ResolveReport, resolve
from accord.runtime.scheduler import IntakeScheduler
from accord.store import queue, stewardship
from accord.store import records as record_store
from accord.store.dialect import autovacuum_off, exclusive
from accord.store.engine import writing

log = logging.getLogger(__name__)

BATCH = 200  # records per batch: one transaction each
LEASE = timedelta(minutes=5)  # how long a batch may take before another worker may take it
RETRY_IN = timedelta(seconds=30)  # how long a failed record waits before it is tried again


@dataclass
class WorkReport:
    batches: int = 0
    matched: int = 0  # records matched
    skipped: int = 0  # matched already by a resolve since they were queued
    requeued: int = 0  # changed while being matched: queued again
    lost_lease: int = 0  # taken over by another worker after the lease ran out
    failed: int = 0  # failed, to be tried again later
    full_resolves: int = 0
    golden_created: int = 0
    golden_updated: int = 0
    merged: int = 0
    review: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class MatchWorker:
    """One worker. `step` does one batch; `drain` works until the queue is empty; `run`
    works until told to stop."""

    def __init__(
        self,
        engine: Engine,
        project: Project,
        *,
        name: str | None = None,
        batch_size: int = BATCH,
        lease: timedelta = LEASE,
        retry_in: timedelta = RETRY_IN,
        max_attempts: int = queue.MAX_ATTEMPTS,
    ) -> None:
        self.engine = engine
        self.project = project
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.actor = f"worker:{self.name}"
        self.batch_size = batch_size
        self.lease = lease
        self.retry_in = retry_in
        self.max_attempts = max_attempts
        self.report = WorkReport()
        self._resolver: IncrementalResolver | None = None
        self._model_id: Any = None

    # ---- one batch

    def step(self) -> int:
        """Take one batch and match it. Returns how many queue rows it took (0: none
        waiting)."""
        started = time.perf_counter()
        try:
            resolver = self._incremental()
        except IncrementalUnavailable as exc:
            return self._full_resolve(exc)
        with writing(self.engine) as conn:
            claims = queue.claim(
                conn,
                self.project.config.entity,
                self.name,
                limit=self.batch_size,
                lease=self.lease,
                max_attempts=self.max_attempts,
            )
        if not claims:
            return 0
        try:
            self._match(resolver, claims)
        except Exception as exc:  # noqa: BLE001  (any failure: retry record by record)
            if len(claims) == 1:
                self._failed(claims, exc)
            else:
                log.warning("batch of %d failed (%s); trying one by one", len(claims), exc)
                for one in claims:
                    try:
                        self._match(resolver, [one])
                    except Exception as single:  # noqa: BLE001
                        self._failed([one], single)
        self.report.batches += 1
        self.report.seconds += time.perf_counter() - started
        return len(claims)

    def _match(self, resolver: IncrementalResolver, claims: list[queue.Claim]) -> None:
        outcome = ResolveReport()
        with writing(self.engine) as conn:
            exclusive(conn, MATCHING_LOCK)
            held = queue.hold(conn, self.name, claims)
            keys = [c.key for c in held]
            done = record_store.matched_already(conn, keys)
            todo = [key for key in keys if key not in done]
            if todo:
                match_batch(conn, resolver, todo, actor=self.actor, report=outcome)
            requeued = queue.complete(conn, self.name, held)
        report = self.report
        report.lost_lease += len(claims) - len(held)
        report.skipped += len(done)
        report.matched += len(todo)
        report.requeued += requeued
        report.golden_created += outcome.created
        report.golden_updated += outcome.updated
        report.merged += outcome.merged
        report.review += outcome.review

    def _failed(self, claims: list[queue.Claim], exc: Exception) -> None:
        log.error("matching %s failed", [c.key for c in claims], exc_info=exc)
        with writing(self.engine) as conn:
            queue.fail(
                conn, self.name, claims, f"{type(exc).__name__}: {exc}", retry_in=self.retry_in
            )
        self.report.failed += len(claims)

    def _incremental(self) -> IncrementalResolver:
        """The incremental resolver for the latest model, built again when a full resolve
        has learned a new one. Raises IncrementalUnavailable when there is none to use."""
        with self.engine.connect() as conn:
            model_id = stewardship.latest_model_id(conn)
            if self._resolver is None or model_id != self._model_id:
                model = stewardship.latest_model(conn)
                self._resolver = IncrementalResolver(self.project, model)
                self._model_id = model_id
        return self._resolver

    def _full_resolve(self, why: IncrementalUnavailable) -> int:
        with self.engine.connect() as conn:
            waiting = queue.backlog(conn)
        if not waiting:
            return 0
        log.info("full resolve of %d queued records: %s", waiting, why.message)
        started = time.perf_counter()
        outcome = resolve(self.engine, self.project, actor=self.actor)
        report = self.report
        report.full_resolves += 1
        report.matched += outcome.records
        report.golden_created += outcome.created
        report.golden_updated += outcome.updated
        report.merged += outcome.merged
        report.review += outcome.review
        report.seconds += time.perf_counter() - started
        return waiting

    # ---- loops

    def drain(self, progress: Callable[[int, int], None] | None = None) -> WorkReport:
        """Work until no row is claimable. `progress(done, total)` after each batch."""
        with self.engine.connect() as conn:
            total = queue.backlog(conn)
        done = 0
        while taken := self.step():
            done += taken
            if progress is not None:
                progress(min(done, total), max(total, done))
        return self.report

    def run(self, stop: threading.Event, *, idle: float = 1.0) -> WorkReport:
        """Work until `stop` is set, waiting `idle` seconds whenever the queue is empty.
        An error outside a batch (the database unreachable) is logged and retried after
        a pause that grows to a minute; the worker does not die of it."""
        pause = idle
        _warn_if_unmaintained(self.engine)
        while not stop.is_set():
            try:
                taken = self.step()
                pause = idle
            except Exception:
                log.exception(
                    "worker %s: cannot take work; trying again in %.0fs", self.name, pause
                )
                taken = 0
                stop.wait(pause)
                pause = min(pause * 2, 60.0)
                continue
            if not taken:
                stop.wait(idle)
        return self.report


_warned: set[str] = set()  # databases warned about in this process


def _warn_if_unmaintained(engine: Engine) -> None:
    """Warn, once per database and process, when PostgreSQL's autovacuum is off: the
    planner's statistics then go stale as records arrive, and matching slows down."""
    url = engine.url.render_as_string(hide_password=True)
    if url in _warned:
        return
    try:
        off = autovacuum_off(engine)
    except Exception:  # noqa: BLE001  (unreachable now: the worker's loop will say so)
        return  # asked again when the worker next starts
    _warned.add(url)
    if off:
        log.warning(
            "PostgreSQL's autovacuum is off: planner statistics go stale as records arrive "
            "and matching slows down (to half its speed, measured). Turn it on "
            "(autovacuum = on in postgresql.conf), or run ANALYZE regularly; Accord "
            "analyzes only after a load (a file, a poll, a replay) or a full resolve, not "
            "after pushes, webhooks or broker messages"
        )


def delivery_thread(
    engine: Engine, project: Project, stop: threading.Event, *, owner: str
) -> threading.Thread | None:
    """A thread delivering golden changes to the project's targets until `stop` is set
    (None when no system has a `deliver` block). A target whose settings cannot work
    (its token variable unset) is logged, with what to do, and left; the rest goes on."""
    from accord.sync.dispatch import run, targets  # noqa: PLC0415

    names = targets(project)
    if not names:
        return None

    def deliver() -> None:
        try:
            run(engine, project, names, stop=stop, owner=owner)
        except AccordError as exc:
            log.error("sync out stopped: %s", exc)  # noqa: TRY400  (str(exc) has the hint)

    return threading.Thread(target=deliver, name="accord-sync", daemon=True)


def relay_thread(
    engine: Engine, project: Project, stop: threading.Event, *, owner: str | None = None
) -> threading.Thread | None:
    """In the scale-out mode (`ACCORD_BUS_URL`), a thread publishing the outbox's golden
    changes to the bus until `stop` is set (one process relays at a time: `sync/bus.py`);
    None without a bus."""
    from accord.sync.bus import Relay, configured  # noqa: PLC0415

    config = configured(project.config.project)
    if config is None:
        return None
    relay = Relay(engine, config, owner=owner)
    return threading.Thread(target=relay.run, args=(stop,), name="accord-relay", daemon=True)


class WorkerPool:
    """Workers on threads of this process (`accord serve` runs them beside the web app
    on the embedded default, so a pushed record is matched without a separate worker),
    and, with at least one worker and `intake`, the intake scheduler on a thread of its
    own: it runs the project's drop, poll and broker channels when they are due; with at
    least one worker and `sync`, delivery of golden changes to the target systems."""

    def __init__(
        self,
        engine: Engine,
        project: Project,
        count: int,
        *,
        intake: bool = True,
        sync: bool = True,
    ) -> None:
        self.stop_event = threading.Event()
        self.workers = [MatchWorker(engine, project) for _ in range(count)]
        self.threads = [
            threading.Thread(
                target=worker.run, args=(self.stop_event,), name=f"accord-worker-{i}", daemon=True
            )
            for i, worker in enumerate(self.workers)
        ]
        self.scheduler: IntakeScheduler | None = None
        if count and intake:
            self.scheduler = IntakeScheduler(engine, project, name=self.workers[0].name)
            self.threads.append(
                threading.Thread(
                    target=self.scheduler.run,
                    args=(self.stop_event,),
                    name="accord-intake",
                    daemon=True,
                )
            )
        if count and sync:
            delivery = delivery_thread(engine, project, self.stop_event, owner=self.workers[0].name)
            if delivery is not None:
                self.threads.append(delivery)
        if count:
            relay = relay_thread(engine, project, self.stop_event, owner=self.workers[0].name)
            if relay is not None:
                self.threads.append(relay)

    def __enter__(self) -> WorkerPool:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        """Stop after the batches in hand (each commits or rolls back as a whole) and the
        intake runs' current file, page or fetch."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=60)
