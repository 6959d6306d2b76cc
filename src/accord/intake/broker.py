"""The broker channel: a system publishes its changes to a NATS JetStream stream, and
Accord pulls them through a durable consumer, a batch at a time.

Each message is one record (a JSON object) or a batch (`{"records": [...]}`), read by
the push API's reader with its limits (`push.read_batch`); a gzip body says so in a
`Content-Encoding` header. One fetch is stored in ONE transaction, as one load of
channel "broker", through the same `Batcher` as files and pushes; only after the commit
are the messages acknowledged. So:

- a store failure acknowledges nothing: the messages are nak'ed and come again;
- a message that cannot be read at all (not JSON, too big, not a record) is quarantined
  whole, in that transaction, and acknowledged: a poison message does not loop;
- a message delivered more than `max_deliver` times (it made every attempt fail, or
  crash) is quarantined whole without being read again, and acknowledged. Accord counts
  the deliveries itself and asks JetStream for unlimited ones: JetStream's own
  max_deliver drops a message silently, and nothing may be lost without a trace;
- a crash between the commit and the acks redelivers messages already stored: each
  stored message is noted (`broker_delivery`, by stream, sequence and publish time) in
  the transaction that stored it, so a redelivery is recognized and only acknowledged;
  the notes are deleted once the acks are sent. Batcher's content hash would make an
  identical record "unchanged" anyway, but not a record changed twice in the window,
  which would otherwise come back as its older version.

Within a fetch, messages are applied in stream order: several changes of one record
become versions in that order (not one kept and the rest quarantined as repeats, as in a
file). Across consumers sharing one durable, JetStream does not keep order: run one
consumer per durable where order matters.

Backpressure (`intake/backpressure.py`): before each fetch the consumer reads the work
queue's backlog (at most once a second); at `ACCORD_MAX_BACKLOG` records waiting to be
matched, the bound the push API answers 503 at, it fetches nothing and reports "paused"
(`Consumer.pause` says why). The messages stay in the stream, unacknowledged: the broker
is the buffer, and nothing is lost. It fetches again once the backlog is below 90% of the
bound. The caller says so (the scheduler logs a pause's start and end once each, with
what to do; `accord broker consume` stops and says why).

The rest of Accord is synchronous. A `Consumer` keeps one connection and one pull
subscription open across fetches, on an asyncio event loop of its own, and hands each
fetch back as a report: the scheduler (`runtime/scheduler.py`) keeps one open for as long
as it consumes a realtime system's stream, and `accord broker consume` for as long as
messages wait. `consume_once` is one fetch on a consumer of its own. Nothing is kept
between fetches but the connection: what is stored and acknowledged is decided per fetch,
so a consumer that is closed, loses its connection or dies loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Engine

from accord.config.intake import BrokerIntake
from accord.config.loader import Project
from accord.errors import AccordError, InputRejected, NotFound
from accord.intake import push
from accord.intake.backpressure import BacklogReading, Gate, Pause
from accord.intake.load import Batcher, LoadReport, begin_load, end_load
from accord.intake.mapping import RecordMapper
from accord.intake.readers import RawRecord, keep
from accord.intake.reasons import Reason
from accord.settings import Settings
from accord.store import deliveries
from accord.store.engine import writing

DEFAULT_URL = "nats://127.0.0.1:4222"
CONNECT_TIMEOUT = 5.0  # seconds
MAX_MESSAGE_ID_CHARS = 100  # of a Nats-Msg-Id kept in a location


class BrokerUnavailable(AccordError):
    """The NATS server cannot be reached; nothing was fetched or stored."""


@dataclass
class BrokerReport(LoadReport):
    """A load's counts, and what became of the messages (not the records) fetched."""

    messages: int = 0  # fetched
    already_stored: int = 0  # redelivered after a commit whose acks were lost: acked only
    unreadable: int = 0  # quarantined whole: not JSON, too big, not a record or batch
    over_delivered: int = 0  # delivered more than max_deliver times: quarantined whole
    pending: int = 0  # left in the stream for this consumer after this fetch


def settings(project: Project, system: str) -> BrokerIntake:
    """The system's broker block (NotFound when it has none)."""
    config = project.config.systems.get(system)
    if config is None or config.intake.broker is None:
        raise NotFound(
            f"{system!r} has no broker to consume from",
            hint="give the system an intake: broker: block (stream, subject, durable) in "
            "accord.yaml",
        )
    return config.intake.broker


class _Located(Protocol):
    @property
    def url_env(self) -> str: ...


def server_urls(config: _Located, environ: Mapping[str, str]) -> list[str]:
    """The servers to connect to: the comma-separated URLs in the environment variable
    `url_env`, or the local server when it is not set."""
    value = environ.get(config.url_env, "").strip()
    return [u.strip() for u in value.split(",") if u.strip()] if value else [DEFAULT_URL]


def redacted(url: str) -> str:
    """A server URL fit for a message or a log: without user, password or token."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def consume_once(
    engine: Engine,
    project: Project,
    system: str,
    *,
    actor: str,
    max_messages: int | None = None,
    timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
    max_backlog: int | None = None,
) -> BrokerReport:
    """Fetch what is waiting for the system's durable consumer (up to `max_messages`,
    by default the block's batch_size, waiting at most `timeout` seconds, by default
    max_wait), store it in one transaction and acknowledge it; see the module's text.
    A report with status "idle" and load_id 0 means nothing was waiting; "paused", that
    the backlog is at the bound (`max_backlog`, by default ACCORD_MAX_BACKLOG) and
    nothing was fetched. Connects and closes: to fetch again and again, keep a
    `Consumer` open instead."""
    with Consumer(
        engine, project, system, actor=actor, environ=environ, max_backlog=max_backlog
    ) as consumer:
        return consumer.fetch(max_messages=max_messages, timeout=timeout)


class Consumer:
    """One connection to NATS and one pull subscription on the system's durable
    consumer, kept open across fetches (a context manager; `close` ends both). Each
    `fetch` stores one batch in one transaction and acknowledges it after the commit,
    unless the backlog is at the bound (see the module's text).
    Raises BrokerUnavailable when the server cannot be reached, on opening or later;
    the consumer is then of no further use: close it and open another.

    `max_backlog`: the bound (default: ACCORD_MAX_BACKLOG; 0: none); `reading`: the
    backlog's reading, which consumers of one process may share."""

    def __init__(
        self,
        engine: Engine,
        project: Project,
        system: str,
        *,
        actor: str,
        environ: Mapping[str, str] | None = None,
        max_backlog: int | None = None,
        reading: BacklogReading | None = None,
    ) -> None:
        self.engine = engine
        self.project = project
        self.system = system
        self.actor = actor
        self.config = settings(project, system)
        project.mapping(system)  # a system without a mapping fails before connecting
        self.urls = server_urls(self.config, os.environ if environ is None else environ)
        bound = Settings().max_backlog if max_backlog is None else max_backlog
        self.gate = Gate(bound)
        self.reading = reading or BacklogReading()
        self.pauses = 0  # times the backlog made it stop fetching
        self._paused_before = 0.0  # seconds, in the pauses that ended
        self._paused_since: float | None = None
        self._loop: asyncio.Runner | None = None
        self._client: Client | None = None
        self._subscription: Any = None

    def __enter__(self) -> Consumer:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect and bind to the durable consumer (made on first use)."""
        self._loop = asyncio.Runner()
        try:
            self._client = self._loop.run(_connect(self.urls))
            self._subscription = self._loop.run(
                _subscription(self._client.jetstream(), self.config)
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection (unacknowledged messages come again after ack_wait)."""
        loop, client = self._loop, self._client
        self._loop = self._client = self._subscription = None
        if loop is None:
            return
        try:
            if client is not None and not client.is_closed:
                loop.run(client.close())
        except Exception:  # noqa: BLE001, S110  (closing a connection already lost)
            pass
        finally:
            loop.close()

    @property
    def pause(self) -> Pause | None:
        """Why the last `fetch` fetched nothing, when the backlog was the reason."""
        return self.gate.pause

    def fetch(
        self, *, max_messages: int | None = None, timeout: float | None = None
    ) -> BrokerReport:
        """Fetch up to `max_messages` (default: the block's batch_size), waiting at most
        `timeout` seconds (default: max_wait), store them and acknowledge them; a report
        with status "idle" when nothing was waiting, "paused" (at once, nothing fetched)
        when the backlog is at the bound."""
        limit = max_messages or self.config.batch_size
        if limit < 1:
            raise InputRejected("max_messages must be at least 1")
        wait = self.config.max_wait if timeout is None else timeout
        if self._loop is None or self._client is None:
            raise AccordError(
                "the broker consumer is not open", hint="open it with `with Consumer(...)`"
            )
        if self._held_back():
            return BrokerReport(0, self.system, f"nats {self.config.stream}", status="paused")
        return self._loop.run(self._fetch(self._client, limit, wait))

    def waiting(self) -> int:
        """Messages of the subject this consumer has not yet been given (JetStream's
        num_pending; those given and not yet acknowledged are not counted)."""
        if self._loop is None or self._client is None:
            raise AccordError(
                "the broker consumer is not open", hint="open it with `with Consumer(...)`"
            )
        js = self._client.jetstream()
        try:
            info = self._loop.run(js.consumer_info(self.config.stream, self.config.durable))
        except nats.errors.Error as exc:
            raise self._lost(exc) from None
        return int(info.num_pending)

    def paused_seconds(self) -> float:
        """How long the backlog has kept this consumer from fetching, in all."""
        since = self._paused_since
        return self._paused_before + (0.0 if since is None else time.monotonic() - since)

    def _held_back(self) -> bool:
        """Read the backlog (at most once a second) and say whether to fetch nothing;
        count the pauses and how long they lasted."""
        if self.gate.bound <= 0:
            return False
        was = self.gate.pause
        pause = self.gate.update(self.reading.backlog(self.engine))
        now = time.monotonic()
        if pause is not None and was is None:
            self.pauses += 1
            self._paused_since = now
        elif pause is None and self._paused_since is not None:
            self._paused_before += now - self._paused_since
            self._paused_since = None
        return pause is not None

    async def _fetch(self, client: Client, limit: int, wait: float) -> BrokerReport:
        config, system = self.config, self.system
        if client.is_closed:
            raise self._lost(None)
        try:
            messages = await self._subscription.fetch(limit, timeout=wait)
        except TimeoutError:  # nats.errors.TimeoutError is one too: nothing waiting
            messages = []
        except nats.errors.Error as exc:
            raise self._lost(exc) from None
        if not messages:
            return BrokerReport(0, system, f"nats {config.stream}", status="idle")
        try:
            report, keys = _store(
                self.engine,
                self.project,
                system,
                config=config,
                messages=messages,
                actor=self.actor,
            )
        except BaseException:
            await _redeliver(client, messages)
            raise
        try:
            await _acknowledge(client, messages)
        except nats.errors.Error as exc:
            # stored and noted in broker_delivery: the redelivery is recognized and acked
            raise self._lost(exc) from None
        with writing(self.engine) as conn:
            deliveries.forget_messages(conn, system, keys)
        return report

    def _lost(self, error: Exception | None) -> BrokerUnavailable:
        where = ", ".join(redacted(u) for u in self.urls)
        cause = "" if error is None else f": {type(error).__name__}"
        return BrokerUnavailable(
            f"lost the connection to NATS at {where}{cause}",
            hint="check that the server is up; what was stored is kept, and what was not "
            "acknowledged is delivered again to the next consumer",
        )


class Connection:
    """One connection to NATS on an asyncio loop of its own (the rest of Accord is
    synchronous), made again on first use after it was lost or dropped: sync out's NATS
    channel and the scale-out mode's bus each keep one. `client` raises
    BrokerUnavailable; `on_connect` is awaited with each new connection."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._loop: asyncio.Runner | None = None
        self._client: Client | None = None

    def run(self, coroutine: Any) -> Any:
        """Run `coroutine` on the connection's loop, to its end."""
        if self._loop is None:
            self._loop = asyncio.Runner()
        return self._loop.run(coroutine)

    async def client(self) -> Client:
        if self._client is None or not self._client.is_connected:
            await self.drop()
            self._client = await _connect(self.urls)
            await self.on_connect(self._client)
        return self._client

    async def on_connect(self, client: Client) -> None:
        """What a new connection needs first (nothing here)."""

    async def drop(self) -> None:
        """Close the connection (a broken one too); the next `client` connects again."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                await client.close()

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run(self.drop())
            self._loop.close()
            self._loop = None


async def _connect(urls: list[str]) -> Client:
    """A connection to the servers (the first that answers); BrokerUnavailable, with
    what to do, when none does."""

    async def quiet(_: Exception) -> None:
        return None  # a failure to connect is raised below, with what to do

    try:
        return await nats.connect(
            servers=urls,
            name="accord",
            connect_timeout=CONNECT_TIMEOUT,
            allow_reconnect=False,
            max_reconnect_attempts=1,  # 0 would mean: try forever
            error_cb=quiet,
        )
    except Exception as exc:  # noqa: BLE001  (any failure to connect means the same)
        where = ", ".join(redacted(u) for u in urls)
        raise BrokerUnavailable(
            f"cannot connect to NATS at {where}: {type(exc).__name__}",
            hint="start the server, or set the URL (with credentials) in the environment "
            "variable the broker block's url_env names (NATS_URL by default)",
        ) from None


async def _subscription(js: JetStreamContext, config: BrokerIntake) -> Any:
    """A pull subscription bound to the durable consumer, which is created on first
    use: explicit acks, every message of the subject, unlimited deliveries (see the
    module's text)."""
    try:
        await js.stream_info(config.stream)
    except nats.js.errors.NotFoundError:
        raise InputRejected(
            f"the NATS server has no stream {config.stream!r}",
            hint=f"create it (nats stream add {config.stream} --subjects "
            f"'{config.subject}'), or correct the broker block's stream",
        ) from None
    try:
        info = await js.consumer_info(config.stream, config.durable)
    except nats.js.errors.NotFoundError:
        await js.add_consumer(
            config.stream,
            ConsumerConfig(
                durable_name=config.durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=config.ack_wait,
                max_deliver=-1,
                filter_subject=config.subject,
            ),
        )
    else:
        if (info.config.filter_subject or "") != config.subject:
            raise InputRejected(
                f"the consumer {config.durable!r} of stream {config.stream!r} reads "
                f"{info.config.filter_subject!r}, not {config.subject!r}",
                hint="name another durable in the broker block, or delete this consumer "
                f"(nats consumer rm {config.stream} {config.durable}) to have it made again",
            )
    return await js.pull_subscribe_bind(durable=config.durable, stream=config.stream)


def _store(
    engine: Engine,
    project: Project,
    system: str,
    *,
    config: BrokerIntake,
    messages: Sequence[Msg],
    actor: str,
) -> tuple[BrokerReport, list[str]]:
    """Store one fetch in one transaction; returns the report and every message's key."""
    mapping = project.mapping(system)
    mapper = RecordMapper(mapping, project.config.systems[system])
    keys = [message_key(m) for m in messages]
    sequences = [m.metadata.sequence.stream for m in messages]
    source = f"nats {config.stream} seq {min(sequences)}-{max(sequences)}"
    started = time.perf_counter()
    with writing(engine) as conn:
        stored = deliveries.stored_messages(conn, system, keys)
        fresh = [(m, k) for m, k in zip(messages, keys, strict=True) if k not in stored]
        report = BrokerReport(0, system, source, messages=len(messages))
        report.already_stored = len(messages) - len(fresh)
        report.pending = messages[-1].metadata.num_pending
        if not fresh:
            return report, keys
        report.load_id = begin_load(
            conn, project, system, channel="broker", source_name=source, actor=actor
        )
        records: list[RawRecord] = []
        for message, _ in fresh:
            records += _records(message, config, mapping.config.format.max_field_bytes, report)
        Batcher(
            engine,
            mapper,
            report,
            project.config.entity,
            changes=True,
            max_skew=project.config.survivorship.max_clock_skew,
        ).write(conn, records)
        deliveries.remember_messages(conn, system, [k for _, k in fresh], report.load_id)
        report.seconds = time.perf_counter() - started
        end_load(conn, report, channel="broker", actor=actor)
    return report, keys


def message_key(message: Msg) -> str:
    """What tells one stored message from any other: stream, sequence, publish time
    (a stream deleted and made again starts its sequence at 1 again)."""
    meta = message.metadata
    return f"{meta.stream}/{meta.sequence.stream}/{meta.timestamp.isoformat()}"


def location(message: Msg) -> str:
    """Where a message is, for quarantine: its stream sequence, and the publisher's
    message id (Nats-Msg-Id) when it set one."""
    meta = message.metadata
    where = f"{meta.stream} seq {meta.sequence.stream}"
    message_id = (message.headers or {}).get("Nats-Msg-Id")
    if message_id:
        where += f" msg-id {keep(message_id, MAX_MESSAGE_ID_CHARS)!r}"
    return where


def _records(
    message: Msg, config: BrokerIntake, max_field_bytes: int, report: BrokerReport
) -> list[RawRecord]:
    """A message's records, located by message; a message that cannot be read, or has
    been delivered too often, as one record to quarantine whole."""
    where = location(message)
    deliveries_so_far = message.metadata.num_delivered
    if deliveries_so_far > config.max_deliver:
        report.over_delivered += 1
        reason = Reason(
            "message.redelivered",
            f"delivered {deliveries_so_far} times, more than max_deliver "
            f"({config.max_deliver}): every earlier attempt to store it failed",
        )
        return [RawRecord(where, None, _kept(message.data), (reason,))]
    encoding = (message.headers or {}).get("Content-Encoding")
    try:
        batch = push.read_batch(
            message.data, encoding, max_field_bytes=max_field_bytes, single=True
        )
    except InputRejected as exc:
        report.unreadable += 1
        reason = Reason("message.unreadable", exc.message)
        return [RawRecord(where, None, _kept(message.data), (reason,))]
    if len(batch.records) == 1 and batch.records[0].location == "record":
        return [_located(batch.records[0], where)]
    return [_located(raw, f"{where} {raw.location}") for raw in batch.records]


def _located(raw: RawRecord, where: str) -> RawRecord:
    return RawRecord(where, raw.fields, raw.raw, raw.reasons)


def _kept(data: bytes) -> str:
    """A message's body as quarantine keeps it: bytes that are not UTF-8 escaped."""
    return keep(data.decode("utf-8", "backslashreplace"))


async def _acknowledge(client: Client, messages: Sequence[Msg]) -> None:
    """Acknowledge the messages, and wait until the server has them all."""
    for message in messages:
        await message.ack()
    await client.flush()


async def _redeliver(client: Client, messages: Sequence[Msg]) -> None:
    """Ask for the messages again after a failed store; if even that fails, JetStream
    redelivers them when ack_wait runs out."""
    try:
        for message in messages:
            await message.nak()
        await client.flush()
    except Exception:  # noqa: BLE001, S110  (the store's failure is the one to raise)
        pass
