"""How long records waited from received to golden (`match_wait`): written as the work
queue's rows are removed as matched (`queue.complete`, `queue.remove_covered`), read as
nearest-rank percentiles per system (`store.health.waits`), pruned after a day; the same
on SQLite and PostgreSQL (the `engine` fixture runs every test here once per backend)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, func, select, update

from accord.runtime.health import PERCENTILES, nearest_rank
from accord.store import queue
from accord.store.engine import writing
from accord.store.health import Waits, waits
from accord.store.tables import match_wait, metadata, work_item
from accord.store.types import utcnow
from tests.plans import query_plans

LEASE = timedelta(minutes=5)


def _queue(engine: Engine, system: str, source_ids: list[str], *, waited: float) -> None:
    """Queue records as intake does, then date them `waited` seconds back."""
    with writing(engine) as conn:
        queue.enqueue(conn, "customer", system, source_ids)
        conn.execute(
            update(work_item)
            .where(work_item.c.system == system, work_item.c.source_id.in_(source_ids))
            .values(enqueued_at=utcnow() - timedelta(seconds=waited))
        )


def _recorded(engine: Engine) -> list[tuple[str, float]]:
    with engine.connect() as conn:
        rows = conn.execute(select(match_wait.c.system, match_wait.c.seconds)).all()
    return sorted((system, seconds) for system, seconds in rows)


def _backlog(engine: Engine) -> int:
    with engine.connect() as conn:
        return queue.backlog(conn)


def _last_hour(engine: Engine) -> dict[str, Waits]:
    with engine.connect() as conn:
        return waits(conn, utcnow() - timedelta(hours=1), PERCENTILES)


def test_completing_a_batch_records_each_matched_records_wait(engine: Engine) -> None:
    _queue(engine, "crm", ["C1", "C2", "C3"], waited=30)
    _queue(engine, "erp", ["E1"], waited=90)
    with writing(engine) as conn:
        taken = queue.claim(conn, "customer", "w1", limit=10, lease=LEASE)
    _queue(engine, "crm", ["C3"], waited=0)  # changed while being matched: keeps its place
    before = utcnow()

    with writing(engine) as conn:
        held = queue.hold(conn, "w1", taken)
        released = queue.complete(conn, "w1", held)

    assert released == 1
    assert _backlog(engine) == 1  # C3, to be matched again
    recorded = _recorded(engine)
    assert [system for system, _ in recorded] == ["crm", "crm", "erp"]
    assert all(30 <= seconds < 40 for system, seconds in recorded if system == "crm")
    assert 90 <= recorded[-1][1] < 100
    with engine.connect() as conn:
        ended = conn.execute(select(func.min(match_wait.c.matched_at))).scalar_one()
    assert ended >= before

    # matched again later: its wait still runs from when it was first queued
    with writing(engine) as conn:
        again = queue.claim(conn, "customer", "w1", limit=10, lease=LEASE)
        queue.complete(conn, "w1", queue.hold(conn, "w1", again))
    assert _backlog(engine) == 0
    assert 30 <= max(s for system, s in _recorded(engine) if system == "crm") < 40


def test_rows_lost_to_another_worker_record_nothing(engine: Engine) -> None:
    _queue(engine, "crm", ["C1"], waited=5)
    with writing(engine) as conn:
        taken = queue.claim(conn, "customer", "w1", limit=10, lease=LEASE)
        conn.execute(update(work_item).values(lease_owner="w2"))  # taken over

    with writing(engine) as conn:
        queue.complete(conn, "w1", queue.hold(conn, "w1", taken))
        queue.complete(conn, "w1", taken)  # even without `hold`: not w1's any more

    assert _recorded(engine) == []
    assert _backlog(engine) == 1


def test_a_full_resolves_covered_rows_wait_until_its_writes_end(engine: Engine) -> None:
    _queue(engine, "crm", ["C1", "C2"], waited=20)
    with writing(engine) as conn:
        queue.mark_covered(conn, "customer")
    _queue(engine, "crm", ["C2"], waited=0)  # queued again while the resolve read: kept
    _queue(engine, "erp", ["E1"], waited=0)  # queued after the resolve began: kept

    with writing(engine) as conn:
        removed_at = queue.remove_covered(conn, "customer")
        # as if the resolve's writes after that took 45 s
        began = removed_at - timedelta(seconds=45)
        conn.execute(update(match_wait).values(matched_at=began))
        queue.end_covered_waits(conn, began)

    (recorded,) = _recorded(engine)
    assert recorded[0] == "crm"
    assert 20 + 45 <= recorded[1] < 20 + 45 + 10
    with engine.connect() as conn:
        ended = conn.execute(select(match_wait.c.matched_at)).scalar_one()
        left = conn.execute(select(work_item.c.system, work_item.c.source_id)).all()
    assert ended >= removed_at  # moved to when the writes ended
    assert sorted(left) == [("crm", "C2"), ("erp", "E1")]


def _insert(conn: Connection, system: str, seconds: list[float], at: datetime) -> None:
    if seconds:
        conn.execute(
            match_wait.insert(),
            [{"system": system, "matched_at": at, "seconds": s} for s in seconds],
        )


def test_the_last_hours_percentiles_per_system(engine: Engine) -> None:
    now = utcnow()
    with writing(engine) as conn:
        _insert(conn, "crm", [float(s) for s in range(1, 21)], now - timedelta(minutes=5))
        _insert(conn, "crm", [500.0], now - timedelta(hours=2))  # before the window
        _insert(conn, "erp", [7.0, 3.0], now - timedelta(minutes=59))
        _insert(conn, "billing", [9.0], now - timedelta(hours=3))

    with engine.connect() as conn:
        found = waits(conn, now - timedelta(hours=1), PERCENTILES)

    # nearest rank: 10th, 19th and 20th of 20; of two, the quicker then the slower
    assert found == {
        "crm": Waits(20, {50: 10.0, 95: 19.0, 99: 20.0}),
        "erp": Waits(2, {50: 3.0, 95: 7.0, 99: 7.0}),
    }
    assert "billing" not in found  # nothing matched in the window: absent, not zero


def test_nothing_matched_has_no_percentiles(engine: Engine) -> None:
    assert _last_hour(engine) == {}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seconds=st.lists(
        st.floats(min_value=0, max_value=86_400, allow_nan=False).map(lambda s: round(s, 3)),
        min_size=1,
        max_size=60,
    )
)
def test_percentiles_are_the_nearest_rank_of_the_sorted_waits(
    engine: Engine, seconds: list[float]
) -> None:
    now = utcnow()
    with writing(engine) as conn:
        conn.execute(delete(match_wait))
        _insert(conn, "crm", seconds, now - timedelta(minutes=1))

    found = _last_hour(engine)["crm"]

    ordered = sorted(seconds)
    assert found.matched == len(seconds)
    for p in PERCENTILES:
        assert found.seconds[p] == pytest.approx(ordered[nearest_rank(p, len(seconds)) - 1])


def test_waits_older_than_a_day_are_pruned_as_batches_complete(engine: Engine) -> None:
    now = utcnow()
    with writing(engine) as conn:
        _insert(conn, "crm", [1.0] * 5, now - timedelta(days=1, minutes=1))
        _insert(conn, "crm", [2.0] * 3, now - timedelta(hours=23))
    with writing(engine) as conn:
        assert queue.prune_waits(conn, now - queue.KEEP_WAITS, limit=2) == 2
    assert len(_recorded(engine)) == 6

    _queue(engine, "erp", ["E1"], waited=1)
    with writing(engine) as conn:
        taken = queue.claim(conn, "customer", "w1", limit=10, lease=LEASE)
        queue.complete(conn, "w1", queue.hold(conn, "w1", taken))

    # the batch's own wait went in, the three older than a day went out
    assert sorted(system for system, _ in _recorded(engine)) == ["crm"] * 3 + ["erp"]


def test_recording_reading_and_pruning_search_by_index(sqlite_engine: Engine) -> None:
    """The window read and the pruning are ranges of the `matched_at` index; the
    recording reads the queue rows by id (SQLite's plans: a scan is invisible on a
    test's few rows)."""
    since = utcnow() - timedelta(hours=1)
    with writing(sqlite_engine) as conn:
        queue.enqueue(conn, "customer", "crm", ["C1", "C2"])
        taken = queue.claim(conn, "customer", "w1", limit=10, lease=LEASE)

    def complete(conn: Connection) -> None:
        queue.complete(conn, "w1", taken)
        conn.rollback()

    for run in (
        lambda conn: waits(conn, since, PERCENTILES),
        lambda conn: queue.prune_waits(conn, since),
        complete,
    ):
        plans = query_plans(sqlite_engine, run)
        scans = [
            step
            for step in plans
            if step.startswith("SCAN ") and step.split()[1] in metadata.tables
        ]
        assert scans == [], plans
    assert any(
        "ix_match_wait_matched_at" in step
        for step in query_plans(sqlite_engine, lambda conn: waits(conn, since, PERCENTILES))
    )
