"""Integration health: each figure and each alert, on both stores, from state built
through the real paths (loads, a resolve, the work queue, the intake schedule, planning
and finishing deliveries), with the times that matter set where a test must choose them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select, update

from accord.config import load_project
from accord.config.loader import Project
from accord.errors import NotAllowed, ProjectInvalid
from accord.golden.resolve import resolve
from accord.govern.permissions import Actor, Role, cli_actor
from accord.intake.load import load_file
from accord.runtime.health import (
    Alert,
    Check,
    Latency,
    health_report,
    nearest_rank,
)
from accord.store import health as health_store
from accord.store import intake_schedule, outbox, queue
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.sync import DEAD, SENT, KnownRecord, Outcome
from accord.store.tables import (
    crosswalk,
    golden_change,
    metadata,
    quarantine,
    source_record,
    sync_delivery,
    work_item,
)
from accord.store.types import utcnow
from accord.sync.dispatch import TargetDispatcher
from tests.factories import billing_row, crm_row, write_csv, write_jsonl
from tests.plans import query_plans

ADMIN = cli_actor()

BILLING = """\
    deliver:
      http: {url: "http://billing.invalid:8101", resource: accounts}
      fields: {given_name: given_name, family_name: family_name, city: city}
    health:
      max_error_rate: 0.5
      max_latency: 1m
      min_completeness: 0.95
      max_channel_failures: 2
      out: {max_backlog: 1}
"""
CRM = """\
    health:
      max_error_rate: 0.1
      max_latency: 5m
      max_channel_failures: 3
      in: {max_backlog: 0}
"""


def _configure(root: Path, billing: str = BILLING, crm: str = CRM) -> Project:
    config = root / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    for anchor, block in (("    authority: [email]\n", billing), ("    default_region: GB\n", crm)):
        assert anchor in text
        text = text.replace(anchor, anchor + block, 1)
    config.write_text(text, encoding="utf-8")
    return load_project(root)


def _person(source_id: str, n: int, **values: str) -> dict[str, str]:
    """A CRM contact nobody else in the test matches."""
    return crm_row(
        source_id,
        FirstName=["Anna", "Bruno", "Clara", "Dieter", "Emma", "Felix"][n],
        LastName=["Schmidt", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann"][n],
        Email=f"person{n}@example.de",
        Phone=f"+49 30 55500{n}",
        BirthDate=f"198{n}-0{n + 1}-1{n}",
        Street=f"Ringstraße {n + 1}",
        PostalCode=f"1011{n}",
        **values,
    )


def _bad(source_id: str, day: str) -> dict[str, str]:
    return crm_row(source_id, BirthDate=f"1985-13-{day}")  # quarantined: no 13th month


def _load_crm(engine: Engine, project: Project, path: Path, rows: list[dict[str, str]]) -> int:
    report = load_file(engine, project, "crm", write_csv(path, rows), actor="test")
    return report.load_id


def _backdate_load(engine: Engine, load_id: int, when: datetime) -> None:
    with writing(engine) as conn:
        conn.execute(
            update(source_record).where(source_record.c.load_id == load_id).values(received_at=when)
        )
        conn.execute(
            update(quarantine).where(quarantine.c.load_id == load_id).values(created_at=when)
        )


def _give_up_on_oldest(engine: Engine) -> None:
    """The worker's path for a record that keeps failing, until it is given up on."""
    for _ in range(queue.MAX_ATTEMPTS):
        with writing(engine) as conn:
            taken = queue.claim(conn, "customer", "w1", limit=1, lease=timedelta(minutes=5))
            queue.fail(conn, "w1", taken, "boom", retry_in=timedelta(0))


def _failed_runs(engine: Engine, system: str, channel: str, runs: int) -> None:
    for _ in range(runs):
        now = utcnow()
        with writing(engine) as conn:
            intake_schedule.register(conn, system, channel, timing="every 1m", due_at=now, now=now)
            assert intake_schedule.claim(
                conn, system, channel, "w1", now=now, lease=timedelta(minutes=2)
            )
            intake_schedule.finish(
                conn,
                system,
                channel,
                "w1",
                now=now,
                outcome="failed",
                message="the folder is missing",
                load_id=None,
                counts=None,
                due_at=now,
            )


def _customer_of(engine: Engine, source_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(crosswalk.c.golden_id).where(
                    crosswalk.c.system == "crm", crosswalk.c.source_id == source_id
                )
            ).scalar_one()
        )


def _deliveries(conn: Connection) -> list[tuple[int, str]]:
    rows = conn.execute(
        select(sync_delivery.c.change_id, sync_delivery.c.golden_id).order_by(
            sync_delivery.c.change_id
        )
    )
    return [(r.change_id, r.golden_id) for r in rows]


def _finished(
    engine: Engine, change_id: int, state: str, attempts: int, changed: datetime, *, latency: float
) -> None:
    """A delivery finished through the store, then dated: its change at `changed`, its
    end `latency` seconds later."""
    with writing(engine) as conn:
        sync_store.finish(
            conn, "billing", [Outcome(change_id, state, attempts, changed, 200, None)]
        )
        conn.execute(
            update(golden_change).where(golden_change.c.id == change_id).values(changed_at=changed)
        )
        conn.execute(
            update(sync_delivery)
            .where(sync_delivery.c.change_id == change_id)
            .values(finished_at=changed + timedelta(seconds=latency))
        )


@pytest.fixture
def project(demo_project_dir: Path) -> Project:
    return _configure(demo_project_dir)


def _build(engine: Engine, project: Project, tmp_path: Path) -> datetime:
    """Two hours ago: 2 CRM records and 1 bad row. Now: 2 CRM records and 1 bad row, and
    1 billing account; a resolve (5 customers); then 1 CRM record the worker gives up on
    and 1 waiting for ten minutes. Billing's drop failed twice in a row. To billing, of
    the 5 customers' deliveries: 2 sent in the last hour (one after retries), 1 dead,
    2 sent two hours ago; then 1 repair planned and 1 not yet planned, the older five
    minutes old. Billing holds a record of 2 of the 5 customers. Returns now."""
    start = utcnow()
    earlier = _load_crm(
        engine, project, tmp_path / "a.csv", [_person("C1", 0), _person("C2", 1), _bad("X1", "40")]
    )
    _backdate_load(engine, earlier, start - timedelta(hours=2))
    _load_crm(
        engine, project, tmp_path / "b.csv", [_person("C3", 2), _person("C6", 3), _bad("X2", "41")]
    )
    account = billing_row(
        "B1", first_name="Greta", last_name="Lindqvist", email="greta@example.se", phone=""
    )
    load_file(
        engine, project, "billing", write_jsonl(tmp_path / "billing.jsonl", [account]), actor="t"
    )
    resolve(engine, project, actor="test")
    _load_crm(engine, project, tmp_path / "d.csv", [_person("C4", 4)])
    _give_up_on_oldest(engine)
    _load_crm(engine, project, tmp_path / "e.csv", [_person("C5", 5)])
    with writing(engine) as conn:
        conn.execute(
            update(work_item)
            .where(work_item.c.source_id == "C5")
            .values(enqueued_at=start - timedelta(minutes=10))
        )
    _failed_runs(engine, "billing", "drop", 2)

    dispatcher = TargetDispatcher(engine, project, "billing")
    try:
        assert dispatcher.plan() == 5
        with engine.connect() as conn:
            planned = _deliveries(conn)
        (c1, _), (c2, _), (c3, _), (c4, _), (c5, _) = planned
        g1, g2 = _customer_of(engine, "C1"), _customer_of(engine, "C2")
        _finished(engine, c1, SENT, 1, start - timedelta(minutes=10), latency=2.0)
        _finished(engine, c2, SENT, 3, start - timedelta(minutes=20), latency=30.0)
        _finished(engine, c3, DEAD, 12, start - timedelta(minutes=30), latency=60.0)
        _finished(engine, c4, SENT, 1, start - timedelta(hours=2), latency=5.0)
        _finished(engine, c5, SENT, 1, start - timedelta(hours=3), latency=5.0)
        with writing(engine) as conn:
            outbox.record(conn, [{"golden_id": g1, "change": "repair", "target": "billing"}])
        assert dispatcher.plan() == 1
        with writing(engine) as conn:
            conn.execute(
                update(golden_change)
                .where(golden_change.c.id == outbox.last_id(conn))
                .values(changed_at=start - timedelta(minutes=5))
            )
            outbox.record(conn, [{"golden_id": g2, "change": "repair", "target": "billing"}])
            sync_store.save_records(
                conn,
                "billing",
                [
                    KnownRecord("r1", g1, "accord", '"1"', {"given_name": "Anna"}, False),
                    KnownRecord("r2", g2, "accord", '"1"', None, True),  # deleted there
                ],
            )
    finally:
        dispatcher.channel.close()
    return utcnow()


def test_each_figure_in_and_out(engine: Engine, project: Project, tmp_path: Path) -> None:
    now = _build(engine, project, tmp_path)

    report = health_report(engine, project, actor=ADMIN, now=now)

    intake = {h.system: h for h in report.intake}
    assert list(intake) == ["crm", "erp", "billing", "service"]
    crm = intake["crm"]
    assert (crm.stored_hour, crm.stored_day) == (4, 6)
    assert (crm.quarantined_hour, crm.quarantined_day) == (1, 2)
    assert (crm.received_hour, crm.received_day) == (5, 8)
    assert crm.error_rate_hour == pytest.approx(0.2)
    assert crm.error_rate_day == pytest.approx(0.25)
    assert (crm.backlog, crm.failed) == (1, 1)
    assert crm.oldest_waiting is not None
    assert timedelta(minutes=10) <= crm.oldest_waiting < timedelta(minutes=11)
    assert crm.channels == ()  # a realtime system without pull channels
    billing_in = intake["billing"]
    assert (billing_in.received_hour, billing_in.error_rate_hour) == (1, 0.0)
    assert (billing_in.backlog, billing_in.oldest_waiting) == (0, None)
    (drop,) = billing_in.channels
    assert (drop.channel, drop.outcome, drop.failures) == ("drop", "failed", 2)
    assert drop.message == "the folder is missing"
    erp = intake["erp"]
    assert (erp.received_day, erp.error_rate_day, erp.backlog) == (0, None, 0)

    (billing,) = report.delivery
    assert billing.target == "billing"
    assert billing.waiting == 2  # the planned repair and the one not yet planned
    assert billing.oldest_waiting is not None
    assert timedelta(minutes=5) <= billing.oldest_waiting < timedelta(minutes=6)
    assert (billing.sent_hour, billing.dead_hour, billing.with_errors_hour) == (2, 1, 2)
    assert billing.error_rate == pytest.approx(2 / 3)
    assert billing.dead_letters == 1
    assert billing.latency == Latency(
        pytest.approx(2.0, abs=1e-3), pytest.approx(30.0, abs=1e-3), pytest.approx(30.0, abs=1e-3)
    )
    # B1 is billing's own (the crosswalk); r1 was created there; r2 was deleted there
    assert (billing.active_customers, billing.customers_held) == (5, 2)
    assert billing.completeness == pytest.approx(0.4)


def test_each_threshold_crossed_is_an_alert(
    engine: Engine, project: Project, tmp_path: Path
) -> None:
    now = _build(engine, project, tmp_path)

    report = health_report(engine, project, actor=ADMIN, now=now)

    found = {(a.system, a.direction, a.check): a for a in report.alerts}
    assert set(found) == {
        ("crm", "in", "error_rate"),
        ("crm", "in", "backlog"),
        ("crm", "in", "latency"),
        ("billing", "in", "channel_failures"),
        ("billing", "out", "error_rate"),
        ("billing", "out", "backlog"),
        ("billing", "out", "latency"),
        ("billing", "out", "completeness"),
    }
    assert found["crm", "in", "error_rate"] == Alert("crm", "in", "error_rate", 0.2, 0.1)
    assert found["crm", "in", "backlog"] == Alert("crm", "in", "backlog", 1, 0)
    assert found["crm", "in", "latency"].threshold == 300.0
    assert 600.0 <= found["crm", "in", "latency"].value < 660.0
    assert found["billing", "in", "channel_failures"] == Alert(
        "billing", "in", "channel_failures", 2, 2
    )
    assert found["billing", "out", "backlog"] == Alert("billing", "out", "backlog", 2, 1)
    # the oldest waiting change (5 minutes) is later than the last hour's p99 (30 s)
    latency = found["billing", "out", "latency"]
    assert (latency.threshold, 300.0 <= latency.value < 360.0) == (60.0, True)
    assert found["billing", "out", "completeness"].value == pytest.approx(0.4)
    assert found["billing", "out", "completeness"].message == (
        "billing out: completeness 40.0% under 95.0%"
    )
    assert found["crm", "in", "backlog"].message == "crm in: backlog 1 over 0"
    # the crm thresholds for both directions apply to `in` only: crm is no target
    assert {c.check for c in report.checks if c.system == "crm"} == {
        "error_rate",
        "backlog",
        "latency",
        "channel_failures",
    }
    assert {
        (c.direction, c.check): report.firing(c) for c in report.checks if c.system == "billing"
    } == {
        ("in", "error_rate"): False,  # nothing of billing's was quarantined
        ("in", "latency"): False,  # nothing of billing's waits
        ("in", "channel_failures"): True,
        ("out", "error_rate"): True,
        ("out", "backlog"): True,
        ("out", "latency"): True,
        ("out", "completeness"): True,
    }


def test_an_empty_store_has_no_figures_and_fires_nothing(engine: Engine, project: Project) -> None:
    report = health_report(engine, project, actor=ADMIN)

    assert report.alerts == ()
    for health in report.intake:
        assert (health.received_day, health.backlog, health.failed) == (0, 0, 0)
        assert (health.error_rate_hour, health.oldest_waiting) == (None, None)
        assert (health.matched_hour, health.golden_latency) == (0, None)
    (billing,) = report.delivery
    assert (billing.waiting, billing.sent_hour, billing.dead_letters) == (0, 0, 0)
    assert (billing.latency, billing.error_rate, billing.completeness) == (None, None, None)
    assert billing.oldest_waiting is None


def test_thresholds_not_given_are_not_checked_but_a_targets_backlog_alarm_is(
    engine: Engine, demo_project_dir: Path
) -> None:
    billing = "\n".join(BILLING.splitlines()[:3]) + "\n      backlog_alarm: 500\n"
    project = _configure(demo_project_dir, billing=billing, crm="")

    report = health_report(engine, project, actor=ADMIN)

    assert report.checks == (Check("billing", "out", "backlog", 500.0),)
    assert report.as_dict()["checks"] == [
        {"system": "billing", "direction": "out", "check": "backlog", "threshold": 500.0}
    ]


def test_only_an_actor_with_health_read_may_read_it(engine: Engine, project: Project) -> None:
    for role in (Role.ADMIN, Role.OPERATOR, Role.MONITOR):
        health_report(engine, project, actor=Actor("user", "u", role))
    for role in (Role.VIEWER, Role.STEWARD, Role.SYSTEM):
        with pytest.raises(NotAllowed, match="health:read"):
            health_report(engine, project, actor=Actor("user", "u", role))


def test_direction_blocks_override_the_shared_thresholds(demo_project_dir: Path) -> None:
    crm = """\
    health:
      max_backlog: 10
      max_latency: 90s
      in: {max_backlog: 100000}
      out: {max_latency: 5m}
"""
    project = _configure(demo_project_dir, crm=crm)
    health = project.config.systems["crm"].health

    assert health.for_intake().max_backlog == 100_000
    assert health.for_intake().max_latency == timedelta(seconds=90)
    assert health.for_delivery().max_backlog == 10
    assert health.for_delivery().max_latency == timedelta(minutes=5)


def test_a_bad_threshold_is_reported_with_file_and_line(demo_project_dir: Path) -> None:
    crm = """\
    health:
      max_error_rate: 5
      in: {min_completeness: 0.9}
"""
    with pytest.raises(ProjectInvalid) as raised:
        _configure(demo_project_dir, crm=crm)

    problems = [f"{p.where}: {p.message}" for p in raised.value.problems]
    assert len(problems) == 2, problems
    assert "accord.yaml:16: systems.crm.health.max_error_rate" in problems[0]
    assert "less than or equal to 1" in problems[0]
    assert "unknown key 'systems.crm.health.in.min_completeness'" in problems[1]


def test_nearest_rank() -> None:
    assert [nearest_rank(p, 1) for p in (50, 95, 99)] == [1, 1, 1]
    assert [nearest_rank(p, 2) for p in (50, 95, 99)] == [1, 2, 2]
    assert [nearest_rank(p, 20) for p in (50, 95, 99)] == [10, 19, 20]
    assert [nearest_rank(p, 1000) for p in (50, 95, 99)] == [500, 950, 990]


def test_the_health_reads_search_by_index(sqlite_engine: Engine) -> None:
    """Scans are invisible on a test's few rows and cost seconds at a million: each read
    is bounded by an index on its window or its target. The work queue is read whole
    (it is the backlog) and active customers are counted on their status index."""
    since = utcnow() - timedelta(hours=1)
    reads: dict[str, Callable[[Connection], Any]] = {
        "arrivals": lambda conn: health_store.arrivals(
            conn, "crm", hour=since, day=since - timedelta(days=1)
        ),
        "outgoing": lambda conn: sync_store.outgoing(conn, "billing"),
        "finished": lambda conn: health_store.finished(conn, "billing", since),
        "latencies_at": lambda conn: health_store.latencies_at(conn, "billing", since, [1, 2]),
        "waits": lambda conn: health_store.waits(conn, since, [50, 95, 99]),
        "active_customers": health_store.active_customers,
        "customers_held": lambda conn: health_store.customers_held(conn, "billing"),
    }
    for name, run in reads.items():
        plans = query_plans(sqlite_engine, run)
        scans = [
            step
            for step in plans
            if step.startswith("SCAN ") and step.split()[1] in metadata.tables
        ]
        assert scans == [], (name, plans)
    assert any(
        "ix_source_record_system_received_at" in step
        for step in query_plans(sqlite_engine, reads["arrivals"])
    )
    assert any(
        "ix_sync_delivery_target_finished_at" in step
        for step in query_plans(sqlite_engine, reads["finished"])
    )


# ---- received to golden


def _queued_minutes_ago(engine: Engine, system: str, minutes: float) -> None:
    with writing(engine) as conn:
        conn.execute(
            update(work_item)
            .where(work_item.c.system == system)
            .values(enqueued_at=utcnow() - timedelta(minutes=minutes))
        )


def test_records_matched_give_each_system_its_latency_to_golden(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    crm = "    health:\n      max_golden_latency: 1m\n"
    billing = "    health: {in: {max_golden_latency: 5m}}\n"
    project = _configure(demo_project_dir, billing=billing, crm=crm)
    _load_crm(engine, project, tmp_path / "a.csv", [_person("C1", 0), _person("C2", 1)])
    _queued_minutes_ago(engine, "crm", 2)
    account = billing_row(
        "B1", first_name="Greta", last_name="Lindqvist", email="greta@example.se", phone=""
    )
    load_file(
        engine, project, "billing", write_jsonl(tmp_path / "billing.jsonl", [account]), actor="t"
    )
    resolve(engine, project, actor="test")  # covers the queue: each record's wait ends

    report = health_report(engine, project, actor=ADMIN)

    intake = {h.system: h for h in report.intake}
    assert (intake["crm"].matched_hour, intake["billing"].matched_hour) == (2, 1)
    slow = intake["crm"].golden_latency
    assert slow is not None
    assert 120 <= slow.p50 <= slow.p95 <= slow.p99 < 180
    quick = intake["billing"].golden_latency
    assert quick is not None
    assert 0 <= quick.p99 < 60
    assert (intake["erp"].matched_hour, intake["erp"].golden_latency) == (0, None)
    assert [(a.system, a.direction, a.check) for a in report.alerts] == [
        ("crm", "in", "golden_latency")
    ]
    (alert,) = report.alerts
    assert (alert.value, alert.threshold) == (slow.p99, 60.0)
    assert alert.message == f"crm in: golden_latency {slow.p99:,.1f}s over 60.0s"
    assert set(report.checks) == {
        Check("crm", "in", "golden_latency", 60.0),
        Check("billing", "in", "golden_latency", 300.0),
    }
    shown = {s["system"]: s for s in report.as_dict()["in"]}
    assert shown["crm"]["matched"] == {"1h": 2}
    assert shown["crm"]["golden_latency_seconds"] == slow.as_dict()
    assert shown["erp"]["golden_latency_seconds"] is None


def test_records_matched_over_an_hour_ago_leave_no_latency(
    engine: Engine, project: Project, tmp_path: Path
) -> None:
    _load_crm(engine, project, tmp_path / "a.csv", [_person("C1", 0)])
    resolve(engine, project, actor="test")
    later = utcnow() + timedelta(hours=1, seconds=1)

    report = health_report(engine, project, actor=ADMIN, now=later)

    crm = next(h for h in report.intake if h.system == "crm")
    assert (crm.matched_hour, crm.golden_latency) == (0, None)  # none, not zero
    assert ("crm", "in", "golden_latency") not in {
        (a.system, a.direction, a.check) for a in report.alerts
    }


def test_latency_to_golden_is_a_threshold_of_records_coming_in_only(
    demo_project_dir: Path,
) -> None:
    crm = "    health:\n      max_golden_latency: 90s\n      out: {max_golden_latency: 1m}\n"
    with pytest.raises(ProjectInvalid) as raised:
        _configure(demo_project_dir, crm=crm)

    problems = [f"{p.where}: {p.message}" for p in raised.value.problems]
    assert len(problems) == 1, problems
    assert "unknown key 'systems.crm.health.out.max_golden_latency'" in problems[0]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("-5s", "'-5s' is not a duration"),
        ("soon", "'soon' is not a duration"),
        ("[1]", "a duration is a number of seconds or text like 30s"),
    ],
)
def test_a_bad_latency_to_golden_is_reported_with_file_and_line(
    demo_project_dir: Path, value: str, why: str
) -> None:
    crm = f"    health:\n      max_error_rate: 0.1\n      in: {{max_golden_latency: {value}}}\n"
    with pytest.raises(ProjectInvalid) as raised:
        _configure(demo_project_dir, crm=crm)

    problems = [f"{p.where}: {p.message}" for p in raised.value.problems]
    assert len(problems) == 1, problems
    assert "accord.yaml:17: systems.crm.health.in.max_golden_latency" in problems[0]
    assert why in problems[0]


def test_a_latency_to_golden_threshold_is_read_for_records_coming_in(
    demo_project_dir: Path,
) -> None:
    crm = "    health:\n      max_golden_latency: 90s\n      in: {max_golden_latency: 500ms}\n"
    project = _configure(demo_project_dir, crm=crm)
    health = project.config.systems["crm"].health

    assert health.for_intake().max_golden_latency == timedelta(milliseconds=500)
    assert health.for_delivery().max_golden_latency is None
