"""The steward service: who may read and decide, what it refuses, and what it records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from accord.errors import Conflict, InputRejected, NotAllowed, NotFound
from accord.golden.resolve import resolve
from accord.govern import audit
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.steward import service
from accord.store import stewardship
from accord.store.engine import writing
from accord.store.tables import audit_log, match_decision, match_review
from accord.store.types import utcnow
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob, crm_row, write_csv

VIEWER = Actor("user", "vera", Role.VIEWER, user_id=1)
OPERATOR = Actor("user", "otto", Role.OPERATOR, user_id=2)
STEWARD = Actor("user", "stewie", Role.STEWARD, user_id=3)
ADMIN = Actor("user", "ada", Role.ADMIN, user_id=4)
SYSTEM = Actor("system", "crm", Role.SYSTEM)

C1, C2, C3, C4 = (("crm", f"C{i}") for i in range(1, 5))


@pytest.fixture
def loaded(workspace: Workspace, tmp_path: Path) -> Workspace:
    """Four records resolved into two customers (C1-C3 as C0000001, C4 as C0000002), and
    three pairs in the queue: two open, one withdrawn."""
    path = write_csv(tmp_path / "crm.csv", anna_chain_and_bob())
    load_file(workspace.engine, workspace.project, "crm", path, actor="test")
    report = resolve(workspace.engine, workspace.project, actor="test")
    assert report.assignment == {
        C1: "C0000001",
        C2: "C0000001",
        C3: "C0000001",
        C4: "C0000002",
    }
    items = [
        _item(C1, C4, 0.8, explanation={"match_weight": 2.0, "comparisons": []}),
        _item(C3, C4, 0.6),
        _item(C2, C4, 0.4),
    ]
    with writing(workspace.engine) as conn:
        stewardship.sync_reviews(conn, items, utcnow())
        stewardship.sync_reviews(conn, items[:2], utcnow())  # withdraws C2 - C4
    return workspace


def _item(left: Any, right: Any, probability: float, **extra: Any) -> dict[str, Any]:
    return {
        "left": left,
        "right": right,
        "probability": probability,
        "weight": 1.0,
        "reason": "uncertain",
        "explanation": extra.get("explanation", {}),
    }


def _ids(engine: Engine) -> dict[str, int]:
    """Review ids by their pair's source ids, as in 'C1-C4'."""
    with engine.connect() as conn:
        rows = conn.execute(select(match_review)).all()
    return {f"{r.left_source_id}-{r.right_source_id}": r.id for r in rows}


def _audit(engine: Engine, action: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.seq)
        ).all()
    return [dict(r._mapping) for r in rows]


def _decisions(engine: Engine) -> dict[Any, str]:
    with engine.connect() as conn:
        return stewardship.decisions(conn)


# ---- permissions


@pytest.mark.parametrize("actor", [VIEWER, SYSTEM], ids=["viewer", "system"])
def test_without_matches_read_the_queue_is_closed(loaded: Workspace, actor: Actor) -> None:
    review_id = _ids(loaded.engine)["C1-C4"]
    with loaded.engine.connect() as conn:
        with pytest.raises(NotAllowed, match="matches:read"):
            service.queue(conn, actor)
        with pytest.raises(NotAllowed, match="matches:read"):
            service.review(conn, actor, review_id)
        # permission comes before any other check: nothing about the input leaks
        with pytest.raises(NotAllowed):
            service.queue(conn, actor, status="bogus", limit=0)
        with pytest.raises(NotAllowed):
            service.review(conn, actor, 999_999)


@pytest.mark.parametrize("actor", [VIEWER, OPERATOR, SYSTEM], ids=["viewer", "operator", "system"])
def test_without_matches_decide_nothing_is_decided(loaded: Workspace, actor: Actor) -> None:
    review_id = _ids(loaded.engine)["C1-C4"]
    with writing(loaded.engine) as conn:
        with pytest.raises(NotAllowed, match="matches:decide"):
            service.decide(conn, actor, review_id, "same")
        with pytest.raises(NotAllowed, match="matches:decide"):
            service.decide_pair(conn, actor, C1, C4, decision="different")
        with pytest.raises(NotAllowed, match="matches:decide"):
            service.split(conn, actor, "C0000001", [C3])
        with pytest.raises(NotAllowed):
            service.decide(conn, actor, 999_999, "maybe")
    assert _decisions(loaded.engine) == {}
    assert _audit(loaded.engine, "match.decided") == []


def test_an_operator_reads_the_queue_but_may_not_decide(loaded: Workspace) -> None:
    with loaded.engine.connect() as conn:
        page = service.queue(conn, OPERATOR)
        item = service.review(conn, OPERATOR, page.items[0]["id"])
    assert page.total == 2
    assert item["status"] == "open"
    with pytest.raises(NotAllowed), writing(loaded.engine) as conn:
        service.decide(conn, OPERATOR, item["id"], "same")


@pytest.mark.parametrize("actor", [STEWARD, ADMIN], ids=["steward", "admin"])
def test_stewards_and_admins_decide(loaded: Workspace, actor: Actor) -> None:
    review_id = _ids(loaded.engine)["C1-C4"]
    with writing(loaded.engine) as conn:
        decided = service.decide(conn, actor, review_id, "different", "not the same person")
    assert decided == {
        "left": ["crm", "C1"],
        "right": ["crm", "C4"],
        "decision": "different",
        "note": "not the same person",
    }
    assert _decisions(loaded.engine) == {(C1, C4): "different"}
    with loaded.engine.connect() as conn:
        item = service.review(conn, actor, review_id)
        stored = conn.execute(select(match_decision)).one()
    assert item["status"] == "decided"
    assert item["decision"]["decision"] == "different"
    assert item["decision"]["decided_by"] == actor.label
    assert stored.decided_by == actor.label


# ---- reading the queue


def test_queue_pages_most_likely_first(loaded: Workspace) -> None:
    with loaded.engine.connect() as conn:
        page = service.queue(conn, STEWARD)
        first = service.queue(conn, STEWARD, limit=1)
        second = service.queue(conn, STEWARD, limit=1, offset=1)
        withdrawn = service.queue(conn, STEWARD, status="withdrawn")
        decided = service.queue(conn, STEWARD, status="decided")
        past_the_end = service.queue(conn, STEWARD, offset=50)

    assert (page.total, page.limit, page.offset) == (2, 50, 0)
    assert [i["probability"] for i in page.items] == [0.8, 0.6]
    assert first.items == page.items[:1] and second.items == page.items[1:]
    assert (first.total, second.offset) == (2, 1)
    summary = page.items[0]
    assert summary["left"] == {"system": "crm", "source_id": "C1"}
    assert summary["right"] == {"system": "crm", "source_id": "C4"}
    assert set(summary) == {
        "id",
        "left",
        "right",
        "probability",
        "match_weight",
        "reason",
        "status",
        "first_seen_at",
        "updated_at",
    }
    assert "explanation" not in summary  # the list stays light
    assert [i["right"]["source_id"] for i in withdrawn.items] == ["C4"]
    assert withdrawn.items[0]["left"]["source_id"] == "C2"
    assert (decided.total, decided.items) == (0, [])
    assert (past_the_end.total, past_the_end.items) == (2, [])


def test_review_shows_both_records_their_customers_and_the_explanation(
    loaded: Workspace,
) -> None:
    review_id = _ids(loaded.engine)["C1-C4"]
    with loaded.engine.connect() as conn:
        item = service.review(conn, STEWARD, review_id)

    assert item["id"] == review_id
    assert item["explanation"] == {"match_weight": 2.0, "comparisons": []}
    assert item["decision"] is None
    left, right = item["records"]
    assert (left["system"], left["source_id"], right["source_id"]) == ("crm", "C1", "C4")
    assert left["data"]["email"] == "anna@x.org"
    assert right["data"]["given_name"] == "Bob"
    assert (left["golden"]["golden_id"], right["golden"]["golden_id"]) == ("C0000001", "C0000002")
    assert left["golden"]["rule"] == "email_and_name"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "bogus"}, "status must be open, decided or withdrawn"),
        ({"status": "OPEN"}, "status must be"),
        ({"limit": 0}, "limit must be between 1 and 200"),
        ({"limit": 201}, "limit must be between 1 and 200"),
        ({"limit": -5}, "limit must be between"),
        ({"offset": -1}, "offset must not be negative"),
    ],
)
def test_queue_rejects_bad_paging(loaded: Workspace, kwargs: Any, message: str) -> None:
    with pytest.raises(InputRejected, match=message), loaded.engine.connect() as conn:
        service.queue(conn, STEWARD, **kwargs)


def test_queue_accepts_the_limits_exactly(loaded: Workspace) -> None:
    with loaded.engine.connect() as conn:
        assert service.queue(conn, STEWARD, limit=1).limit == 1
        assert service.queue(conn, STEWARD, limit=200).limit == 200


def test_unknown_review_ids_are_not_found(loaded: Workspace) -> None:
    with loaded.engine.connect() as conn, pytest.raises(NotFound, match="no review 424242"):
        service.review(conn, STEWARD, 424242)
    with writing(loaded.engine) as conn, pytest.raises(NotFound, match="no review -1"):
        service.decide(conn, STEWARD, -1, "same")


# ---- deciding


@pytest.mark.parametrize("decision", ["maybe", "", "Same", "DIFFERENT", " same"])
def test_a_decision_is_same_or_different(loaded: Workspace, decision: str) -> None:
    review_id = _ids(loaded.engine)["C1-C4"]
    with writing(loaded.engine) as conn, pytest.raises(InputRejected, match="'same' or 'diff"):
        service.decide(conn, STEWARD, review_id, decision)
    with writing(loaded.engine) as conn, pytest.raises(InputRejected, match="'same' or 'diff"):
        service.decide_pair(conn, STEWARD, C1, C4, decision=decision)
    assert _decisions(loaded.engine) == {}


def test_a_note_is_at_most_2000_characters(loaded: Workspace) -> None:
    review_id = _ids(loaded.engine)["C1-C4"]
    with writing(loaded.engine) as conn, pytest.raises(InputRejected, match="at most 2000"):
        service.decide(conn, STEWARD, review_id, "same", "x" * 2001)
    assert _decisions(loaded.engine) == {}
    with writing(loaded.engine) as conn:
        decided = service.decide(conn, STEWARD, review_id, "same", "é" * 2000)
    assert decided["note"] == "é" * 2000
    with loaded.engine.connect() as conn:
        stored = stewardship.decision_of(conn, (C1, C4))
    assert stored is not None and stored["note"] == "é" * 2000


def test_a_record_is_not_paired_with_itself(loaded: Workspace) -> None:
    with writing(loaded.engine) as conn, pytest.raises(InputRejected, match="itself"):
        service.decide_pair(conn, STEWARD, C1, C1, decision="different")
    assert _decisions(loaded.engine) == {}


@pytest.mark.parametrize(
    ("left", "right", "message"),
    [
        (C1, ("crm", "C404"), "no record 'C404' in 'crm'"),
        (("erp", "C1"), C1, "no record 'C1' in 'erp'"),
        (("nosuch", "x"), ("crm", "x"), "no record 'x' in 'nosuch'"),
    ],
)
def test_decide_pair_needs_both_records(
    loaded: Workspace, left: Any, right: Any, message: str
) -> None:
    with writing(loaded.engine) as conn, pytest.raises(NotFound, match=message):
        service.decide_pair(conn, STEWARD, left, right, decision="same")
    assert _decisions(loaded.engine) == {}


def test_decide_pair_stores_the_pair_in_order_and_closes_its_review(loaded: Workspace) -> None:
    with writing(loaded.engine) as conn:
        decided = service.decide_pair(conn, STEWARD, C4, C3, decision="same", note="checked")
    assert (decided["left"], decided["right"]) == (["crm", "C3"], ["crm", "C4"])
    assert _decisions(loaded.engine) == {(C3, C4): "same"}
    with loaded.engine.connect() as conn:
        item = service.review(conn, STEWARD, _ids(loaded.engine)["C3-C4"])
    assert item["status"] == "decided"


def test_decide_pair_needs_no_review(loaded: Workspace) -> None:
    with writing(loaded.engine) as conn:
        service.decide_pair(conn, STEWARD, C1, C2, decision="different")
    assert _decisions(loaded.engine) == {(C1, C2): "different"}
    assert len(_ids(loaded.engine)) == 3  # no review is invented for it


def test_a_withdrawn_review_cannot_be_decided(loaded: Workspace) -> None:
    review_id = _ids(loaded.engine)["C2-C4"]
    with writing(loaded.engine) as conn, pytest.raises(Conflict, match="withdrawn") as caught:
        service.decide(conn, STEWARD, review_id, "same")
    assert caught.value.hint
    assert _decisions(loaded.engine) == {}
    with loaded.engine.connect() as conn:
        assert service.review(conn, STEWARD, review_id)["status"] == "withdrawn"


def test_a_decided_review_may_be_decided_again_and_the_latest_wins(loaded: Workspace) -> None:
    review_id = _ids(loaded.engine)["C1-C4"]
    with writing(loaded.engine) as conn:
        service.decide(conn, STEWARD, review_id, "same", "looked alike")
    with writing(loaded.engine) as conn:
        service.decide(conn, ADMIN, review_id, "different", "they are not")
    assert _decisions(loaded.engine) == {(C1, C4): "different"}
    with loaded.engine.connect() as conn:
        decision = service.review(conn, STEWARD, review_id)["decision"]
    assert (decision["decision"], decision["note"], decision["decided_by"]) == (
        "different",
        "they are not",
        "user:ada",
    )


def test_every_decision_is_audited_and_the_chain_still_verifies(loaded: Workspace) -> None:
    review_id = _ids(loaded.engine)["C1-C4"]
    with writing(loaded.engine) as conn:
        service.decide(conn, STEWARD, review_id, "different", "twins")
        service.decide_pair(conn, ADMIN, C4, C2, decision="same")

    events = _audit(loaded.engine, "match.decided")
    assert [(e["actor"], e["subject_type"], e["subject_id"]) for e in events] == [
        ("user:stewie", "pair", "crm:C1|crm:C4"),
        ("user:ada", "pair", "crm:C2|crm:C4"),
    ]
    assert {k: events[0]["details"][k] for k in ("decision", "note")} == {
        "decision": "different",
        "note": "twins",
    }
    assert {k: events[1]["details"][k] for k in ("decision", "note")} == {
        "decision": "same",
        "note": "",
    }
    # the pair itself, in full, whatever the length of its ids
    for event in events:
        pair = [tuple(event["details"]["left"]), tuple(event["details"]["right"])]
        assert pair == sorted(pair)
    with loaded.engine.connect() as conn:
        result = audit.verify(conn)
        assert result.ok
        assert result.entries == audit.count(conn)


def test_a_refused_decision_writes_nothing(loaded: Workspace) -> None:
    with loaded.engine.connect() as conn:
        before = audit.count(conn)
    review_id = _ids(loaded.engine)["C1-C4"]
    for call in (
        lambda conn: service.decide(conn, STEWARD, review_id, "maybe"),
        lambda conn: service.decide_pair(conn, STEWARD, C1, ("crm", "nope"), decision="same"),
        lambda conn: service.split(conn, STEWARD, "C0000001", [C1, C2, C3]),
    ):
        with pytest.raises((InputRejected, NotFound)), writing(loaded.engine) as conn:
            call(conn)
    with loaded.engine.connect() as conn:
        assert audit.count(conn) == before
        assert audit.verify(conn).ok
    assert _decisions(loaded.engine) == {}


# ---- split


def test_split_decides_the_leaving_records_apart_from_those_staying(loaded: Workspace) -> None:
    with writing(loaded.engine) as conn:
        result = service.split(conn, STEWARD, "C0000001", [C3, C2, C3])
    assert result == {
        "golden_id": "C0000001",
        "split_out": [["crm", "C3"], ["crm", "C2"]],  # in the order asked, once each
        "decisions": 3,
    }
    assert _decisions(loaded.engine) == {
        (C1, C3): "different",
        (C1, C2): "different",
        (C2, C3): "same",  # the records split out stay together
    }
    events = _audit(loaded.engine, "match.decided")
    assert len(events) == 3
    assert {e["details"]["note"] for e in events} == {
        "split from C0000001",
        "split from C0000001 together",
    }


def test_split_with_a_note_uses_it_for_every_decision(loaded: Workspace) -> None:
    with writing(loaded.engine) as conn:
        service.split(conn, ADMIN, "C0000001", [C1], note="customer called")
    events = _audit(loaded.engine, "match.decided")
    assert [(e["details"]["decision"], e["details"]["note"]) for e in events] == [
        ("different", "customer called"),
        ("different", "customer called"),
    ]


@pytest.mark.parametrize(
    ("records", "error", "message"),
    [
        ([C4], InputRejected, "crm:C4 not in C0000001"),
        ([C1, ("crm", "C404")], InputRejected, "crm:C404 not in C0000001"),
        ([C1, C2, C3], InputRejected, "leave at least one"),
        ([], InputRejected, "split out at least one"),
    ],
    ids=["another-customers-member", "unknown-member", "everything", "nothing"],
)
def test_split_validation(
    loaded: Workspace, records: list[Any], error: type[Exception], message: str
) -> None:
    with writing(loaded.engine) as conn, pytest.raises(error, match=message):
        service.split(conn, STEWARD, "C0000001", records)
    assert _decisions(loaded.engine) == {}


@pytest.mark.parametrize("golden_id", ["C0000404", "c0000001", ""])
def test_split_needs_an_active_customer(loaded: Workspace, golden_id: str) -> None:
    with writing(loaded.engine) as conn, pytest.raises(NotFound, match="no active customer"):
        service.split(conn, STEWARD, golden_id, [C1])


def test_split_of_a_customer_merged_away_is_not_found(loaded: Workspace, tmp_path: Path) -> None:
    rows = anna_chain_and_bob()
    rows[3].update(Email="anna@x.org", FirstName="Anna", LastName="Schmidt")  # Bob is Anna
    path = write_csv(tmp_path / "again.csv", rows)
    load_file(loaded.engine, loaded.project, "crm", path, actor="test")
    report = resolve(loaded.engine, loaded.project, actor="test")
    assert report.merged == 1
    with writing(loaded.engine) as conn, pytest.raises(NotFound, match="C0000002"):
        service.split(conn, STEWARD, "C0000002", [C4])


def test_audit_entries_tell_apart_pairs_of_long_ids(loaded: Workspace, tmp_path: Path) -> None:
    left = "L" * 200
    rights = ["R" * 99 + "1", "R" * 99 + "2"]
    rows = [
        crm_row(source_id, FirstName=f"P{i}", Email=f"p{i}@x.org", Phone="", BirthDate="")
        for i, source_id in enumerate([left, *rights])
    ]
    path = write_csv(tmp_path / "long.csv", rows)
    load_file(loaded.engine, loaded.project, "crm", path, actor="test")
    with writing(loaded.engine) as conn:
        service.decide_pair(conn, STEWARD, ("crm", left), ("crm", rights[0]), decision="same")
        service.decide_pair(conn, STEWARD, ("crm", left), ("crm", rights[1]), decision="same")
    assert len(_decisions(loaded.engine)) == 2

    first, second = _audit(loaded.engine, "match.decided")

    assert (first["subject_id"], first["details"]) != (second["subject_id"], second["details"])


def test_a_review_id_beyond_the_database_integers_is_not_found(loaded: Workspace) -> None:
    with loaded.engine.connect() as conn, pytest.raises(NotFound):
        service.review(conn, STEWARD, 2**63)
    with writing(loaded.engine) as conn, pytest.raises(NotFound):
        service.decide(conn, STEWARD, 10**20, "same")
