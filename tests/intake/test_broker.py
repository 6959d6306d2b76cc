"""The broker channel (`intake.broker`) against the real NATS JetStream at
127.0.0.1:4222 (or ACCORD_TEST_NATS_URL), on both stores: each test publishes to a
stream of its own, deleted afterwards. Stored once, acknowledged after the commit;
redelivered after a crash or a failed store and still stored once; poison messages
quarantined and acknowledged, never looping."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from accord.config.intake import BrokerIntake
from accord.errors import InputRejected, NotFound
from accord.govern.permissions import Actor, Role
from accord.intake import broker
from accord.intake.load import in_order
from accord.intake.mapping import RecordMapper
from accord.intake.readers import RawRecord
from accord.store import deliveries
from accord.store.tables import broker_delivery, load, quarantine, record_head, source_record
from accord.workspace import Workspace
from tests.factories import crm_row
from tests.services import require

NATS_URL = os.environ.get("ACCORD_TEST_NATS_URL", "nats://127.0.0.1:4222")
ACTOR = Actor("cli", "test", Role.ADMIN).label


def _nats_or_skip() -> None:
    async def probe() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        await client.jetstream().account_info()
        await client.close()

    require("NATS JetStream", NATS_URL, lambda: asyncio.run(probe()))


class Stream:
    """A stream of the test's own, and the consumer config pointing at it."""

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:12]
        self.name = f"ACCORD_TEST_{token}"
        self.subject = f"test{token}.customers"
        self.durable = f"accord-{token}"

    def publish(self, *bodies: bytes, headers: dict[str, str] | None = None) -> None:
        async def send() -> None:
            client = await nats.connect(NATS_URL)
            js = client.jetstream()
            for body in bodies:
                await js.publish(self.subject, body, headers=headers)
            await client.close()

        asyncio.run(send())

    def consumer(self) -> Any:
        async def info() -> Any:
            client = await nats.connect(NATS_URL)
            found = await client.jetstream().consumer_info(self.name, self.durable)
            await client.close()
            return found

        return asyncio.run(info())

    def create(self) -> None:
        async def add() -> None:
            client = await nats.connect(NATS_URL)
            await client.jetstream().add_stream(name=self.name, subjects=[self.subject])
            await client.close()

        asyncio.run(add())

    def delete(self) -> None:
        async def remove() -> None:
            client = await nats.connect(NATS_URL)
            await client.jetstream().delete_stream(self.name)
            await client.close()

        asyncio.run(remove())


def _configure(project_dir: Path, stream: Stream, **extra: str) -> None:
    block = {
        "url_env": "ACCORD_TEST_NATS_URL",
        "stream": stream.name,
        "subject": stream.subject,
        "durable": stream.durable,
        "batch_size": "100",
        "max_wait": "500ms",
        "ack_wait": "1s",
    } | extra
    lines = "".join(f"        {k}: {v}\n" for k, v in block.items())
    config = project_dir / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("  crm:\n", "  crm:\n    intake:\n      broker:\n" + lines, 1)
    config.write_text(text, encoding="utf-8")


@pytest.fixture
def stream(workspace: Workspace) -> Iterator[Stream]:
    _nats_or_skip()
    made = Stream()
    made.create()
    _configure(workspace.root, made)
    yield made
    made.delete()


def _consume(workspace: Workspace, **options: Any) -> broker.BrokerReport:
    return broker.consume_once(
        workspace.engine,
        workspace.project,
        "crm",
        actor=ACTOR,
        environ={"ACCORD_TEST_NATS_URL": NATS_URL},
        **options,
    )


def _count(workspace: Workspace, table: Any) -> int:
    with workspace.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _body(record: Any) -> bytes:
    return json.dumps(record).encode()


def test_published_records_are_stored_once_and_acknowledged(
    workspace: Workspace, stream: Stream
) -> None:
    stream.publish(*(_body(crm_row(f"C{i}")) for i in range(30)))
    report = _consume(workspace)
    assert (report.messages, report.new, report.quarantined) == (30, 30, 0)
    assert report.status == "done" and report.pending == 0
    assert _count(workspace, source_record) == 30
    consumer = stream.consumer()
    assert consumer.num_ack_pending == 0 and consumer.num_pending == 0
    assert _count(workspace, broker_delivery) == 0  # forgotten once acknowledged
    with workspace.engine.connect() as conn:
        row = conn.execute(select(load.c.channel, load.c.source_name)).one()
    assert row.channel == "broker" and row.source_name == f"nats {stream.name} seq 1-30"
    idle = _consume(workspace, timeout=0.2)
    assert (idle.status, idle.load_id, idle.messages) == ("idle", 0, 0)


def test_a_fetch_is_capped_by_max_messages(workspace: Workspace, stream: Stream) -> None:
    stream.publish(*(_body(crm_row(f"C{i}")) for i in range(5)))
    first = _consume(workspace, max_messages=2)
    assert (first.messages, first.pending) == (2, 3)
    assert _consume(workspace).messages == 3


def test_a_crash_between_commit_and_ack_stores_nothing_twice(
    workspace: Workspace, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream.publish(
        _body(crm_row("C1", City="Berlin")),
        _body(crm_row("C2")),
        _body(crm_row("C1", City="Hamburg")),  # C1 changed twice in the window
    )

    async def crash(*_: Any) -> None:
        raise KeyboardInterrupt  # the process dies before any ack is sent

    monkeypatch.setattr(broker, "_acknowledge", crash)
    with pytest.raises(KeyboardInterrupt):
        _consume(workspace)
    monkeypatch.undo()
    assert _count(workspace, source_record) == 3  # committed: C1 twice, in order, and C2
    time.sleep(1.3)  # ack_wait: 1s, then JetStream redelivers
    again = _consume(workspace)
    assert (again.messages, again.already_stored, again.load_id) == (3, 3, 0)
    assert _count(workspace, source_record) == 3
    with workspace.engine.connect() as conn:
        head = conn.execute(select(record_head.c.version).where(record_head.c.source_id == "C1"))
        assert head.scalar_one() == 2  # Hamburg, the latest, is current
    assert stream.consumer().num_ack_pending == 0


def test_a_failed_store_acknowledges_nothing_and_the_retry_stores_once(
    workspace: Workspace, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream.publish(*(_body(crm_row(f"C{i}")) for i in range(4)))

    def fail(*_: Any, **__: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("the database went away"))

    monkeypatch.setattr(deliveries, "remember_messages", fail)
    with pytest.raises(OperationalError):
        _consume(workspace)
    monkeypatch.undo()
    assert _count(workspace, source_record) == 0 and _count(workspace, load) == 0
    report = _consume(workspace)  # nak'ed: back at once, not after ack_wait
    assert (report.messages, report.new, report.already_stored) == (4, 4, 0)
    assert _count(workspace, source_record) == 4
    assert stream.consumer().num_ack_pending == 0


def test_poison_messages_are_quarantined_and_acknowledged(
    workspace: Workspace, stream: Stream
) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    stream.publish(
        b"not json",
        b"\xff\xfe\x00 binary",
        b"[1, 2, 3]",
        b'{"records": []}',
        b"{}" * 3,
        _body({"Id": "C9", "Deep": deep}),
        _body(crm_row("C1", FirstName="a\x00b")),  # a NUL no store can hold
        _body(crm_row("C2")),
    )
    stream.publish(gzip.compress(_body(crm_row("C3"))), headers={"Content-Encoding": "gzip"})
    report = _consume(workspace)
    assert report.messages == 9 and report.new == 2  # C2, and C3 gzipped
    assert report.unreadable == 5 and report.quarantined == 7
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(quarantine.c.location, quarantine.c.reasons)).all()
    assert {r.location for r in rows} >= {f"{stream.name} seq 1", f"{stream.name} seq 7"}
    assert all("\x00" not in r.location for r in rows)
    assert stream.consumer().num_ack_pending == 0
    assert _consume(workspace, timeout=0.2).status == "idle"  # nothing comes back


def test_a_message_delivered_too_often_ends_in_quarantine(
    workspace: Workspace, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure_max_deliver(workspace, 2)
    stream.publish(_body(crm_row("C1")), headers={"Nats-Msg-Id": "crm-change-1"})

    def fail(*_: Any, **__: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("a bug that fails every time"))

    monkeypatch.setattr(deliveries, "remember_messages", fail)
    for _ in range(2):
        with pytest.raises(OperationalError):
            _consume(workspace)
    monkeypatch.undo()
    report = _consume(workspace)
    assert (report.over_delivered, report.quarantined, report.new) == (1, 1, 0)
    with workspace.engine.connect() as conn:
        entry = conn.execute(select(quarantine.c.location, quarantine.c.reasons)).one()
    assert entry.location == f"{stream.name} seq 1 msg-id 'crm-change-1'"
    assert entry.reasons[0]["code"] == "message.redelivered"
    assert stream.consumer().num_ack_pending == 0


def _configure_max_deliver(workspace: Workspace, times: int) -> None:
    config = workspace.root / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            "        ack_wait: 1s\n", f"        ack_wait: 1s\n        max_deliver: {times}\n"
        ),
        encoding="utf-8",
    )
    workspace._project = None  # read the files again


def test_batches_and_duplicates(workspace: Workspace, stream: Stream) -> None:
    batch = _body({"records": [crm_row("C1"), crm_row("C2"), crm_row("C1"), ["no"]]})
    stream.publish(batch, batch)  # the same batch published twice (no Nats-Msg-Id)
    stream.publish(_body(crm_row("C3")), _body(crm_row("C3")))
    report = _consume(workspace)
    assert report.messages == 4 and report.new == 3
    assert report.quarantined == 2 and report.already_quarantined == 1
    assert _count(workspace, source_record) == 3
    assert _count(workspace, quarantine) == 1
    with workspace.engine.connect() as conn:
        where = conn.execute(select(quarantine.c.location)).scalar_one()
    assert where == f"{stream.name} seq 1 records[3]"
    # published again later: unchanged, nothing stored
    stream.publish(batch)
    later = _consume(workspace)
    assert (later.unchanged, later.new, later.changed) == (3, 0, 0)  # C1 twice, C2
    assert later.already_quarantined == 1


def test_no_broker_block_no_stream_no_server(workspace: Workspace) -> None:
    with pytest.raises(NotFound, match="no broker"):
        _consume(workspace)
    missing = Stream()
    _configure(workspace.root, missing)
    workspace._project = None
    _nats_or_skip()
    with pytest.raises(InputRejected, match="no stream"):
        _consume(workspace)
    with pytest.raises(broker.BrokerUnavailable) as caught:
        broker.consume_once(
            workspace.engine,
            workspace.project,
            "crm",
            actor=ACTOR,
            environ={"ACCORD_TEST_NATS_URL": "nats://app:s3cret@127.0.0.1:1"},
        )
    assert "s3cret" not in str(caught.value) and "nats://127.0.0.1:1" in str(caught.value)


def test_the_server_url_comes_from_the_environment_or_is_local() -> None:
    config = BrokerIntake(stream="S", subject="a.>", durable="d")
    assert broker.server_urls(config, {}) == ["nats://127.0.0.1:4222"]
    assert broker.server_urls(config, {"NATS_URL": "nats://a:1, nats://b:2"}) == [
        "nats://a:1",
        "nats://b:2",
    ]
    assert broker.redacted("nats://u:p@host:4222") == "nats://host:4222"
    assert broker.redacted("tls://token@host") == "tls://host"


def _message(data: bytes, delivered: int = 1, headers: dict[str, str] | None = None) -> Msg:
    reply = f"$JS.ACK.S.d.{delivered}.7.7.1700000000000000000.0"
    return Msg(None, subject="a.b", reply=reply, data=data, headers=headers)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([None, "gzip", "br"]), st.text(max_size=30))
def test_any_message_is_records_or_one_quarantine_entry(
    data: bytes, encoding: str | None, message_id: str
) -> None:
    config = BrokerIntake(stream="S", subject="a.>", durable="d")
    headers = {"Nats-Msg-Id": message_id} | ({"Content-Encoding": encoding} if encoding else {})
    report = broker.BrokerReport(0, "crm", "test")
    records = broker._records(_message(data, headers=headers), config, 100, report)
    assert records
    for raw in records:
        assert raw.location.startswith("S seq 7")
        assert "\x00" not in raw.raw and "\x00" not in raw.location
        assert raw.fields is not None or raw.reasons
    if report.unreadable:
        assert len(records) == 1 and records[0].reasons[0].code == "message.unreadable"


@given(st.lists(st.sampled_from(["A", "B", "C", None]), max_size=30))
def test_rounds_hold_each_source_id_once_in_stream_order(ids: list[str | None]) -> None:
    class Mapper:
        def source_id(self, fields: dict[str, Any]) -> str | None:
            return fields.get("Id")

    records = [
        RawRecord(str(i), None if sid is None else {"Id": sid}, "") for i, sid in enumerate(ids)
    ]
    rounds = in_order(records, Mapper())  # type: ignore[arg-type]
    assert sorted(r.location for batch in rounds for r in batch) == sorted(
        r.location for r in records
    )
    for batch in rounds:
        named = [r.fields["Id"] for r in batch if r.fields is not None]
        assert len(named) == len(set(named))
    for sid in ("A", "B", "C"):
        order = [int(r.location) for batch in rounds for r in batch if r.fields == {"Id": sid}]
        assert order == sorted(order)


def test_the_mapper_reads_the_source_id_as_written(workspace: Workspace) -> None:
    mapper = RecordMapper(workspace.project.mapping("crm"), workspace.project.config.systems["crm"])
    assert mapper.source_id(crm_row("C7")) == "C7"


def test_the_cli_consumes_until_nothing_waits(
    demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from accord.cli.main import app  # noqa: PLC0415

    _nats_or_skip()
    made = Stream()
    made.create()
    try:
        _configure(demo_project_dir, made)
        monkeypatch.setenv("ACCORD_TEST_NATS_URL", NATS_URL)
        monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
        made.publish(*(_body(crm_row(f"C{i}")) for i in range(250)), b"not json")
        runner = CliRunner()
        once = runner.invoke(
            app, ["broker", "consume", str(demo_project_dir), "-s", "crm", "--once"]
        )
        assert once.exit_code == 0, once.output
        rest = runner.invoke(app, ["broker", "consume", str(demo_project_dir), "-s", "crm"])
        assert rest.exit_code == 0, rest.output
        assert "quarantined" in rest.output and made.consumer().num_pending == 0
        idle = runner.invoke(app, ["broker", "consume", str(demo_project_dir), "-s", "crm"])
        assert "nothing waiting" in idle.output
        missing = runner.invoke(app, ["broker", "consume", str(demo_project_dir), "-s", "erp"])
        assert missing.exit_code == 1 and "hint" in missing.output
    finally:
        made.delete()
