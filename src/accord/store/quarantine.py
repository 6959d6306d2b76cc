"""Quarantine entries and loads: listing, one entry or load, and the state changes of
replay, discard and withdrawal. The domain rules live in `intake/quarantine.py` and
`intake/loads.py`; these functions only read and write rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, desc, func, select, text, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB

from accord.store import queue
from accord.store.dialect import keys_in
from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import canonical_record, load, quarantine, record_head, source_record
from accord.store.types import utcnow

Key = tuple[str, str]

# what a listing shows of an entry: not its raw text or fields, which can be large
_SUMMARY = (
    quarantine.c.id,
    quarantine.c.load_id,
    quarantine.c.system,
    quarantine.c.source_id,
    quarantine.c.location,
    quarantine.c.reasons,
    quarantine.c.status,
    quarantine.c.created_at,
    quarantine.c.corrected_at,
    quarantine.c.replay_load_id,
)


def _has_reason(conn: Connection, code: str) -> Any:
    """Entries one of whose reasons has this code."""
    if conn.dialect.name == "postgresql":
        return type_coerce(quarantine.c.reasons, JSONB).contains([{"code": code}])
    return text(
        "EXISTS (SELECT 1 FROM json_each(quarantine.reasons) "
        "WHERE json_extract(json_each.value, '$.code') = :reason_code)"
    ).bindparams(reason_code=code)


def _filters(
    conn: Connection, system: str | None, status: str | None, reason: str | None
) -> list[Any]:
    where: list[Any] = []
    if system is not None:
        where.append(quarantine.c.system == system)
    if status is not None:
        where.append(quarantine.c.status == status)
    if reason is not None:
        where.append(_has_reason(conn, reason))
    return where


def list_entries(
    conn: Connection,
    *,
    system: str | None,
    status: str | None,
    reason: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of entries, newest first, and how many match in all."""
    where = _filters(conn, system, status, reason)
    total = conn.execute(select(func.count()).select_from(quarantine).where(*where)).scalar_one()
    rows = conn.execute(
        select(*_SUMMARY).where(*where).order_by(desc(quarantine.c.id)).limit(limit).offset(offset)
    )
    return [dict(r._mapping) for r in rows], int(total)


def get_entry(conn: Connection, entry_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(quarantine).where(quarantine.c.id == entry_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return None if row is None else dict(row._mapping)


def entries(conn: Connection, ids: Sequence[int], *, lock: bool = False) -> list[dict[str, Any]]:
    """The entries with these ids that exist, in id order."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), LOOKUP_CHUNK):
        query = select(quarantine).where(quarantine.c.id.in_(ids[start : start + LOOKUP_CHUNK]))
        found += [
            dict(r._mapping) for r in conn.execute(query.with_for_update() if lock else query)
        ]
    return sorted(found, key=lambda e: int(e["id"]))


def open_ids(
    conn: Connection,
    *,
    system: str | None,
    reason: str | None,
    after: int,
    limit: int,
    mapping_versions: Sequence[str] | None = None,
) -> list[int]:
    """The next `limit` open entries' ids after `after`, oldest first (replayed in the
    order they came); with `mapping_versions`, those filed by loads of these mapping
    versions only."""
    where = _filters(conn, system, "open", reason)
    query = select(quarantine.c.id).where(*where, quarantine.c.id > after)
    if mapping_versions is not None:
        query = query.join(load, load.c.id == quarantine.c.load_id).where(
            load.c.mapping_version.in_(mapping_versions)
        )
    return list(conn.execute(query.order_by(quarantine.c.id).limit(limit)).scalars())


def open_groups(conn: Connection, *, reason: str | None) -> list[tuple[str, str]]:
    """(system, mapping version of the load that filed them) of the open entries (with
    this reason code): a system's customer records and each kind of its linked records
    are replayed by their own mappings."""
    where = _filters(conn, None, "open", reason)
    rows = conn.execute(
        select(quarantine.c.system, load.c.mapping_version)
        .join(load, load.c.id == quarantine.c.load_id)
        .where(*where)
        .distinct()
    )
    return sorted((system, version) for system, version in rows)


def load_versions(conn: Connection, load_ids: Sequence[int]) -> dict[int, str]:
    """load id -> the mapping version it loaded with."""
    found: dict[int, str] = {}
    wanted = sorted(set(load_ids))
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = conn.execute(
            select(load.c.id, load.c.mapping_version).where(
                load.c.id.in_(wanted[start : start + LOOKUP_CHUNK])
            )
        )
        found.update({int(i): v for i, v in rows})
    return found


def set_correction(conn: Connection, entry_id: int, correction: dict[str, Any], *, by: str) -> None:
    conn.execute(
        update(quarantine)
        .where(quarantine.c.id == entry_id)
        .values(correction=correction, corrected_by=by, corrected_at=utcnow())
    )


def set_reasons(conn: Connection, changes: Sequence[tuple[int, list[dict[str, Any]]]]) -> None:
    """New reasons for entries that are still open after a replay."""
    if changes:
        conn.execute(
            update(quarantine)
            .where(quarantine.c.id == bindparam("b_id"))
            .values(reasons=bindparam("b_reasons")),
            [{"b_id": entry_id, "b_reasons": reasons} for entry_id, reasons in changes],
        )


def close(
    conn: Connection,
    ids: Sequence[int],
    *,
    status: str,
    by: str,
    note: str | None = None,
    replay_load_id: int | None = None,
) -> None:
    """Close open entries: replayed (by a load) or discarded (with a note)."""
    now = utcnow()
    for start in range(0, len(ids), LOOKUP_CHUNK):
        conn.execute(
            update(quarantine)
            .where(
                quarantine.c.id.in_(ids[start : start + LOOKUP_CHUNK]),
                quarantine.c.status == "open",
            )
            .values(
                status=status,
                closed_by=by,
                closed_at=now,
                note=note,
                replay_load_id=replay_load_id,
            )
        )


def open_of_load(conn: Connection, load_id: int) -> list[int]:
    return list(
        conn.execute(
            select(quarantine.c.id)
            .where(quarantine.c.load_id == load_id, quarantine.c.status == "open")
            .order_by(quarantine.c.id)
        ).scalars()
    )


# ---- loads


def list_loads(
    conn: Connection, *, system: str | None, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of loads, newest first, and how many match in all."""
    where = []
    if system is not None:
        where.append(load.c.system == system)
    if status is not None:
        where.append(load.c.status == status)
    total = conn.execute(select(func.count()).select_from(load).where(*where)).scalar_one()
    rows = conn.execute(
        select(load).where(*where).order_by(desc(load.c.id)).limit(limit).offset(offset)
    )
    return [dict(r._mapping) for r in rows], int(total)


def get_load(conn: Connection, load_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(load).where(load.c.id == load_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return None if row is None else dict(row._mapping)


def filed_by_load(conn: Connection, load_id: int, *, limit: int) -> list[dict[str, Any]]:
    """The quarantine entries one load filed, in input order (up to `limit`)."""
    rows = conn.execute(
        select(
            quarantine.c.id,
            quarantine.c.system,
            quarantine.c.source_id,
            quarantine.c.location,
            quarantine.c.raw,
            quarantine.c.reasons,
            quarantine.c.status,
        )
        .where(quarantine.c.load_id == load_id)
        .order_by(quarantine.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def quarantine_counts(conn: Connection, load_id: int) -> dict[str, int]:
    """A load's quarantine entries by status."""
    rows = conn.execute(
        select(quarantine.c.status, func.count())
        .where(quarantine.c.load_id == load_id)
        .group_by(quarantine.c.status)
    )
    return {status: int(count) for status, count in rows}


@dataclass(frozen=True)
class Version:
    id: int  # source_record id
    system: str
    source_id: str
    version: int
    content_hash: str


def versions_of_load(conn: Connection, load_id: int) -> Iterator[list[Version]]:
    """The source record versions a load stored, `LOOKUP_CHUNK` at a time, by id."""
    after = 0
    while True:
        rows = conn.execute(
            select(
                source_record.c.id,
                source_record.c.system,
                source_record.c.source_id,
                source_record.c.version,
                source_record.c.content_hash,
            )
            .where(source_record.c.load_id == load_id, source_record.c.id > after)
            .order_by(source_record.c.id)
            .limit(LOOKUP_CHUNK)
        ).all()
        if not rows:
            return
        yield [Version(*row) for row in rows]
        after = rows[-1].id


def head_versions(conn: Connection, keys: Sequence[Key]) -> dict[Key, tuple[int, int]]:
    """Each key's current (source record id, version)."""
    rows = conn.execute(
        select(
            record_head.c.system,
            record_head.c.source_id,
            record_head.c.source_record_id,
            record_head.c.version,
        ).where(keys_in(record_head.c.system, record_head.c.source_id, keys))
    )
    return {(r.system, r.source_id): (r.source_record_id, r.version) for r in rows}


def standing_versions(
    conn: Connection, keys: Sequence[Key], *, besides: int
) -> dict[Key, list[Version]]:
    """Every version of these keys stored by a load that is not withdrawn, nor the load
    `besides` (being withdrawn), oldest first."""
    rows = conn.execute(
        select(
            source_record.c.id,
            source_record.c.system,
            source_record.c.source_id,
            source_record.c.version,
            source_record.c.content_hash,
        )
        .join(load, load.c.id == source_record.c.load_id)
        .where(
            keys_in(source_record.c.system, source_record.c.source_id, keys),
            load.c.status != "withdrawn",
            load.c.id != besides,
        )
        .order_by(source_record.c.version)
    )
    found: dict[Key, list[Version]] = {}
    for row in rows:
        found.setdefault((row.system, row.source_id), []).append(Version(*row))
    return found


def latest_canonical(conn: Connection, source_record_ids: Sequence[int]) -> dict[int, int]:
    """Each source record's newest canonical record (the latest mapping that read it)."""
    if not source_record_ids:
        return {}
    rows = conn.execute(
        select(canonical_record.c.source_record_id, func.max(canonical_record.c.id))
        .where(canonical_record.c.source_record_id.in_(source_record_ids))
        .group_by(canonical_record.c.source_record_id)
    )
    return {int(sr): int(cr) for sr, cr in rows}


def point_heads(conn: Connection, moves: Sequence[tuple[Version, int]]) -> None:
    """Point each (version, canonical record id)'s head back at that version."""
    if not moves:
        return
    now = utcnow()
    conn.execute(
        update(record_head)
        .where(
            record_head.c.system == bindparam("b_system"),
            record_head.c.source_id == bindparam("b_source_id"),
        )
        .values(
            version=bindparam("b_version"),
            content_hash=bindparam("b_hash"),
            source_record_id=bindparam("b_source_record_id"),
            canonical_record_id=bindparam("b_canonical_id"),
            updated_at=now,
        ),
        [
            {
                "b_system": v.system,
                "b_source_id": v.source_id,
                "b_version": v.version,
                "b_hash": v.content_hash,
                "b_source_record_id": v.id,
                "b_canonical_id": canonical_id,
            }
            for v, canonical_id in moves
        ],
    )


def queue_for_matching(conn: Connection, withdrawn: Sequence[Version]) -> None:
    """Queue the records whose head a withdrawal moved back or removed, so the workers
    match them again or take them out of their customers (`store/queue.py`)."""
    if not withdrawn:
        return
    types = dict(
        conn.execute(
            select(canonical_record.c.source_record_id, canonical_record.c.entity_type).where(
                canonical_record.c.source_record_id.in_([v.id for v in withdrawn])
            )
        ).all()
    )
    grouped: dict[tuple[str, str], list[str]] = {}
    for version in withdrawn:
        grouped.setdefault((types[version.id], version.system), []).append(version.source_id)
    for (entity_type, system), source_ids in grouped.items():
        queue.enqueue(conn, entity_type, system, source_ids)


def drop_heads(conn: Connection, keys: Sequence[Key]) -> None:
    """Take records out of the current ones (their versions stay stored)."""
    if keys:
        conn.execute(
            delete(record_head).where(keys_in(record_head.c.system, record_head.c.source_id, keys))
        )


def mark_withdrawn(conn: Connection, load_id: int, counts: dict[str, Any]) -> None:
    conn.execute(update(load).where(load.c.id == load_id).values(status="withdrawn", counts=counts))
