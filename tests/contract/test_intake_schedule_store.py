"""The intake schedule's store (`store/intake_schedule.py`) on SQLite and PostgreSQL: a
channel is claimed by one worker at a time, only when due; a lease that ran out is taken
over, and the worker that lost it can neither renew it nor record its run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from accord.store import intake_schedule as store
from accord.store.engine import writing

T0 = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


def _register(engine: Engine, due_at: datetime = T0, timing: str = "every 5m") -> bool:
    with writing(engine) as conn:
        return store.register(conn, "erp", "poll", timing=timing, due_at=due_at, now=T0)


def _claim(engine: Engine, owner: str, now: datetime) -> bool:
    with writing(engine) as conn:
        return store.claim(conn, "erp", "poll", owner, now=now, lease=LEASE)


def _row(engine: Engine) -> store.ChannelRow:
    with engine.connect() as conn:
        found = store.read(conn, "erp", "poll")
    assert found is not None
    return found


def _finish(engine: Engine, owner: str, now: datetime, outcome: str = "ok") -> bool:
    with writing(engine) as conn:
        return store.finish(
            conn,
            "erp",
            "poll",
            owner,
            now=now,
            outcome=outcome,
            message=f"{outcome} by {owner}",
            load_id=7,
            counts={"read": 3},
            due_at=now + timedelta(minutes=5),
        )


def test_a_channel_is_registered_once(engine: Engine) -> None:
    assert _register(engine)
    assert not _register(engine, due_at=T0 + timedelta(hours=1), timing="every 1m")
    row = _row(engine)
    assert (row.timing, row.due_at, row.failures, row.lease_owner) == ("every 5m", T0, 0, None)
    with engine.connect() as conn:
        assert [(r.system, r.channel) for r in store.read_all(conn)] == [("erp", "poll")]


def test_only_one_of_two_claimers_wins_and_only_when_due(engine: Engine) -> None:
    _register(engine, due_at=T0)
    assert not _claim(engine, "early", T0 - timedelta(seconds=1))  # not due yet
    assert _claim(engine, "w1", T0)
    assert not _claim(engine, "w2", T0 + timedelta(seconds=1))
    row = _row(engine)
    assert (row.lease_owner, row.lease_until, row.last_started_at) == ("w1", T0 + LEASE, T0)
    assert row.held(T0 + LEASE) and not row.held(T0 + LEASE + timedelta(seconds=1))


def test_claimers_racing_on_threads_get_the_channel_once(engine: Engine) -> None:
    _register(engine, due_at=T0)
    start = threading.Barrier(8)
    won: list[str] = []

    def claimer(name: str) -> None:
        start.wait()
        if _claim(engine, name, T0 + timedelta(seconds=1)):
            won.append(name)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert _row(engine).lease_owner == won[0]


def test_an_expired_lease_is_taken_over_and_the_old_holder_records_nothing(
    engine: Engine,
) -> None:
    _register(engine, due_at=T0)
    assert _claim(engine, "crashed", T0)
    assert not _claim(engine, "other", T0 + LEASE)  # the lease runs to its end
    later = T0 + LEASE + timedelta(seconds=1)
    assert _claim(engine, "other", later)

    with writing(engine) as conn:
        assert not store.renew(conn, "erp", "poll", "crashed", until=later + LEASE, now=later)
    assert not _finish(engine, "crashed", later)
    assert _row(engine).lease_owner == "other"

    assert _finish(engine, "other", later + timedelta(seconds=5))
    row = _row(engine)
    assert (row.lease_owner, row.lease_until, row.last_outcome) == (None, None, "ok")
    assert (row.last_message, row.last_load_id, row.last_counts) == ("ok by other", 7, {"read": 3})
    assert row.due_at == later + timedelta(seconds=5, minutes=5)
    assert row.last_started_at == later and row.last_finished_at == later + timedelta(seconds=5)


def test_a_holder_renews_its_lease_and_notes_counts(engine: Engine) -> None:
    _register(engine, due_at=T0)
    _claim(engine, "w1", T0)
    renewed_at = T0 + timedelta(minutes=1)
    with writing(engine) as conn:
        assert store.renew(
            conn, "erp", "poll", "w1", until=renewed_at + LEASE, now=renewed_at, counts={"m": 5}
        )
    assert not _claim(engine, "w2", T0 + LEASE + timedelta(seconds=1))  # renewed: still held
    row = _row(engine)
    assert (row.lease_until, row.last_counts) == (renewed_at + LEASE, {"m": 5})


def test_failures_in_a_row_are_counted_until_a_run_goes_well(engine: Engine) -> None:
    _register(engine, due_at=T0)
    moment = T0
    for outcome, expected in [("failed", 1), ("failed", 2), ("stopped", 2), ("ok", 0)]:
        assert _claim(engine, "w", moment)
        assert _finish(engine, "w", moment, outcome)
        assert _row(engine).failures == expected, outcome
        moment += timedelta(minutes=5)


def test_a_new_timing_is_set_once(engine: Engine) -> None:
    _register(engine, due_at=T0, timing="every 5m")
    later = T0 + timedelta(hours=1)
    with writing(engine) as conn:
        assert store.retime(conn, "erp", "poll", timing='cron "0 3 * * *"', due_at=later, now=T0)
        assert not store.retime(conn, "erp", "poll", timing='cron "0 3 * * *"', due_at=T0, now=T0)
    row = _row(engine)
    assert (row.timing, row.due_at) == ('cron "0 3 * * *"', later)


def _hold(engine: Engine, owner: str, now: datetime) -> bool:
    with writing(engine) as conn:
        return store.hold(conn, "erp", "poll", owner, now=now, lease=LEASE)


def _release(engine: Engine, owner: str, now: datetime) -> bool:
    with writing(engine) as conn:
        return store.release(conn, "erp", "poll", owner, now=now)


def test_a_run_by_hand_holds_the_lease_whatever_the_due_time(engine: Engine) -> None:
    due = T0 + timedelta(minutes=1)
    _register(engine, due_at=due)
    assert not _claim(engine, "w1", T0)  # not due
    assert _hold(engine, "by hand", T0)  # a run by hand does not wait for the due time
    assert not _claim(engine, "w1", due)  # due now, but held
    assert not _hold(engine, "another hand", due)
    row = _row(engine)
    assert (row.lease_owner, row.lease_until, row.last_started_at) == ("by hand", T0 + LEASE, T0)

    later = due + timedelta(seconds=30)
    assert not _release(engine, "w1", later)  # not w1's to give up
    assert _release(engine, "by hand", later)
    row = _row(engine)
    assert (row.lease_owner, row.lease_until) == (None, None)
    # nothing of the run is recorded as the schedule's: due time, outcome, failures
    assert (row.due_at, row.last_outcome, row.last_finished_at, row.failures) == (
        due,
        None,
        None,
        0,
    )
    assert _claim(engine, "w1", later)


def test_a_worker_holding_the_channel_keeps_it_from_a_run_by_hand(engine: Engine) -> None:
    _register(engine, due_at=T0)
    assert _claim(engine, "w1", T0)
    assert not _hold(engine, "by hand", T0 + LEASE)  # the lease runs to its end
    assert _hold(engine, "by hand", T0 + LEASE + timedelta(seconds=1))  # the worker died
    assert not _finish(engine, "w1", T0 + LEASE + timedelta(seconds=2))
    assert _row(engine).lease_owner == "by hand"


def test_holding_a_channel_no_worker_registered_changes_nothing(engine: Engine) -> None:
    assert not _hold(engine, "by hand", T0)  # no row: the caller registers it first
    with engine.connect() as conn:
        assert store.read_all(conn) == []


PAUSED = {"messages": 4, "pauses": 1, "paused_seconds": 3, "paused_backlog": 6, "paused_bound": 5}
PAST_PAUSES = {"messages": 4, "pauses": 1, "paused_seconds": 3}  # what the run did, kept


def test_a_pause_noted_by_a_run_is_not_handed_to_the_next_holder(engine: Engine) -> None:
    """`paused_backlog` and `paused_bound` say the run in hand is paused now: a worker
    that claims the channel, or a run by hand that holds it, starts unpaused, whatever
    the run before it noted; the rest of the last run's counts stay as they were."""
    _register(engine, due_at=T0)
    assert _claim(engine, "paused", T0)
    with writing(engine) as conn:  # what a paused broker run's heartbeat writes
        assert store.renew(conn, "erp", "poll", "paused", until=T0 + LEASE, now=T0, counts=PAUSED)
    later = T0 + LEASE + timedelta(seconds=1)
    assert _claim(engine, "next", later)  # the paused worker died; its lease ran out
    assert _row(engine).last_counts == PAST_PAUSES

    with writing(engine) as conn:  # a run that ends while paused records its counts
        assert store.finish(
            conn,
            "erp",
            "poll",
            "next",
            now=later,
            outcome="stopped",
            message="ended while paused",
            load_id=None,
            counts=PAUSED,
            due_at=later,
        )
    assert _row(engine).last_counts == PAUSED  # nobody holds it: no pause is shown
    assert _hold(engine, "by hand", later)
    assert _row(engine).last_counts == PAST_PAUSES
    assert _release(engine, "by hand", later)
    assert _claim(engine, "again", later)  # no pause to take away: the counts as they were
    assert _row(engine).last_counts == PAST_PAUSES
