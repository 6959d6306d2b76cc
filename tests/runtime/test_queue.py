"""The durable work queue (`store/queue.py`), on both stores: one row per record, leased
without overlap, taken again when a lease runs out, removed only when the outcome is
written with the token it was taken with; failures back off and are given up on."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from accord.store import queue
from accord.store.engine import writing
from accord.store.tables import work_item

LEASE = timedelta(minutes=5)


def _enqueue(engine: Engine, *source_ids: str, system: str = "crm") -> None:
    with writing(engine) as conn:
        queue.enqueue(conn, "customer", system, list(source_ids))


def _claim(
    engine: Engine, worker: str, limit: int = 10, lease: timedelta = LEASE
) -> list[queue.Claim]:
    with writing(engine) as conn:
        return queue.claim(conn, "customer", worker, limit=limit, lease=lease)


def _rows(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        return {r.source_id: dict(r._mapping) for r in conn.execute(select(work_item))}


def test_a_record_queued_again_keeps_its_place_and_gets_a_new_token(engine: Engine) -> None:
    _enqueue(engine, "a", "b", "a")  # repeated in one call: one row
    before = _rows(engine)
    _enqueue(engine, "a")

    after = _rows(engine)
    assert set(after) == {"a", "b"}
    assert after["a"]["id"] == before["a"]["id"]
    assert after["a"]["enqueued_at"] == before["a"]["enqueued_at"]
    assert after["a"]["token"] != before["a"]["token"]
    assert after["b"] == before["b"]


def test_claims_take_the_oldest_first_and_never_overlap(engine: Engine) -> None:
    _enqueue(engine, *[f"r{i:02}" for i in range(25)])

    first = _claim(engine, "w1", limit=10)
    second = _claim(engine, "w2", limit=10)
    third = _claim(engine, "w3", limit=10)

    assert [c.source_id for c in first] == [f"r{i:02}" for i in range(10)]
    assert [c.source_id for c in second] == [f"r{i:02}" for i in range(10, 20)]
    assert len(third) == 5
    assert _claim(engine, "w4") == []  # everything is leased


def test_a_lapsed_lease_is_taken_over_and_the_first_worker_cannot_complete(
    engine: Engine,
) -> None:
    _enqueue(engine, "a", "b")
    taken = _claim(engine, "slow", lease=timedelta(milliseconds=200))
    time.sleep(0.3)
    again = _claim(engine, "fast")
    assert [c.key for c in again] == [c.key for c in taken]

    with writing(engine) as conn:
        assert queue.hold(conn, "slow", taken) == []  # it learns, and writes nothing
    with writing(engine) as conn:
        held = queue.hold(conn, "fast", again)
        assert queue.complete(conn, "fast", held) == 0
    assert _rows(engine) == {}


def test_a_record_changed_while_being_matched_stays_queued(engine: Engine) -> None:
    _enqueue(engine, "a", "b")
    taken = _claim(engine, "w")
    _enqueue(engine, "a")  # a new version arrives meanwhile

    with writing(engine) as conn:
        released = queue.complete(conn, "w", queue.hold(conn, "w", taken))

    assert released == 1
    rows = _rows(engine)
    assert set(rows) == {"a"}
    assert rows["a"]["lease_owner"] is None
    assert [c.source_id for c in _claim(engine, "w")] == ["a"]


def test_a_failure_backs_off_and_is_given_up_on_after_the_last_attempt(engine: Engine) -> None:
    _enqueue(engine, "bad")
    for attempt in range(1, queue.MAX_ATTEMPTS + 1):
        taken = _claim(engine, "w")
        assert len(taken) == 1, attempt
        with writing(engine) as conn:
            queue.fail(conn, "w", taken, "ValueError: boom", retry_in=timedelta(seconds=60))
        assert _claim(engine, "w") == []  # backing off
        with writing(engine) as conn:  # let the back-off pass
            conn.execute(work_item.update().values(lease_until=None))

    assert _claim(engine, "w") == []  # given up
    with engine.connect() as conn:
        stats = queue.stats(conn)
        assert (stats.waiting, stats.leased, stats.failed) == (0, 0, 1)
        [failure] = queue.failures(conn)
        assert failure["last_error"] == "ValueError: boom"
    with writing(engine) as conn:
        assert queue.retry_failed(conn) == 1
    assert len(_claim(engine, "w")) == 1


def test_a_full_resolve_removes_what_it_covered_and_keeps_what_came_after(
    engine: Engine,
) -> None:
    _enqueue(engine, "a", "b")
    with writing(engine) as conn:
        queue.mark_covered(conn, "customer")
    _enqueue(engine, "b", "c")  # b changes and c arrives while the resolve reads
    with writing(engine) as conn:
        queue.remove_covered(conn, "customer")

    assert set(_rows(engine)) == {"b", "c"}


def test_stats_count_waiting_and_leased_and_the_oldest(engine: Engine) -> None:
    _enqueue(engine, "a", "b", "c")
    _claim(engine, "w", limit=1)
    with engine.connect() as conn:
        stats = queue.stats(conn)
        assert queue.backlog(conn) == 3
    assert (stats.waiting, stats.leased, stats.failed) == (2, 1, 0)
    assert stats.oldest is not None


@pytest.mark.parametrize("count", [0, 1, 1200])
def test_enqueue_handles_any_number_of_records(engine: Engine, count: int) -> None:
    _enqueue(engine, *[f"id-{i}" for i in range(count)])
    with engine.connect() as conn:
        assert queue.backlog(conn) == count
