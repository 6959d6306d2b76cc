"""Resolve honours steward decisions, end to end on the demo project (rules engine) over
both stores: `different` keeps records apart however the links chain, `same` links what
the matcher does not, splits stick, golden ids are kept, and a re-run changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from accord.errors import Conflict
from accord.golden import customers
from accord.golden.resolve import ResolveReport, resolve
from accord.govern import audit
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.match.decisions import HELD_APART
from accord.steward import service
from accord.store import golden as golden_store
from accord.store import stewardship
from accord.store.engine import writing
from accord.store.tables import crosswalk, golden_record, match_review
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob, write_csv

STEWARD = Actor("user", "stewie", Role.STEWARD)
C1, C2, C3, C4 = (("crm", f"C{i}") for i in range(1, 5))


def _resolve(workspace: Workspace) -> ResolveReport:
    return resolve(workspace.engine, workspace.project, actor="test")


@pytest.fixture
def resolved(workspace: Workspace, tmp_path: Path) -> Workspace:
    path = write_csv(tmp_path / "crm.csv", anna_chain_and_bob())
    load_file(workspace.engine, workspace.project, "crm", path, actor="test")
    report = _resolve(workspace)
    assert report.assignment == {C1: "C0000001", C2: "C0000001", C3: "C0000001", C4: "C0000002"}
    assert report.links_by_rule == {"email_and_name": 1, "phone_and_name": 1}
    assert report.review == 0
    return workspace


def _decide(workspace: Workspace, left: Any, right: Any, decision: str) -> None:
    with writing(workspace.engine) as conn:
        service.decide_pair(conn, STEWARD, left, right, decision=decision)


def _reviews(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(match_review).order_by(match_review.c.id)).all()
    return [dict(r._mapping) for r in rows]


def _state(engine: Engine) -> tuple[list[Any], list[Any]]:
    """Every golden record and crosswalk row as stored: a re-run must leave both as is."""
    with engine.connect() as conn:
        golden = conn.execute(select(golden_record).order_by(golden_record.c.golden_id)).all()
        links = conn.execute(
            select(crosswalk).order_by(crosswalk.c.system, crosswalk.c.source_id)
        ).all()
    return [tuple(r) for r in golden], [tuple(r) for r in links]


def _assert_idempotent(workspace: Workspace, previous: ResolveReport) -> ResolveReport:
    before, reviews = _state(workspace.engine), _reviews(workspace.engine)
    again = _resolve(workspace)
    assert again.assignment == previous.assignment
    assert (again.created, again.updated, again.merged, again.retired) == (0, 0, 0, 0)
    assert again.unchanged == again.golden_records
    assert again.links_by_rule == previous.links_by_rule
    assert _state(workspace.engine) == before
    after = _reviews(workspace.engine)
    assert [(r["id"], r["status"], r["first_seen_at"]) for r in after] == [
        (r["id"], r["status"], r["first_seen_at"]) for r in reviews
    ]
    return again


def _audit_ok(engine: Engine) -> None:
    with engine.connect() as conn:
        assert audit.verify(conn).ok


def test_different_keeps_chained_records_apart_and_queues_the_held_link(
    resolved: Workspace,
) -> None:
    _decide(resolved, C3, C1, "different")

    report = _resolve(resolved)

    assert report.assignment[C1] == report.assignment[C2] == "C0000001"  # the id stays
    assert report.assignment[C3] == "C0000003"  # a fresh id, never a reused one
    assert report.assignment[C4] == "C0000002"
    assert (report.created, report.updated, report.merged, report.retired) == (1, 1, 0, 0)
    assert report.links_by_rule == {"email_and_name": 1}
    assert report.review == 1
    [held] = _reviews(resolved.engine)
    assert (held["left_source_id"], held["right_source_id"]) == ("C2", "C3")
    assert held["status"] == "open"
    assert held["reason"] == HELD_APART
    assert "steward" in held["reason"]
    assert held["probability"] == 1.0
    with resolved.engine.connect() as conn:
        page = service.queue(conn, STEWARD)
        first = customers.get(conn, STEWARD, "C0000001")
    assert [i["reason"] for i in page.items] == [HELD_APART]
    assert {(m["system"], m["source_id"]) for m in first["members"]} == {C1, C2}

    _assert_idempotent(resolved, report)
    _audit_ok(resolved.engine)


def test_a_decided_pair_is_not_queued_even_when_its_link_is_held(resolved: Workspace) -> None:
    _decide(resolved, C1, C2, "different")  # the direct email link between them

    report = _resolve(resolved)

    assert report.assignment[C1] != report.assignment[C2]
    assert report.assignment[C2] == report.assignment[C3]
    assert report.review == 0
    assert _reviews(resolved.engine) == []


def test_same_links_records_the_matcher_never_would(resolved: Workspace) -> None:
    _decide(resolved, C4, C1, "same")

    report = _resolve(resolved)

    assert set(report.assignment.values()) == {"C0000001"}
    assert report.links_by_rule == {"steward": 1, "email_and_name": 1, "phone_and_name": 1}
    assert report.merged == 1
    with resolved.engine.connect() as conn:
        bob = golden_store.crosswalk_of(conn, *C4)
        anna = golden_store.crosswalk_of(conn, *C1)
        merged = customers.get(conn, STEWARD, "C0000002")
    assert bob is not None and anna is not None
    assert (bob["golden_id"], bob["rule"]) == ("C0000001", "steward")
    assert bob["evidence"] == {"linked_to": ["crm", "C1"], "probability": 1.0}
    assert anna["rule"] == "steward"  # the steward's link is the first evidence for both
    assert (merged["status"], merged["merged_into"]) == ("merged", "C0000001")

    _assert_idempotent(resolved, report)


def test_a_steward_decision_shapes_which_link_is_held(resolved: Workspace) -> None:
    _decide(resolved, C1, C3, "different")
    first = _resolve(resolved)
    [held] = _reviews(resolved.engine)
    assert first.assignment[C2] == first.assignment[C1]

    # the steward says C2 is C3 after all: now the matcher's C1 - C2 link is the one held
    with writing(resolved.engine) as conn:
        service.decide(conn, STEWARD, held["id"], "same")
    report = _resolve(resolved)

    assert report.assignment[C2] == report.assignment[C3]
    assert report.assignment[C1] != report.assignment[C2]
    assert report.links_by_rule == {"steward": 1, "phone_and_name": 1}
    assert report.created == 0  # the two customers keep the ids they had
    assert set(report.assignment.values()) == set(first.assignment.values())
    reviews = {(r["left_source_id"], r["right_source_id"]): r for r in _reviews(resolved.engine)}
    assert reviews["C2", "C3"]["status"] == "decided"
    assert (reviews["C1", "C2"]["status"], reviews["C1", "C2"]["reason"]) == ("open", HELD_APART)

    _assert_idempotent(resolved, report)


def test_a_review_no_longer_in_doubt_is_withdrawn_and_cannot_be_decided(
    resolved: Workspace, tmp_path: Path
) -> None:
    _decide(resolved, C1, C3, "different")
    _resolve(resolved)
    [held] = _reviews(resolved.engine)

    rows = anna_chain_and_bob()
    rows[2]["Phone"] = "+49 30 3333333"  # C3 no longer shares C2's phone
    path = write_csv(tmp_path / "changed.csv", rows)
    load_file(resolved.engine, resolved.project, "crm", path, actor="test")
    report = _resolve(resolved)

    assert report.review == 0
    [withdrawn] = _reviews(resolved.engine)
    assert (withdrawn["id"], withdrawn["status"]) == (held["id"], "withdrawn")
    with pytest.raises(Conflict, match="withdrawn"), writing(resolved.engine) as conn:
        service.decide(conn, STEWARD, held["id"], "same")


def test_unmerge_then_resolve_splits_the_customer_for_good(resolved: Workspace) -> None:
    with writing(resolved.engine) as conn:
        result = service.split(conn, STEWARD, "C0000001", [C3], note="moved away, other person")
    assert result["decisions"] == 2

    report = _resolve(resolved)

    assert report.assignment == {C1: "C0000001", C2: "C0000001", C3: "C0000003", C4: "C0000002"}
    assert report.review == 0  # the held C2 - C3 link is a decided pair
    with resolved.engine.connect() as conn:
        split_off = customers.get(conn, STEWARD, "C0000003")
        kept = customers.get(conn, STEWARD, "C0000001")
    assert [m["source_id"] for m in split_off["members"]] == ["C3"]
    assert [m["rule"] for m in split_off["members"]] == ["single"]
    assert [m["source_id"] for m in kept["members"]] == ["C1", "C2"]

    _assert_idempotent(resolved, report)
    _audit_ok(resolved.engine)


def test_records_split_out_together_stay_together(resolved: Workspace) -> None:
    with writing(resolved.engine) as conn:
        service.split(conn, STEWARD, "C0000001", [C2, C3])

    report = _resolve(resolved)

    assert report.assignment[C2] == report.assignment[C3] != report.assignment[C1]
    # ids follow the larger part: the two records split out keep C0000001, the one
    # that stayed gets a fresh id (the same rule as every split, see golden/ids.py)
    assert report.assignment[C2] == "C0000001"
    assert report.assignment[C1] == "C0000003"
    assert report.links_by_rule == {"steward": 1, "phone_and_name": 1}

    _assert_idempotent(resolved, report)


def test_deciding_same_again_merges_back_and_the_split_id_redirects(resolved: Workspace) -> None:
    _decide(resolved, C2, C3, "different")
    split = _resolve(resolved)
    assert split.assignment[C3] == "C0000003"

    _decide(resolved, C2, C3, "same")  # changed their mind: the latest decision counts
    report = _resolve(resolved)

    assert {report.assignment[k] for k in (C1, C2, C3)} == {"C0000001"}
    assert report.merged == 1
    with resolved.engine.connect() as conn:
        old = customers.get(conn, STEWARD, "C0000003")
    assert (old["status"], old["merged_into"]) == ("merged", "C0000001")
    assert "C0000003" not in report.assignment.values()

    _assert_idempotent(resolved, report)


def test_no_golden_id_is_renumbered_across_decisions(resolved: Workspace) -> None:
    issued = ["C0000001", "C0000002"]
    for left, right, decision in [
        (C1, C3, "different"),
        (C3, C4, "same"),
        (C1, C3, "same"),
        (C2, C4, "different"),
    ]:
        _decide(resolved, left, right, decision)
        report = _resolve(resolved)
        new = sorted(set(report.assignment.values()) - set(issued))
        assert len(new) == report.created
        assert all(golden_id > issued[-1] for golden_id in new)  # fresh, never reused
        issued += new
        # no two decisions here contradict each other, so every one of them holds
        with resolved.engine.connect() as conn:
            for (a, b), kind in stewardship.decisions(conn).items():
                together = report.assignment[a] == report.assignment[b]
                assert together == (kind == "same"), (a, b, kind)
    with resolved.engine.connect() as conn:
        for golden_id in issued:  # every id ever issued still answers
            answer = customers.get(conn, STEWARD, golden_id)
            assert answer["status"] in {"active", "merged", "retired"}
    _audit_ok(resolved.engine)


def test_a_different_decision_between_unlinked_records_changes_nothing(
    resolved: Workspace,
) -> None:
    _decide(resolved, C1, C4, "different")
    report = _resolve(resolved)
    assert report.assignment == {C1: "C0000001", C2: "C0000001", C3: "C0000001", C4: "C0000002"}
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)


def test_recording_the_same_decision_again_changes_nothing(resolved: Workspace) -> None:
    """Regression: decisions are read in pair order, so an upsert that moves the row on
    PostgreSQL does not change which contradicting decision is set aside."""
    # three sames and a different cannot all hold: one `same` is set aside
    _decide(resolved, C1, C4, "different")
    _decide(resolved, C1, C2, "same")
    _decide(resolved, C2, C4, "same")
    first = _resolve(resolved)
    assert first.assignment[C1] != first.assignment[C4]

    _decide(resolved, C1, C2, "same")  # exactly what was decided before
    again = _resolve(resolved)

    assert again.assignment == first.assignment
    assert (again.created, again.updated, again.merged) == (0, 0, 0)
