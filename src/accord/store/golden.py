"""Golden records and the crosswalk."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from accord.model import lineage
from accord.store import search
from accord.store.dialect import insert_rows, keys_in
from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import canonical_record, counter, crosswalk, golden_record, record_head
from accord.store.types import utcnow

Key = tuple[str, str]


def golden_id_text(number: int) -> str:
    return f"C{number:07d}"


def allocate_ids(conn: Connection, count: int) -> list[str]:
    """`count` fresh golden ids, never handed out before (the counter only grows)."""
    last = conn.execute(
        update(counter)
        .where(counter.c.name == "golden_id")
        .values(value=counter.c.value + count)
        .returning(counter.c.value)
    ).scalar_one()
    return [golden_id_text(n) for n in range(last - count + 1, last + 1)]


def crosswalk_map(conn: Connection) -> dict[Key, tuple[str, str, dict[str, Any]]]:
    """(system, source id) -> (golden id, rule, evidence) for every linked record."""
    rows = conn.execute(
        select(
            crosswalk.c.system,
            crosswalk.c.source_id,
            crosswalk.c.golden_id,
            crosswalk.c.rule,
            crosswalk.c.evidence,
        )
    )
    return {(r.system, r.source_id): (r.golden_id, r.rule, r.evidence) for r in rows}


def previous_ids(conn: Connection) -> dict[Key, str]:
    """(system, source id) -> the golden id the record had before its last move."""
    rows = conn.execute(
        select(crosswalk.c.system, crosswalk.c.source_id, crosswalk.c.previous_golden_id).where(
            crosswalk.c.previous_golden_id.is_not(None)
        )
    )
    return {(r.system, r.source_id): r.previous_golden_id for r in rows}


def merged_ids(conn: Connection) -> set[str]:
    """Golden ids merged into others: a split may bring one back."""
    rows = conn.execute(select(golden_record.c.golden_id).where(golden_record.c.status == "merged"))
    return {r.golden_id for r in rows}


def active_fingerprints(conn: Connection) -> dict[str, str]:
    rows = conn.execute(
        select(golden_record.c.golden_id, golden_record.c.fingerprint).where(
            golden_record.c.status == "active"
        )
    )
    return {r.golden_id: r.fingerprint for r in rows}


def data_of(conn: Connection, golden_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(golden_ids), LOOKUP_CHUNK):
        chunk = golden_ids[start : start + LOOKUP_CHUNK]
        rows = conn.execute(
            select(golden_record.c.golden_id, golden_record.c.data).where(
                golden_record.c.golden_id.in_(chunk)
            )
        )
        found.update({r.golden_id: r.data for r in rows})
    return found


def content_of(
    conn: Connection, golden_ids: Sequence[str]
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """golden id -> (data, lineage) of these active golden records."""
    found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for start in range(0, len(golden_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(golden_record.c.golden_id, golden_record.c.data, golden_record.c.lineage).where(
                golden_record.c.golden_id.in_(golden_ids[start : start + LOOKUP_CHUNK]),
                golden_record.c.status == "active",
            )
        )
        found.update({r.golden_id: (r.data, lineage.unpack(r.data, r.lineage)) for r in rows})
    return found


@dataclass
class SearchBacklog:
    """Golden records written whose customer search entries are still to be written
    (`store.search`): a write of many batches hands each batch's to one of these and
    has them all indexed at its end, in the same transaction (`index`). On SQLite the
    search index's writes then come as one run instead of between every batch's other
    writes, and both cost less (a full resolve of 1,000,000 records: the search
    index's writes 15.2 to 13.4 s, the crosswalk's 16.3 to 14.0 s; benchmarks/README.md)."""

    new: list[str] = field(default_factory=list)  # golden ids inserted
    rewritten: dict[str, str] = field(default_factory=dict)  # golden id -> new search text

    def index(self, conn: Connection) -> None:
        """Write the entries held, and let them go."""
        search.index_new(conn, self.new)
        search.reindex(conn, self.rewritten)
        self.new, self.rewritten = [], {}


def insert_golden(
    conn: Connection, rows: Sequence[dict[str, Any]], backlog: SearchBacklog | None = None
) -> None:
    """Insert new golden records; their search entries are written now, or left to
    `backlog`."""
    if rows:
        now = utcnow()
        insert_rows(
            conn,
            golden_record,
            [r | {"status": "active", "created_at": now, "updated_at": now} for r in rows],
        )
        ids = [r["golden_id"] for r in rows]
        if backlog is None:
            search.index_new(conn, ids)
        else:
            backlog.new += ids


def update_golden(
    conn: Connection, rows: Sequence[dict[str, Any]], backlog: SearchBacklog | None = None
) -> None:
    """Rewrite the content of existing golden records (and reactivate them); their
    search entries are brought in step now, or left to `backlog`."""
    if not rows:
        return
    now = utcnow()
    statement = (
        update(golden_record)
        .where(golden_record.c.golden_id == bindparam("b_golden_id"))
        .values(
            status="active",
            merged_into=None,
            display_name=bindparam("display_name"),
            search_text=bindparam("search_text"),
            data=bindparam("data"),
            lineage=bindparam("lineage"),
            member_count=bindparam("member_count"),
            fingerprint=bindparam("fingerprint"),
            updated_at=now,
        )
    )
    conn.execute(
        statement,
        [
            {"b_golden_id": r["golden_id"]} | {k: v for k, v in r.items() if k != "golden_id"}
            for r in rows
        ],
    )
    texts = {r["golden_id"]: r["search_text"] for r in rows}
    if backlog is None:
        search.reindex(conn, texts)
    else:
        backlog.rewritten |= texts


def retire(conn: Connection, merged: dict[str, str], retired: Iterable[str]) -> None:
    """Mark ids merged into others, or retired; they keep answering with a redirect."""
    now = utcnow()
    if merged:
        conn.execute(
            update(golden_record)
            .where(golden_record.c.golden_id == bindparam("b_golden_id"))
            .values(status="merged", merged_into=bindparam("b_into"), updated_at=now),
            [{"b_golden_id": old, "b_into": new} for old, new in merged.items()],
        )
    retired = list(retired)
    if retired:
        conn.execute(
            update(golden_record)
            .where(golden_record.c.golden_id == bindparam("b_golden_id"))
            .values(status="retired", member_count=0, updated_at=now),
            [{"b_golden_id": golden_id} for golden_id in retired],
        )


def link(conn: Connection, rows: Sequence[dict[str, Any]], decided_by: str) -> None:
    """Point (system, source id) rows at golden ids, with the rule and evidence."""
    if not rows:
        return
    now = utcnow()
    insert_rows(
        conn,
        crosswalk,
        [r | {"decided_by": decided_by, "decided_at": now} for r in rows],
        replace_on=["system", "source_id"],
    )


def unlink(conn: Connection, keys: Sequence[Key]) -> None:
    """Remove the crosswalk rows of records that are no longer current."""
    for start in range(0, len(keys), LOOKUP_CHUNK):
        conn.execute(
            delete(crosswalk).where(
                keys_in(
                    crosswalk.c.system, crosswalk.c.source_id, keys[start : start + LOOKUP_CHUNK]
                )
            )
        )


def get(conn: Connection, golden_id: str) -> dict[str, Any] | None:
    """A golden record's row, its lineage as read (`model.lineage.unpack`)."""
    row = conn.execute(select(golden_record).where(golden_record.c.golden_id == golden_id)).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["lineage"] = lineage.unpack(found["data"], found["lineage"])
    return found


def members(conn: Connection, golden_id: str) -> list[dict[str, Any]]:
    """The records linked to a golden id, with their current canonical data."""
    rows = conn.execute(
        select(
            crosswalk.c.system,
            crosswalk.c.source_id,
            crosswalk.c.rule,
            crosswalk.c.evidence,
            crosswalk.c.decided_at,
            canonical_record.c.data,
            canonical_record.c.mapping_version,
            record_head.c.version,
        )
        .join(
            record_head,
            (record_head.c.system == crosswalk.c.system)
            & (record_head.c.source_id == crosswalk.c.source_id),
        )
        .join(canonical_record, canonical_record.c.id == record_head.c.canonical_record_id)
        .where(crosswalk.c.golden_id == golden_id)
        .order_by(crosswalk.c.system, crosswalk.c.source_id)
    )
    return [dict(r._mapping) for r in rows]


def crosswalk_of(conn: Connection, system: str, source_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(
            crosswalk.c.golden_id,
            crosswalk.c.rule,
            crosswalk.c.evidence,
            crosswalk.c.decided_by,
            crosswalk.c.decided_at,
        ).where(crosswalk.c.system == system, crosswalk.c.source_id == source_id)
    ).first()
    return dict(row._mapping) if row is not None else None


def crosswalk_for(conn: Connection, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
    """The crosswalk rows of these records: golden id, rule, evidence, previous id."""
    found: dict[Key, dict[str, Any]] = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        rows = conn.execute(
            select(
                crosswalk.c.system,
                crosswalk.c.source_id,
                crosswalk.c.golden_id,
                crosswalk.c.rule,
                crosswalk.c.evidence,
                crosswalk.c.previous_golden_id,
            ).where(
                keys_in(
                    crosswalk.c.system, crosswalk.c.source_id, keys[start : start + LOOKUP_CHUNK]
                )
            )
        )
        found.update({(r.system, r.source_id): dict(r._mapping) for r in rows})
    return found


def status_of(conn: Connection, golden_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """golden id -> (status, fingerprint) for these ids."""
    wanted = sorted(set(golden_ids))
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = conn.execute(
            select(
                golden_record.c.golden_id, golden_record.c.status, golden_record.c.fingerprint
            ).where(golden_record.c.golden_id.in_(wanted[start : start + LOOKUP_CHUNK]))
        )
        found.update({r.golden_id: (r.status, r.fingerprint) for r in rows})
    return found
