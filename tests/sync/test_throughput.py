"""What makes a round cheaper keeps it the same: the outcomes recorded through the
driver on SQLite (SQLAlchemy on PostgreSQL) read back as written, on both backends, and
only for their target; what is known of records reads back whole; the objects of the
process's start are frozen once (`runtime.heap.freeze_once`, on a delivery round's start and
the web app's)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from accord.runtime import heap
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.sync import DEAD, PENDING, SENT, KnownRecord, Outcome
from accord.store.tables import sync_delivery
from accord.store.types import utcnow


def _rows(engine: Engine, target: str) -> dict[int, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(sync_delivery).where(sync_delivery.c.target == target))
        return {r.change_id: dict(r._mapping) for r in rows}


def test_outcomes_are_recorded_column_by_column_for_their_target_only(engine: Engine) -> None:
    with writing(engine) as conn:
        for target in ("billing", "service"):
            sync_store.plan(conn, target, [(1, "C1"), (2, "C2"), (3, "C3"), (4, "C4")])
    later = datetime(2030, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    detail = {"records": {"C1": "updated", "Ö-2": "kept_theirs"}, "n": [1, 2.5, None]}
    outcomes = [
        Outcome(1, SENT, 1, utcnow(), 200, None, detail),
        Outcome(2, PENDING, 3, later, 503, "billing answered 503: busy", None),
        Outcome(3, DEAD, 7, later, 422, "refused by billing (422): no", {"records": {}}),
    ]
    before = utcnow()
    with writing(engine) as conn:
        sync_store.finish(conn, "billing", outcomes)
    rows = _rows(engine, "billing")
    sent, waiting, dead, untouched = rows[1], rows[2], rows[3], rows[4]
    assert (sent["state"], sent["attempts"], sent["last_status"]) == (SENT, 1, 200)
    assert sent["last_error"] is None and sent["outcome"] == detail
    assert isinstance(sent["finished_at"], datetime) and sent["finished_at"] >= before
    assert (waiting["state"], waiting["attempts"], waiting["due_at"]) == (PENDING, 3, later)
    assert waiting["finished_at"] is None and waiting["outcome"] is None
    assert waiting["last_error"] == "billing answered 503: busy"
    assert (dead["state"], dead["attempts"], dead["last_status"]) == (DEAD, 7, 422)
    assert dead["outcome"] == {"records": {}} and dead["finished_at"] is not None
    assert (untouched["state"], untouched["attempts"], untouched["outcome"]) == (PENDING, 0, None)
    # the same change ids of another target are left as they were
    assert {r["state"] for r in _rows(engine, "service").values()} == {PENDING}


def test_known_records_read_back_whole_by_customer_and_by_id(engine: Engine) -> None:
    records = [
        KnownRecord("C1", "C1", "accord", '"3"', {"phone": "+1", "n": 10**20}, False),
        KnownRecord("m-7", "C1", "member", '"9"', {"town": "Köln"}, False),
        KnownRecord("C2", "C2", "accord", None, None, True),
    ]
    with writing(engine) as conn:
        sync_store.save_records(conn, "billing", records)
        sync_store.save_records(conn, "service", records[:1])
    with engine.connect() as conn:
        by_customer = sync_store.known_records(conn, "billing", ["C1", "C2", "C3"])
        by_id = sync_store.known_by_id(conn, "billing", ["m-7", "C2", "nope"])
    assert by_customer == {"C1": [records[0], records[1]], "C2": [records[2]]}
    assert by_id == {"m-7": records[1], "C2": records[2]}


def test_the_first_round_of_a_process_freezes_what_it_holds_once() -> None:
    heap.freeze_once()  # a round calls it first thing; any earlier test may have
    frozen = gc.get_freeze_count()
    assert frozen > 0
    made = [[i] for i in range(1000)]  # noqa: F841  (objects made after the freeze)
    assert not heap.freeze_once()
    assert gc.get_freeze_count() == frozen  # not again: what came after stays collectable


def test_outcomes_with_one_due_time_for_many_are_each_recorded(engine: Engine) -> None:
    with writing(engine) as conn:
        sync_store.plan(conn, "billing", [(i, f"C{i}") for i in range(1, 1201)])
    at = utcnow() + timedelta(seconds=30)
    with writing(engine) as conn:
        sync_store.finish(
            conn, "billing", [Outcome(i, PENDING, 1, at, 429, "slow") for i in range(1, 1201)]
        )
    rows = _rows(engine, "billing")
    assert len(rows) == 1200
    assert {(r["attempts"], r["due_at"], r["last_status"]) for r in rows.values()} == {(1, at, 429)}
