"""The one-shot intake commands (`accord drop scan`, `accord poll`, `accord broker
consume`) take the channel's lease in `intake_schedule`, as a worker's scheduled run
does: while a worker holds it they are refused with who and since when, reading
nothing; they give it up when they end, well or not (Ctrl-C too)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest
from sqlalchemy import Engine, func, select

from accord.intake import poll
from accord.runtime.scheduler import LEASE
from accord.store import intake_schedule
from accord.store.engine import writing
from accord.store.tables import load, poll_cursor
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


def _loads(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(load)).scalar_one())


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
