"""The scale-out mode's bus (`sync/bus.py`) against a real NATS JetStream server, on
both stores: the relay publishes the outbox in order, once, as a chain; a target's feed
plans from the messages exactly once whatever the bus does (a message twice, out of
order, lost, redelivered after a crash), and catches up from the outbox when the relay
is silent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import nats
import pytest
from hypothesis import given
from sqlalchemy import Engine, select

from accord.settings import Settings
from accord.store import outbox
from accord.store.engine import writing
from accord.store.outbox import Heading
from accord.store.tables import sync_delivery
from accord.sync.bus import (
    RELAY,
    BusConfig,
    BusFeed,
    BusUnavailable,
    Message,
    Relay,
    configured,
    partition,
)
from accord.sync.dispatch import TargetDispatcher
from accord.workspace import Workspace
from tests.sync.helpers import with_billing_delivery
from tests.sync.jetstream import NATS_URL, delete_stream, jetstream_available

# billing is configured, never called: these tests plan, they do not send
DELIVER = """
    deliver:
      http: {url: "http://127.0.0.1:9", resource: accounts, token_env: ACCORD_TEST_UNUSED}
      fields: {first_name: given_name, phone: phone, town: city}
"""


@pytest.fixture
def bus() -> Iterator[BusConfig]:
    """A bus of the test's own (its project name gives it a stream of its own)."""
    jetstream_available()
    config = BusConfig([NATS_URL], f"test-{uuid.uuid4().hex[:10]}", 4)
    yield config
    delete_stream(config.stream)


@pytest.fixture
def billing(engine: Engine, demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("ACCORD_TEST_UNUSED", "x")
    return with_billing_delivery(engine, demo_project_dir, DELIVER)


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def _stream(config: BusConfig) -> list[tuple[dict[str, str], Message]]:
    """Every message in the stream: its headers and what it carries, in order."""

    async def read() -> list[tuple[dict[str, str], Message]]:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        js = client.jetstream()
        info = await js.stream_info(config.stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await js.get_msg(config.stream, seq)
            found.append((dict(raw.headers or {}), Message.read(raw.data or b"")))
        await client.close()
        return found

    return list(_run(read()))


def _publish(config: BusConfig, messages: list[tuple[str, bytes]]) -> None:
    """Publish raw messages (message id, body) as a misbehaving bus would deliver them."""

    async def send() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        js = client.jetstream()
        with contextlib.suppress(nats.js.errors.BadRequestError):  # made by a relay
            await js.add_stream(name=config.stream, subjects=[config.subjects])
        for msg_id, body in messages:
            await js.publish(
                f"accord.{config.token}.changes.0", body, headers={"Nats-Msg-Id": msg_id}
            )
        await client.close()

    _run(send())


def _changes(engine: Engine, count: int, *, field: str = "phone") -> list[int]:
    """Record `count` golden changes (one customer each) in the outbox; their ids."""
    before = 0
    with writing(engine) as conn:
        before = outbox.last_id(conn)
        outbox.record(
            conn,
            [
                {
                    "golden_id": f"G-{before + i:06d}",
                    "change": "updated",
                    "data": {field: str(i)},
                    "fields": [field],
                }
                for i in range(count)
            ],
        )
    with engine.connect() as conn:
        return [c.id for c in outbox.after(conn, before, count + 1)]


def _planned(engine: Engine, target: str = "billing") -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(sync_delivery.c.change_id)
                .where(sync_delivery.c.target == target)
                .order_by(sync_delivery.c.change_id)
            ).scalars()
        )


def _chain(engine: Engine, count: int) -> list[tuple[str, bytes]]:
    """The first `count` changes of the outbox as the relay publishes them: (message id,
    body naming the change before)."""
    with engine.connect() as conn:
        headings = outbox.headings_after(conn, 0, count)
    previous = [0, *(h.id for h in headings[:-1])]
    pairs = zip(headings, previous, strict=True)
    return [(f"change-{h.id}", Message(h, before).body()) for h, before in pairs]


def _relay_once(engine: Engine, bus: BusConfig) -> int:
    relay = Relay(engine, bus, owner="r")
    try:
        return relay.step()
    finally:
        relay.close()


def _dispatcher(workspace: Workspace, feed: BusFeed) -> TargetDispatcher:
    return TargetDispatcher(workspace.engine, workspace.project, "billing", feed=feed)


def _plan_all(dispatcher: TargetDispatcher, feed: BusFeed, *, seconds: float = 5.0) -> int:
    """Plan until nothing more comes within a short wait."""
    planned = 0
    deadline = time.monotonic() + seconds
    stop = threading.Event()
    while time.monotonic() < deadline:
        planned += dispatcher.plan()
        feed.wait(stop, 0.3)
        if not feed._waiting:  # nothing more came
            planned += dispatcher.plan()
            break
    return planned


# ---- pure parts


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=1024))
def test_a_customer_s_partition_is_in_range(golden_id: str, partitions: int) -> None:
    assert 0 <= partition(golden_id, partitions) < partitions


def test_a_customer_s_partition_is_the_same_in_every_process() -> None:
    """The relay and the feeds run in processes of their own: a salted hash (Python's
    `hash`) would pass any test run in one process, and differ in another."""
    ids = [f"C{n:07d}" for n in range(1, 200)]
    code = (
        "import sys; from accord.sync.bus import partition; "
        "print(*(partition(g, 16) for g in sys.argv[1:]))"
    )
    for seed in ("1", "2"):
        other = subprocess.run(
            [sys.executable, "-c", code, *ids],
            env=os.environ | {"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert other.stdout.split() == [str(partition(g, 16)) for g in ids]


@given(
    st.integers(min_value=1, max_value=2**62),
    st.integers(min_value=0, max_value=2**62),
    st.text(max_size=40),
    st.sampled_from(["created", "updated", "merged", "retired", "repair"]),
    st.none() | st.lists(st.text(max_size=12), max_size=5),
    st.none() | st.text(max_size=12),
)
def test_a_message_carries_its_heading_and_previous_exactly(  # noqa: PLR0917
    change_id: int,
    previous: int,
    golden_id: str,
    change: str,
    fields: list[str] | None,
    target: str | None,
) -> None:
    message = Message(Heading(change_id, golden_id, change, fields, target), previous)
    assert Message.read(message.body()) == message


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b'{"id": 1}', b'{"id": "x", "previous": 0}', b"\xff\xfe"]
)
def test_a_body_that_is_not_a_change_is_refused_with_the_reason(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a change message"):
        Message.read(body)


def test_the_bus_is_off_unless_its_url_is_set() -> None:
    assert configured("demo", Settings(bus_url=None)) is None
    config = configured("Demo Co", Settings(bus_url="nats://a:4222, nats://b:4222"))
    assert config is not None
    assert config.urls == ["nats://a:4222", "nats://b:4222"]
    assert config.stream == "ACCORD_DEMO_CO"
    assert config.subject("G-1").startswith("accord.demo_co.changes.")


# ---- the relay


def test_the_relay_publishes_the_outbox_in_order_as_a_chain_once(
    engine: Engine, bus: BusConfig
) -> None:
    ids = _changes(engine, 25)
    relay = Relay(engine, bus, owner="relay-a")
    assert relay.step() == 25
    assert relay.step() == 0  # nothing new
    more = _changes(engine, 5)
    assert relay.step() == 5
    relay.close()

    stream = _stream(bus)
    assert [m.heading.id for _, m in stream] == ids + more
    assert [m.previous for _, m in stream] == [0, *(ids + more)[:-1]]
    assert [h["Nats-Msg-Id"] for h, _ in stream] == [f"change-{i}" for i in ids + more]
    with engine.connect() as conn:
        assert outbox.cursor(conn, RELAY) == more[-1]


def test_a_relay_that_crashed_before_moving_on_publishes_again_and_the_stream_holds_each_once(
    engine: Engine, bus: BusConfig
) -> None:
    ids = _changes(engine, 10)
    first = Relay(engine, bus, owner="relay-a")
    assert first.step() == 10
    with writing(engine) as conn:  # as if it died after publishing, before its commit
        outbox.advance(conn, RELAY, 0)
        outbox.release(conn, RELAY, first.owner)
    second = Relay(engine, bus, owner="relay-b")
    assert second.step() == 10
    first.close()
    second.close()
    assert [m.heading.id for _, m in _stream(bus)] == ids


def test_one_relay_at_a_time(engine: Engine, bus: BusConfig) -> None:
    _changes(engine, 3)
    first, second = Relay(engine, bus, owner="a"), Relay(engine, bus, owner="b")
    assert first.step() == 3
    _changes(engine, 2)
    assert second.step() == 0  # the first holds the relay
    assert first.step() == 2
    first.close()
    second.close()


def test_a_relay_without_a_server_says_what_to_do_and_keeps_its_place(engine: Engine) -> None:
    _changes(engine, 3)
    relay = Relay(engine, BusConfig(["nats://127.0.0.1:1"], "nobody", 4), owner="a")
    with pytest.raises(BusUnavailable) as raised:
        relay.step()
    assert "ACCORD_BUS_URL" in (raised.value.hint or "")
    relay.close()
    with engine.connect() as conn:
        assert outbox.cursor(conn, RELAY) == 0


# ---- a target's feed


def test_a_feed_plans_what_the_relay_published_exactly_once(
    billing: Workspace, bus: BusConfig
) -> None:
    engine = billing.engine
    ids = _changes(engine, 30)
    _changes(engine, 5, field="email")  # not delivered to billing: planned for nobody
    _relay_once(engine, bus)
    feed = BusFeed(bus, "billing")
    dispatcher = _dispatcher(billing, feed)
    assert _plan_all(dispatcher, feed) == 30
    assert _planned(engine) == ids
    with engine.connect() as conn:
        assert outbox.cursor(conn, "billing") == outbox.last_id(conn)
    dispatcher.close()


def test_messages_delivered_twice_are_planned_once(billing: Workspace, bus: BusConfig) -> None:
    engine = billing.engine
    ids = _changes(engine, 6)
    _relay_once(engine, bus)
    # the bus brings some again (other message ids: past the duplicate window)
    with engine.connect() as conn:
        again = outbox.headings_after(conn, 0, 3)
    _publish(
        bus,
        [(f"again-{h.id}", Message(h, ids[i - 1] if i else 0).body()) for i, h in enumerate(again)],
    )
    feed = BusFeed(bus, "billing")
    dispatcher = _dispatcher(billing, feed)
    _plan_all(dispatcher, feed)
    assert _planned(engine) == ids
    assert feed.skipped == 3
    dispatcher.close()


def test_messages_out_of_order_leave_no_change_out_and_plan_none_twice(
    billing: Workspace, bus: BusConfig
) -> None:
    engine = billing.engine
    ids = _changes(engine, 8)
    chain = _chain(engine, 8)
    feed = BusFeed(bus, "billing")
    dispatcher = _dispatcher(billing, feed)
    for order in ([5, 6, 2], [7, 0, 1, 3, 4]):  # the bus brings them shuffled, in two goes
        _publish(bus, [chain[i] for i in order])
        _plan_all(dispatcher, feed)
    assert _planned(engine) == ids
    assert feed.filled == 4  # 0 and 1 before 2, 3 and 4 before 5, from the outbox
    assert feed.skipped == 4  # and those four came later
    dispatcher.close()


def test_a_lost_message_is_planned_from_the_outbox(billing: Workspace, bus: BusConfig) -> None:
    engine = billing.engine
    ids = _changes(engine, 4)
    chain = _chain(engine, 4)
    _publish(bus, [chain[0], chain[1], chain[3]])  # the third never comes
    feed = BusFeed(bus, "billing")
    dispatcher = _dispatcher(billing, feed)
    _plan_all(dispatcher, feed)
    assert _planned(engine) == ids
    assert feed.filled == 1
    dispatcher.close()


def test_a_message_that_is_not_a_change_is_skipped_and_what_it_hid_is_planned(
    billing: Workspace, bus: BusConfig
) -> None:
    engine = billing.engine
    ids = _changes(engine, 3)
    _publish(bus, [("change-x", b"<html>not a change</html>"), _chain(engine, 3)[2]])
    feed = BusFeed(bus, "billing")
    dispatcher = _dispatcher(billing, feed)
    _plan_all(dispatcher, feed)
    assert _planned(engine) == ids
    dispatcher.close()


def test_messages_taken_by_a_worker_that_died_come_again_and_are_planned_once(
    billing: Workspace, bus: BusConfig
) -> None:
    engine = billing.engine
    ids = _changes(engine, 12)
    _relay_once(engine, bus)
    dying = BusFeed(bus, "billing", ack_wait=1.0)
    assert len(dying._fetch(2.0)) == 12  # taken, never planned nor acknowledged
    dying.close()  # the process is gone

    feed = BusFeed(bus, "billing", ack_wait=1.0)
    dispatcher = _dispatcher(billing, feed)
    time.sleep(1.5)  # ack_wait runs out: JetStream delivers them again
    _plan_all(dispatcher, feed)
    assert _planned(engine) == ids
    dispatcher.close()


def test_a_feed_hearing_nothing_catches_up_from_the_outbox(
    billing: Workspace, bus: BusConfig
) -> None:
    engine = billing.engine
    ids = _changes(engine, 7)  # no relay runs
    feed = BusFeed(bus, "billing", catch_up=2.0)
    dispatcher = _dispatcher(billing, feed)
    try:
        assert dispatcher.plan() == 0  # made just now: it waits for the bus first
        time.sleep(2.1)
        assert dispatcher.plan() == 7
    finally:
        dispatcher.close()
    assert _planned(engine) == ids


def test_a_feed_waits_for_a_change_and_wakes_when_one_is_published(
    billing: Workspace, bus: BusConfig
) -> None:
    engine = billing.engine
    feed = BusFeed(bus, "billing")
    dispatcher = _dispatcher(billing, feed)
    stop = threading.Event()
    relay = Relay(engine, bus, owner="r")
    relaying = threading.Thread(target=relay.run, args=(stop,))
    relaying.start()
    try:
        feed.wait(stop, 0.2)  # nothing yet: the consumer is made, the wait ends
        _changes(engine, 1)
        started = time.monotonic()
        feed.wait(stop, 10.0)
        waited = time.monotonic() - started
        assert dispatcher.plan() == 1
    finally:
        stop.set()
        relaying.join()
        dispatcher.close()
    assert waited < 5.0  # woken by the message, not by the end of the wait
