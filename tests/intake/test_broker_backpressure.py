"""Backpressure on the broker channel (`intake/backpressure.py`, `intake/broker.py`)
against the real NATS JetStream, on both stores: at ACCORD_MAX_BACKLOG records waiting to
be matched the consumer fetches nothing and the messages wait in the stream (JetStream's
own counts say none was delivered); once the queue is drained they are all taken, none
lost, none twice; it resumes only below 90% of the bound; `accord broker consume` says
why it stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from accord.intake import backpressure, broker
from accord.intake.backpressure import Gate, Pause, over_bound, resume_below
from accord.intake.load import load_file
from accord.runtime.worker import MatchWorker
from accord.store import queue
from accord.store.engine import writing
from accord.store.tables import broker_delivery, record_head, work_item
from accord.workspace import Workspace
from tests.factories import billing_row, crm_row, write_jsonl
from tests.intake.test_broker import ACTOR, NATS_URL, Stream, _body, _configure, _nats_or_skip

ENV = {"ACCORD_TEST_NATS_URL": NATS_URL}


@pytest.fixture
def stream(workspace: Workspace) -> Iterator[Stream]:
    _nats_or_skip()
    made = Stream()
    made.create()
    _configure(workspace.root, made)
    yield made
    made.delete()


def _backlog(workspace: Workspace) -> int:
    with workspace.engine.connect() as conn:
        return queue.backlog(conn)


def _crm_ids(workspace: Workspace) -> list[str]:
    """The crm records stored, one row per record (a record stored twice would show)."""
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(record_head.c.source_id).where(record_head.c.system == "crm"))
        return sorted(rows.scalars())


def _fill_queue(workspace: Workspace, tmp_path: Path, count: int) -> None:
    """`count` billing records loaded, waiting to be matched: a real backlog."""
    path = write_jsonl(tmp_path / "billing.jsonl", [billing_row(f"B{i}") for i in range(count)])
    load_file(workspace.engine, workspace.project, "billing", path, actor=ACTOR)
    assert _backlog(workspace) == count


def _consumer(workspace: Workspace, **options: Any) -> broker.Consumer:
    return broker.Consumer(
        workspace.engine, workspace.project, "crm", actor=ACTOR, environ=ENV, **options
    )


def _until_fetched(consumer: broker.Consumer, seconds: float = 10) -> broker.BrokerReport:
    """Fetch until the pause ends (the backlog is read at most once a second)."""
    deadline = time.monotonic() + seconds
    while (report := consumer.fetch(timeout=0.2)).status == "paused":
        assert time.monotonic() < deadline, f"still paused after {seconds}s: {consumer.pause}"
        time.sleep(0.1)
    return report


# ---- the gate (pure)


@given(st.integers(0, 50), st.lists(st.integers(0, 60), max_size=40))
def test_the_gate_pauses_at_the_bound_and_resumes_below_ninety_percent(
    bound: int, backlogs: list[int]
) -> None:
    gate = Gate(bound)
    paused = False
    for backlog in backlogs:
        if bound == 0:
            expected = False  # no bound
        elif paused:
            expected = backlog >= resume_below(bound)
        else:
            expected = backlog >= bound  # the push API's own test: at the bound, refused
        assert (gate.update(backlog) is not None) == expected, (bound, backlog, paused)
        paused = expected
        assert gate.pause == (Pause(backlog, bound) if expected else None)


def test_the_resume_point_leaves_room_even_for_a_tiny_bound() -> None:
    assert [resume_below(b) for b in (1, 2, 5, 10, 11, 200_000)] == [1, 1, 4, 9, 9, 180_000]
    assert over_bound(5, 5) and not over_bound(4, 5) and not over_bound(10**9, 0)
    assert str(Pause(12_345, 10_000)) == "backlog 12,345 (bound 10,000)"


# ---- a consumer against the real JetStream


def test_past_the_bound_nothing_is_fetched_until_the_queue_drains_then_all_once(
    workspace: Workspace,
    stream: Stream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_MAX_BACKLOG", "5")  # what Settings reads
    _fill_queue(workspace, tmp_path, 6)
    stream.publish(*(_body(crm_row(f"C{i:02}")) for i in range(20)))

    with _consumer(workspace) as consumer:
        for _ in range(3):
            report = consumer.fetch(timeout=0.2)
            assert (report.status, report.messages, report.load_id) == ("paused", 0, 0)
        assert consumer.pause == Pause(6, 5)
        assert consumer.waiting() == 20
        held = stream.consumer()  # JetStream's own view: nothing delivered, all waiting
        assert (held.num_pending, held.num_ack_pending, held.delivered.consumer_seq) == (20, 0, 0)
        assert _crm_ids(workspace) == []

        MatchWorker(workspace.engine, workspace.project).drain()
        assert _backlog(workspace) == 0
        taken = _until_fetched(consumer)
        assert (taken.messages, taken.new, taken.already_stored, taken.pending) == (20, 20, 0, 0)
        assert consumer.pauses == 1 and consumer.pause is None

    assert _crm_ids(workspace) == [f"C{i:02}" for i in range(20)]  # none lost, none twice
    after = stream.consumer()
    assert (after.num_pending, after.num_ack_pending, after.num_redelivered) == (0, 0, 0)
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(broker_delivery)).scalar_one() == 0


def test_a_paused_consumer_resumes_only_below_ninety_percent_of_the_bound(
    workspace: Workspace, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backpressure, "READ_EVERY", 0.0)  # every fetch reads the backlog
    with writing(workspace.engine) as conn:
        queue.enqueue(conn, "customer", "billing", [f"B{i}" for i in range(10)])

    def leave(count: int) -> None:
        with writing(workspace.engine) as conn:
            ids = conn.execute(select(work_item.c.id).order_by(work_item.c.id)).scalars().all()
            conn.execute(delete(work_item).where(work_item.c.id.in_(ids[count:])))
        assert _backlog(workspace) == count

    stream.publish(*(_body(crm_row(f"C{i}")) for i in range(3)))
    with _consumer(workspace, max_backlog=10) as consumer:
        assert consumer.fetch(timeout=0.2).status == "paused"  # 10: at the bound
        leave(9)
        assert consumer.fetch(timeout=0.2).status == "paused"  # 9: not below 90%
        assert stream.consumer().delivered.consumer_seq == 0
        leave(8)
        resumed = consumer.fetch(timeout=0.2)
        assert (resumed.status, resumed.messages) == ("done", 3)
        assert _backlog(workspace) == 11  # 8 and the 3 just stored: at the bound again
        stream.publish(_body(crm_row("C9")))
        assert consumer.fetch(timeout=0.2).status == "paused"
        assert consumer.pauses == 2
    leave(9)
    with _consumer(workspace, max_backlog=10) as fresh:  # not paused: 9 is under the bound
        assert fresh.fetch(timeout=0.2).messages == 1
    with _consumer(workspace, max_backlog=0) as unbounded:  # 0: no bound
        assert unbounded.fetch(timeout=0.2).status == "idle"
    assert _crm_ids(workspace) == ["C0", "C1", "C2", "C9"]


def test_the_cli_says_it_stopped_for_the_backlog(
    demo_project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.helpers import run  # noqa: PLC0415

    _nats_or_skip()
    made = Stream()
    made.create()
    try:
        _configure(demo_project_dir, made)
        monkeypatch.setenv("ACCORD_TEST_NATS_URL", NATS_URL)
        monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
        monkeypatch.setenv("ACCORD_MAX_BACKLOG", "5")
        loaded = write_jsonl(tmp_path / "b.jsonl", [billing_row(f"B{i}") for i in range(6)])
        run("load", demo_project_dir, "-s", "billing", loaded)
        made.publish(*(_body(crm_row(f"C{i}")) for i in range(4)))

        refused = " ".join(run("broker", "consume", demo_project_dir, "-s", "crm", code=1).split())
        assert "fetched nothing: 6 records wait to be matched, at or past the bound of 5" in refused
        assert "(ACCORD_MAX_BACKLOG)" in refused
        assert "4 message(s) wait in the stream, unacknowledged: nothing is lost" in refused
        assert "start more matching workers" in refused and "run this again" in refused
        assert made.consumer().num_pending == 4  # nothing was fetched

        run("worker", "run", demo_project_dir, "--drain")
        consumed = run("broker", "consume", demo_project_dir, "-s", "crm")
        assert "Consumed" in consumed and made.consumer().num_pending == 0
    finally:
        made.delete()
