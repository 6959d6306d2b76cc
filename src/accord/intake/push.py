"""The push channel: a system sends a batch of records over HTTP and is told, record by
record, what became of each.

A batch is a JSON document `{"records": [{...}, ...]}`, each record an object of the
system's own fields, mapped and validated as a file's rows are. It is stored in one
transaction before the answer is given: every record accepted (a new version), a
duplicate (the same content as the version stored, or as an earlier record of the batch),
or rejected into quarantine with its reasons. Nothing is half-stored.

With an `Idempotency-Key`, the answer is kept with the records, in that transaction: a
retry with the same key and the same body gets the same answer and stores nothing; the
same key with another body is refused. Two requests racing with one key end as one
stored batch and one replayed answer (the loser's transaction is rolled back).
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from accord.config.loader import Project
from accord.errors import InputRejected, NotAllowed, TooLarge
from accord.govern.permissions import Actor, Permission, require
from accord.intake.load import Batcher, LoadReport, begin_load, end_load
from accord.intake.mapping import RecordMapper
from accord.intake.parallel import map_records
from accord.intake.readers import RawRecord, record_of
from accord.store import records as store
from accord.store.engine import json_value, writing

MAX_BODY_BYTES = 10 * 1_048_576  # a request's body as sent, compressed or not
MAX_DOCUMENT_BYTES = 50 * 1_048_576  # its JSON, once gunzipped
MAX_RECORDS = 10_000  # records in one batch
MAX_KEY_CHARS = 255  # an Idempotency-Key


@dataclass(frozen=True)
class Batch:
    """A push request's records, read, and the hash of its document (to tell a retry
    from another request reusing its Idempotency-Key)."""

    records: list[RawRecord]
    request_hash: str


@dataclass(frozen=True)
class PushAnswer:
    load_id: int
    counts: dict[str, int]  # accepted, duplicate, rejected
    records: list[dict[str, Any]]  # per record, in the batch's order
    replayed: bool = False  # the answer kept from an earlier request with the same key

    def as_dict(self) -> dict[str, Any]:
        return {"load_id": self.load_id, "counts": self.counts, "records": self.records}


def read_batch(
    body: bytes,
    content_encoding: str | None,
    *,
    max_field_bytes: int,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
    max_records: int = MAX_RECORDS,
    single: bool = False,
) -> Batch:
    """Read a push request's body (gzip when `content_encoding` says so). A body that
    cannot be read as a batch at all raises InputRejected, one over a limit TooLarge; a
    record that cannot be stored as it is (not an object, a NUL, an oversized field)
    becomes a RawRecord with its reasons, to be quarantined while the rest goes on.

    With `single` (webhooks, broker messages, which often carry one change), an object
    without a `records` list is read as a batch of that one record, located `record`."""
    check_body_size(len(body), max_body_bytes)
    document = _decoded(body, content_encoding, max_document_bytes)
    try:
        value = parse_json(document)
    except _NotJSON as exc:
        raise InputRejected(f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputRejected(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InputRejected(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputRejected("the body's JSON is nested too deeply") from None
    if single and isinstance(value, dict) and not isinstance(value.get("records"), list):
        return Batch(
            [record_of(value, "record", max_field_bytes)], hashlib.sha256(document).hexdigest()
        )
    if not isinstance(value, dict) or not isinstance(value.get("records"), list):
        one = "a record object, or " if single else ""
        raise InputRejected(
            f"the body must be {one}a JSON object with a list of records: "
            '{"records": [{...}, ...]}'
        )
    items: list[Any] = value["records"]
    if not items:
        raise InputRejected("the batch holds no records", hint="send at least one record")
    if len(items) > max_records:
        raise TooLarge(
            f"the batch holds {len(items):,} records; the limit is {max_records:,}",
            hint="split it into several requests",
        )
    return Batch(
        [record_of(item, f"records[{i}]", max_field_bytes) for i, item in enumerate(items)],
        hashlib.sha256(document).hexdigest(),
    )


def check_body_size(size: int, limit: int = MAX_BODY_BYTES) -> None:
    """Refuse a request body of `size` bytes (as sent) over `limit`: the web layer
    asks as the body streams in, so that it stops reading at the limit."""
    if size > limit:
        raise TooLarge(
            f"the request body is {size:,} bytes or more; the limit is {limit:,}",
            hint="send fewer records per request, or gzip the body (Content-Encoding: gzip)",
        )


def parse_json(document: bytes) -> Any:
    """A request body's JSON document: UTF-8, without NaN or Infinity (RFC 8259)."""
    return json_value(document, parse_constant=_not_json)


class _NotJSON(ValueError):
    pass


def _not_json(constant: str) -> Any:
    raise _NotJSON(f"{constant} is not a JSON number")


def _decoded(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        document = body
    elif encoding == "gzip":
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            document = inflate.decompress(body, limit + 1)  # a byte over tells it is over
        except zlib.error as exc:
            raise InputRejected(f"the body is not valid gzip: {exc}") from None
        if len(document) <= limit and not inflate.eof:
            raise InputRejected("the body is not valid gzip: the stream ends early")
    else:
        raise InputRejected(
            f"cannot read a body with Content-Encoding {content_encoding!r}",
            hint="send it plain or gzip-compressed (Content-Encoding: gzip)",
        )
    if len(document) > limit:
        what = "unpacks to more than" if encoding == "gzip" else "is more than"
        raise TooLarge(
            f"the body {what} {limit:,} bytes of JSON", hint="split it into several requests"
        )
    return document


def push(
    engine: Engine,
    project: Project,
    system: str,
    body: bytes,
    *,
    content_encoding: str | None,
    idempotency_key: str | None,
    actor: Actor,
) -> PushAnswer:
    """Read a push request's body and store its batch for `system`, which only that
    system's own API key may do; see the module's text."""
    require(actor, Permission.RECORDS_WRITE)
    if actor.kind != "system" or actor.name != system:
        raise NotAllowed(
            f"{actor.label} may not push records for {system!r}",
            hint=f"send them with {system}'s own API key (accord keys create --system {system})",
        )
    mapping = project.mapping(system)
    if idempotency_key is not None:
        _check_key(idempotency_key)
    batch = read_batch(
        body, content_encoding, max_field_bytes=mapping.config.format.max_field_bytes
    )
    return _push(engine, project, system, batch, idempotency_key=idempotency_key, actor=actor.label)


def _push(
    engine: Engine,
    project: Project,
    system: str,
    batch: Batch,
    *,
    idempotency_key: str | None,
    actor: str,
) -> PushAnswer:
    def earlier(conn: Connection) -> PushAnswer | None:
        if idempotency_key is None:
            return None
        found = store.earlier_push(conn, system, idempotency_key)
        return None if found is None else _replayed(found, batch, idempotency_key)

    def remember(conn: Connection, answer: PushAnswer) -> None:
        if idempotency_key is not None:
            store.remember_push(
                conn,
                system=system,
                idempotency_key=idempotency_key,
                request_hash=batch.request_hash,
                load_id=answer.load_id,
                answer=answer.as_dict(),
            )

    source = f"push {idempotency_key}" if idempotency_key else "push"
    return store_batch(
        engine,
        project,
        system,
        batch,
        channel="api",
        source=source,
        actor=actor,
        earlier=earlier,
        remember=remember,
    )


def store_batch(
    engine: Engine,
    project: Project,
    system: str,
    batch: Batch,
    *,
    channel: str,
    source: str,
    actor: str,
    earlier: Callable[[Connection], PushAnswer | None] | None = None,
    remember: Callable[[Connection, PushAnswer], None] | None = None,
) -> PushAnswer:
    """Store a batch read by `read_batch` as one load of `channel`, in one transaction,
    and answer for each record. The channel's own idempotency runs in that transaction:
    `earlier` may return an answer given before (then nothing is stored), `remember`
    keeps this one. A unique key there makes the loser of two racing twins roll back;
    it is then answered by `earlier`, with what the winner stored."""
    try:
        return _store_batch(
            engine,
            project,
            system,
            batch,
            channel=channel,
            source=source,
            actor=actor,
            earlier=earlier,
            remember=remember,
        )
    except IntegrityError:
        if earlier is None:
            raise
        with writing(engine) as conn:
            answer = earlier(conn)
        if answer is None:
            raise
        return answer


def _store_batch(
    engine: Engine,
    project: Project,
    system: str,
    batch: Batch,
    *,
    channel: str,
    source: str,
    actor: str,
    earlier: Callable[[Connection], PushAnswer | None] | None,
    remember: Callable[[Connection, PushAnswer], None] | None,
) -> PushAnswer:
    mapping = project.mapping(system)
    started = time.perf_counter()
    if earlier is not None:  # a retry is answered without mapping its records again
        with engine.connect() as conn:
            if (answer := earlier(conn)) is not None:
                return answer
    mapper = RecordMapper(mapping, project.config.systems[system])
    # mapped before the write transaction: mapping needs no store, and on SQLite the
    # transaction holds the database, so other requests' writes wait only for the writing
    mapped = map_records(mapper, (raw.fields for raw in batch.records))
    with writing(engine) as conn:
        # again, in the transaction: a twin may have stored its batch in the meantime
        if earlier is not None and (answer := earlier(conn)) is not None:
            return answer
        load_id = begin_load(
            conn, project, system, channel=channel, source_name=source, actor=actor
        )
        report = LoadReport(load_id, system, source)
        outcomes: list[dict[str, Any]] = []
        batcher = Batcher(
            engine,
            mapper,
            report,
            project.config.entity,
            outcomes,
            max_skew=project.config.survivorship.max_clock_skew,
        )
        batcher.write(conn, batch.records, mapped)
        report.seconds = time.perf_counter() - started
        counts = dict.fromkeys(("accepted", "duplicate", "rejected"), 0)
        for outcome in outcomes:
            counts[outcome["status"]] += 1
        answer = PushAnswer(load_id, counts, outcomes)
        if remember is not None:
            remember(conn, answer)
        end_load(conn, report, channel=channel, actor=actor)
    return answer


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InputRejected(
            f"an Idempotency-Key is 1 to {MAX_KEY_CHARS} printable characters",
            hint="use a UUID for each distinct batch, and the same one for its retries",
        )


def _replayed(earlier: store.EarlierPush, batch: Batch, key: str) -> PushAnswer:
    if earlier.request_hash != batch.request_hash:
        raise InputRejected(
            f"the Idempotency-Key {key!r} was used before with another body",
            hint="a retry sends the same body; a new batch needs a new key",
        )
    answer = earlier.answer
    return PushAnswer(answer["load_id"], answer["counts"], answer["records"], replayed=True)
