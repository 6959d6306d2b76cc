"""Relationships between golden records (contact of, subsidiary of)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Text, delete, literal_column, or_, select, tuple_

from accord.store.dialect import upsert
from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import (
    canonical_record,
    crosswalk,
    golden_record,
    record_head,
    relationship,
)

Edge = tuple[str, str, str]  # (from golden id, to golden id, type)
Key = tuple[str, str]  # (system, source id)
COLUMNS = ["from_golden_id", "to_golden_id", "type"]
# What migration 0019 indexes outside `tables.metadata`: per canonical record of an
# organization, its tax id and its parent's (expressions over the JSON data, written
# differently by each backend; see `_field`).
INDEX_OBJECTS = ("ix_canonical_record_tax_id", "ix_canonical_record_parent_tax_id")


def current(conn: Connection, golden_ids: Iterable[str] | None = None) -> dict[Edge, Any]:
    """Every stored relationship (or those touching `golden_ids`) with its evidence."""
    query = select(relationship)
    if golden_ids is None:
        chunks = [query]
    else:
        wanted = sorted(set(golden_ids))
        chunks = [
            query.where(
                or_(
                    relationship.c.from_golden_id.in_(wanted[start : start + LOOKUP_CHUNK]),
                    relationship.c.to_golden_id.in_(wanted[start : start + LOOKUP_CHUNK]),
                )
            )
            for start in range(0, len(wanted), LOOKUP_CHUNK)
        ]
    found: dict[Edge, Any] = {}
    for chunk in chunks:
        for r in conn.execute(chunk):
            found[(r.from_golden_id, r.to_golden_id, r.type)] = r.evidence
    return found


def outgoing(conn: Connection, golden_ids: Iterable[str], kind: str) -> dict[Edge, Any]:
    """The stored relationships of type `kind` from these customers, with evidence."""
    wanted = sorted(set(golden_ids))
    found: dict[Edge, Any] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = conn.execute(
            select(relationship).where(
                relationship.c.from_golden_id.in_(wanted[start : start + LOOKUP_CHUNK]),
                relationship.c.type == kind,
            )
        )
        found.update({(r.from_golden_id, r.to_golden_id, r.type): r.evidence for r in rows})
    return found


def sync(
    conn: Connection, wanted: Mapping[Edge, Any], existing: Mapping[Edge, Any], at: datetime
) -> dict[str, int]:
    """Make the `existing` relationships what is `wanted`: new ones added, changed
    evidence rewritten, the rest removed. Returns counts."""
    rows = [
        {
            "from_golden_id": edge[0],
            "to_golden_id": edge[1],
            "type": edge[2],
            "evidence": evidence,
            "created_at": at,
            "updated_at": at,
        }
        for edge, evidence in sorted(wanted.items())
        if existing.get(edge) != evidence
    ]
    for start in range(0, len(rows), 1000):
        upsert(conn, relationship, rows[start : start + 1000], COLUMNS, keep=("created_at",))
    gone = [edge for edge in existing if edge not in wanted]
    for start in range(0, len(gone), LOOKUP_CHUNK):
        conn.execute(
            delete(relationship).where(
                tuple_(*relationship.c[*COLUMNS]).in_(gone[start : start + LOOKUP_CHUNK])
            )
        )
    return {
        "added": sum(1 for edge in wanted if edge not in existing),
        "changed": sum(1 for edge in wanted if edge in existing and existing[edge] != wanted[edge]),
        "removed": len(gone),
    }


def of_customer(conn: Connection, golden_id: str) -> list[dict[str, Any]]:
    """A customer's relationships both ways, with the other customer's name."""
    out: list[dict[str, Any]] = []
    for direction, own, other in (
        ("outgoing", relationship.c.from_golden_id, relationship.c.to_golden_id),
        ("incoming", relationship.c.to_golden_id, relationship.c.from_golden_id),
    ):
        rows = conn.execute(
            select(
                relationship.c.type,
                other.label("other"),
                golden_record.c.display_name,
                relationship.c.evidence,
            )
            .join(golden_record, golden_record.c.golden_id == other)
            .where(own == golden_id)
            .order_by(relationship.c.type, other)
        )
        out += [
            {
                "type": r.type,
                "direction": direction,
                "golden_id": r.other,
                "display_name": r.display_name,
                "evidence": r.evidence,
            }
            for r in rows
        ]
    return out


def organizations_holding(conn: Connection, tax_ids: Iterable[str]) -> list[tuple[Key, str, str]]:
    """(record, tax id, golden id) of every current organization record in a customer
    whose `tax_id` is one of `tax_ids`: the parents a `parent_tax_id` may name."""
    return _organizations_by(conn, "tax_id", tax_ids)


def organizations_naming_parents(
    conn: Connection, tax_ids: Iterable[str]
) -> list[tuple[Key, str, str]]:
    """(record, parent's tax id, golden id) of every current organization record in a
    customer whose `parent_tax_id` is one of `tax_ids`: the subsidiaries that name them."""
    return _organizations_by(conn, "parent_tax_id", tax_ids)


def _organizations_by(
    conn: Connection, name: str, values: Iterable[str]
) -> list[tuple[Key, str, str]]:
    """Current organization records in a customer whose canonical field `name` is one of
    `values`, found through the index migration 0019 made on that field (the query
    repeats the index's expression and its condition, as a partial expression index is
    used only then)."""
    wanted = sorted(set(values))
    if not wanted:
        return []
    dialect = conn.dialect.name
    value, kind = _field(name, dialect), _field("kind", dialect)
    query = (
        select(
            canonical_record.c.system,
            canonical_record.c.source_id,
            value.label("value"),
            crosswalk.c.golden_id,
        )
        .join(
            record_head,
            (record_head.c.system == canonical_record.c.system)
            & (record_head.c.source_id == canonical_record.c.source_id)
            & (record_head.c.canonical_record_id == canonical_record.c.id),
        )
        .join(
            crosswalk,
            (crosswalk.c.system == canonical_record.c.system)
            & (crosswalk.c.source_id == canonical_record.c.source_id),
        )
        .where(kind == literal_column("'organization'"), value.is_not(None))
    )
    found: list[tuple[Key, str, str]] = []
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = conn.execute(query.where(value.in_(wanted[start : start + LOOKUP_CHUNK])))
        found += [((r.system, r.source_id), r.value, r.golden_id) for r in rows]
    return sorted(found)


def _field(name: str, dialect: str) -> ColumnElement[str]:
    """A canonical record's field as text, written as migration 0019 indexes it."""
    if dialect == "postgresql":
        return literal_column(f"(canonical_record.data ->> '{name}')", Text)
    return literal_column(f"json_extract(canonical_record.data, '$.{name}')", Text)
