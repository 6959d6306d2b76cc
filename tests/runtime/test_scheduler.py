"""The intake scheduler (`runtime/scheduler.py`): when each pull channel runs (every,
cron, continuous), on both stores with a clock the tests move; a failing channel is
recorded and tried again while the others go on; a restart keeps to the schedule; two
schedulers never run one channel at once; and a worker process runs a dropped file, a
polled table and NATS messages in without any one-shot command."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML
from sqlalchemy import Engine, event, func, select
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config.loader import Project, load_project
from accord.errors import Conflict, ProjectInvalid
from accord.intake import broker, drop
from accord.runtime import one_shot, scheduler
from accord.runtime.scheduler import IntakeScheduler, PlannedChannel, Timing, plan
from accord.runtime.worker import MatchWorker, WorkerPool
from accord.settings import Settings
from accord.store import intake_schedule
from accord.store.engine import writing
from accord.store.tables import crosswalk, record_head
from accord.store.tables import intake_schedule as intake_schedule_table
from accord.store.types import utcnow
from accord.workspace import Workspace
from tests.factories import ERP_COLUMNS, billing_row, crm_row, erp_row, write_jsonl
from tests.intake.test_broker import NATS_URL, Stream, _nats_or_skip

T0 = datetime(2024, 6, 1, 1, 30, tzinfo=UTC)
ERP_URL = "ACCORD_TEST_ERP_URL"
NATS_ENV = "ACCORD_TEST_NATS_URL"


class Clock:
    """The scheduler's time, moved by the test."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **span: float) -> None:
        self.now += timedelta(**span)


def configure(root: Path, **systems: dict[str, Any]) -> Project:
    """The project, with these settings for these systems (see `write_systems`)."""
    write_systems(root, **systems)
    return load_project(root)


def write_systems(root: Path, **systems: dict[str, Any]) -> None:
    """Write accord.yaml with these settings for these systems (a None value removes the
    key); every other system's intake blocks are removed."""
    yaml = YAML()
    path = root / "accord.yaml"
    data = yaml.load(path)
    for name, system in data["systems"].items():
        system.pop("intake", None)
        for key, value in systems.get(name, {}).items():
            if value is None:
                system.pop(key, None)
            else:
                system[key] = value
    yaml.dump(data, path)


def drop_block(root: Path, system: str, **extra: Any) -> dict[str, Any]:
    (root / "drops" / system).mkdir(parents=True, exist_ok=True)
    return {"drop": {"folder": f"drops/{system}", "settle": "0s", **extra}}


def drop_billing(root: Path, name: str, *ids: str) -> Path:
    return write_jsonl(root / "drops" / "billing" / name, [billing_row(i) for i in ids])


class ErpSource:
    """The ERP's customer table (KNA1) in a SQLite database of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        columns = ", ".join(f'"{c}" TEXT' for c in [*ERP_COLUMNS, "updated_at"])
        with sqlite3.connect(path) as db:
            db.execute(f"CREATE TABLE kna1 ({columns})")

    def insert(self, *numbers: int) -> None:
        rows = [
            erp_row(KUNNR=f"{n:010}", NAME1=f"Müller{n}, Hans") | {"updated_at": f"2024-05-{n:02}"}
            for n in numbers
        ]
        with sqlite3.connect(self.path) as db:
            names = list(rows[0])
            marks = ", ".join("?" for _ in names)
            quoted = ", ".join(f'"{n}"' for n in names)
            db.executemany(
                f"INSERT INTO kna1 ({quoted}) VALUES ({marks})", [list(r.values()) for r in rows]
            )


POLL_BLOCK = {"poll": {"url_env": ERP_URL, "table": "kna1", "watermark": "updated_at"}}


@pytest.fixture
def erp_source(tmp_path: Path) -> ErpSource:
    return ErpSource(tmp_path / "erp-source.sqlite3")


def stored(engine: Engine, system: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(record_head.c.source_id).where(record_head.c.system == system))
        return set(rows.scalars())


def row(engine: Engine, system: str, channel: str) -> intake_schedule.ChannelRow:
    with engine.connect() as conn:
        found = intake_schedule.read(conn, system, channel)
    assert found is not None, (system, channel)
    return found


def started(channels: list[PlannedChannel]) -> set[str]:
    return {c.name for c in channels}


def wait_for(what: str, condition: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds:.0f}s for {what}"
        time.sleep(0.05)


# ---- when a channel is due (pure)


def test_every_counts_from_the_last_start_whatever_the_outcome() -> None:
    timing = Timing(every=timedelta(minutes=5))
    assert str(timing) == "every 5m" and timing.first_due(T0) == T0
    end = T0 + timedelta(minutes=1)
    for outcome in ("ok", "failed"):
        assert timing.due_after(outcome, started=T0, finished=end, failures=1) == T0 + timedelta(
            minutes=5
        )
    # a run stopped part way is due again at once: the next worker finishes it
    assert timing.due_after("stopped", started=T0, finished=end, failures=0) == end
    assert timing.due_when_changed(T0, T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=5)
    assert timing.due_when_changed(None, end) == end


def test_cron_times_are_utc_and_one_missed_while_running_is_not_caught_up() -> None:
    nightly = Timing(cron="0 2 * * *")
    assert str(nightly) == 'cron "0 2 * * *"'
    assert nightly.first_due(T0) == datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
    at_two = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
    assert nightly.first_due(at_two) == datetime(2024, 6, 2, 2, 0, tzinfo=UTC)  # strictly after
    # a run that started at 02:00 and failed is tried again the next night
    done = at_two + timedelta(minutes=3)
    assert nightly.due_after("failed", started=at_two, finished=done, failures=1) == datetime(
        2024, 6, 2, 2, 0, tzinfo=UTC
    )
    quarterly = Timing(cron="*/15 * * * *")
    long_run_end = datetime(2024, 6, 1, 3, 40, 10, tzinfo=UTC)
    assert quarterly.due_after(
        "ok", started=datetime(2024, 6, 1, 3, 0, tzinfo=UTC), finished=long_run_end, failures=0
    ) == datetime(2024, 6, 1, 3, 45, tzinfo=UTC)
    # a time zone other than UTC is read as the moment it is
    berlin = datetime(2024, 6, 1, 3, 30, tzinfo=UTC).astimezone()
    assert scheduler.next_cron_time("0 2 * * *", berlin) == datetime(2024, 6, 2, 2, tzinfo=UTC)


moments = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001  (hypothesis draws naive times)
    max_value=datetime(2090, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(moments, st.integers(0, 59), st.integers(0, 23))
def test_a_daily_cron_time_is_the_first_one_after(after: datetime, minute: int, hour: int) -> None:
    expected = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if expected <= after:
        expected += timedelta(days=1)
    assert scheduler.next_cron_time(f"{minute} {hour} * * *", after) == expected


@given(moments, st.sampled_from([1, 2, 3, 5, 10, 15, 20, 30]))
def test_a_cron_step_is_the_next_multiple_after(after: datetime, step: int) -> None:
    floor = after.replace(second=0, microsecond=0)
    expected = floor + timedelta(minutes=step - floor.minute % step)
    assert scheduler.next_cron_time(f"*/{step} * * * *", after) == expected


@given(st.integers(1, 200))
def test_a_continuous_channel_that_fails_waits_longer_each_time_up_to_two_minutes(
    failures: int,
) -> None:
    timing = Timing()
    assert str(timing) == "continuous"
    end = T0 + timedelta(seconds=3)
    pause = timing.due_after("failed", started=T0, finished=end, failures=failures) - end
    before = timing.due_after("failed", started=T0, finished=end, failures=failures - 1) - end
    assert timedelta(seconds=5) <= pause <= timedelta(minutes=2)
    assert before <= pause
    assert timing.due_after("ok", started=T0, finished=end, failures=0) == end
    assert timing.due_after("stopped", started=T0, finished=end, failures=failures) == end


@pytest.mark.parametrize(
    ("span", "shown"),
    [({"minutes": 5}, "5m"), ({"seconds": 90}, "1m30s"), ({"hours": 26}, "1d2h"), ({}, "0s")],
)
def test_durations_are_shown_as_written(span: dict[str, float], shown: str) -> None:
    assert scheduler.shown_duration(timedelta(**span)) == shown
    assert scheduler.shown_duration(timedelta(milliseconds=500)) == "500ms"


def test_the_plan_follows_sync_and_schedule(demo_project_dir: Path) -> None:
    broker_block = {"stream": "S", "subject": "s.>", "durable": "d"}
    project = configure(
        demo_project_dir,
        crm={
            "sync": "realtime",
            "intake": {**drop_block(demo_project_dir, "crm"), "broker": broker_block},
        },
        erp={
            "sync": "batch",
            "schedule": "0 2 * * *",
            "intake": {**drop_block(demo_project_dir, "erp"), **POLL_BLOCK, "broker": broker_block},
        },
        billing={
            "sync": "batch",
            "schedule": None,
            "intake": drop_block(demo_project_dir, "billing", every="30s"),
        },
        service={
            "sync": "batch",
            "schedule": "@daily",
            "intake": {"broker": broker_block | {"every": "10m"}},
        },
    )
    assert [(c.name, str(c.timing)) for c in plan(project)] == [
        ("crm drop", "every 1m"),
        ("crm broker", "continuous"),  # realtime
        ("erp drop", 'cron "0 2 * * *"'),
        ("erp poll", 'cron "0 2 * * *"'),
        ("erp broker", 'cron "0 2 * * *"'),  # batch: drained at the schedule's times
        ("billing drop", "every 30s"),
        ("service broker", 'cron "0 0 * * *"'),
    ]
    assert plan(configure(demo_project_dir)) == []  # no system with a pull channel


def test_validate_reports_a_bad_cron_and_a_schedule_on_a_realtime_system(
    demo_project_dir: Path,
) -> None:
    write_systems(
        demo_project_dir,
        crm={"sync": "realtime", "schedule": "0 2 * * *"},
        erp={"sync": "batch", "schedule": "0 25 * * *"},
        billing={"schedule": "every night"},
    )
    lines = (demo_project_dir / "accord.yaml").read_text(encoding="utf-8").splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if text in line)

    with pytest.raises(ProjectInvalid) as caught:
        load_project(demo_project_dir)
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 3, problems
    realtime, hour, words = problems
    assert f"accord.yaml:{line_of('0 2 * * *')}: systems.crm.schedule" in realtime
    assert "realtime system runs without a schedule" in realtime and "sync: batch" in realtime
    assert f"accord.yaml:{line_of('0 25 * * *')}: systems.erp.schedule" in hour
    assert "'0 25 * * *' is not a cron expression (Bad hour)" in hour
    assert f"accord.yaml:{line_of('every night')}:" in words and "five fields" in words

    result = CliRunner().invoke(app, ["validate", str(demo_project_dir)])
    assert result.exit_code != 0
    assert f"accord.yaml:{line_of('0 25 * * *')}" in result.output


# ---- the scheduler, on both stores, with a clock the test moves


def test_a_restart_keeps_to_the_schedule(engine: Engine, demo_project_dir: Path) -> None:
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing", every="5m")},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1", "B2")
    clock = Clock()
    first = IntakeScheduler(engine, project, clock=clock)
    assert started(first.step()) == {"billing drop"}
    assert first.join(timeout=60)
    done = row(engine, "billing", "drop")
    assert (done.last_outcome, done.lease_owner, done.due_at) == (
        "ok",
        None,
        T0 + timedelta(minutes=5),
    )
    assert done.last_counts is not None and done.last_counts["new"] == 2
    assert done.last_load_id and stored(engine, "billing") == {"B1", "B2"}

    clock.advance(minutes=1)
    restarted = IntakeScheduler(engine, project, clock=clock)  # another process, later
    assert restarted.step() == []
    clock.advance(minutes=4)
    assert started(restarted.step()) == {"billing drop"}
    assert restarted.join(timeout=60)
    assert row(engine, "billing", "drop").last_message == "no file waiting"


def test_a_failing_channel_is_recorded_and_retried_while_the_others_go_on(
    engine: Engine,
    demo_project_dir: Path,
    erp_source: ErpSource,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv(ERP_URL, raising=False)
    erp_source.insert(1, 2)
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
        erp={"schedule": None, "intake": POLL_BLOCK},
        crm={"intake": {"drop": {"folder": "drops/missing"}}},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1")
    clock = Clock()
    worker = IntakeScheduler(engine, project, clock=clock)
    caplog.set_level(logging.INFO, logger="accord.runtime.scheduler")

    assert started(worker.step()) == {"billing drop", "erp poll", "crm drop"}
    assert worker.join(timeout=60)
    poll_row, missing = row(engine, "erp", "poll"), row(engine, "crm", "drop")
    assert (poll_row.last_outcome, poll_row.failures) == ("failed", 1)
    assert f"{ERP_URL} is not set" in (poll_row.last_message or "")
    assert f"hint: export {ERP_URL}=" in (poll_row.last_message or "")
    assert poll_row.due_at == T0 + timedelta(minutes=5)  # not in a tight loop
    assert missing.last_outcome == "failed" and "does not exist" in (missing.last_message or "")
    assert "create it" in (missing.last_message or "")
    assert row(engine, "billing", "drop").last_outcome == "ok"
    assert stored(engine, "billing") == {"B1"}
    failure_logs = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "erp poll failed" in m and "tried again at" in m and "export" in m for m in failure_logs
    )

    # the drop goes on every minute; the poll waits for its next time
    drop_billing(demo_project_dir, "b.jsonl", "B2")
    clock.advance(minutes=1)
    assert started(worker.step()) == {"billing drop", "crm drop"}
    assert worker.join(timeout=60)
    assert stored(engine, "billing") == {"B1", "B2"}
    assert row(engine, "crm", "drop").failures == 2

    clock.advance(minutes=4)
    assert "erp poll" in started(worker.step())
    assert worker.join(timeout=60)
    assert row(engine, "erp", "poll").failures == 2

    monkeypatch.setenv(ERP_URL, erp_source.url)  # the cause fixed
    clock.advance(minutes=5)
    assert "erp poll" in started(worker.step())
    assert worker.join(timeout=60)
    fixed = row(engine, "erp", "poll")
    assert (fixed.last_outcome, fixed.failures) == ("ok", 0)
    assert fixed.last_counts is not None and fixed.last_counts["new"] == 2
    assert stored(engine, "erp") == {"0000000001", "0000000002"}


def test_two_schedulers_never_run_one_channel_at_once(
    engine: Engine, demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1")
    go_on = threading.Event()
    running: list[str] = []
    real_scan = drop.scan_once

    def held_scan(*args: Any, **kwargs: Any) -> list[drop.DropResult]:
        running.append(kwargs["actor"])
        assert go_on.wait(60)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(drop, "scan_once", held_scan)
    clock = Clock()
    lease = timedelta(minutes=2)
    first = IntakeScheduler(engine, project, clock=clock, name="first", lease=lease)
    second = IntakeScheduler(engine, project, clock=clock, name="second", lease=lease)
    assert started(first.step()) == {"billing drop"}
    wait_for("the first run to start", lambda: len(running) == 1)
    assert second.step() == []  # held

    clock.advance(minutes=1)
    first.heartbeat()  # renewed to T0+1m+2m
    clock.advance(minutes=2)
    assert second.step() == []  # still held: renewed
    clock.advance(minutes=1)  # the first goes silent (as if it died); its lease runs out
    assert started(second.step()) == {"billing drop"}
    wait_for("the second run to start", lambda: len(running) == 2)
    assert running == ["worker:first", "worker:second"]
    first.heartbeat()  # learns it lost the channel: told to stop
    assert first.runs[("billing", "drop")].stop.is_set()

    go_on.set()
    assert first.join(timeout=60) and second.join(timeout=60)
    recorded = row(engine, "billing", "drop")
    assert recorded.last_outcome == "ok" and recorded.lease_owner is None
    assert stored(engine, "billing") == {"B1"}  # the file went to one of them
    assert len(list((demo_project_dir / "drops" / "billing" / "done").glob("*.report.json"))) == 1


def test_a_changed_timing_is_worked_out_again(engine: Engine, demo_project_dir: Path) -> None:
    block = drop_block(demo_project_dir, "billing", every="5m")
    project = configure(demo_project_dir, billing={"schedule": None, "intake": block})
    clock = Clock()
    before = IntakeScheduler(engine, project, clock=clock)
    before.step()
    assert before.join(timeout=60)
    assert row(engine, "billing", "drop").due_at == T0 + timedelta(minutes=5)

    block["drop"]["every"] = "1m"
    project = configure(demo_project_dir, billing={"schedule": None, "intake": block})
    clock.advance(seconds=30)
    statuses = scheduler.status(engine, project, clock())
    assert [(s.timing, s.next_due) for s in statuses] == [("every 1m", T0 + timedelta(minutes=1))]
    after = IntakeScheduler(engine, project, clock=clock)
    assert after.step() == []
    assert row(engine, "billing", "drop").due_at == T0 + timedelta(minutes=1)

    project = configure(demo_project_dir, billing={"schedule": "0 2 * * *", "intake": block})
    IntakeScheduler(engine, project, clock=clock).register()
    assert row(engine, "billing", "drop").due_at == datetime(2024, 6, 1, 2, 0, tzinfo=UTC)


def test_a_run_stops_after_the_file_or_page_in_hand(
    engine: Engine, demo_project_dir: Path, erp_source: ErpSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ERP_URL, erp_source.url)
    erp_source.insert(1, 2, 3)
    block = {"poll": {**POLL_BLOCK["poll"], "batch_size": 1}}
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
        erp={"schedule": None, "intake": block},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1")
    drop_billing(demo_project_dir, "b.jsonl", "B2")

    def run(name: str, stopping: Callable[[], bool]) -> scheduler.RunResult:
        [channel] = [c for c in plan(project) if c.name == name]
        return scheduler.run_channel(
            engine, project, channel, actor="test", stopping=stopping, note=lambda _: None
        )

    # the stop comes while the first file, or the first page, is in hand
    dropped = run("billing drop", lambda: bool(stored(engine, "billing")))
    assert dropped.counts["files"] == 1 and len(stored(engine, "billing")) == 1
    polled = run("erp poll", lambda: bool(stored(engine, "erp")))
    assert polled.counts["read"] == 1 and stored(engine, "erp") == {"0000000001"}
    # the next runs go on from there
    assert run("erp poll", lambda: False).counts["read"] == 2
    assert stored(engine, "erp") == {"0000000001", "0000000002", "0000000003"}
    assert run("billing drop", lambda: False).counts["files"] == 1
    assert stored(engine, "billing") == {"B1", "B2"}


# ---- the broker, consumed continuously on one connection


@pytest.fixture
def stream() -> Iterator[Stream]:
    _nats_or_skip()
    made = Stream()
    made.create()
    yield made
    made.delete()


def broker_block(stream: Stream) -> dict[str, Any]:
    return {
        "broker": {
            "url_env": NATS_ENV,
            "stream": stream.name,
            "subject": stream.subject,
            "durable": stream.durable,
            "max_wait": "200ms",
        }
    }


def test_a_realtime_broker_is_consumed_on_one_connection_until_the_worker_stops(
    engine: Engine, demo_project_dir: Path, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NATS_ENV, NATS_URL)
    project = configure(demo_project_dir, crm={"sync": "realtime", "intake": broker_block(stream)})
    connections: list[Any] = []
    real_connect = broker._connect

    async def counted(urls: list[str]) -> Any:
        connections.append(urls)
        return await real_connect(urls)

    monkeypatch.setattr(broker, "_connect", counted)
    stop = threading.Event()
    worker = IntakeScheduler(engine, project)
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"tick": 0.05})
    thread.start()
    try:
        stream.publish(*(_json(crm_row(f"C{i}")) for i in range(3)))
        wait_for("the first messages", lambda: stored(engine, "crm") == {"C0", "C1", "C2"})
        stream.publish(_json(crm_row("C3")))
        wait_for("a later message", lambda: "C3" in stored(engine, "crm"))
        running = row(engine, "crm", "broker")
        assert running.lease_owner == worker.name and running.last_outcome is None
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    assert len(connections) == 1  # one connection for every fetch
    ended = row(engine, "crm", "broker")
    assert (ended.last_outcome, ended.lease_owner) == ("stopped", None)
    assert ended.last_counts is not None and ended.last_counts["messages"] == 4
    assert ended.due_at <= datetime.now(UTC)  # the next worker takes over at once
    assert stream.consumer().num_ack_pending == 0


def _json(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def _fill_queue(engine: Engine, project: Project, count: int) -> None:
    """`count` billing records loaded and waiting to be matched."""
    from accord.intake.load import load_file  # noqa: PLC0415

    rows = [billing_row(f"B{i}") for i in range(count)]
    path = write_jsonl(project.root.parent / "waiting.jsonl", rows)
    load_file(engine, project, "billing", path, actor="test")


@pytest.mark.usefixtures("cli_on_engine")
def test_a_realtime_broker_pauses_at_the_backlog_bound_and_shows_it(
    engine: Engine,
    demo_project_dir: Path,
    stream: Stream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(NATS_ENV, NATS_URL)
    monkeypatch.setenv("ACCORD_MAX_BACKLOG", "5")
    caplog.set_level(logging.INFO, logger="accord.runtime.scheduler")
    project = configure(demo_project_dir, crm={"sync": "realtime", "intake": broker_block(stream)})
    _fill_queue(engine, project, 6)
    stream.publish(*(_json(crm_row(f"C{i}")) for i in range(10)))
    stop = threading.Event()
    worker = IntakeScheduler(engine, project)
    assert worker.max_backlog == 5
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"tick": 0.05})
    thread.start()
    try:

        def paused() -> bool:
            with engine.connect() as conn:
                found = intake_schedule.read(conn, "crm", "broker")
            return found is not None and (found.last_counts or {}).get("paused_backlog") == 6

        wait_for("the pause to be noted", paused)
        time.sleep(1.5)  # a look at the backlog or two more: still nothing fetched
        held = stream.consumer()
        assert (held.num_pending, held.num_ack_pending, held.delivered.consumer_seq) == (10, 0, 0)
        assert stored(engine, "crm") == set()
        shown = CliRunner().invoke(app, ["worker", "status", str(demo_project_dir)])
        text = " ".join(shown.output.split())
        assert "crm │ broker │ continuous │ running since" in text, shown.output
        assert "paused: backlog 6 (bound 5)" in text, shown.output
        assert "6 records wait to be matched, at or past the bound of 5" in text
        assert "start more matching workers" in text

        MatchWorker(engine, project).drain()  # the workers catch up
        wait_for("the messages", lambda: stored(engine, "crm") == {f"C{i}" for i in range(10)})
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    ended = row(engine, "crm", "broker")
    assert ended.last_outcome == "stopped" and ended.last_counts is not None
    assert (ended.last_counts["messages"], ended.last_counts["new"]) == (10, 10)
    assert ended.last_counts["pauses"] >= 1  # and again once the ten were queued
    assert "while the backlog was at ACCORD_MAX_BACKLOG" in (ended.last_message or "")
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    paused = [m for level, m in said if level == logging.WARNING and "paused" in m]
    assert len(paused) == ended.last_counts["pauses"], said  # once a pause, not a look
    assert "6 records wait to be matched, at or past the bound of 5" in paused[0]
    assert "start more matching workers" in paused[0] and "nothing is lost" in paused[0]
    assert "fewer than 4 records wait" in paused[0]
    assert any("crm broker: resumed" in m for level, m in said if level == logging.INFO)
    after = stream.consumer()
    assert (after.num_pending, after.num_ack_pending, after.num_redelivered) == (0, 0, 0)


def test_a_scheduled_broker_run_waits_out_the_backlog_then_drains(
    engine: Engine, demo_project_dir: Path, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NATS_ENV, NATS_URL)
    project = configure(
        demo_project_dir, crm={"sync": "batch", "schedule": None, "intake": broker_block(stream)}
    )
    _fill_queue(engine, project, 3)
    stream.publish(*(_json(crm_row(f"C{i}")) for i in range(4)))
    clock = Clock()
    worker = IntakeScheduler(engine, project, clock=clock, max_backlog=3)
    assert started(worker.step()) == {"crm broker"}
    run = worker.runs[("crm", "broker")]
    wait_for("the run to pause", run.paused)
    worker.heartbeat()  # a pause is written at once, not after a quarter of the lease
    assert (row(engine, "crm", "broker").last_counts or {}).get("paused_bound") == 3
    [status] = scheduler.status(engine, project, clock())
    assert status.pause is not None and str(status.pause) == "backlog 3 (bound 3)"
    assert run.alive() and stream.consumer().num_pending == 4  # waiting, lease in hand

    MatchWorker(engine, project).drain()
    assert worker.join(timeout=60)  # resumed, drained what waited, and ended
    done = row(engine, "crm", "broker")
    assert (done.last_outcome, done.lease_owner) == ("ok", None)
    assert done.last_message is not None and done.last_message.startswith("4 message(s)")
    assert "paused 1 time(s)" in done.last_message
    assert stored(engine, "crm") == {"C0", "C1", "C2", "C3"}
    assert stream.consumer().num_ack_pending == 0


@pytest.mark.usefixtures("cli_on_engine")
def test_worker_status_shows_a_pause_only_while_its_run_holds_the_channel(
    engine: Engine, demo_project_dir: Path
) -> None:
    """A paused run notes its pause in the row's counts; the next holder of the channel
    (a worker after the paused one died, a run by hand) is not shown paused."""
    block = {"url_env": NATS_ENV, "stream": "S", "subject": "s.>", "durable": "d"}
    project = configure(demo_project_dir, crm={"sync": "realtime", "intake": {"broker": block}})
    clock = Clock(utcnow())  # `accord worker status` reads the time itself
    IntakeScheduler(engine, project, clock=clock).register()
    lease = scheduler.LEASE
    paused = {"messages": 0, "pauses": 1, "paused_seconds": 0}
    paused |= {"paused_backlog": 204_311, "paused_bound": 200_000}
    with writing(engine) as conn:  # a worker's broker run, paused, as its heartbeat notes it
        assert intake_schedule.claim(conn, "crm", "broker", "w1", now=clock(), lease=lease)
        assert intake_schedule.renew(
            conn, "crm", "broker", "w1", until=clock() + lease, now=clock(), counts=paused
        )

    def shown() -> str:
        result = CliRunner().invoke(app, ["worker", "status", str(demo_project_dir)])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    def shown_paused() -> bool:
        text = shown()
        return "paused: backlog" in text or "crm broker: paused, fetching nothing" in text

    [status] = scheduler.status(engine, project, clock())
    assert str(status.pause) == "backlog 204,311 (bound 200,000)"
    assert "paused: backlog 204,311 (bound 200,000)" in shown() and shown_paused()

    clock.advance(minutes=3)  # w1 died; its lease ran out, and w2 took the channel
    with writing(engine) as conn:
        assert intake_schedule.claim(conn, "crm", "broker", "w2", now=clock(), lease=lease)
    [status] = scheduler.status(engine, project, clock())
    assert (status.held_by, status.pause) == ("w2", None)
    assert "crm broker: running on w2" in shown() and not shown_paused()

    with writing(engine) as conn:  # w2 pauses in turn, and is stopped while paused
        assert intake_schedule.renew(
            conn, "crm", "broker", "w2", until=clock() + lease, now=clock(), counts=paused
        )
        assert intake_schedule.finish(
            conn,
            "crm",
            "broker",
            "w2",
            now=clock(),
            outcome="stopped",
            message="ended while paused",
            load_id=None,
            counts=paused,
            due_at=clock(),
        )
    with one_shot.holding(
        engine, project, "crm", "broker", command="accord broker consume", actor="cli:test"
    ) as hold:
        [status] = scheduler.status(engine, project)
        assert (status.held_by, status.pause) == (hold.owner, None)
        assert "running on by hand: accord broker consume" in shown()
        assert not shown_paused()


def test_the_pool_beside_the_app_runs_the_channels_too(
    engine: Engine, demo_project_dir: Path
) -> None:
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1")
    with WorkerPool(engine, project, 0) as idle:
        assert idle.scheduler is None  # no workers here: they run elsewhere
    with WorkerPool(engine, project, 1, intake=False) as matching_only:
        assert matching_only.scheduler is None
    with WorkerPool(engine, project, 1) as pool:
        assert pool.scheduler is not None
        wait_for("the dropped file to be matched", lambda: _matched(engine, "billing") == 1)
    assert all(not t.is_alive() for t in pool.threads)


def _matched(engine: Engine, system: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(crosswalk).where(crosswalk.c.system == system)
            ).scalar_one()
        )


# ---- a worker process: every channel in, without a one-shot command


def _worker(project_dir: Path, env: dict[str, str], output: Path, *args: str) -> Any:
    accord = Path(sys.executable).parent / "accord"
    with output.open("wb") as out:
        return subprocess.Popen(
            [str(accord), "worker", "run", str(project_dir), *args],
            env=os.environ | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def cli_on_engine(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """`accord worker …` in this process works on the test's store (a workspace of its
    own would leave an engine with open connections behind), in a wide console."""
    from accord.cli import output  # noqa: PLC0415
    from accord.cli import worker as worker_cli  # noqa: PLC0415

    monkeypatch.setattr(output.console, "width", 250)
    monkeypatch.setattr(
        worker_cli, "open_workspace", lambda root: Workspace(root.resolve(), engine, Settings())
    )


@pytest.mark.usefixtures("cli_on_engine")
def test_a_worker_takes_in_a_dropped_file_a_polled_table_and_broker_messages(
    engine: Engine,
    demo_project_dir: Path,
    erp_source: ErpSource,
    stream: Stream,
    tmp_path: Path,
) -> None:
    erp_source.insert(1, 2)
    configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
        erp={"schedule": None, "intake": POLL_BLOCK},
        crm={"sync": "realtime", "intake": broker_block(stream)},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1", "B2")
    stream.publish(_json(crm_row("C1")), _json(crm_row("C2", Email="c2@example.org")))
    url = engine.url.render_as_string(hide_password=False)
    env = {"ACCORD_DATABASE_URL": url, ERP_URL: erp_source.url, NATS_ENV: NATS_URL}
    output = tmp_path / "worker.log"
    process = _worker(demo_project_dir, env, output)
    try:
        for system, count in (("billing", 2), ("erp", 2), ("crm", 2)):
            wait_for(
                f"{system}'s records to be stored and matched",
                lambda s=system, n=count: process.poll() is None and _matched(engine, s) == n,
            )
        stream.publish(_json(crm_row("C3", Email="c3@example.org")))
        wait_for("a message published later", lambda: _matched(engine, "crm") == 3)

        shown = CliRunner().invoke(app, ["worker", "status", str(demo_project_dir)])
        assert shown.exit_code == 0, shown.output
        text = " ".join(shown.output.split())
        for expected in (
            "billing │ drop │ every 1m",
            "erp │ poll │ every 5m",
            "crm │ broker │ continuous │ running since",  # consumed continuously
            "erp poll (load ",
            "2 records read: 2 new",
            "crm broker: running on ",
        ):
            assert expected in text, shown.output
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
    log = output.read_text(encoding="utf-8")
    assert process.returncode == 0, log
    banner = "intake: crm broker (continuous), erp poll (every 5m), billing drop (every 1m)."
    assert banner in " ".join(log.split())
    assert row(engine, "crm", "broker").last_outcome == "stopped"
    assert row(engine, "erp", "poll").last_outcome == "ok"
    assert (demo_project_dir / "drops" / "billing" / "done" / "a.jsonl").is_file()


def test_a_worker_without_intake_only_matches(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    from accord.intake.load import load_file  # noqa: PLC0415

    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    waiting = drop_billing(demo_project_dir, "a.jsonl", "B1")
    loaded = write_jsonl(tmp_path / "by-hand.jsonl", [billing_row("B9")])
    load_file(engine, project, "billing", loaded, actor="test")
    env = {"ACCORD_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    output = tmp_path / "worker.log"
    process = _worker(demo_project_dir, env, output, "--no-intake")
    try:
        wait_for("the queued record to be matched", lambda: _matched(engine, "billing") == 1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert process.returncode == 0, output.read_text(encoding="utf-8")
    assert "matching only" in output.read_text(encoding="utf-8")
    assert waiting.is_file()  # the dropped file still waits
    with engine.connect() as conn:
        assert intake_schedule.read_all(conn) == []


# ---- a run by hand holds the channel's lease (`runtime/one_shot.py`)


def _by_hand(engine: Engine, project: Project, clock: Clock, **options: Any) -> Any:
    return one_shot.holding(
        engine,
        project,
        "billing",
        "drop",
        command="accord drop scan",
        actor="cli:test",
        clock=clock,
        **options,
    )


def test_the_scheduler_starts_no_run_while_a_command_holds_the_channel(
    engine: Engine, demo_project_dir: Path
) -> None:
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1")
    clock = Clock()
    worker = IntakeScheduler(engine, project, clock=clock, name="w1")
    with _by_hand(engine, project, clock) as hold:  # the row made by the command
        held = row(engine, "billing", "drop")
        assert held.lease_owner == hold.owner and hold.owner.startswith("by hand: accord drop")
        assert (held.timing, held.last_started_at) == ("every 1m", T0)
        assert worker.step() == []  # due, but held
        [shown] = scheduler.status(engine, project, clock())
        assert shown.held_by == hold.owner
        with pytest.raises(Conflict) as twice, _by_hand(engine, project, clock):
            pass
        assert "billing's drop is being run by hand (accord drop scan, cli:test" in str(twice.value)
        assert stored(engine, "billing") == set()
    released = row(engine, "billing", "drop")
    assert (released.lease_owner, released.lease_until, released.last_outcome) == (None, None, None)
    assert started(worker.step()) == {"billing drop"}
    assert worker.join(timeout=60)
    assert stored(engine, "billing") == {"B1"}


def test_a_claim_a_command_got_in_before_is_refused_until_it_releases(
    engine: Engine, demo_project_dir: Path
) -> None:
    """The worker reads the schedule, finds the channel due and free, and claims it; a
    command takes the channel between the read and the claim. The claim (the store's
    conditional UPDATE) is refused: the worker does not run the channel, and runs it
    once the command has given it up."""
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1")
    command = contextlib.ExitStack()
    holds: list[one_shot.Hold] = []
    read = threading.Event()  # the worker has read the schedule

    def reading(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "intake_schedule" in statement:
            read.set()

    class CommandBetween(Clock):
        """The worker's time; asked for it after its read, a command takes the channel."""

        def __call__(self) -> datetime:
            if read.is_set() and not holds:
                holds.append(command.enter_context(_by_hand(engine, project, Clock())))
            return self.now

    worker = IntakeScheduler(engine, project, clock=CommandBetween(), name="w1")
    worker.register()
    event.listen(engine, "after_cursor_execute", reading)
    try:
        assert worker.step() == []  # claimed by nobody but the command
    finally:
        event.remove(engine, "after_cursor_execute", reading)
    assert holds, "the command did not get in between the read and the claim"
    held = row(engine, "billing", "drop")
    assert (held.lease_owner, held.last_started_at) == (holds[0].owner, T0)
    assert worker.runs == {} and stored(engine, "billing") == set()
    assert (demo_project_dir / "drops" / "billing" / "a.jsonl").is_file()

    command.close()  # the command ends and gives the channel up
    assert started(worker.step()) == {"billing drop"}
    assert worker.join(timeout=60)
    assert stored(engine, "billing") == {"B1"}
    ran = row(engine, "billing", "drop")
    assert (ran.lease_owner, ran.last_outcome) == (None, "ok")


def test_a_command_is_refused_while_a_worker_runs_the_channel(
    engine: Engine, demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    go_on = threading.Event()
    real_scan = drop.scan_once

    def held_scan(*args: Any, **kwargs: Any) -> list[drop.DropResult]:
        assert go_on.wait(60)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(drop, "scan_once", held_scan)
    clock = Clock()
    worker = IntakeScheduler(engine, project, clock=clock, name="box:42:abcdef")
    assert started(worker.step()) == {"billing drop"}
    clock.advance(seconds=30)
    try:
        with pytest.raises(Conflict) as refused, _by_hand(engine, project, clock):
            pytest.fail("ran beside the worker")
    finally:
        go_on.set()
    assert refused.value.message == (
        "billing's drop is running in worker box:42:abcdef since 2024-06-01 01:30:00 UTC; "
        "nothing was read"
    )
    assert "stop that worker" in (refused.value.hint or "")
    assert "its lease runs out at 2024-06-01 01:32:00 UTC" in (refused.value.hint or "")
    assert worker.join(timeout=60)
    assert row(engine, "billing", "drop").last_outcome == "ok"  # the worker's run, untouched


def test_a_command_renews_its_lease_while_it_runs(engine: Engine, demo_project_dir: Path) -> None:
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    lease = timedelta(seconds=0.4)
    worker = IntakeScheduler(engine, project, name="w1", lease=lease)
    with _by_hand(engine, project, utcnow, lease=lease) as hold:
        deadline = time.monotonic() + 1.5  # several leases long
        while time.monotonic() < deadline:
            assert worker.step() == [], "claimed while the command ran"
            time.sleep(0.05)
        assert not hold.lost.is_set()
    assert row(engine, "billing", "drop").lease_owner is None


def stall_then_take_over(engine: Engine, system: str, channel: str, owner: str) -> None:
    """A lease lost for real: the store keeps the channel's holder from renewing its
    lease (this transaction holds the row: PostgreSQL locks it, SQLite's write
    transaction holds the database) until the lease has run out, then `owner` claims
    the channel as a worker does."""
    table = intake_schedule_table
    with writing(engine) as conn:
        until = conn.execute(
            select(table.c.lease_until)
            .where(table.c.system == system, table.c.channel == channel)
            .with_for_update()
        ).scalar_one()
        while utcnow() <= until:
            time.sleep(0.05)
        assert intake_schedule.claim(
            conn, system, channel, owner, now=utcnow(), lease=scheduler.LEASE
        ), "the lease ran out, so a worker may claim the channel"


def test_a_command_whose_lease_runs_out_and_is_taken_stops_and_says_so(
    engine: Engine, demo_project_dir: Path
) -> None:
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    lease = timedelta(seconds=0.4)
    with (  # noqa: PT012  (the block is the command's run)
        pytest.raises(one_shot.LeaseLost) as lost,
        _by_hand(engine, project, utcnow, lease=lease) as hold,
    ):
        stall_then_take_over(engine, "billing", "drop", "w2")
        wait_for("the command to learn of it", hold.lost.is_set, seconds=10)
        assert hold.taken_by == "w2"
    assert lost.value.message == (
        "billing's drop: this run lost its lease: it ran out (not renewed within 400ms) and "
        "worker w2 took the channel over; this command stopped after the file, page or "
        "batch in hand. What it stored (shown above) stays stored"
    )
    assert "worker w2 goes on from there, and nothing is stored twice" in (lost.value.hint or "")
    assert "cannot reach the store, or the store is too slow" in (lost.value.hint or "")
    assert row(engine, "billing", "drop").lease_owner == "w2"  # not released: not its own


def test_a_command_that_finds_its_lease_taken_as_it_ends_says_so(
    engine: Engine, demo_project_dir: Path
) -> None:
    """A loss no renewal saw (it came between two) is found when the lease is given up."""
    project = configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    drop_billing(demo_project_dir, "a.jsonl", "B1")
    clock = Clock()  # the command's: it renews every 30 seconds, so not in this test
    later = Clock(T0 + scheduler.LEASE + timedelta(seconds=1))  # past the command's lease
    worker = IntakeScheduler(engine, project, clock=later, name="w2")
    with (  # noqa: PT012  (the block is the command's run)
        pytest.raises(one_shot.LeaseLost) as lost,
        _by_hand(engine, project, clock) as hold,
    ):
        assert started(worker.step()) == {"billing drop"}
        assert worker.join(timeout=60)
        assert not hold.lost.is_set()
    assert lost.value.message == (
        "billing's drop: this run lost its lease: it ran out (not renewed within 2m) and "
        "another worker or command (its run has ended since) took the channel over; this "
        "command found out as it ended. What it stored (shown above) stays stored"
    )
    assert (lost.value.hint or "").startswith("the next run goes on from there")
    done = row(engine, "billing", "drop")
    assert (done.lease_owner, done.last_outcome) == (None, "ok")  # the worker's run, recorded
    assert stored(engine, "billing") == {"B1"}
