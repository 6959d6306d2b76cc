"""Withdrawing a load, then resolving incrementally: a record the load created leaves
the match index, the crosswalk and its customer; a reverted record is matched again."""

from __future__ import annotations

from sqlalchemy import select

from accord.golden.incremental import resolve_changes
from accord.govern.permissions import Actor, Role
from accord.intake import loads
from accord.match.index import IndexPlan
from accord.store.tables import crosswalk, load, match_entry, match_review
from tests.golden import test_incremental as incremental
from tests.golden.test_incremental import Based, _assert_index_recounts, _golden, _new_contact_like

# the incremental tests' fixtures: the demo, fully resolved, on each backend
demo = incremental.demo
based = incremental.based

ADMIN = Actor("cli", "tester", Role.ADMIN)


def test_a_withdrawn_new_record_leaves_its_customer_on_an_incremental_resolve(
    based: Based,
) -> None:
    original, duplicate = _new_contact_like(based.demo, "T-WD")
    customer = based.golden_of(original["Id"])
    members = _golden(based.engine, customer)["member_count"]
    based.add([duplicate])
    assert based.golden_of("T-WD") == customer
    with based.engine.connect() as conn:
        load_id = conn.execute(select(load.c.id).order_by(load.c.id.desc())).scalars().first()
    assert load_id is not None

    report = loads.withdraw(based.engine, load_id, actor=ADMIN)
    assert report.removed == 1
    again = resolve_changes(based.engine, based.project, actor="test")

    assert again.removed == 1
    assert _golden(based.engine, customer)["member_count"] == members
    assert _golden(based.engine, customer)["status"] == "active"
    with based.engine.connect() as conn:
        assert (
            conn.execute(select(crosswalk).where(crosswalk.c.source_id == "T-WD")).first() is None
        )
        assert (
            conn.execute(select(match_entry).where(match_entry.c.source_id == "T-WD")).first()
            is None
        )
    _assert_index_recounts(based.engine, IndexPlan.of(based.project.config.match))
    # nothing left to do
    assert resolve_changes(based.engine, based.project, actor="test").removed == 0


def test_a_withdrawn_record_held_for_review_leaves_the_review_queue(based: Based) -> None:
    # the same name and email as T-GA, another birth date: held for review, not linked
    based.add(
        [
            incremental._contact(
                "T-WR",
                "Ottilie",
                "Brandhuber",
                Email="ottilie.brandhuber@posteo.de",
                BirthDate="1988-11-02",
            )
        ]
    )
    held = incremental._open_reviews(based.engine, "T-WR")
    assert held
    with based.engine.connect() as conn:
        load_id = conn.execute(select(load.c.id).order_by(load.c.id.desc())).scalars().first()
    assert load_id is not None

    loads.withdraw(based.engine, load_id, actor=ADMIN)
    assert resolve_changes(based.engine, based.project, actor="test").removed == 1

    assert incremental._open_reviews(based.engine, "T-WR") == []
    with based.engine.connect() as conn:
        statuses = conn.execute(
            select(match_review.c.status).where(
                match_review.c.id.in_([review["id"] for review in held])
            )
        ).scalars()
        assert set(statuses) == {"withdrawn"}  # kept, as withdrawn: the queue's history
