"""The stewardship store: the review queue and steward decisions, the same on SQLite and
PostgreSQL (the `engine` fixture runs every test here once per backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from accord.store import stewardship
from accord.store.engine import writing
from accord.store.tables import match_decision, match_review

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(days=1)

A = ("crm", "C1")
B = ("crm", "C2")
C = ("erp", "0001")
D = ("billing", "BA-1")
E = ("service", "S9")


def _item(
    left: tuple[str, str],
    right: tuple[str, str],
    probability: float = 0.9,
    reason: str = "uncertain",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "left": left,
        "right": right,
        "probability": probability,
        "weight": extra.pop("weight", 3.2),
        "reason": reason,
        "explanation": extra.pop("explanation", {"match_weight": 3.2, "comparisons": []}),
    }


def _sync(engine: Engine, items: list[dict[str, Any]], at: datetime = T0) -> dict[str, int]:
    with writing(engine) as conn:
        return stewardship.sync_reviews(conn, items, at)


def _reviews(engine: Engine) -> dict[tuple[tuple[str, str], tuple[str, str]], dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(match_review)).all()
    return {
        ((r.left_system, r.left_source_id), (r.right_system, r.right_source_id)): dict(r._mapping)
        for r in rows
    }


def _decide(engine: Engine, pair: Any, decision: str, note: str = "", at: datetime = T0) -> None:
    with writing(engine) as conn:
        stewardship.record_decision(
            conn, pair, decision=decision, note=note, actor="user:stewie", at=at
        )


def test_ordered_puts_the_smaller_key_on_the_left() -> None:
    assert stewardship.ordered(B, A) == (A, B)
    assert stewardship.ordered(A, B) == (A, B)
    assert stewardship.ordered(C, D) == (D, C)  # by system first, then source id
    assert stewardship.ordered(("crm", "10"), ("crm", "9")) == (("crm", "10"), ("crm", "9"))


def test_sync_adds_new_pairs_in_their_stored_order(engine: Engine) -> None:
    explanation = {"prior_weight": -7.5, "comparisons": [{"comparison": "email", "weight": 9.1}]}
    counts = _sync(
        engine,
        [
            _item(B, A, 0.8, explanation=explanation),
            _item(C, D, 1.0, "contradicting tax_id", weight=None, explanation=None),
        ],
    )

    assert counts == {"queued": 2, "new": 2, "withdrawn": 0}
    stored = _reviews(engine)
    assert set(stored) == {(A, B), (D, C)}
    first = stored[A, B]
    assert (first["probability"], first["match_weight"], first["reason"]) == (0.8, 3.2, "uncertain")
    assert first["explanation"] == explanation
    assert first["status"] == "open"
    assert first["first_seen_at"] == first["updated_at"] == T0
    second = stored[D, C]
    assert (second["match_weight"], second["reason"]) == (None, "contradicting tax_id")
    assert second["explanation"] == {}


def test_sync_refreshes_pairs_still_in_doubt_and_keeps_when_they_were_first_seen(
    engine: Engine,
) -> None:
    _sync(engine, [_item(A, B, 0.7)], T0)
    first_id = _reviews(engine)[A, B]["id"]

    counts = _sync(engine, [_item(B, A, 0.75, "contradicting birth_date", weight=1.5)], T1)

    assert counts == {"queued": 1, "new": 0, "withdrawn": 0}
    review = _reviews(engine)[A, B]
    assert review["id"] == first_id
    assert (review["probability"], review["match_weight"]) == (0.75, 1.5)
    assert review["reason"] == "contradicting birth_date"
    assert (review["first_seen_at"], review["updated_at"]) == (T0, T1)
    assert review["status"] == "open"


def test_sync_withdraws_open_pairs_no_longer_in_doubt(engine: Engine) -> None:
    _sync(engine, [_item(A, B), _item(C, D)], T0)

    counts = _sync(engine, [_item(A, B)], T1)

    assert counts == {"queued": 1, "new": 0, "withdrawn": 1}
    stored = _reviews(engine)
    assert stored[D, C]["status"] == "withdrawn"
    assert stored[D, C]["updated_at"] == T1
    assert stored[A, B]["status"] == "open"
    # an empty result withdraws everything open
    assert _sync(engine, [], T2) == {"queued": 0, "new": 0, "withdrawn": 1}
    assert {r["status"] for r in _reviews(engine).values()} == {"withdrawn"}


def test_a_withdrawn_pair_in_doubt_again_is_reopened_not_duplicated(engine: Engine) -> None:
    _sync(engine, [_item(A, B)], T0)
    _sync(engine, [], T1)

    counts = _sync(engine, [_item(A, B, 0.6)], T2)

    assert counts == {"queued": 1, "new": 0, "withdrawn": 0}
    stored = _reviews(engine)
    assert len(stored) == 1
    assert (stored[A, B]["status"], stored[A, B]["probability"]) == ("open", 0.6)
    assert stored[A, B]["first_seen_at"] == T0


def test_sync_never_requeues_a_decided_review(engine: Engine) -> None:
    _sync(engine, [_item(A, B), _item(C, D)], T0)
    with writing(engine) as conn:
        stewardship.close_reviews(conn, [(B, A)], T1)  # either order finds the pair

    counts = _sync(engine, [_item(A, B, 0.99), _item(C, D)], T2)
    assert counts == {"queued": 1, "new": 0, "withdrawn": 0}
    stored = _reviews(engine)
    assert stored[A, B]["status"] == "decided"
    assert (stored[A, B]["probability"], stored[A, B]["updated_at"]) == (0.9, T1)

    # and a decided review is not withdrawn when the resolve no longer doubts the pair
    assert _sync(engine, [], T2)["withdrawn"] == 1
    assert _reviews(engine)[A, B]["status"] == "decided"


def test_sync_never_queues_a_pair_with_a_decision(engine: Engine) -> None:
    _decide(engine, (B, A), "different")

    counts = _sync(engine, [_item(A, B), _item(A, C)], T0)

    assert counts == {"queued": 1, "new": 1, "withdrawn": 0}
    assert set(_reviews(engine)) == {(A, C)}


def test_sync_withdraws_an_open_review_once_its_pair_is_decided(engine: Engine) -> None:
    _sync(engine, [_item(A, B)], T0)
    _decide(engine, (A, B), "same")  # recorded without closing the review

    counts = _sync(engine, [_item(A, B)], T1)

    assert counts == {"queued": 0, "new": 0, "withdrawn": 1}
    assert _reviews(engine)[A, B]["status"] == "withdrawn"


def test_sync_writes_in_batches(engine: Engine) -> None:
    items = [_item(("crm", f"L{i:05d}"), ("erp", f"R{i:05d}"), 0.5) for i in range(2345)]
    assert _sync(engine, items, T0) == {"queued": 2345, "new": 2345, "withdrawn": 0}
    counts = _sync(engine, items[:10], T1)
    assert counts == {"queued": 10, "new": 0, "withdrawn": 2335}
    with engine.connect() as conn:
        _, open_total = stewardship.list_reviews(conn, "open")
        _, withdrawn_total = stewardship.list_reviews(conn, "withdrawn")
    assert (open_total, withdrawn_total) == (10, 2335)
    with writing(engine) as conn:
        stewardship.close_reviews(
            conn, [stewardship.ordered(i["left"], i["right"]) for i in items], T2
        )
    with engine.connect() as conn:
        assert stewardship.list_reviews(conn, "decided")[1] == 2345


def test_the_longest_keys_are_stored_whole(engine: Engine) -> None:
    left, right = ("s" * 64, "x" * 256), ("t" * 64, "y" * 256)
    _sync(engine, [_item(right, left)])
    _decide(engine, (right, left), "same")
    assert set(_reviews(engine)) == {(left, right)}
    with engine.connect() as conn:
        assert stewardship.decisions(conn) == {(left, right): "same"}


def test_record_decision_upserts_and_the_latest_wins(engine: Engine) -> None:
    _decide(engine, (A, B), "same", "one customer", T0)
    _decide(engine, (B, A), "different", "twins, checked by phone", T1)
    _decide(engine, (C, D), "same", "", T1)

    with engine.connect() as conn:
        assert stewardship.decisions(conn) == {(A, B): "different", (D, C): "same"}
        stored = stewardship.decision_of(conn, (B, A))
        assert stewardship.decision_of(conn, (A, C)) is None
        rows = conn.execute(select(func.count()).select_from(match_decision)).scalar_one()
    assert rows == 2
    assert stored is not None
    assert (stored["left_system"], stored["left_source_id"]) == A
    assert (stored["right_system"], stored["right_source_id"]) == B
    assert (stored["decision"], stored["note"]) == ("different", "twins, checked by phone")
    assert (stored["decided_by"], stored["decided_at"]) == ("user:stewie", T1)


def test_list_reviews_most_likely_first_then_oldest_and_pages(engine: Engine) -> None:
    keys = [("crm", f"C{i}") for i in range(6)]
    probabilities = [0.5, 0.9, 0.7, 0.9, 0.6, 0.99]
    _sync(
        engine,
        [
            _item(key, ("erp", f"E{i}"), p)
            for i, (key, p) in enumerate(zip(keys, probabilities, strict=True))
        ],
    )
    _sync(engine, [_item(("crm", "X"), ("erp", "Y"), 0.95)], T1)  # withdraws the others

    with engine.connect() as conn:
        everything, total = stewardship.list_reviews(conn, "withdrawn", limit=50)
        first, total_first = stewardship.list_reviews(conn, "withdrawn", limit=4, offset=0)
        rest, total_rest = stewardship.list_reviews(conn, "withdrawn", limit=4, offset=4)
        beyond, total_beyond = stewardship.list_reviews(conn, "withdrawn", limit=4, offset=10)
        still_open, open_total = stewardship.list_reviews(conn)

    assert total == total_first == total_rest == total_beyond == 6
    assert [r["probability"] for r in everything] == [0.99, 0.9, 0.9, 0.7, 0.6, 0.5]
    ties = [r for r in everything if r["probability"] == 0.9]
    assert ties[0]["id"] < ties[1]["id"]  # equal probability: the older review first
    assert [r["id"] for r in first + rest] == [r["id"] for r in everything]
    assert (len(first), len(rest), beyond) == (4, 2, [])
    assert open_total == 1
    assert still_open[0]["left_source_id"] == "X"


def test_get_review(engine: Engine) -> None:
    _sync(engine, [_item(A, B)])
    review_id = _reviews(engine)[A, B]["id"]
    with engine.connect() as conn:
        found = stewardship.get_review(conn, review_id)
        assert stewardship.get_review(conn, review_id + 1000) is None
    assert found is not None
    assert (found["left_source_id"], found["right_source_id"], found["status"]) == (
        "C1",
        "C2",
        "open",
    )


def test_close_reviews_marks_only_the_pairs_named(engine: Engine) -> None:
    _sync(engine, [_item(A, B), _item(A, C), _item(C, D)], T0)
    with writing(engine) as conn:
        stewardship.close_reviews(conn, [], T1)
        stewardship.close_reviews(conn, [(C, A), (B, D)], T1)  # (B, D) was never queued
    stored = _reviews(engine)
    assert {pair: r["status"] for pair, r in stored.items()} == {
        (A, B): "open",
        (A, C): "decided",
        (D, C): "open",
    }
    assert stored[A, C]["updated_at"] == T1
    assert stored[A, B]["updated_at"] == T0


@pytest.mark.parametrize("status", ["open", "decided", "withdrawn"])
def test_an_empty_queue(engine: Engine, status: str) -> None:
    with engine.connect() as conn:
        assert stewardship.list_reviews(conn, status) == ([], 0)
        assert stewardship.decisions(conn) == {}


def test_decisions_among_and_involving_one_record(engine: Engine) -> None:
    _decide(engine, (A, B), "same")
    _decide(engine, (C, A), "different")  # stored as (A, C): "crm" < "erp"
    _decide(engine, (D, C), "same")  # D = billing sorts first
    _decide(engine, (E, B), "different")
    with engine.connect() as conn:
        among = stewardship.decisions_among(conn, [A, B, C])
        with_d = stewardship.decisions_among(conn, [A, B], involving=D)
        with_e = stewardship.decisions_among(conn, [A], involving=E)
        involving_c = stewardship.decisions_involving(conn, C)
        nothing = stewardship.decisions_among(conn, [])
    assert among == {(A, B): "same", (A, C): "different"}
    # D's own decisions, wherever D sorts, and the pairs among A, B (and D)
    assert with_d == {(A, B): "same", (D, C): "same"}
    # E sorts last: its decision is found from the right-hand side
    assert with_e == {(B, E): "different"}
    assert involving_c == {(A, C): "different", (D, C): "same"}
    assert nothing == {}


def _queue(engine: Engine, items: list[dict[str, Any]], involving: Any, at: datetime = T0) -> Any:
    with writing(engine) as conn:
        return stewardship.queue_reviews(conn, items, at, involving=involving)


def test_queue_reviews_never_queues_a_pair_with_a_decision(engine: Engine) -> None:
    # decided without a review (from the CLI, say), with C on the right-hand side
    _decide(engine, (C, A), "different")

    counts = _queue(engine, [_item(C, A), _item(C, D)], involving=C)

    assert counts == {"queued": 1, "new": 1, "withdrawn": 0}
    assert set(_reviews(engine)) == {(D, C)}


def test_queue_reviews_withdraws_the_records_open_pairs_no_longer_in_doubt(
    engine: Engine,
) -> None:
    _sync(engine, [_item(A, C), _item(C, D), _item(A, B)], T0)

    counts = _queue(engine, [_item(C, D)], involving=C, at=T1)

    assert counts == {"queued": 1, "new": 0, "withdrawn": 1}
    reviews = _reviews(engine)
    assert reviews[(A, C)]["status"] == "withdrawn"
    assert reviews[(D, C)]["status"] == "open"
    assert reviews[(A, B)]["status"] == "open"  # not about C: left alone
