"""Integration health (C2.7): per system and direction, how records come in and how
golden changes go out, and the alerts the thresholds in accord.yaml give.

- **in**, every system: records received in the last hour and day (versions stored and
  entries quarantined), the share quarantined (the error rate), the work queue (backlog,
  how long the oldest has waited, records given up on), how long the last hour's records
  took from received to golden (nearest-rank p50, p95, p99 of their waits on the queue,
  recorded as each was matched), each pull channel's last run, and its linked records
  (orders, invoices) attached to no golden customer (orphans);
- **out**, every system with a `deliver` block: changes waiting (planned deliveries and
  outbox changes not yet planned), deliveries sent and dead in the last hour, the share
  of those that needed a retry or died (the error rate), the latency from golden change
  to delivery (nearest-rank p50, p95, p99 of the last hour's), dead letters, and
  completeness: the share of active customers the target holds a record of.

The figures are read with a few aggregate statements (`store/health.py`); judging them
against the thresholds (`alerts`) is pure. `/metrics` and `accord status` show the same
report (docs/health.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from accord.config.health import Limits
from accord.config.loader import Project
from accord.errors import InputRejected
from accord.govern.permissions import Actor, Permission, require
from accord.runtime.scheduler import status as channel_status
from accord.store import health as store
from accord.store import linked as linked_store
from accord.store import sync as sync_store
from accord.store.health import nearest_rank
from accord.store.types import utcnow

Direction = Literal["in", "out"]
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
PERCENTILES = (50, 95, 99)  # the latency quantiles reported, in percent


@dataclass(frozen=True)
class ChannelHealth:
    """A pull channel's last run."""

    channel: str  # drop, poll, broker
    outcome: str | None  # ok, failed, stopped; None: no run has ended yet
    failures: int  # failed runs in a row
    finished_at: datetime | None
    message: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "outcome": self.outcome,
            "failures": self.failures,
            "finished_at": _iso(self.finished_at),
            "message": self.message,
        }


@dataclass(frozen=True)
class Latency:
    """Seconds, nearest-rank percentiles: from received to golden (in), from golden
    change to delivery (out)."""

    p50: float
    p95: float
    p99: float

    def as_dict(self) -> dict[str, float]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99}


@dataclass(frozen=True)
class IntakeHealth:
    """Records coming in from one system."""

    system: str
    stored_hour: int  # record versions stored (new or changed)
    stored_day: int
    quarantined_hour: int  # quarantine entries filed
    quarantined_day: int
    backlog: int  # records waiting to be matched, or being matched now
    oldest_waiting: timedelta | None  # how long the oldest of the backlog has waited
    failed: int  # records the worker gave up on
    channels: tuple[ChannelHealth, ...]
    # the system's linked records (orders, invoices) no golden customer holds the
    # customer record of (docs/linked-records.md)
    orphans: int = 0
    matched_hour: int = 0  # records matched from the work queue in the last hour
    # of those, seconds from received (stored and queued) to golden; None: none matched
    golden_latency: Latency | None = None

    @property
    def received_hour(self) -> int:
        return self.stored_hour + self.quarantined_hour

    @property
    def received_day(self) -> int:
        return self.stored_day + self.quarantined_day

    @property
    def error_rate_hour(self) -> float | None:
        """The share of the last hour's records quarantined; None: nothing came."""
        return _ratio(self.quarantined_hour, self.received_hour)

    @property
    def error_rate_day(self) -> float | None:
        return _ratio(self.quarantined_day, self.received_day)

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "received": {"1h": self.received_hour, "1d": self.received_day},
            "quarantined": {"1h": self.quarantined_hour, "1d": self.quarantined_day},
            "error_rate": {"1h": self.error_rate_hour, "1d": self.error_rate_day},
            "backlog": self.backlog,
            "oldest_waiting_seconds": _seconds(self.oldest_waiting),
            "failed": self.failed,
            "channels": [c.as_dict() for c in self.channels],
            "orphans": self.orphans,
            "matched": {"1h": self.matched_hour},
            "golden_latency_seconds": (
                None if self.golden_latency is None else self.golden_latency.as_dict()
            ),
        }


@dataclass(frozen=True)
class DeliveryHealth:
    """Golden changes going out to one target."""

    target: str
    waiting: int  # pending deliveries and outbox changes not yet planned
    oldest_waiting: timedelta | None  # age of the oldest change still waiting
    sent_hour: int
    dead_hour: int
    with_errors_hour: int  # of those, dead or sent after a failed attempt
    dead_letters: int  # dead deliveries not replayed, whenever they died
    latency: Latency | None  # of the last hour's sent deliveries; None: none sent
    active_customers: int
    customers_held: int  # of those, the ones the target holds a record of

    @property
    def error_rate(self) -> float | None:
        """The share of the last hour's finished deliveries that needed a retry or died."""
        return _ratio(self.with_errors_hour, self.sent_hour + self.dead_hour)

    @property
    def completeness(self) -> float | None:
        """The share of active customers the target holds a record of; None: none."""
        return _ratio(self.customers_held, self.active_customers)

    @property
    def lag(self) -> timedelta | None:
        """What the latency threshold is held to: the last hour's p99, or the age of
        the oldest change still waiting when that is longer (a target that is down
        delivers nothing, and its p99 would go quiet just when it matters)."""
        found = [self.oldest_waiting] if self.oldest_waiting is not None else []
        if self.latency is not None:
            found.append(timedelta(seconds=self.latency.p99))
        return max(found, default=None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "waiting": self.waiting,
            "oldest_waiting_seconds": _seconds(self.oldest_waiting),
            "sent": {"1h": self.sent_hour},
            "dead": {"1h": self.dead_hour},
            "error_rate": {"1h": self.error_rate},
            "dead_letters": self.dead_letters,
            "latency_seconds": None if self.latency is None else self.latency.as_dict(),
            "active_customers": self.active_customers,
            "customers_held": self.customers_held,
            "completeness": self.completeness,
        }


@dataclass(frozen=True)
class Alert:
    """A threshold crossed: `value` against `threshold` (seconds for a latency)."""

    system: str
    direction: Direction
    check: str  # error_rate, backlog, latency, golden_latency, completeness, channel_failures
    value: float
    threshold: float

    @property
    def message(self) -> str:
        over = "under" if self.check == "completeness" else "over"
        return (
            f"{self.system} {self.direction}: {self.check} {_shown(self.check, self.value)} "
            f"{over} {_shown(self.check, self.threshold)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "direction": self.direction,
            "check": self.check,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


@dataclass(frozen=True)
class Check:
    """A threshold in force (seconds for a latency)."""

    system: str
    direction: Direction
    check: str
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "direction": self.direction,
            "check": self.check,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class HealthReport:
    at: datetime
    intake: tuple[IntakeHealth, ...]
    delivery: tuple[DeliveryHealth, ...]
    checks: tuple[Check, ...]  # every threshold in force
    alerts: tuple[Alert, ...]  # those crossed

    def firing(self, check: Check) -> bool:
        return any(
            (a.system, a.direction, a.check) == (check.system, check.direction, check.check)
            for a in self.alerts
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "in": [i.as_dict() for i in self.intake],
            "out": [d.as_dict() for d in self.delivery],
            "checks": [c.as_dict() for c in self.checks],
            "alerts": [a.as_dict() for a in self.alerts],
        }


def health_report(
    engine: Engine, project: Project, *, actor: Actor, now: datetime | None = None
) -> HealthReport:
    """Every system's figures at `now` (by default, now) and the alerts they give.
    Raises NotAllowed unless `actor` may read them."""
    require(actor, Permission.HEALTH_READ)
    now = now or utcnow()
    systems = project.config.systems
    targets = [name for name, system in systems.items() if system.deliver is not None]
    with engine.connect() as conn:
        arrivals = {
            name: store.arrivals(conn, name, hour=now - HOUR, day=now - DAY) for name in systems
        }
        queues = store.queues(conn)
        waits = store.waits(conn, now - HOUR, PERCENTILES)
        orphans = linked_store.orphan_counts(conn)
        active = store.active_customers(conn) if targets else 0
        delivery = tuple(_delivery(conn, name, now, active) for name in targets)
    channels: dict[str, list[ChannelHealth]] = {}
    for c in channel_status(engine, project, now):
        channels.setdefault(c.system, []).append(
            ChannelHealth(c.channel, c.outcome, c.failures, c.last_finished_at, c.message)
        )
    intake = tuple(
        _intake(
            name,
            arrivals[name],
            queues.get(name, store.Queue()),
            tuple(channels.get(name, [])),
            now,
            orphans=orphans.get(name, 0),
            waits=waits.get(name),
        )
        for name in systems
    )
    found = alerts(project, intake, delivery)
    return HealthReport(now, intake, delivery, tuple(checks(project)), tuple(found))


def _intake(
    system: str,
    arrived: store.Arrivals,
    queue: store.Queue,
    channels: tuple[ChannelHealth, ...],
    now: datetime,
    *,
    orphans: int,
    waits: store.Waits | None,
) -> IntakeHealth:
    latency = None
    if waits is not None:
        latency = Latency(*(waits.seconds[p] for p in PERCENTILES))
    return IntakeHealth(
        system,
        arrived.stored_hour,
        arrived.stored_day,
        arrived.quarantined_hour,
        arrived.quarantined_day,
        queue.backlog,
        _age(queue.oldest, now),
        queue.failed,
        channels,
        orphans,
        0 if waits is None else waits.matched,
        latency,
    )


def _delivery(conn: Connection, target: str, now: datetime, active: int) -> DeliveryHealth:
    since = now - HOUR
    waiting = sync_store.outgoing(conn, target)
    done = store.finished(conn, target, since)
    latency = None
    if done.sent:
        ranks = {p: nearest_rank(p, done.sent) for p in PERCENTILES}
        found = store.latencies_at(conn, target, since, list(ranks.values()))
        latency = Latency(*(found[ranks[p]] for p in PERCENTILES))
    return DeliveryHealth(
        target,
        waiting.waiting,
        _age(waiting.oldest, now),
        done.sent,
        done.dead,
        done.with_errors,
        waiting.dead,
        latency,
        active,
        store.customers_held(conn, target) if active else 0,
    )


def limits(project: Project) -> dict[tuple[str, Direction], Limits]:
    """(system, direction) -> the thresholds in force: `in` for every system, `out` for
    every target (whose backlog is held to `deliver.backlog_alarm` unless its `health`
    block says otherwise)."""
    found: dict[tuple[str, Direction], Limits] = {}
    for name, system in project.config.systems.items():
        found[(name, "in")] = system.health.for_intake()
        if system.deliver is not None:
            out = system.health.for_delivery()
            if out.max_backlog is None:
                out = replace(out, max_backlog=system.deliver.backlog_alarm)
            found[(name, "out")] = out
    return found


# check name -> the threshold of Limits it is held to
_THRESHOLDS = {
    "error_rate": "max_error_rate",
    "backlog": "max_backlog",
    "latency": "max_latency",
    "channel_failures": "max_channel_failures",
    "completeness": "min_completeness",
    "golden_latency": "max_golden_latency",
}


def checks(project: Project) -> list[Check]:
    """Every threshold in force, by system and direction."""
    found: list[Check] = []
    for (system, direction), limit in limits(project).items():
        for check, attribute in _THRESHOLDS.items():
            value = getattr(limit, attribute)
            if value is not None:
                threshold = value.total_seconds() if isinstance(value, timedelta) else value
                found.append(Check(system, direction, check, float(threshold)))
    return found


def alerts(
    project: Project, intake: tuple[IntakeHealth, ...], delivery: tuple[DeliveryHealth, ...]
) -> list[Alert]:
    """Every threshold in force that the figures cross, by system and direction."""
    limit = limits(project)
    found: list[Alert] = []
    for coming in intake:
        found.extend(_intake_alerts(coming, limit[(coming.system, "in")]))
    for going in delivery:
        found.extend(_delivery_alerts(going, limit[(going.target, "out")]))
    return found


def _intake_alerts(health: IntakeHealth, limits: Limits) -> Iterator[Alert]:
    name = health.system
    rate, waited = health.error_rate_hour, health.oldest_waiting
    if limits.max_error_rate is not None and rate is not None and rate > limits.max_error_rate:
        yield Alert(name, "in", "error_rate", rate, limits.max_error_rate)
    if limits.max_backlog is not None and health.backlog > limits.max_backlog:
        yield Alert(name, "in", "backlog", health.backlog, limits.max_backlog)
    if limits.max_latency is not None and waited is not None and waited > limits.max_latency:
        yield Alert(
            name, "in", "latency", waited.total_seconds(), limits.max_latency.total_seconds()
        )
    slowest, most = health.golden_latency, limits.max_golden_latency
    if most is not None and slowest is not None and slowest.p99 > most.total_seconds():
        yield Alert(name, "in", "golden_latency", slowest.p99, most.total_seconds())
    failures = max((c.failures for c in health.channels), default=0)
    if limits.max_channel_failures is not None and failures >= limits.max_channel_failures:
        yield Alert(name, "in", "channel_failures", failures, limits.max_channel_failures)


def _delivery_alerts(health: DeliveryHealth, limits: Limits) -> Iterator[Alert]:
    name = health.target
    rate, lag, complete = health.error_rate, health.lag, health.completeness
    if limits.max_error_rate is not None and rate is not None and rate > limits.max_error_rate:
        yield Alert(name, "out", "error_rate", rate, limits.max_error_rate)
    if limits.max_backlog is not None and health.waiting > limits.max_backlog:
        yield Alert(name, "out", "backlog", health.waiting, limits.max_backlog)
    if limits.max_latency is not None and lag is not None and lag > limits.max_latency:
        yield Alert(name, "out", "latency", lag.total_seconds(), limits.max_latency.total_seconds())
    minimum = limits.min_completeness
    if minimum is not None and complete is not None and complete < minimum:
        yield Alert(name, "out", "completeness", complete, minimum)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _age(since: datetime | None, now: datetime) -> timedelta | None:
    return None if since is None else max(now - since, timedelta(0))


def _seconds(span: timedelta | None) -> float | None:
    return None if span is None else span.total_seconds()


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _shown(check: str, value: float) -> str:
    if check in ("error_rate", "completeness"):
        return f"{value:.1%}"
    if check in ("latency", "golden_latency"):
        return f"{value:,.1f}s"
    return f"{value:,.0f}"


# ---- over time (the health page's charts)


@dataclass(frozen=True)
class Window:
    """A span of history shown in buckets of `step`, the newest still filling."""

    name: str  # as asked for: "1h", "24h"
    span: timedelta
    step: timedelta

    def edges(self, now: datetime) -> tuple[datetime, ...]:
        """The buckets' bounds, oldest first: aligned to whole steps, so the figures of a
        finished bucket stay put from one look to the next; the last bound is the end
        of the bucket `now` falls in."""
        step = int(self.step.total_seconds())
        epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
        end = epoch + timedelta(seconds=(int((now - epoch).total_seconds()) // step + 1) * step)
        count = int(self.span / self.step)
        return tuple(end - self.step * (count - i) for i in range(count + 1))


# waits to golden are kept a day (`store.queue.KEEP_WAITS`): history goes no further back
WINDOWS = {
    "1h": Window("1h", HOUR, timedelta(minutes=5)),
    "24h": Window("24h", DAY, HOUR),
}
HISTORY_PERCENTILE = 95  # the latency charted per bucket


@dataclass(frozen=True)
class FlowHistory:
    """One system and direction over a window, a value a bucket: in, records received
    (stored or quarantined), quarantined, and the p95 from received to golden of those
    matched in the bucket; out, deliveries finished (sent or dead), those that needed a
    retry or died, and the p95 from golden change to delivery of those sent. Backlog is
    at each bucket's end (now, for the last): in, records waiting to be matched; out,
    deliveries planned and not yet finished."""

    system: str
    direction: Direction
    throughput: tuple[int, ...]
    errors: tuple[int, ...]
    latency: tuple[float | None, ...]  # seconds; None: nothing in the bucket
    backlog: tuple[int, ...]


@dataclass(frozen=True)
class HealthHistory:
    window: Window
    edges: tuple[datetime, ...]  # bucket i is [edges[i], edges[i + 1])
    flows: tuple[FlowHistory, ...]

    @property
    def starts(self) -> tuple[datetime, ...]:
        return self.edges[:-1]


def health_history(
    engine: Engine,
    project: Project,
    *,
    actor: Actor,
    window: str = "24h",
    now: datetime | None = None,
) -> HealthHistory:
    """Every system's figures over `window` ("1h" or "24h") to `now`, in and out, from
    what the store records with its times: a few statements per system, each over one
    index range bounded by the window. Raises NotAllowed unless `actor` may read health,
    InputRejected for a window not offered."""
    require(actor, Permission.HEALTH_READ)
    if window not in WINDOWS:
        raise InputRejected(f"no window {window!r}", hint="use " + " or ".join(WINDOWS))
    now = now or utcnow()
    shape = WINDOWS[window]
    edges = shape.edges(now)
    moments = [*edges[1:-1], now]  # the end of each bucket; of the last, now
    systems = project.config.systems
    with engine.connect() as conn:
        waits = store.waits_over(conn, edges, HISTORY_PERCENTILE)
        backlog = store.backlog_at(conn, moments)
        flows = [
            _intake_history(conn, name, edges, waits.get(name, {}), backlog.get(name))
            for name in systems
        ]
        flows += [
            _delivery_history(conn, name, edges, moments)
            for name, system in systems.items()
            if system.deliver is not None
        ]
    return HealthHistory(shape, edges, tuple(flows))


def _intake_history(
    conn: Connection,
    system: str,
    edges: tuple[datetime, ...],
    waits: dict[int, store.Percentile],
    backlog: list[int] | None,
) -> FlowHistory:
    size = len(edges) - 1
    stored = store.stored_over(conn, system, edges)
    filed = store.quarantined_over(conn, system, edges)
    return FlowHistory(
        system,
        "in",
        tuple(a + b for a, b in zip(stored, filed, strict=True)),
        tuple(filed),
        tuple(waits[i].value if i in waits else None for i in range(size)),
        tuple(backlog or [0] * size),
    )


def _delivery_history(
    conn: Connection, target: str, edges: tuple[datetime, ...], moments: list[datetime]
) -> FlowHistory:
    size = len(edges) - 1
    done = store.finished_over(conn, target, edges)
    latency = store.delivery_latency_over(conn, target, edges, HISTORY_PERCENTILE)
    return FlowHistory(
        target,
        "out",
        tuple(a + b for a, b in zip(done.sent, done.dead, strict=True)),
        tuple(done.with_errors),
        tuple(latency[i].value if i in latency else None for i in range(size)),
        tuple(store.deliveries_waiting_at(conn, target, moments)),
    )
