"""Source records, canonical records, their heads, loads and quarantine."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Text, and_, bindparam, cast, func, select, tuple_, update

from accord.store import clock, queue
from accord.store.dialect import insert_rows, keys_in, next_ids, one_of
from accord.store.engine import JSONText, json_value
from accord.store.tables import (
    canonical_record,
    load,
    match_entry,
    push_request,
    quarantine,
    record_head,
    source_record,
)
from accord.store.types import utcnow

# Bind-parameter budget: SQLite allows 32,766 per statement; stay far below.
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class Head:
    version: int
    content_hash: str
    source_record_id: int
    mapping_version: str


@dataclass(frozen=True)
class NewVersion:
    """A source record version to store, with its canonical form: the documents as JSON
    text (written by the process that mapped the record, `intake/parallel.py`)."""

    source_id: str
    version: int
    content_hash: str
    payload: JSONText
    entity_type: str
    data: JSONText
    issues: JSONText
    changed_ms: int | None  # when the source changed it (`source_updated_at`), in ms


@dataclass(frozen=True)
class QuarantineEntry:
    source_id: str | None
    location: str
    raw: str
    reasons: list[dict[str, Any]]
    fields: dict[str, Any] | None = None  # as read, when the record could be read


@dataclass(frozen=True)
class CurrentRecord:
    """The current canonical form of one (system, source id), as resolution reads it."""

    system: str
    source_id: str
    source_record_id: int
    canonical_record_id: int
    mapping_version: str
    data: dict[str, Any]
    received_at: datetime
    hlc: str | None = None  # the clock's stamp at intake (accord.hlc); None before it existed


class CurrentDocument(NamedTuple):
    """A `CurrentRecord` with its canonical data as JSON text, not yet read."""

    system: str
    source_id: str
    source_record_id: int
    canonical_record_id: int
    mapping_version: str
    document: str
    received_at: datetime
    hlc: str | None = None

    def record(self) -> CurrentRecord:
        """The record, its data read."""
        return CurrentRecord(*self[:5], json_value(self.document), self.received_at, self.hlc)


def start_load(
    conn: Connection,
    *,
    system: str,
    channel: str,
    source_name: str,
    mapping_version: str,
    project_digest: str,
    actor: str,
) -> int:
    result = conn.execute(
        load.insert().returning(load.c.id),
        {
            "system": system,
            "channel": channel,
            "source_name": source_name,
            "mapping_version": mapping_version,
            "project_digest": project_digest,
            "status": "running",
            "counts": {},
            "actor": actor,
            "started_at": utcnow(),
        },
    )
    return int(result.scalar_one())


def finish_load(conn: Connection, load_id: int, status: str, counts: dict[str, int]) -> None:
    conn.execute(
        update(load)
        .where(load.c.id == load_id)
        .values(status=status, counts=counts, finished_at=utcnow())
    )


@dataclass(frozen=True)
class EarlierPush:
    request_hash: str
    answer: dict[str, Any]


def earlier_push(conn: Connection, system: str, idempotency_key: str) -> EarlierPush | None:
    """The answer given to `system`'s push request with this Idempotency-Key, if any."""
    row = conn.execute(
        select(push_request.c.request_hash, push_request.c.answer).where(
            push_request.c.system == system, push_request.c.idempotency_key == idempotency_key
        )
    ).first()
    return None if row is None else EarlierPush(row.request_hash, row.answer)


def remember_push(
    conn: Connection,
    *,
    system: str,
    idempotency_key: str,
    request_hash: str,
    load_id: int,
    answer: dict[str, Any],
) -> None:
    """Keep the answer to a push request, in the transaction that stored its records."""
    conn.execute(
        push_request.insert(),
        {
            "system": system,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "load_id": load_id,
            "answer": answer,
            "created_at": utcnow(),
        },
    )


def heads(conn: Connection, system: str, source_ids: Sequence[str]) -> dict[str, Head]:
    """The current version and content hash of each given source id that exists."""
    found: dict[str, Head] = {}
    statement = _lookups(conn.dialect.name).heads
    for start in range(0, len(source_ids), LOOKUP_CHUNK):
        chunk = list(source_ids[start : start + LOOKUP_CHUNK])
        rows = conn.execute(statement, {"system": system, "ids": chunk})
        found.update(
            {
                r.source_id: Head(r.version, r.content_hash, r.source_record_id, r.mapping_version)
                for r in rows
            }
        )
    return found


def latest_versions(conn: Connection, system: str, source_ids: Sequence[str]) -> dict[str, int]:
    """The highest version stored of each given source id that has any, current or not:
    a withdrawn load's versions are no longer current but keep their numbers, so the next
    version is numbered after them."""
    found: dict[str, int] = {}
    statement = _lookups(conn.dialect.name).latest
    for start in range(0, len(source_ids), LOOKUP_CHUNK):
        chunk = list(source_ids[start : start + LOOKUP_CHUNK])
        rows = conn.execute(statement, {"system": system, "ids": chunk})
        found.update({source_id: int(version) for source_id, version in rows})
    return found


@dataclass(frozen=True)
class _Lookups:
    """The statements every stored batch runs, built once per dialect, the list of
    source ids bound as one parameter (`dialect.one_of`: on PostgreSQL an array, so the
    statement is prepared once, not parsed and planned again for each batch)."""

    heads: Any
    latest: Any


@functools.cache
def _lookups(dialect: str) -> _Lookups:
    system: Any = bindparam("system")
    return _Lookups(
        heads=select(
            record_head.c.source_id,
            record_head.c.version,
            record_head.c.content_hash,
            record_head.c.source_record_id,
            canonical_record.c.mapping_version,
        )
        .join(canonical_record, canonical_record.c.id == record_head.c.canonical_record_id)
        .where(record_head.c.system == system)
        .where(one_of(record_head.c.source_id, "ids", dialect)),
        latest=select(source_record.c.source_id, func.max(source_record.c.version))
        .where(source_record.c.system == system, one_of(source_record.c.source_id, "ids", dialect))
        .group_by(source_record.c.source_id),
    )


def store_versions(
    conn: Connection,
    *,
    load_id: int,
    system: str,
    mapping_version: str,
    versions: Sequence[NewVersion],
    max_skew: timedelta = clock.DEFAULT_MAX_SKEW,
) -> None:
    """Store new source record versions, each stamped by the hybrid logical clock (its
    source change time believed up to `max_skew` ahead), their canonical records, and
    move the heads."""
    if not versions:
        return
    now = utcnow()
    stamps = clock.stamp(conn, [v.changed_ms for v in versions], max_skew=max_skew)
    source_ids = next_ids(conn, source_record, len(versions))
    canonical_ids = next_ids(conn, canonical_record, len(versions))
    insert_rows(
        conn,
        source_record,
        [
            {
                "id": source_id,
                "load_id": load_id,
                "system": system,
                "source_id": v.source_id,
                "version": v.version,
                "content_hash": v.content_hash,
                "payload": v.payload,
                "received_at": now,
                "hlc": stamp,
            }
            for v, source_id, stamp in zip(versions, source_ids, stamps, strict=True)
        ],
    )
    insert_rows(
        conn,
        canonical_record,
        [
            {
                "id": canonical_id,
                "source_record_id": source_id,
                "system": system,
                "source_id": v.source_id,
                "entity_type": v.entity_type,
                "mapping_version": mapping_version,
                "data": v.data,
                "issues": v.issues,
                "created_at": now,
            }
            for v, source_id, canonical_id in zip(versions, source_ids, canonical_ids, strict=True)
        ],
    )
    insert_rows(
        conn,
        record_head,
        [
            {
                "system": system,
                "source_id": v.source_id,
                "version": v.version,
                "content_hash": v.content_hash,
                "source_record_id": source_id,
                "canonical_record_id": canonical_id,
                "updated_at": now,
            }
            for v, source_id, canonical_id in zip(versions, source_ids, canonical_ids, strict=True)
        ],
        replace_on=["system", "source_id"],
    )
    _enqueue(conn, system, versions)


@dataclass(frozen=True)
class Remap:
    """An unchanged source record mapped again by a new mapping version."""

    source_id: str
    source_record_id: int
    entity_type: str
    data: JSONText
    issues: JSONText


def store_remaps(
    conn: Connection, *, system: str, mapping_version: str, remaps: Sequence[Remap]
) -> None:
    """Add canonical records for unchanged source records and point the heads at them."""
    if not remaps:
        return
    now = utcnow()
    canonical_ids = next_ids(conn, canonical_record, len(remaps))
    insert_rows(
        conn,
        canonical_record,
        [
            {
                "id": canonical_id,
                "source_record_id": r.source_record_id,
                "system": system,
                "source_id": r.source_id,
                "entity_type": r.entity_type,
                "mapping_version": mapping_version,
                "data": r.data,
                "issues": r.issues,
                "created_at": now,
            }
            for r, canonical_id in zip(remaps, canonical_ids, strict=True)
        ],
    )
    conn.execute(
        update(record_head)
        .where(record_head.c.system == system, record_head.c.source_id == bindparam("b_source_id"))
        .values(canonical_record_id=bindparam("b_canonical_id"), updated_at=now),
        [
            {"b_source_id": remap.source_id, "b_canonical_id": canonical_id}
            for remap, canonical_id in zip(remaps, canonical_ids, strict=True)
        ],
    )
    _enqueue(conn, system, remaps)


def _enqueue(
    conn: Connection, system: str, changed: Sequence[NewVersion] | Sequence[Remap]
) -> None:
    """Queue the records whose canonical form just changed for matching, in the
    transaction that changed them (`store/queue.py`)."""
    by_type: dict[str, list[str]] = {}
    for item in changed:
        by_type.setdefault(item.entity_type, []).append(item.source_id)
    for entity_type, source_ids in by_type.items():
        queue.enqueue(conn, entity_type, system, source_ids)


def quarantine_records(
    conn: Connection, *, load_id: int, system: str, entries: Sequence[QuarantineEntry]
) -> int:
    """File entries in quarantine, skipping any whose raw text is already there and open
    (reloading a file does not file its bad rows twice). Returns how many were filed."""
    if not entries:
        return 0
    hashes = [hashlib.sha256(e.raw.encode()).hexdigest() for e in entries]
    already = set(
        conn.execute(
            select(quarantine.c.content_hash).where(
                quarantine.c.system == system,
                quarantine.c.status == "open",
                quarantine.c.content_hash.in_(set(hashes)),
            )
        ).scalars()
    )
    now = utcnow()
    rows = []
    for entry, digest in zip(entries, hashes, strict=True):
        if digest in already:
            continue
        already.add(digest)
        rows.append(
            {
                "load_id": load_id,
                "system": system,
                "source_id": entry.source_id,
                "location": entry.location,
                "raw": entry.raw,
                "reasons": entry.reasons,
                "content_hash": digest,
                "status": "open",
                "created_at": now,
                "fields": entry.fields,
            }
        )
    if rows:
        conn.execute(quarantine.insert(), rows)
    return len(rows)


def _current(*, document: bool = False) -> Any:
    return (
        select(
            record_head.c.system,
            record_head.c.source_id,
            record_head.c.source_record_id,
            record_head.c.canonical_record_id,
            canonical_record.c.mapping_version,
            cast(canonical_record.c.data, Text).label("data")
            if document
            else canonical_record.c.data,
            source_record.c.received_at,
            source_record.c.hlc,
        )
        .join(canonical_record, canonical_record.c.id == record_head.c.canonical_record_id)
        .join(source_record, source_record.c.id == record_head.c.source_record_id)
    )


def _current_record(row: Any) -> CurrentRecord:
    return CurrentRecord(
        row.system,
        row.source_id,
        row.source_record_id,
        row.canonical_record_id,
        row.mapping_version,
        row.data,
        row.received_at,
        row.hlc,
    )


def current_of(conn: Connection, keys: Sequence[tuple[str, str]]) -> list[CurrentRecord]:
    """The current canonical records of these (system, source id) keys, in key order."""
    found: list[CurrentRecord] = []
    for start in range(0, len(keys), LOOKUP_CHUNK):
        rows = conn.execute(
            _current().where(
                keys_in(
                    record_head.c.system,
                    record_head.c.source_id,
                    keys[start : start + LOOKUP_CHUNK],
                )
            )
        )
        found += [_current_record(row) for row in rows]
    return sorted(found, key=lambda r: (r.system, r.source_id))


def changed_since_matched(conn: Connection, entity_type: str) -> list[tuple[str, str]]:
    """Records whose current canonical form the match index has not seen: new records,
    and records with a new version or a new mapping since they were last matched, in the
    order they changed."""
    rows = conn.execute(
        select(record_head.c.system, record_head.c.source_id)
        .join(canonical_record, canonical_record.c.id == record_head.c.canonical_record_id)
        .outerjoin(
            match_entry,
            (match_entry.c.system == record_head.c.system)
            & (match_entry.c.source_id == record_head.c.source_id),
        )
        .where(
            canonical_record.c.entity_type == entity_type,
            (match_entry.c.id.is_(None))
            | (match_entry.c.canonical_record_id != record_head.c.canonical_record_id),
        )
        .order_by(record_head.c.updated_at, record_head.c.system, record_head.c.source_id)
    )
    return [(r.system, r.source_id) for r in rows]


def matched_already(conn: Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of `keys` whose current canonical record the match index has seen already
    (queued, then matched by a resolve run in the meantime: nothing left to do)."""
    found: set[tuple[str, str]] = set()
    for start in range(0, len(keys), LOOKUP_CHUNK):
        rows = conn.execute(
            select(record_head.c.system, record_head.c.source_id)
            .join(
                match_entry,
                (match_entry.c.system == record_head.c.system)
                & (match_entry.c.source_id == record_head.c.source_id)
                & (match_entry.c.canonical_record_id == record_head.c.canonical_record_id),
            )
            .where(
                keys_in(
                    record_head.c.system,
                    record_head.c.source_id,
                    keys[start : start + LOOKUP_CHUNK],
                )
            )
        )
        found.update((r.system, r.source_id) for r in rows)
    return found


def removed_since_matched(conn: Connection) -> list[tuple[str, str]]:
    """Records the match index holds that are no longer current (a withdrawn load had
    created them), in key order."""
    rows = conn.execute(
        select(match_entry.c.system, match_entry.c.source_id)
        .outerjoin(
            record_head,
            (record_head.c.system == match_entry.c.system)
            & (record_head.c.source_id == match_entry.c.source_id),
        )
        .where(record_head.c.system.is_(None))
        .order_by(match_entry.c.system, match_entry.c.source_id)
    )
    return [(r.system, r.source_id) for r in rows]


def current_records(
    conn: Connection, entity_type: str, batch_size: int = 5000
) -> Iterator[CurrentRecord]:
    """Every current canonical record of `entity_type`, in (system, source id) order.

    Read in keyset-paginated pages, so memory stays bounded and no server-side cursor is
    held open (PostgreSQL plans those for first rows, which made this 15x slower)."""
    for row in _pages(conn, _current(), entity_type, batch_size):
        yield _current_record(row)


def current_documents(
    conn: Connection, entity_type: str, batch_size: int = 5000
) -> Iterator[CurrentDocument]:
    """`current_records`, with each record's canonical data as its JSON text, to be read
    (`store.engine.json_value`) when needed: a million records' text takes a fraction of
    the memory of their data read."""
    shared: dict[str, str] = {}  # one copy of each system's name and mapping version
    for row in _pages(conn, _current(document=True), entity_type, batch_size):
        system, source_id, source_record_id, canonical_record_id, version, document, at, hlc = row
        yield CurrentDocument(
            shared.setdefault(system, system),
            source_id,
            source_record_id,
            canonical_record_id,
            shared.setdefault(version, version),
            document,
            at,
            hlc,
        )


def head_count(conn: Connection) -> int:
    """How many records the store holds a current version of, of every entity: what a
    full resolve reads at most."""
    return conn.execute(select(func.count()).select_from(record_head)).scalar_one()


def _pages(conn: Connection, query: Any, entity_type: str, batch_size: int) -> Iterator[Any]:
    query = (
        query.where(canonical_record.c.entity_type == entity_type)
        .order_by(record_head.c.system, record_head.c.source_id)
        .limit(batch_size)
    )
    page = query
    while True:
        rows = conn.execute(page).all()
        yield from rows
        if len(rows) < batch_size:
            return
        last = rows[-1]
        page = query.where(
            tuple_(record_head.c.system, record_head.c.source_id) > (last.system, last.source_id)
        )


def source_record_versions(conn: Connection, system: str, source_id: str) -> list[dict[str, Any]]:
    """Every stored version of one source record, newest first, with its canonical form."""
    rows = conn.execute(
        select(
            source_record.c.version,
            source_record.c.content_hash,
            source_record.c.payload,
            source_record.c.received_at,
            source_record.c.load_id,
            canonical_record.c.data,
            canonical_record.c.issues,
            canonical_record.c.mapping_version,
        )
        .join(canonical_record, canonical_record.c.source_record_id == source_record.c.id)
        .where(and_(source_record.c.system == system, source_record.c.source_id == source_id))
        # newest version first; of one version's canonical forms (one per mapping
        # version), the latest made
        .order_by(source_record.c.version.desc(), canonical_record.c.id.desc())
    )
    return [dict(r._mapping) for r in rows]
