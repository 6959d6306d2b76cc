"""The scale-out mode's bus: golden changes carried from resolution to delivery through
NATS JetStream, when `ACCORD_BUS_URL` is set.

The outbox (`store/outbox.py`) stays the truth: a change is in it if and only if its
golden change committed. Two parts move it over the bus:

- The **relay** (`Relay`, one at a time in any worker process, held through the
  `@bus` row of `sync_cursor` as a target is) reads the outbox after its place and
  publishes every change, in order, to the stream `ACCORD_<PROJECT>` on the subject
  `accord.<project>.changes.<partition>`, where the partition is the golden id's
  (`partition`): a subscriber can follow some customers, and each customer's changes
  stay in one subject, in order. Each message has the JetStream id `change-<id>`
  (published again after a lost acknowledgement or a relay's crash, it is stored once
  within the stream's duplicate window) and names the change published before it
  (`previous`): the messages form a chain. The relay moves its place on only after
  JetStream has acknowledged the message.
- A **feed** per target (`BusFeed`, the dispatcher's `ChangeFeed`) reads the stream
  through a durable pull consumer of its own (`accord-deliver-<target>`: explicit acks,
  redelivery after `ack_wait`) and plans deliveries from the messages, with the
  target's cursor moved in the same transaction, then acknowledges them. A message at
  or behind the cursor (delivered twice, or redelivered after a crash between commit
  and acknowledgement) is acknowledged and skipped. A message whose `previous` is ahead
  of the cursor means earlier ones have not come (out of order, or lost with a stream
  that was cut): the changes between are read from the outbox, so nothing is skipped
  and nothing planned twice. A feed that has heard nothing for `CATCH_UP` plans from the
  outbox as well, so a relay that is down delays delivery but loses nothing.

The bus wakes a target's dispatcher as soon as a change is published (instead of its
polling the outbox), and lets delivery run in processes apart from resolution. One
target is still delivered by one process at a time (the fenced lease of
`dispatch.py`): a merge moves records from one customer to another, so two processes
writing one target's records for different customers at once could write a moved
record out of order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from sqlalchemy import Connection, Engine

from accord.errors import AccordError
from accord.intake import broker
from accord.settings import Settings
from accord.store import outbox
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.outbox import Heading
from accord.store.types import utcnow
from accord.sync import plan

if TYPE_CHECKING:
    from accord.sync.dispatch import TargetDispatcher

log = logging.getLogger(__name__)

RELAY = "@bus"  # the relay's place in the outbox and its lease (table sync_cursor)
RELAY_BATCH = 1_000  # changes the relay reads and publishes at a time
RELAY_LEASE = timedelta(seconds=30)
FETCH = 5_000  # messages a feed takes at a time
FILL_BATCH = 5_000  # changes a feed reads from the outbox at a time
ACK_WAIT = 30.0  # seconds before JetStream delivers an unacknowledged message again
DUPLICATE_WINDOW = 600.0  # seconds within which a message id is stored once
CATCH_UP = 30.0  # seconds of silence after which a feed reads the outbox itself
TIMEOUT = 5.0  # seconds for one request to the server


class BusUnavailable(AccordError):
    """The bus cannot be reached or used; what is in the store is kept."""


@dataclass(frozen=True)
class BusConfig:
    urls: list[str]
    project: str
    partitions: int

    @property
    def token(self) -> str:
        """The project's name as a subject token and stream name part."""
        return _token(self.project).lower() or "accord"

    @property
    def stream(self) -> str:
        return f"ACCORD_{self.token.upper()}"

    @property
    def subjects(self) -> str:
        return f"accord.{self.token}.changes.>"

    def subject(self, golden_id: str) -> str:
        return f"accord.{self.token}.changes.{partition(golden_id, self.partitions)}"

    def durable(self, target: str) -> str:
        return f"accord-deliver-{_token(target)}"


def _token(name: str) -> str:
    """`name` with what NATS does not take in a subject token or a name replaced."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def partition(golden_id: str, partitions: int) -> int:
    """The partition of a customer's changes: the same for one golden id everywhere."""
    return zlib.crc32(golden_id.encode()) % partitions


def configured(project: str, settings: Settings | None = None) -> BusConfig | None:
    """The bus of the environment (`ACCORD_BUS_URL`, `ACCORD_BUS_PARTITIONS`), or None
    when it is not set (everything runs from the store)."""
    settings = settings or Settings()
    if not settings.bus_url:
        return None
    urls = [u.strip() for u in settings.bus_url.split(",") if u.strip()]
    return BusConfig(urls, project, settings.bus_partitions)


@dataclass(frozen=True)
class Message:
    """A change as the bus carries it: enough to plan its deliveries."""

    heading: Heading
    previous: int  # the change published before it (0: the first)

    def body(self) -> bytes:
        h = self.heading
        return orjson.dumps(
            {
                "id": h.id,
                "previous": self.previous,
                "golden_id": h.golden_id,
                "change": h.change,
                "fields": h.fields,
                "target": h.target,
            }
        )

    @classmethod
    def read(cls, data: bytes) -> Message:
        """The message of a body; ValueError when it is not one the relay wrote."""
        try:
            raw = orjson.loads(data)
            heading = Heading(
                int(raw["id"]),
                str(raw["golden_id"]),
                str(raw["change"]),
                None if raw["fields"] is None else [str(f) for f in raw["fields"]],
                None if raw["target"] is None else str(raw["target"]),
            )
            return cls(heading, int(raw["previous"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a change message: {exc}") from None


class _Connection(broker.Connection):
    """The bus's connection: the project's stream made on first use (file storage, the
    duplicate window); a server that cannot be reached is BusUnavailable."""

    def __init__(self, config: BusConfig) -> None:
        super().__init__(config.urls)
        self.config = config

    async def client(self) -> Client:
        try:
            return await super().client()
        except broker.BrokerUnavailable as exc:
            raise BusUnavailable(
                exc.message,
                hint="start the NATS server (with JetStream), or correct ACCORD_BUS_URL; "
                "changes wait in the outbox meanwhile",
            ) from None

    async def on_connect(self, client: Client) -> None:
        js = client.jetstream(timeout=TIMEOUT)
        config = self.config
        try:
            await js.stream_info(config.stream)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # made meanwhile
                await js.add_stream(
                    StreamConfig(
                        name=config.stream,
                        subjects=[config.subjects],
                        duplicate_window=DUPLICATE_WINDOW,
                    )
                )


class Relay:
    """Publishes the outbox to the bus, in order, one relay at a time."""

    def __init__(self, engine: Engine, config: BusConfig, *, owner: str | None = None) -> None:
        self.engine = engine
        self.config = config
        owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.owner = f"{owner}/relay"
        self._bus = _Connection(config)
        self.published = 0
        self.holding = True  # false: another process relays (this one looks less often)

    def step(self) -> int:
        """Publish the next changes after the relay's place; returns how many (0: none
        waiting, or another process relays: see `holding`). Raises BusUnavailable."""
        with self.engine.connect() as conn:  # a read first: idle, it writes nothing
            if outbox.last_id(conn) <= outbox.cursor(conn, RELAY):
                return 0
        with writing(self.engine) as conn:
            self.holding = outbox.claim(conn, RELAY, self.owner, utcnow() + RELAY_LEASE)
            if not self.holding:
                return 0
            start = outbox.cursor(conn, RELAY)
            changes = outbox.headings_after(conn, start, RELAY_BATCH)
        if not changes:
            return 0
        previous = start
        messages = []
        for change in changes:
            messages.append(Message(change, previous))
            previous = change.id
        done: int = self._bus.run(self._publish(messages))
        if done:
            with writing(self.engine) as conn:
                if not outbox.hold(conn, RELAY, self.owner, utcnow() + RELAY_LEASE):
                    return 0  # another relay took over: it publishes from its place
                outbox.advance(conn, RELAY, messages[done - 1].heading.id)
        self.published += done
        if done < len(messages):
            raise BusUnavailable(
                f"the bus took {done} of {len(messages)} changes",
                hint="the rest are published again when the server answers",
            )
        return done

    async def _publish(self, messages: Sequence[Message]) -> int:
        """Publish in order, each after the one before is acknowledged; returns how many
        were (a prefix)."""
        client = await self._bus.client()
        js = client.jetstream(timeout=TIMEOUT)
        done = 0
        for message in messages:
            try:
                await js.publish(
                    self.config.subject(message.heading.golden_id),
                    message.body(),
                    headers={"Nats-Msg-Id": f"change-{message.heading.id}"},
                )
            except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
                log.warning("bus: publishing change %d failed: %s", message.heading.id, exc)
                await self._bus.drop()
                break
            done += 1
        return done

    def run(self, stop: threading.Event, *, idle: float = 0.05) -> None:
        """Relay until `stop`: at once while changes wait, every `idle` seconds when none
        do (a read of two numbers; every few seconds while another process relays); a
        failure is logged and tried again after a pause growing to 5 s."""
        pause = 0.5
        while not stop.is_set():
            try:
                published = self.step()
                pause = 0.5
            except Exception as exc:  # noqa: BLE001  (the store or the bus: try again)
                log.warning("bus relay: %s; trying again in %.1f s", exc, pause)
                stop.wait(pause)
                pause = min(pause * 2, 5.0)
                continue
            if not published:
                # another relay's lease runs out at most RELAY_LEASE after its last step
                stop.wait(idle if self.holding else min(5.0, RELAY_LEASE.total_seconds() / 2))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception), writing(self.engine) as conn:  # best effort
            outbox.release(conn, RELAY, self.owner)
        self._bus.close()


class BusFeed:
    """A target's changes, taken from the bus (see the module's text)."""

    def __init__(
        self,
        config: BusConfig,
        target: str,
        *,
        ack_wait: float = ACK_WAIT,
        catch_up: float = CATCH_UP,
    ) -> None:
        self.config = config
        self.target = target
        self.ack_wait = ack_wait
        self.catch_up = catch_up
        self._bus = _Connection(config)
        self._subscription: Any = None
        self._waiting: list[Msg] = []  # fetched, not yet planned
        self._heard = time.monotonic()  # when a message last came
        self.skipped = 0  # messages at or behind the cursor: delivered twice
        self.filled = 0  # changes read from the outbox for a gap in the chain

    # ---- ChangeFeed

    def plan(self, dispatcher: TargetDispatcher) -> int:
        """Plan the messages waiting (and any gap before them from the outbox), move the
        cursor, commit, then acknowledge. Raises BusUnavailable."""
        messages = self._waiting or self._fetch(0.01)
        self._waiting = []
        catch_up = not messages and time.monotonic() - self._heard > self.catch_up
        if not messages and not catch_up:
            return 0
        planned = 0
        with writing(dispatcher.engine) as conn:
            dispatcher.fence(conn, take=True)
            cursor = dispatcher.restart_if_pruned(conn)
            wanted: list[tuple[int, str]] = []
            for message in sorted(self._read(messages), key=lambda m: m.heading.id):
                if message.heading.id <= cursor:
                    self.skipped += 1
                    continue
                if message.previous > cursor:
                    cursor = self._fill(conn, dispatcher, cursor, message.heading.id, wanted)
                    if message.heading.id <= cursor:
                        continue
                wanted += plan.wanted([message.heading], dispatcher.config, self.target)
                cursor = message.heading.id
            if catch_up:
                self._heard = time.monotonic()
                cursor = self._fill(conn, dispatcher, cursor, None, wanted)
            sync_store.plan(conn, self.target, wanted)
            outbox.advance(conn, self.target, cursor)
            planned = len(wanted)
        if messages:
            self._bus.run(self._acknowledge(messages))
        return planned

    def wait(self, stop: threading.Event, seconds: float) -> None:
        """Wait up to `seconds` for a message (kept for the next `plan`), or `stop`."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self._waiting:
            left = deadline - time.monotonic()
            if left <= 0.001:
                return
            try:
                self._waiting = self._fetch(min(left, 1.0))
            except BusUnavailable as exc:
                log.warning("%s: %s", self.target, exc)
                stop.wait(min(left, 1.0))

    def close(self) -> None:
        self._subscription = None
        self._bus.close()

    # ----

    def _read(self, messages: Sequence[Msg]) -> list[Message]:
        read = []
        for raw in messages:
            try:
                read.append(Message.read(raw.data))
            except ValueError as exc:  # not the relay's: nothing to plan from it
                log.error(  # noqa: TRY400  (the reason is the message)
                    "%s: a message on %s is not a change: %s", self.target, raw.subject, exc
                )
        return read

    def _fill(
        self,
        conn: Connection,
        dispatcher: TargetDispatcher,
        cursor: int,
        before: int | None,
        wanted: list[tuple[int, str]],
    ) -> int:
        """Plan the outbox's changes after `cursor` (and before `before`, when given);
        returns the new cursor."""
        while True:
            changes = outbox.headings_after(conn, cursor, FILL_BATCH, below=before)
            if not changes:
                return cursor
            self.filled += len(changes)
            wanted.extend(plan.wanted(changes, dispatcher.config, self.target))
            cursor = changes[-1].id
            if len(changes) < FILL_BATCH:
                return cursor

    def _fetch(self, timeout: float) -> list[Msg]:
        messages: list[Msg] = self._bus.run(self._pull(timeout))
        if messages:
            self._heard = time.monotonic()
        return messages

    async def _pull(self, timeout: float) -> list[Msg]:
        client = await self._bus.client()
        if self._subscription is None:
            self._subscription = await self._bind(client)
        try:
            found: list[Msg] = await self._subscription.fetch(FETCH, timeout=timeout)
        except TimeoutError:  # nats.errors.TimeoutError is one too: nothing waiting
            return []
        except nats.errors.Error as exc:
            self._subscription = None
            await self._bus.drop()
            raise BusUnavailable(
                f"{self.target}: lost the bus ({type(exc).__name__})",
                hint="the changes wait in the stream and the outbox; delivery goes on "
                "when the server answers",
            ) from None
        return found

    async def _bind(self, client: Client) -> Any:
        """The target's durable consumer, made on first use."""
        js = client.jetstream(timeout=TIMEOUT)
        config, durable = self.config, self.config.durable(self.target)
        try:
            await js.consumer_info(config.stream, durable)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(
                config.stream,
                ConsumerConfig(
                    durable_name=durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.ack_wait,
                    max_deliver=-1,
                    max_ack_pending=4 * FETCH,
                    filter_subject=config.subjects,
                ),
            )
        return await js.pull_subscribe_bind(durable=durable, stream=config.stream)

    async def _acknowledge(self, messages: Sequence[Msg]) -> None:
        """Acknowledge planned messages. One not acknowledged (the connection lost) is
        delivered again and skipped then: it is behind the cursor."""
        try:
            for message in messages:
                await message.ack()
            client = await self._bus.client()
            await client.flush()
        except (nats.errors.Error, OSError) as exc:
            log.warning("%s: acknowledging failed (%s); they come again", self.target, exc)
            self._subscription = None
            await self._bus.drop()


def feed(project: str, target: str, settings: Settings | None = None) -> BusFeed | None:
    """A target's feed on the environment's bus, or None without one."""
    config = configured(project, settings)
    return None if config is None else BusFeed(config, target)
