"""Delivering golden changes to one target, a round at a time.

A target is one of two shapes (`channel.py`): records written with conditions (an HTTP
API, a table in the system's database), or events taken in order (a NATS subject, a
folder of export files). The rest of this text is of the first; the second publishes
the round's changes in order (`_publish`) and records how far it got.

A round:
1. *plan*: the outbox changes after the target's cursor that concern it become pending
   deliveries, and the cursor moves on (one transaction);
2. *take*: the deliveries due now, each its customer's earliest pending one;
3. *send*: for each, the writes it asks of the target's records (`_Round`): update the
   customer's records there (its members in the crosswalk, and those Accord created)
   with conditional writes over what Accord last saw of them, create one when the
   target holds none, delete Accord's own on a merge or retirement. A 412 means the
   target changed the record meanwhile: the field policies settle it (`plan.settle`)
   and the write is tried again over the record as it is now;
4. *record*: outcomes, what is now known of each record, and conflicts (one transaction).

A target that fails (no connection, timeouts, 429, 5xx) trips its circuit breaker
(pybreaker) after `breaker.failures` requests in a row; while it is open, rounds send
nothing and count no attempt. A delivery that fails waits `plan.backoff` and is tried
again, up to `retry.max_attempts`, then it is dead (a dead letter, replayable). A target
refusing a write for good (another 4xx) makes the delivery dead at once.

Nothing is lost to a crash: a delivery is finished only in the transaction that records
its outcome, and every write carries an idempotency key made of the change and the
record, so a write repeated after a lost answer is applied once.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pybreaker
from sqlalchemy import Connection, Engine

from accord.config.loader import Project
from accord.config.sync import DeliveryConfig
from accord.golden.survivorship import Survivorship
from accord.runtime.heap import freeze_once
from accord.store import outbox
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.outbox import Change
from accord.store.sync import DEAD, PENDING, SENT, Delivery, KnownRecord, Outcome
from accord.store.types import utcnow
from accord.sync import plan
from accord.sync.bus import feed as bus_feed
from accord.sync.channel import (
    EventChannel,
    Operation,
    RecordChannel,
    Remote,
    Result,
    Unavailable,
)
from accord.sync.files import FileChannel
from accord.sync.http import HttpChannel
from accord.sync.nats import NatsChannel
from accord.sync.sql import SqlChannel

log = logging.getLogger(__name__)

PLAN_BATCH = 5_000  # outbox changes read per planning step
CONFLICT_PASSES = 3  # writes of one record in a round, after 412s
FAILED_ROUND_WAIT = 0.5  # seconds before a failed round is tried again, doubling
FAILED_ROUND_WAIT_MOST = 5.0  # with each failure in a row up to this


class LeaseLost(Exception):
    """Another process took the target over while this one worked (its lease ran out):
    what this round did is rolled back, and the new holder does it again; the target's
    idempotency keys make the writes sent twice count once."""


@dataclass
class RoundReport:
    planned: int = 0
    taken: int = 0
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    conflicts: int = 0
    writes: int = 0
    breaker_open: bool = False
    held_elsewhere: bool = False  # another process delivers to this target now
    error: str | None = None

    def add(self, other: RoundReport) -> None:
        for name in ("planned", "taken", "sent", "retrying", "dead", "conflicts", "writes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.breaker_open = other.breaker_open
        self.held_elsewhere = other.held_elsewhere
        self.error = other.error or self.error


def targets(project: Project) -> list[str]:
    """The systems golden changes go out to."""
    return [name for name, system in project.config.systems.items() if system.deliver]


def record_channel(target: str, config: DeliveryConfig) -> RecordChannel | None:
    """The channel holding `target`'s records (None for a target taking events)."""
    if config.http is not None:
        return HttpChannel(target, config.http)
    if config.sql is not None:
        return SqlChannel(target, config.sql, list(config.fields))
    return None


def event_channel(
    target: str, config: DeliveryConfig, project: Project, authority: frozenset[str]
) -> EventChannel | None:
    """The channel taking `target`'s changes as events (None for a target with records)."""
    if config.nats is not None:
        return NatsChannel(target, config.nats, project=project.config.project)
    if config.file is not None:
        columns = [f for f, canonical in config.fields.items() if canonical not in authority]
        return FileChannel(target, config.file, root=project.root, fields=columns)
    return None


class ChangeFeed(Protocol):
    """Where a target's changes come from in the scale-out mode (`sync/bus.py`): `plan`
    turns those waiting into the dispatcher's deliveries, `wait` waits for more."""

    def plan(self, dispatcher: TargetDispatcher) -> int: ...

    def wait(self, stop: threading.Event, seconds: float) -> None: ...

    def close(self) -> None: ...


class TargetDispatcher:
    def __init__(
        self,
        engine: Engine,
        project: Project,
        target: str,
        *,
        channel: RecordChannel | None = None,
        rng: random.Random | None = None,
        owner: str | None = None,
        feed: ChangeFeed | None = None,
    ) -> None:
        system = project.config.systems[target]
        if system.deliver is None:
            raise ValueError(f"{target} has no `deliver` block")
        self.engine = engine
        self.target = target
        self.config: DeliveryConfig = system.deliver
        self.authority = frozenset(system.authority)
        self.survivorship = Survivorship(project.config.survivorship, project.config.systems)
        self.publisher = event_channel(target, self.config, project, self.authority)
        self.channel = (
            None if self.publisher is not None else channel or record_channel(target, self.config)
        )
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=self.config.breaker.failures,
            reset_timeout=self.config.breaker.reset.total_seconds(),
            name=target,
        )
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not a secret)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = self.config.lease
        self.feed = feed

    def renew(self) -> None:
        """Renew the hold on the target in a transaction of its own (see `fence`)."""
        with writing(self.engine) as conn:
            self.fence(conn)

    def fence(self, conn: Connection, *, take: bool = False) -> None:
        """First in every transaction that plans or records: renew the hold, or raise
        LeaseLost (rolling the transaction back) when another process has the target.
        With `take` (planning, which reads the cursor after this and so cannot repeat
        another's work), a target nobody holds is taken as well."""
        until = utcnow() + self.lease
        if take:
            held = outbox.claim(conn, self.target, self.owner, until)
        else:
            held = outbox.hold(conn, self.target, self.owner, until)
        if not held:
            raise LeaseLost(f"{self.target}: another process took the target over")

    def close(self) -> None:
        """Let the target go (another process may deliver to it at once) and close."""
        with writing(self.engine) as conn:
            outbox.release(conn, self.target, self.owner)
        if self.channel is not None:
            self.channel.close()
        if self.publisher is not None:
            self.publisher.close()
        if self.feed is not None:
            self.feed.close()

    def plan(self) -> int:
        """Turn the changes after the target's cursor into deliveries; returns how many.
        They are read from the outbox, or, in the scale-out mode, taken from the bus
        (`feed`, `sync/bus.py`)."""
        if self.feed is not None:
            return self.feed.plan(self)
        planned = 0
        while True:
            with writing(self.engine) as conn:
                self.fence(conn, take=True)
                start = self.restart_if_pruned(conn)
                changes = outbox.headings_after(conn, start, PLAN_BATCH)
                if not changes:
                    return planned
                wanted = plan.wanted(changes, self.config, self.target)
                sync_store.plan(conn, self.target, wanted)
                outbox.advance(conn, self.target, changes[-1].id)
            planned += len(wanted)
            if len(changes) < PLAN_BATCH:
                return planned

    def restart_if_pruned(self, conn: Connection) -> int:
        """The target's cursor; when changes it has not planned are gone (`accord sync
        prune`), it starts from the customers as they are now (a snapshot) first."""
        start = outbox.cursor(conn, self.target)
        if start < outbox.pruned_to(conn):
            delivered = sorted(set(self.config.fields.values()))
            count = outbox.snapshot(conn, self.target, delivered)
            log.info(
                "%s starts from a snapshot of %d customers: the changes after "
                "its place in the outbox were pruned",
                self.target,
                count,
            )
            start = outbox.cursor(conn, self.target)
        return start

    def round(self, now: datetime | None = None) -> RoundReport:
        """Plan, then send the deliveries due now (up to `batch_size`); nothing when
        another process holds the target (or took it over during the round, which then
        leaves no trace: see LeaseLost)."""
        with writing(self.engine) as conn:
            held = outbox.claim(conn, self.target, self.owner, utcnow() + self.lease)
        if not held:
            return RoundReport(held_elsewhere=True)
        freeze_once()
        try:
            return self._round(now)
        except LeaseLost as exc:
            log.warning("%s; this round's outcomes are left to it", exc)
            return RoundReport(held_elsewhere=True, error=str(exc))

    def _round(self, now: datetime | None) -> RoundReport:
        report = RoundReport(planned=self.plan())
        now = now or utcnow()
        with self.engine.connect() as conn:
            deliveries = sync_store.due(conn, self.target, now, self.config.batch_size)
            if not deliveries:
                return report
            golden_ids = [d.golden_id for d in deliveries]
            changes = outbox.by_id(conn, [d.change_id for d in deliveries])
            if self.channel is not None:
                members = sync_store.member_records(conn, self.target, golden_ids)
                created = sync_store.known_records(conn, self.target, golden_ids)
                known = {r.record_id: r for rows in created.values() for r in rows}
                others = sorted({i for ids in members.values() for i in ids} - known.keys())
                known |= sync_store.known_by_id(conn, self.target, others)
                earlier = sync_store.latest_conflicts(conn, self.target, sorted(known))
        if self.channel is None:  # events: no records to read first
            return self._publish(report, deliveries, changes, now)
        report.taken = len(deliveries)
        work = _Round(self, self.channel, now, known, earlier)
        try:
            outcomes = work.deliver(
                [(d, changes[d.change_id]) for d in deliveries], members, created
            )
        except pybreaker.CircuitBreakerError:
            report.breaker_open = True
            report.error = f"{self.target}: circuit open after repeated failures; waiting"
            outcomes = []
        with writing(self.engine) as conn:
            self.fence(conn)
            sync_store.save_records(conn, self.target, work.known.values())
            sync_store.add_conflicts(conn, work.conflicts)
            sync_store.finish(conn, self.target, outcomes)
        _count(report, outcomes)
        report.conflicts = len(work.conflicts)
        report.writes = work.writes
        return report

    def _publish(
        self,
        report: RoundReport,
        deliveries: list[Delivery],
        changes: dict[int, Change],
        now: datetime,
    ) -> RoundReport:
        """Publish the deliveries' changes as events, in order (to a subject, or to a
        file), and record how far it got."""
        assert self.publisher is not None  # noqa: S101  (round() calls it only then)
        report.taken = len(deliveries)
        items = [
            (
                changes[d.change_id],
                plan.desired(changes[d.change_id].data or {}, self.config, self.authority),
            )
            for d in deliveries
        ]
        failure: Unavailable | None = None
        done: list[Any] = []
        self.renew()
        try:
            done = self.call(self.publisher.publish, items)
        except Unavailable as exc:
            failure = exc
        except pybreaker.CircuitBreakerError:
            report.breaker_open = True
            report.error = f"{self.target}: circuit open after repeated failures; waiting"
            return report
        published = {p.change_id: p for p in done}
        if failure is None and len(done) < len(deliveries):
            failure = Unavailable(self.publisher.last_failure or "publishing stopped short")
        outcomes = []
        for delivery in deliveries:
            sent = published.get(delivery.change_id)
            if sent is not None:
                outcomes.append(
                    Outcome(
                        delivery.change_id,
                        SENT,
                        delivery.attempts + 1,
                        now,
                        None,
                        None,
                        sent.detail(),
                    )
                )
                continue
            outcomes.append(
                _retry(self, delivery, now, status=None, error=str(failure), retry_after=None)
            )
        with writing(self.engine) as conn:
            self.fence(conn)
            sync_store.finish(conn, self.target, outcomes)
        report.writes = len(done)
        _count(report, outcomes)
        return report

    def idle(self, stop: threading.Event, seconds: float) -> None:
        """Wait up to `seconds` for work (until `stop`): on the bus, a change arriving
        ends the wait at once."""
        if self.feed is not None:
            self.feed.wait(stop, seconds)
        else:
            stop.wait(seconds)

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            return sync_store.next_due(conn, self.target)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` through the breaker, which counts only the target's failures."""
        return self.breaker.call(function, *args)


@dataclass
class _Pending:
    """One delivery's writes in a round, and how each record ended."""

    delivery: Delivery
    change: Change
    wanted: dict[str, Any]
    records: dict[str, str] = field(default_factory=dict)  # record id -> what was done
    # record id -> field -> its old base, for fields whose value the target keeps
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    transient: Result | None = None
    failure: Result | None = None
    unavailable: Unavailable | None = None


class _Round:
    def __init__(
        self,
        dispatcher: TargetDispatcher,
        channel: RecordChannel,
        now: datetime,
        known: dict[str, KnownRecord],
        earlier: dict[str, dict[str, tuple[Any, Any, str]]],
    ):
        self.d = dispatcher
        self.channel = channel
        self.earlier = earlier
        self.now = now
        self.known = dict(known)
        self.conflicts: list[dict[str, Any]] = []
        self.writes = 0

    def deliver(
        self,
        work: list[tuple[Delivery, Change]],
        members: dict[str, list[str]],
        created: dict[str, list[KnownRecord]],
    ) -> list[Outcome]:
        config = self.d.config
        pending: list[_Pending] = []
        ops: list[tuple[_Pending, Operation]] = []
        for delivery, change in work:
            wanted = plan.desired(change.data or {}, config, self.d.authority)
            item = _Pending(delivery, change, wanted)
            pending.append(item)
            own = [r.record_id for r in created.get(delivery.golden_id, []) if r.origin == "accord"]
            if change.tombstone:
                if config.deletes == "tombstone":
                    for record_id in own:
                        known = self.known.get(record_id)
                        if known is not None and not known.deleted:
                            ops.append(
                                (
                                    item,
                                    self._op(
                                        "delete", record_id, None, change, if_match=known.etag
                                    ),
                                )
                            )
                continue
            record_ids = list(dict.fromkeys([*members.get(delivery.golden_id, []), *own]))
            if not record_ids:
                if config.create and wanted:
                    ops.append(
                        (
                            item,
                            self._op("put", delivery.golden_id, wanted, change, if_none_match="*"),
                        )
                    )
                continue
            for record_id in record_ids:
                operation = self._update(item, record_id)
                if operation is not None:
                    ops.append((item, operation))
        self._send(ops, passes=CONFLICT_PASSES)
        return [self._outcome(item) for item in pending]

    def _update(self, item: _Pending, record_id: str) -> Operation | None:
        """The write that brings one record of the customer up to date, if any."""
        known = self.known.get(record_id)
        if known is None or known.fields is None:
            if item.unavailable is not None:
                return None
            try:
                remote = self.d.call(self.channel.get, record_id)
            except Unavailable as exc:
                item.unavailable = exc
                return None
            if remote is None or remote.deleted:
                item.records[record_id] = "absent" if remote is None else "deleted_there"
                return None
            known = self._store(
                record_id,
                item,
                known,
                origin="member",
                etag=remote.etag,
                fields=remote.fields,
                deleted=remote.deleted,
            )
        if known.deleted:
            item.records[record_id] = "deleted_there"
            return None
        fields = plan.merged_fields(known.fields or {}, item.wanted)
        if fields == known.fields:
            item.records[record_id] = "unchanged"
            return None
        return self._op("put", record_id, fields, item.change, if_match=known.etag)

    def _send(self, ops: list[tuple[_Pending, Operation]], passes: int) -> None:
        live = [(item, op) for item, op in ops if item.unavailable is None]
        if not live:
            return
        self.d.renew()  # a slow target must not cost the hold mid-round
        try:
            results = self.d.call(self.channel.apply, [op for _, op in live])
        except Unavailable as exc:
            for item, _ in live:
                item.unavailable = exc
            return
        self.writes += len(live)
        again: list[tuple[_Pending, Operation]] = []
        for (item, op), result in zip(live, results, strict=True):
            follow = self._answered(item, op, result, last=passes <= 1)
            if follow is not None:
                again.append((item, follow))
        if again:
            self._send(again, passes - 1)

    def _answered(
        self, item: _Pending, op: Operation, result: Result, *, last: bool
    ) -> Operation | None:
        """Take in the target's answer to one write; returns the write to try next, if any."""
        record_id = op.record_id
        status = result.status
        previous = self.known.get(record_id)
        if status < 300:
            origin = _origin(op)
            deleted = op.op == "delete"
            fields = None
            if not deleted:
                fields = result.record.fields if result.record is not None else op.fields
                fields = {**(fields or {}), **item.held.get(record_id, {})}
            self._store(
                record_id,
                item,
                previous,
                origin=origin,
                # fields held: keep the tag just written over (see `_conflict`)
                etag=op.if_match if item.held.get(record_id) and op.if_match else result.etag,
                fields=fields,
                deleted=deleted,
            )
            if deleted:
                item.records[record_id] = "deleted"
            else:
                item.records[record_id] = "created" if status == 201 else "updated"
            return None
        if status == 404 and op.op == "delete":
            self._store(
                record_id, item, previous, origin="accord", etag=None, fields=None, deleted=True
            )
            item.records[record_id] = "deleted"
            return None
        if status in (404, 410) or (
            status == 412 and result.record is not None and result.record.deleted
        ):
            if previous is not None:
                self._store(
                    record_id,
                    item,
                    previous,
                    origin=previous.origin,
                    etag=result.etag,
                    fields=None,
                    deleted=True,
                )
            item.records[record_id] = "deleted_there"
            return None
        if status == 412 and result.record is not None:
            return self._conflict(item, op, result.record, last=last)
        if status in plan.TRANSIENT_STATUSES:
            item.transient = result
            return None
        item.failure = result
        return None

    def _conflict(
        self, item: _Pending, op: Operation, theirs: Remote, *, last: bool
    ) -> Operation | None:
        """The target changed the record since Accord last saw it: settle field by field
        and write again over the record as it is now."""
        record_id = op.record_id
        previous = self.known.get(record_id)
        if op.op == "delete":
            return self._delete_over_edit(item, op, theirs, previous, last=last)
        origin = _origin(op)
        base = None if op.if_none_match == "*" else (previous.fields if previous else None)
        to_write, found = plan.settle(
            item.wanted,
            base,
            theirs.fields,
            config=self.d.config,
            target=self.d.target,
            sources=item.change.sources or {},
            rank=self.d.survivorship.rank,
            their_time=_time(theirs.updated_at),
            our_time=item.change.changed_at,
            earlier=self.earlier.get(record_id),
        )
        # A field whose value the target keeps stays marked as the target's change (its
        # old base), so the next delivery settles it again rather than overwriting it.
        kept = [
            f for f in item.wanted if f not in to_write and theirs.fields.get(f) != item.wanted[f]
        ]
        if base is not None:
            item.held[record_id] = {f: base.get(f) for f in kept}
        for conflict in found:
            self.conflicts.append(
                {
                    "target": self.d.target,
                    "record_id": record_id,
                    "golden_id": item.delivery.golden_id,
                    "change_id": item.change.id,
                    "field": conflict.field,
                    "ours": conflict.ours,
                    "theirs": conflict.theirs,
                    "policy": conflict.policy,
                    "kept": conflict.kept,
                }
            )
        held = item.held.get(record_id)
        self._store(
            record_id,
            item,
            previous,
            origin=origin,
            # with fields held, the tag stays the one the target has moved on from, so
            # the next write meets a 412 and settles those fields again
            etag=previous.etag if held and previous is not None else theirs.etag,
            fields={**theirs.fields, **(held or {})},
            deleted=False,
        )
        fields = plan.merged_fields(theirs.fields, to_write)
        if fields == theirs.fields:
            item.records[record_id] = "kept_theirs" if found else "unchanged"
            return None
        return _again(item, op, fields, theirs, last=last)

    def _delete_over_edit(
        self,
        item: _Pending,
        op: Operation,
        theirs: Remote,
        previous: KnownRecord | None,
        *,
        last: bool,
    ) -> Operation | None:
        """A record Accord created for a customer now merged away or retired was edited
        in the target meanwhile: it is deleted all the same (it stands for no customer),
        and each field the target changed is recorded as a conflict (policy `tombstone`,
        their value kept in it), so the edit is not lost unseen."""
        base = (previous.fields if previous is not None else None) or {}
        for field_name, value in sorted(theirs.fields.items()):
            if base.get(field_name) == value:
                continue
            self.conflicts.append(
                {
                    "target": self.d.target,
                    "record_id": op.record_id,
                    "golden_id": item.delivery.golden_id,
                    "change_id": item.change.id,
                    "field": field_name,
                    "ours": None,
                    "theirs": value,
                    "policy": "tombstone",
                    "kept": "ours",
                }
            )
        return _again(item, op, None, theirs, last=last)

    @staticmethod
    def _op(
        kind: str,
        record_id: str,
        fields: dict[str, Any] | None,
        change: Change,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> Operation:
        """A write keyed by the change and the record: repeated, it is applied once."""
        key = f"accord:{change.id}:{record_id}"
        return Operation(kind, record_id, fields, if_match, if_none_match, key)

    def _store(
        self,
        record_id: str,
        item: _Pending,
        previous: KnownRecord | None,
        *,
        origin: str,
        etag: str | None,
        fields: dict[str, Any] | None,
        deleted: bool,
    ) -> KnownRecord:
        """Note what the target now holds of a record; a record Accord once created keeps
        that origin (`origin` "member" means: not created by this write)."""
        known = KnownRecord(
            record_id,
            item.delivery.golden_id,
            previous.origin if previous is not None and origin == "member" else origin,
            etag,
            fields,
            deleted,
        )
        self.known[record_id] = known
        return known

    def _outcome(self, item: _Pending) -> Outcome:
        delivery = item.delivery
        detail = {"records": item.records} if item.records else None
        if item.failure is None and item.transient is None and item.unavailable is None:
            return Outcome(
                delivery.change_id, SENT, delivery.attempts + 1, self.now, 200, None, detail
            )
        attempts = delivery.attempts + 1
        if item.failure is not None:
            return Outcome(
                delivery.change_id,
                DEAD,
                attempts,
                self.now,
                item.failure.status,
                f"refused by {self.d.target} ({item.failure.status}): {item.failure.error}",
                detail,
            )
        if item.unavailable is not None:
            status, error, retry_after = (
                item.unavailable.status,
                str(item.unavailable),
                item.unavailable.retry_after,
            )
        else:
            transient = item.transient or Result(0, None, None, "no answer")
            status, error, retry_after = (
                transient.status,
                f"{self.d.target} answered {transient.status}: {transient.error}",
                transient.retry_after,
            )
        return _retry(
            self.d,
            delivery,
            self.now,
            status=status,
            error=error,
            retry_after=retry_after,
            detail=detail,
        )


def _retry(
    dispatcher: TargetDispatcher,
    delivery: Delivery,
    now: datetime,
    *,
    status: int | None,
    error: str,
    retry_after: float | None,
    detail: dict[str, Any] | None = None,
) -> Outcome:
    """A failed attempt that may pass: wait the back-off, or give up after the last."""
    attempts = delivery.attempts + 1
    retry = dispatcher.config.retry
    if attempts >= retry.max_attempts:
        return Outcome(
            delivery.change_id,
            DEAD,
            attempts,
            now,
            status,
            f"gave up after {attempts} attempts: {error}",
            detail,
        )
    wait = plan.backoff(attempts, retry, retry_after, dispatcher.rng)
    return Outcome(delivery.change_id, PENDING, attempts, now + wait, status, error, detail)


def _again(
    item: _Pending, op: Operation, fields: dict[str, Any] | None, theirs: Remote, *, last: bool
) -> Operation | None:
    """`op` once more over the record as it is now (after a 412), under a key of its own
    (`...:r1`, `...:r2`); after the last pass, the delivery waits its back-off."""
    if last:
        what = "delete" if op.op == "delete" else "write"
        item.transient = Result(
            412, theirs.etag, theirs, f"the record kept changing under the {what}"
        )
        return None
    attempt = op.key.count(":r") + 1
    key = f"{op.key.split(':r')[0]}:r{attempt}"
    return Operation(op.op, op.record_id, fields, theirs.etag, None, key)


def _count(report: RoundReport, outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.state == SENT:
            report.sent += 1
        elif outcome.state == DEAD:
            report.dead += 1
        else:
            report.retrying += 1
            report.error = outcome.error


def _origin(op: Operation) -> str:
    """accord for a write that creates the record (If-None-Match: *), else member."""
    return "accord" if op.if_none_match == "*" else "member"


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)  # ISO 8601, a trailing Z included (3.11)
    except ValueError:
        return None


def run(
    engine: Engine,
    project: Project,
    names: list[str],
    *,
    stop: threading.Event,
    until_idle: bool = False,
    idle_wait: float = 1.0,
    on_round: Callable[[str, RoundReport], None] | None = None,
    deadline: datetime | None = None,
    owner: str | None = None,
) -> dict[str, RoundReport]:
    """Deliver to each target on a thread of its own, so a slow or dead target never
    holds up the others, until `stop` is set; with `until_idle`, each thread ends when
    its target has nothing pending (or `deadline` passes)."""
    totals = {name: RoundReport() for name in names}
    failures: dict[str, BaseException] = {}

    def loop(name: str) -> None:
        dispatcher = _start(engine, project, name, owner, failures, bus=not until_idle)
        if dispatcher is None:
            return
        failed = 0  # rounds failed in a row
        try:
            while not stop.is_set():
                try:
                    report = dispatcher.round()
                except Exception:
                    if until_idle:
                        raise
                    # a long-running worker keeps going: the store or the network may
                    # be back in a moment; nothing was recorded of the failed round
                    pause = min(FAILED_ROUND_WAIT * 2**failed, FAILED_ROUND_WAIT_MOST)
                    failed += 1
                    log.exception("sync to %s: a round failed; trying again in %.1f s", name, pause)
                    stop.wait(pause)
                    continue
                failed = 0
                totals[name].add(report)
                if on_round is not None:
                    on_round(name, report)
                if report.taken and not report.breaker_open:
                    continue  # more may be due at once; with the breaker open, wait
                if report.held_elsewhere:  # another process delivers: look again later
                    if until_idle:
                        return
                    # as often as its lease may run out, should that process die
                    stop.wait(max(idle_wait, min(5.0, dispatcher.lease.total_seconds())))
                    continue
                upcoming = dispatcher.next_due()
                if until_idle and upcoming is None:
                    return
                if deadline is not None and utcnow() >= deadline:
                    return
                wait = idle_wait
                if upcoming is not None:
                    wait = min(idle_wait, max((upcoming - utcnow()).total_seconds(), 0.01))
                if report.breaker_open:
                    wait = max(wait, 0.2)
                    stop.wait(wait)
                else:
                    dispatcher.idle(stop, wait)
        except BaseException as exc:  # noqa: BLE001  (raised again by the caller's thread)
            failures[name] = exc
        finally:
            dispatcher.close()

    threads = [threading.Thread(target=loop, args=(n,), name=f"sync-{n}") for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise next(iter(failures.values()))
    return totals


def _start(
    engine: Engine,
    project: Project,
    name: str,
    owner: str | None,
    failures: dict[str, BaseException],
    *,
    bus: bool = True,
) -> TargetDispatcher | None:
    """The dispatcher of target `name`, or None when its settings cannot work (a token
    variable unset, a table not as configured): that is said at once, in the log and in
    `failures`, while the other targets go on. With `bus` and the bus configured, it
    takes its changes from the bus (a run until idle reads the outbox: it must know
    when nothing is left)."""
    try:
        return TargetDispatcher(
            engine,
            project,
            name,
            owner=f"{owner}/{name}" if owner else None,
            feed=bus_feed(project.config.project, name) if bus else None,
        )
    except Exception as exc:  # noqa: BLE001  (raised again by `run`'s caller)
        log.error("sync to %s cannot start: %s", name, exc)  # noqa: TRY400  (has the hint)
        failures[name] = exc
        return None


@dataclass(frozen=True)
class TargetStatus:
    target: str
    waiting: int  # pending deliveries and outbox changes not yet planned for the target
    sent: int
    dead: int
    oldest_waiting: datetime | None
    last_sent: datetime | None
    last_error: str | None
    conflicts_waiting: int
    alarm: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "waiting": self.waiting,
            "sent": self.sent,
            "dead": self.dead,
            "oldest_waiting": self.oldest_waiting.isoformat() if self.oldest_waiting else None,
            "last_sent": self.last_sent.isoformat() if self.last_sent else None,
            "last_error": self.last_error,
            "conflicts_waiting": self.conflicts_waiting,
            "alarm": self.alarm,
        }


def status(engine: Engine, project: Project) -> list[TargetStatus]:
    """Each target's backlog, deliveries, dead letters and alarm (backlog over its bound,
    or dead letters waiting)."""
    found = []
    with engine.connect() as conn:
        for name in targets(project):
            config = project.config.systems[name].deliver
            assert config is not None  # noqa: S101  (targets() lists only these)
            stats = sync_store.stats(conn, name)
            waiting, dead = stats.outgoing.waiting, stats.outgoing.dead
            alarm = None
            if waiting > config.backlog_alarm:
                alarm = f"backlog {waiting:,} over {config.backlog_alarm:,}"
            elif dead:
                alarm = f"{dead:,} dead letter(s)"
            found.append(
                TargetStatus(
                    name,
                    waiting,
                    stats.sent,
                    dead,
                    stats.outgoing.oldest,
                    stats.last_sent,
                    stats.last_error,
                    stats.conflicts_waiting,
                    alarm,
                )
            )
    return found
