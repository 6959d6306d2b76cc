"""The outbox and the delivery store, the same on SQLite and PostgreSQL (the `engine`
fixture runs every test here once per backend)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from accord.golden.resolve import resolve
from accord.intake.load import load_file
from accord.store import outbox
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.sync import DEAD, PENDING, SENT, KnownRecord, Outcome
from accord.store.tables import golden_change, golden_record
from accord.store.types import utcnow
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob, crm_row, write_csv


def _changes(engine: Engine) -> list[outbox.Change]:
    with engine.connect() as conn:
        return outbox.after(conn, 0, 10_000)


def test_each_golden_change_is_in_the_outbox_once(workspace: Workspace, tmp_path: Path) -> None:
    engine, project = workspace.engine, workspace.project
    rows = anna_chain_and_bob()
    load_file(engine, project, "crm", write_csv(tmp_path / "a.csv", rows), actor="test")
    resolve(engine, project, actor="test")
    created = _changes(engine)
    with engine.connect() as conn:
        active = conn.execute(
            select(func.count())
            .select_from(golden_record)
            .where(golden_record.c.status == "active")
        ).scalar_one()
    assert [c.change for c in created] == ["created"] * active
    assert all(c.data and c.sources and c.fields is None for c in created)
    assert all(set(c.sources or {}) == set(c.data or {}) for c in created)
    assert [c.id for c in created] == sorted(c.id for c in created)

    resolve(engine, project, actor="test")  # nothing changed: nothing recorded
    assert len(_changes(engine)) == len(created)

    bob = next(c for c in created if (c.data or {}).get("given_name") == "Bob")
    rows[-1] = crm_row(
        "C4",
        FirstName="Bob",
        LastName="Jones",
        Email="bob@new.example",
        Phone="+49 89 5555555",
        BirthDate="1970-01-01",
        PostalCode="50667",
        City="Köln",
        Street="Domplatz 1",
    )
    load_file(engine, project, "crm", write_csv(tmp_path / "b.csv", rows), actor="test")
    resolve(engine, project, actor="test")
    [update] = _changes(engine)[len(created) :]
    assert (update.golden_id, update.change, update.fields) == (bob.golden_id, "updated", ["email"])
    assert update.data is not None and update.data["email"] == "bob@new.example"
    assert update.sources == {**(bob.sources or {}), "email": "crm"}


def test_an_outbox_change_is_written_only_when_its_transaction_commits(engine: Engine) -> None:
    def record_then_fail() -> None:
        with writing(engine) as conn:
            outbox.record(conn, [{"golden_id": "C0000001", "change": "created", "data": {}}])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        record_then_fail()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(golden_change)).scalar_one() == 0


def _deliveries(engine: Engine, pairs: list[tuple[int, str]]) -> None:
    with writing(engine) as conn:
        sync_store.plan(conn, "billing", pairs)


def _due(engine: Engine, later: timedelta = timedelta(0)) -> list[int]:
    with engine.connect() as conn:
        return [d.change_id for d in sync_store.due(conn, "billing", utcnow() + later, 100)]


def _finish(engine: Engine, change_id: int, state: str, wait: timedelta = timedelta(0)) -> None:
    with writing(engine) as conn:
        sync_store.finish(
            conn, "billing", [Outcome(change_id, state, 1, utcnow() + wait, 500, "boom")]
        )


def test_one_customers_deliveries_go_in_order_and_a_waiting_one_holds_back_only_its_own(
    engine: Engine,
) -> None:
    _deliveries(engine, [(1, "C1"), (2, "C2"), (3, "C1"), (4, "C3"), (5, "C1")])
    assert _due(engine) == [1, 2, 4]
    _finish(engine, 1, SENT)
    assert _due(engine) == [2, 3, 4]
    _finish(engine, 3, PENDING, timedelta(minutes=5))  # failed: back off
    assert _due(engine) == [2, 4]  # C1's later change 5 waits for 3
    assert _due(engine, timedelta(minutes=6)) == [2, 3, 4]
    _finish(engine, 3, DEAD)  # given up: the customer's next change goes on
    assert _due(engine) == [2, 4, 5]
    with engine.connect() as conn:
        [letter] = sync_store.dead_letters(conn, "billing")
        stats = sync_store.stats(conn, "billing")
    assert (letter["change_id"], letter["last_status"], letter["last_error"]) == (3, 500, "boom")
    assert (stats.outgoing.pending, stats.sent, stats.outgoing.dead) == (3, 1, 1)
    with writing(engine) as conn:
        assert sync_store.replay(conn, "billing") == 1
        assert sync_store.replay(conn, "billing") == 0
    assert _due(engine) == [2, 3, 4]


def test_pruning_removes_only_what_no_target_needs(engine: Engine) -> None:
    with writing(engine) as conn:
        outbox.record(
            conn, [{"golden_id": f"C{i}", "change": "created", "data": {}} for i in range(1, 7)]
        )
    _deliveries(engine, [(1, "C1"), (2, "C2"), (3, "C3"), (4, "C4"), (5, "C5")])
    _finish(engine, 1, SENT)
    _finish(engine, 2, SENT)
    _finish(engine, 3, DEAD)  # a dead letter may be replayed: its change stays
    _finish(engine, 4, SENT)
    with writing(engine) as conn:
        sync_store.add_conflicts(
            conn,
            [
                {
                    "target": "billing",
                    "record_id": "C4",
                    "golden_id": "C4",
                    "change_id": 4,
                    "field": "phone",
                    "ours": "1",
                    "theirs": "2",
                    "policy": "steward",
                    "kept": "waiting",
                    "created_at": utcnow(),
                }
            ],
        )
    later = utcnow() + timedelta(seconds=1)
    with writing(engine) as conn:
        assert sync_store.prune_sent(conn, ["billing"], utcnow() - timedelta(days=1)) == 0
        assert sync_store.prune_sent(conn, ["billing"], later) == 3  # 1, 2 and 4
        # up to 5: 1 and 2 are unneeded; 3 is a dead letter's, 4 a waiting conflict's,
        # 5 still pending; 6 is past the range
        assert sync_store.unneeded_changes(conn, ["billing"], 0, 5, later) == [1, 2]
        assert sync_store.unneeded_changes(conn, ["billing"], 0, 5, utcnow() - timedelta(1)) == []
        assert outbox.pruned_to(conn) == 0
        assert outbox.prune(conn, [1, 2]) == 2
        assert outbox.pruned_to(conn) == 2
        assert outbox.prune(conn, []) == 0 and outbox.pruned_to(conn) == 2
    assert [c.id for c in _changes(engine)] == [3, 4, 5, 6]


def test_a_snapshot_starts_a_target_from_the_active_customers(
    workspace: Workspace, tmp_path: Path
) -> None:
    engine, project = workspace.engine, workspace.project
    load_file(
        engine, project, "crm", write_csv(tmp_path / "a.csv", anna_chain_and_bob()), actor="t"
    )
    resolve(engine, project, actor="test")
    with engine.connect() as conn:
        active = sorted(
            conn.execute(
                select(golden_record.c.golden_id).where(golden_record.c.status == "active")
            ).scalars()
        )
        head = outbox.last_id(conn)
    with writing(engine) as conn:
        assert outbox.snapshot(conn, "ledger", ["given_name", "phone"]) == len(active)
        assert outbox.cursor(conn, "ledger") == head
        repairs = outbox.after(conn, head, 100)
    assert sorted(c.golden_id for c in repairs) == active
    assert all(c.change == "repair" and c.target == "ledger" for c in repairs)
    assert all(c.fields == ["given_name", "phone"] and c.data for c in repairs)


def test_the_cursor_and_what_is_known_of_target_records(engine: Engine) -> None:
    with writing(engine) as conn:
        assert outbox.cursor(conn, "billing") == 0
        outbox.advance(conn, "billing", 42)
        outbox.advance(conn, "billing", 43)
        sync_store.save_records(
            conn,
            "billing",
            [
                KnownRecord("C1", "C1", "accord", '"1"', {"Email": "a@x.example"}, False),
                KnownRecord("B-7", "C1", "member", None, None, False),
            ],
        )
        sync_store.save_records(
            conn,
            "billing",
            [KnownRecord("C1", "C1", "accord", '"2"', {"Email": "b@x.example"}, False)],
        )
    with engine.connect() as conn:
        assert outbox.cursor(conn, "billing") == 43
        known = sync_store.known_records(conn, "billing", ["C1"])["C1"]
        by_id = sync_store.known_by_id(conn, "billing", ["C1", "B-7", "nope"])
    assert [(r.record_id, r.etag) for r in known] == [("B-7", None), ("C1", '"2"')]
    assert by_id["C1"].fields == {"Email": "b@x.example"}
    assert set(by_id) == {"C1", "B-7"}


# any text but lone surrogates, NUL included: jsonb could not hold it, so what targets
# send back is kept as JSON text
_TEXT = st.characters(exclude_categories=("Cs",))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**30), max_value=10**30)
        # any finite float: kept as text, not jsonb (which reads 1e16 and more back as
        # integers)
        | st.floats(allow_nan=False, allow_infinity=False, width=64)
        | st.text(_TEXT),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(_TEXT, max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_a_json_column_reads_back_what_was_written(engine: Engine, value: Any) -> None:
    """What Accord last saw of a target's record reads back as it was written (JSON
    text through `store.engine.json_text` / `json_value`): huge integers stay exact,
    floats keep their value, NUL and any other text survive on both backends."""
    record = KnownRecord("R-1", "C1", "accord", None, {"v": value}, False)
    with writing(engine) as conn:
        sync_store.save_records(conn, "billing", [record])
    with engine.connect() as conn:
        [read] = sync_store.known_by_id(conn, "billing", ["R-1"]).values()
    assert read.fields == {"v": value}
    assert _types(read.fields["v"]) == _types(value)  # 1 stays int, 1.0 float, True bool


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _types(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__
