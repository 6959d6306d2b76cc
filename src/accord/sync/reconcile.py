"""Reconciliation (C4.4): what a target system holds, compared with the golden records,
field by field; and the repair of what drifted through the normal delivery path.

The target's records are read a page at a time (`RecordChannel.page`: an HTTP API's
listing, or a table's rows in key order). Each is placed:
- a record of a customer (a member through the crosswalk, or one Accord created for
  it): each delivered field it holds is compared with the value Accord would write
  (`plan.desired`); a difference is *drift*;
- a record Accord knows no customer for: *unknown* (listed, never touched);
then the customers the target should hold but does not (`create: true`, and no record of
theirs in the target) are *missing*, and records the target should have (members that
came in from it, records Accord created there) but no longer lists are *absent*
(counted; never re-created, since the target removed them).

A repair records, for each customer with drift or missing, a `repair` change meant for
this target only (the outbox, `store.outbox.REPAIR`), and takes what was just read as
what Accord last saw of each record: the delivery then writes the golden values over
the target's as a normal, conditional, idempotent write, with no conflict to settle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from accord.config.loader import Project
from accord.config.sync import DeliveryConfig
from accord.errors import InputRejected
from accord.store import golden as golden_store
from accord.store import outbox
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.sync import KnownRecord
from accord.sync import plan
from accord.sync.channel import RecordChannel, Remote
from accord.sync.dispatch import record_channel

PAGE = 1000
SHOWN = 1000  # drift rows kept for the report; every one is counted


@dataclass(frozen=True)
class Drift:
    record_id: str
    golden_id: str
    field: str  # the target's field
    canonical: str
    theirs: Any
    ours: Any


@dataclass
class Reconciliation:
    target: str
    records: int = 0  # read from the target
    in_step: int = 0  # records whose delivered fields all hold the golden values
    drifted: int = 0  # records with at least one field off
    drift: list[Drift] = field(default_factory=list)  # up to SHOWN of them
    drift_by_field: dict[str, int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # record ids of no known customer
    missing: int = 0  # customers the target should hold and holds no record of
    missing_sample: list[str] = field(default_factory=list)
    absent: int = 0  # records the target had (members, or created by Accord), no longer listed
    repaired: int = 0  # customers a repair was recorded for

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "records": self.records,
            "in_step": self.in_step,
            "drifted": self.drifted,
            "drift_by_field": dict(sorted(self.drift_by_field.items())),
            "drift": [vars(d) for d in self.drift],
            "unknown": len(self.unknown),
            "unknown_sample": self.unknown[:20],
            "missing": self.missing,
            "missing_sample": self.missing_sample,
            "absent": self.absent,
            "repaired": self.repaired,
        }


def reconcile(
    engine: Engine,
    project: Project,
    target: str,
    *,
    repair: bool = False,
    channel: RecordChannel | None = None,
    progress: Callable[[int], None] | None = None,
) -> Reconciliation:
    system = project.config.systems.get(target)
    if system is None or system.deliver is None:
        raise InputRejected(
            f"{target!r} is not a delivery target",
            hint="reconciliation compares a system with a `deliver` block (docs/sync.md)",
        )
    config = system.deliver
    own = channel or _records_of(target, config)
    authority = frozenset(system.authority)
    report = Reconciliation(target)
    seen: set[str] = set()
    to_repair: dict[str, set[str]] = {}
    bases: list[KnownRecord] = []
    try:
        for page in _pages(own):
            report.records += len(page)
            seen.update(r.record_id for r in page)
            with engine.connect() as conn:
                placed = _place(conn, target, page)
                content = golden_store.content_of(conn, sorted({g for g, _ in placed.values()}))
            for remote in page:
                golden_id, origin = placed.get(remote.record_id, ("", ""))
                if golden_id not in content:
                    report.unknown.append(remote.record_id)
                    continue
                wanted = plan.desired(content[golden_id][0], config, authority)
                off = [f for f, value in wanted.items() if remote.fields.get(f) != value]
                if not off:
                    report.in_step += 1
                    continue
                report.drifted += 1
                to_repair.setdefault(golden_id, set()).update(config.fields[f] for f in off)
                bases.append(
                    KnownRecord(
                        remote.record_id, golden_id, origin, remote.etag, remote.fields, False
                    )
                )
                for f in off:
                    report.drift_by_field[f] = report.drift_by_field.get(f, 0) + 1
                    if len(report.drift) < SHOWN:
                        report.drift.append(
                            Drift(
                                remote.record_id,
                                golden_id,
                                f,
                                config.fields[f],
                                remote.fields.get(f),
                                wanted[f],
                            )
                        )
            if progress is not None:
                progress(len(page))
    finally:
        if channel is None:
            own.close()
    with engine.connect() as conn:
        ours = sync_store.live_records(conn, target)
        listed = [*sync_store.member_ids(conn, target), *ours]
        report.absent = sum(1 for i in set(listed) if i not in seen)
        lacking = sync_store.customers_without_records(conn, target) if config.create else []
    if lacking:
        report.missing = len(lacking)
        report.missing_sample = lacking[:20]
        for golden_id in lacking:
            to_repair.setdefault(golden_id, set())
    if repair and to_repair:
        report.repaired = _repair(engine, target, to_repair, bases)
    return report


def _records_of(target: str, config: DeliveryConfig) -> RecordChannel:
    found = record_channel(target, config)
    if found is None:
        taken = "events on a NATS subject" if config.nats is not None else "export files"
        raise InputRejected(
            f"{target} takes {taken}: it holds no records to compare",
            hint="reconciliation compares a target with an `http` or `sql` channel",
        )
    return found


def _pages(channel: RecordChannel) -> Iterator[list[Remote]]:
    after: str | None = None
    while True:
        records, following = channel.page(after, PAGE)
        if records:
            yield records
        if following is None:
            return
        after = following


def _place(conn: Connection, target: str, page: list[Remote]) -> dict[str, tuple[str, str]]:
    """record id -> (golden id, origin), for the records of this page Accord knows a
    customer of: a member through the crosswalk, or one Accord created there."""
    ids = [r.record_id for r in page]
    members = golden_store.crosswalk_for(conn, [(target, i) for i in ids])
    placed = {key[1]: (row["golden_id"], "member") for key, row in members.items()}
    known = sync_store.known_by_id(conn, target, ids)
    placed.update({k.record_id: (k.golden_id, k.origin) for k in known.values()})
    return placed


def _repair(
    engine: Engine, target: str, customers: dict[str, set[str]], bases: list[KnownRecord]
) -> int:
    """A repair change per customer, for `target` only, in one transaction with what was
    read of its records as their base."""
    with writing(engine) as conn:
        sync_store.save_records(conn, target, bases)
        return outbox.record_repairs(conn, target, customers)
