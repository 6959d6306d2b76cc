"""The one-shot intake commands (`accord drop scan`, `accord poll`, `accord broker
consume`) take the channel's lease in `intake_schedule`, as a worker's scheduled run
does: while a worker holds it they are refused with who and since when, reading
nothing; they give it up when they end, well or not (Ctrl-C too). A command whose lease
runs out and is taken over stops after the file, page or batch in hand, shows what it
stored, then says the lease was lost (exit 1)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from sqlalchemy import Engine, func, select

from accord.intake import broker, drop, poll
from accord.runtime import one_shot
from accord.runtime.scheduler import LEASE
from accord.store import intake_schedule
from accord.store.engine import writing
from accord.store.tables import load, poll_cursor, record_head
from accord.store.types import utcnow
from accord.workspace import Workspace, open_workspace
from tests.cli.helpers import invoke, run
from tests.factories import crm_row
from tests.intake.test_broker import NATS_URL, Stream, _body, _nats_or_skip
from tests.runtime.test_scheduler import (
    ERP_URL,
    NATS_ENV,
    POLL_BLOCK,
    ErpSource,
    broker_block,
    configure,
    drop_billing,
    drop_block,
    stall_then_take_over,
    wait_for,
)

WORKER = "box:4242:abcdef"


@pytest.fixture
def store(demo_project_dir: Path) -> Iterator[Workspace]:
    """The project's embedded store, as the commands open it."""
    workspace = open_workspace(demo_project_dir)
    yield workspace
    workspace.engine.dispose()


def _as_worker(engine: Engine, system: str, channel: str) -> None:
    """Hold the channel as a worker's scheduled run does."""
    now = utcnow()
    with writing(engine) as conn:
        intake_schedule.register(conn, system, channel, timing="every 1m", due_at=now, now=now)
        assert intake_schedule.claim(conn, system, channel, WORKER, now=now, lease=LEASE)


def _worker_done(engine: Engine, system: str, channel: str) -> None:
    now = utcnow()
    with writing(engine) as conn:
        assert intake_schedule.finish(
            conn,
            system,
            channel,
            WORKER,
            now=now,
            outcome="ok",
            message="done",
            load_id=None,
            counts={},
            due_at=now,
        )


def _free(engine: Engine, system: str, channel: str) -> bool:
    """The channel's lease is given up: a worker could claim it now."""
    with engine.connect() as conn:
        row = intake_schedule.read(conn, system, channel)
    return row is not None and row.lease_owner is None and row.lease_until is None


def _holder(engine: Engine, system: str, channel: str) -> str | None:
    with engine.connect() as conn:
        row = intake_schedule.read(conn, system, channel)
    assert row is not None
    return row.lease_owner


def _loads(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(load)).scalar_one())


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> timedelta:
    """The commands' lease, 400ms (renewed every 100ms) instead of 2 minutes, so that a
    test can let one run out."""
    lease = timedelta(milliseconds=400)
    monkeypatch.setattr(one_shot, "LEASE", lease)
    return lease


def _lose_the_lease(engine: Engine, system: str, channel: str) -> None:
    """The store keeps the command from renewing its lease until it runs out, a worker
    claims the channel, and the command's renewal finds it taken (its thread ends)."""
    stall_then_take_over(engine, system, channel, WORKER)

    def renewing() -> bool:
        name = f"accord-hold-{system}-{channel}"
        return any(t.name == name and t.is_alive() for t in threading.enumerate())

    wait_for("the command to find its lease taken", lambda: not renewing(), seconds=30)


def _lost(output: str, system: str, channel: str, *, after: str) -> str:
    """The command's output: what it stored (`after`), then the lease lost and what to do."""
    text = " ".join(output.split())
    said = (
        f"error: {system}'s {channel}: this run lost its lease: it ran out (not renewed "
        f"within 400ms) and worker {WORKER} took the channel over; this command stopped "
        "after the file, page or batch in hand. What it stored (shown above) stays stored"
    )
    assert said in text, output
    assert f"hint: worker {WORKER} goes on from there, and nothing is stored twice" in text
    assert text.index(after) < text.index(said), output
    return text


def _refusal(output: str, system: str, channel: str) -> str:
    text = " ".join(output.split())
    assert f"error: {system}'s {channel} is running in worker {WORKER} since " in text, output
    assert "nothing was read" in text and "stop that worker" in text, output
    return text


# ---- accord drop scan


def test_drop_scan_is_refused_while_a_worker_scans_the_folder(
    demo_project_dir: Path, store: Workspace
) -> None:
    configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
        crm={"intake": drop_block(demo_project_dir, "crm")},
    )
    waiting = drop_billing(demo_project_dir, "a.jsonl", "B1")
    _as_worker(store.engine, "billing", "drop")

    _refusal(run("drop", "scan", demo_project_dir, "-s", "billing", code=1), "billing", "drop")
    assert waiting.is_file() and not (waiting.parent / "processing").exists()
    assert _loads(store.engine) == 0
    # every folder: the others are scanned, the one held is named, and the exit code says so
    everything = run("drop", "scan", demo_project_dir, code=1)
    _refusal(everything, "billing", "drop")
    assert "nothing waiting in the drop folders of crm" in everything and waiting.is_file()
    assert _free(store.engine, "crm", "drop")  # scanned, and given up

    _worker_done(store.engine, "billing", "drop")
    assert "a.jsonl" in run("drop", "scan", demo_project_dir, "-s", "billing")
    assert not waiting.is_file() and _free(store.engine, "billing", "drop")


def test_drop_scan_gives_the_lease_up_after_a_failure(
    demo_project_dir: Path, store: Workspace
) -> None:
    configure(
        demo_project_dir,
        billing={"schedule": None, "intake": {"drop": {"folder": "drops/missing"}}},
    )
    assert "does not exist" in run("drop", "scan", demo_project_dir, "-s", "billing", code=1)
    assert _free(store.engine, "billing", "drop")


def test_drop_scan_that_loses_its_lease_shows_the_file_it_loaded(
    demo_project_dir: Path,
    store: Workspace,
    short_lease: timedelta,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(
        demo_project_dir,
        billing={"schedule": None, "intake": drop_block(demo_project_dir, "billing")},
    )
    first = drop_billing(demo_project_dir, "a.jsonl", "B1", "B2")
    second = drop_billing(demo_project_dir, "b.jsonl", "B3")
    os.utime(first, (1_700_000_000, 1_700_000_000))  # the older: taken first
    real_load = drop.load_file

    def load_then_lose(*args: Any, **kwargs: Any) -> Any:
        report = real_load(*args, **kwargs)
        _lose_the_lease(store.engine, "billing", "drop")
        return report

    monkeypatch.setattr(drop, "load_file", load_then_lose)
    output = run("drop", "scan", demo_project_dir, "-s", "billing", code=1)
    text = _lost(output, "billing", "drop", after="Dropped files")
    assert "a.jsonl │ billing │ done │ 2 │ 2" in text, output  # read, new
    assert "b.jsonl" not in text  # not taken: left to the worker that took the channel
    assert (first.parent / "done" / "a.jsonl").is_file() and second.is_file()
    assert _loads(store.engine) == 1
    assert _holder(store.engine, "billing", "drop") == WORKER  # the command left it be


# ---- accord poll


@pytest.fixture
def erp(demo_project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ErpSource:
    source = ErpSource(tmp_path / "erp-source.sqlite3")
    source.insert(1, 2)
    monkeypatch.setenv(ERP_URL, source.url)
    configure(demo_project_dir, erp={"schedule": None, "intake": POLL_BLOCK})
    return source


def _cursor(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(poll_cursor))]


@pytest.mark.usefixtures("erp")
def test_poll_is_refused_while_a_worker_polls(demo_project_dir: Path, store: Workspace) -> None:
    assert "Polled" in run("poll", demo_project_dir, "-s", "erp")
    assert _free(store.engine, "erp", "poll")  # given up after a run that went well
    cursor, loads = _cursor(store.engine), _loads(store.engine)
    _as_worker(store.engine, "erp", "poll")

    _refusal(run("poll", demo_project_dir, "-s", "erp", code=1), "erp", "poll")
    refused = run("poll", demo_project_dir, "-s", "erp", "--reset", code=1)
    assert "the poll cursor was reset" not in refused
    _refusal(run("poll", demo_project_dir, code=1), "erp", "poll")  # every system
    assert _cursor(store.engine) == cursor and _loads(store.engine) == loads  # nothing read


@pytest.mark.usefixtures("erp")
def test_poll_gives_the_lease_up_after_a_failure_or_ctrl_c(
    demo_project_dir: Path, store: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = run("poll", demo_project_dir, "-s", "erp", code=1, env={ERP_URL: ""})
    assert f"{ERP_URL} is not set" in failed
    assert _free(store.engine, "erp", "poll")

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(poll, "poll_once", interrupted)
    result = invoke("poll", demo_project_dir, "-s", "erp")
    assert result.exit_code == 130, result.output  # Ctrl-C, as the shell counts it
    assert _free(store.engine, "erp", "poll")


@pytest.mark.usefixtures("short_lease")
def test_poll_that_loses_its_lease_shows_what_it_loaded(
    demo_project_dir: Path, store: Workspace, erp: ErpSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    erp.insert(3, 4, 5)  # five rows, a page of two at a time
    pages = 0
    real_page = poll.Source.page

    def page_then_lose(self: poll.Source, *args: Any, **kwargs: Any) -> Any:
        nonlocal pages
        pages += 1
        if pages == 2:  # page 1 is stored; the lease is lost as page 2 is read
            _lose_the_lease(store.engine, "erp", "poll")
        return real_page(self, *args, **kwargs)

    monkeypatch.setattr(poll.Source, "page", page_then_lose)
    output = run("poll", demo_project_dir, "-s", "erp", "--batch-size", "2", code=1)
    text = _lost(output, "erp", "poll", after="Polled")
    assert "erp │ 4 │ 4 │ 0 │ 0 │ 0 │ 0" in text, output  # page 2 in hand, then stopped
    assert pages == 2 and _loads(store.engine) == 1
    assert _holder(store.engine, "erp", "poll") == WORKER
    [cursor] = _cursor(store.engine)
    assert "0000000004" in cursor  # the worker goes on after the fourth row


# ---- accord broker consume


@pytest.fixture
def stream(demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stream]:
    _nats_or_skip()
    made = Stream()
    made.create()
    monkeypatch.setenv(NATS_ENV, NATS_URL)
    configure(demo_project_dir, crm={"sync": "realtime", "intake": broker_block(stream=made)})
    yield made
    made.delete()


def _stream_state(stream: Stream) -> tuple[int, bool]:
    """Messages in the stream, and whether the durable consumer exists (it is made on
    the first fetch: without it, nothing was delivered to anyone)."""

    async def look() -> tuple[int, bool]:
        client = await nats.connect(NATS_URL)
        js = client.jetstream()
        info = await js.stream_info(stream.name)
        try:
            await js.consumer_info(stream.name, stream.durable)
            bound = True
        except nats.js.errors.NotFoundError:
            bound = False
        await client.close()
        return info.state.messages, bound

    return asyncio.run(look())


def test_broker_consume_is_refused_while_a_worker_consumes(
    demo_project_dir: Path, store: Workspace, stream: Stream
) -> None:
    stream.publish(*(_body(crm_row(f"C{i}")) for i in range(3)))
    _as_worker(store.engine, "crm", "broker")

    _refusal(run("broker", "consume", demo_project_dir, "-s", "crm", code=1), "crm", "broker")
    assert _stream_state(stream) == (3, False) and _loads(store.engine) == 0

    _worker_done(store.engine, "crm", "broker")
    assert "Consumed" in run("broker", "consume", demo_project_dir, "-s", "crm")
    assert stream.consumer().num_pending == 0 and _free(store.engine, "crm", "broker")


def test_broker_consume_gives_the_lease_up_when_nats_cannot_be_reached(
    demo_project_dir: Path, store: Workspace, stream: Stream
) -> None:
    unreachable = {NATS_ENV: "nats://127.0.0.1:1"}
    failed = run("broker", "consume", demo_project_dir, "-s", "crm", code=1, env=unreachable)
    assert "cannot connect to NATS at nats://127.0.0.1:1" in failed
    assert _free(store.engine, "crm", "broker")
    assert _stream_state(stream) == (0, False)


@pytest.mark.usefixtures("short_lease")
def test_broker_consume_that_loses_its_lease_shows_what_it_stored(
    demo_project_dir: Path, store: Workspace, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        demo_project_dir,
        crm={
            "sync": "realtime",
            "intake": {"broker": broker_block(stream)["broker"] | {"batch_size": 2}},
        },
    )
    stream.publish(*(_body(crm_row(f"C{i}")) for i in range(5)))
    real_fetch = broker.Consumer.fetch

    def fetch_then_lose(self: broker.Consumer, *args: Any, **kwargs: Any) -> Any:
        report = real_fetch(self, *args, **kwargs)
        _lose_the_lease(store.engine, "crm", "broker")
        return report

    monkeypatch.setattr(broker.Consumer, "fetch", fetch_then_lose)
    output = run("broker", "consume", demo_project_dir, "-s", "crm", code=1)
    text = _lost(output, "crm", "broker", after="Consumed")
    assert "│ 2 │ 2 │ 0 │ 0 │ 0 │ 0 │" in text, output  # messages, new: the first batch
    with store.engine.connect() as conn:
        heads = select(record_head.c.source_id).where(record_head.c.system == "crm")
        assert set(conn.execute(heads).scalars()) == {"C0", "C1"}
    assert _holder(store.engine, "crm", "broker") == WORKER
    consumer = stream.consumer()  # two stored and acknowledged; three wait for the worker
    assert (consumer.num_pending, consumer.num_ack_pending) == (3, 0)
