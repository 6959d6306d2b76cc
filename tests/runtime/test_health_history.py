"""Integration health over time: each system and direction's figures in the buckets of a
window, on both stores, from the state `test_health` builds through the real paths;
and each bucketed read searching by index."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, update

from accord.config.loader import Project
from accord.errors import InputRejected, NotAllowed
from accord.golden.resolve import resolve
from accord.govern.permissions import Actor, Role, cli_actor
from accord.runtime.health import WINDOWS, health_history
from accord.store import health as health_store
from accord.store.engine import writing
from accord.store.tables import metadata, sync_delivery
from accord.store.types import utcnow
from tests.plans import query_plans
from tests.runtime.test_health import (
    _build,
    _configure,
    _load_crm,
    _person,
    _queued_minutes_ago,
)

ADMIN = cli_actor()


@pytest.fixture
def project(demo_project_dir: Path) -> Project:
    return _configure(demo_project_dir)


def test_windows_are_whole_steps_ending_with_the_bucket_now_is_in() -> None:
    now = datetime(2025, 3, 1, 14, 37, 12, tzinfo=UTC)
    day = WINDOWS["24h"].edges(now)
    assert len(day) == 25
    assert (day[0], day[-2], day[-1]) == (
        datetime(2025, 2, 28, 15, tzinfo=UTC),
        datetime(2025, 3, 1, 14, tzinfo=UTC),
        datetime(2025, 3, 1, 15, tzinfo=UTC),
    )
    hour = WINDOWS["1h"].edges(now)
    assert len(hour) == 13
    assert (hour[-2], hour[-1]) == (
        datetime(2025, 3, 1, 14, 35, tzinfo=UTC),
        datetime(2025, 3, 1, 14, 40, tzinfo=UTC),
    )


def test_each_figure_over_the_last_day(engine: Engine, project: Project, tmp_path: Path) -> None:
    now = _build(engine, project, tmp_path)

    history = health_history(engine, project, actor=ADMIN, window="24h", now=now)

    assert len(history.starts) == 24 and history.edges[-2] <= now < history.edges[-1]
    flows = {(f.system, f.direction): f for f in history.flows}
    assert list(flows) == [
        ("crm", "in"),
        ("erp", "in"),
        ("billing", "in"),
        ("service", "in"),
        ("billing", "out"),
    ]
    crm = flows[("crm", "in")]

    def at(when: datetime) -> int:
        """The bucket `when` falls in."""
        return next(i for i in range(24) if history.edges[i] <= when < history.edges[i + 1])

    two_hours_ago, last = at(now - timedelta(hours=2)), at(now)
    # two hours ago: 2 stored and 1 quarantined; now: 4 stored (C3, C6, C4, C5), 1 bad
    assert crm.throughput[two_hours_ago] == 3 and crm.errors[two_hours_ago] == 1
    assert sum(crm.throughput) == 8 and sum(crm.errors) == 2
    assert crm.throughput[last] + crm.throughput[last - 1] >= 5
    # the resolve matched C1, C2, C3, C6 just now; C4 was given up on, C5 waits
    assert crm.latency[last] is not None and crm.latency[:two_hours_ago] == (None,) * two_hours_ago
    assert crm.backlog[last] == 2
    assert flows[("erp", "in")].throughput == (0,) * 24
    assert flows[("erp", "in")].latency == (None,) * 24

    out = flows[("billing", "out")]
    # finished: 1 sent 10 min ago (2 s), 1 sent after retries 20 min ago (30 s), 1 dead
    # 30 min ago, 1 sent 2 h ago, 1 sent 3 h ago (5 s each)
    assert sum(out.throughput) == 5 and sum(out.errors) == 2
    assert out.throughput[at(now - timedelta(hours=3) + timedelta(seconds=5))] == 1
    assert out.latency[at(now - timedelta(hours=3) + timedelta(seconds=5))] == pytest.approx(
        5.0, abs=1e-3
    )
    assert out.backlog[last] == 1  # the planned repair; the unplanned one is not counted


def test_a_delivery_counts_as_waiting_from_planned_to_finished(
    engine: Engine, project: Project, tmp_path: Path
) -> None:
    now = _build(engine, project, tmp_path)
    with writing(engine) as conn:  # the one sent ten minutes ago was planned 15 minutes ago
        conn.execute(
            update(sync_delivery)
            .where(sync_delivery.c.finished_at.between(now - timedelta(minutes=11), now))
            .values(created_at=now - timedelta(minutes=15))
        )
        moments = [now - timedelta(minutes=m) for m in (20, 12, 0)]
        waiting = health_store.deliveries_waiting_at(conn, "billing", moments)
    # then nothing; then that one; now the planned repair (the unplanned one is not counted)
    assert waiting == [0, 1, 1]


def test_backlog_in_is_rebuilt_from_the_waits_of_records_matched_since(
    engine: Engine, project: Project, tmp_path: Path
) -> None:
    """Records received 40 minutes ago and matched now were waiting at every moment in
    between: `match_wait` says so (matched at, after so many seconds)."""
    _load_crm(engine, project, tmp_path / "a.csv", [_person("C1", 0), _person("C2", 1)])
    _queued_minutes_ago(engine, "crm", 40)
    started = utcnow()
    resolve(engine, project, actor="test")
    with engine.connect() as conn:
        moments = [started - timedelta(minutes=m) for m in (50, 30, 1)] + [utcnow()]
        backlog = health_store.backlog_at(conn, moments)
    assert backlog == {"crm": [0, 2, 2, 0]}


def test_only_an_actor_with_health_read_and_a_known_window(
    engine: Engine, project: Project
) -> None:
    with pytest.raises(NotAllowed):
        health_history(engine, project, actor=Actor("user", "s", Role.STEWARD))
    with pytest.raises(InputRejected, match="no window '7d'"):
        health_history(engine, project, actor=ADMIN, window="7d")


def test_the_bucketed_reads_search_by_index(sqlite_engine: Engine) -> None:
    """Each read is bounded by an index range on its window (by system or target); the
    work queue is read whole, as for the current figures (it is the backlog)."""
    edges = WINDOWS["24h"].edges(utcnow())
    moments = list(edges[1:])
    reads: dict[str, Callable[[Connection], Any]] = {
        "stored_over": lambda conn: health_store.stored_over(conn, "crm", edges),
        "quarantined_over": lambda conn: health_store.quarantined_over(conn, "crm", edges),
        "waits_over": lambda conn: health_store.waits_over(conn, edges, 95),
        "finished_over": lambda conn: health_store.finished_over(conn, "billing", edges),
        "delivery_latency_over": lambda conn: health_store.delivery_latency_over(
            conn, "billing", edges, 95
        ),
        "deliveries_waiting_at": lambda conn: health_store.deliveries_waiting_at(
            conn, "billing", moments
        ),
        "backlog_at": lambda conn: health_store.backlog_at(conn, moments),
    }
    for name, run in reads.items():
        plans = query_plans(sqlite_engine, run)
        scans = [
            step
            for step in plans
            if step.startswith("SCAN ")
            and step.split()[1] in metadata.tables
            and step.split()[1] != "work_item"
        ]
        assert scans == [], (name, plans)
