"""Stewards' overrides of golden values (`golden_override`): one row per (golden id,
field), read at every rebuild of a golden record."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, select

from accord.store.dialect import upsert
from accord.store.tables import golden_override, golden_record

LOOKUP_CHUNK = 500
READ_ALL_OVER = 2000  # golden ids asked for: past this, reading the (small) table is cheaper

Row = dict[str, Any]  # value, reason, set_by, set_at


def pins_of(conn: Connection, golden_ids: Collection[str]) -> dict[str, dict[str, Row]]:
    """golden id -> field -> its override, for these golden ids."""
    if not golden_ids:
        return {}
    query = select(golden_override)
    if len(golden_ids) > READ_ALL_OVER:
        rows = list(conn.execute(query))
    else:
        ids = sorted(golden_ids)
        rows = []
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            rows += conn.execute(query.where(golden_override.c.golden_id.in_(chunk))).all()
    wanted = set(golden_ids)
    found: dict[str, dict[str, Row]] = {}
    for row in rows:
        if row.golden_id in wanted:
            found.setdefault(row.golden_id, {})[row.field] = _row(row)
    return found


def set_pin(
    conn: Connection,
    golden_id: str,
    field: str,
    value: Any,
    *,
    reason: str,
    by: str,
    at: datetime,
) -> None:
    upsert(
        conn,
        golden_override,
        [
            {
                "golden_id": golden_id,
                "field": field,
                "value": value,
                "reason": reason,
                "set_by": by,
                "set_at": at,
            }
        ],
        ["golden_id", "field"],
    )


def clear_pin(conn: Connection, golden_id: str, field: str) -> Row | None:
    """Remove an override; returns it, or None when there was none."""
    where = and_(golden_override.c.golden_id == golden_id, golden_override.c.field == field)
    row = conn.execute(select(golden_override).where(where)).first()
    if row is None:
        return None
    conn.execute(delete(golden_override).where(where))
    return _row(row)


def listed(conn: Connection, golden_id: str | None = None) -> list[Row]:
    """Every override (or a customer's), with its customer's status: an override on a
    customer that is no longer active was set aside by a merge."""
    query = (
        select(golden_override, golden_record.c.status, golden_record.c.merged_into)
        .join(golden_record, golden_record.c.golden_id == golden_override.c.golden_id)
        .order_by(golden_override.c.golden_id, golden_override.c.field)
    )
    if golden_id is not None:
        query = query.where(golden_override.c.golden_id == golden_id)
    return [
        _row(row)
        | {
            "golden_id": row.golden_id,
            "field": row.field,
            "status": row.status,
            "merged_into": row.merged_into,
        }
        for row in conn.execute(query)
    ]


@dataclass
class MergedPins:
    """What merges do to overrides (`follow_merges`): the overrides in effect per golden
    id afterwards, and the changes to store once the surviving golden records exist."""

    pins: dict[str, dict[str, Row]]
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (old id, field, new id)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (golden id, field): repeats
    set_aside: list[Row] = field(default_factory=list)


def follow_merges(found: dict[str, dict[str, Row]], merged: Mapping[str, str]) -> MergedPins:
    """The overrides (`found`, by golden id) after golden ids merged away (old -> new):
    each moves to the id it merged into. Where several apply to one field of the
    surviving customer, its own stays; without one, the newest of the merged customers'
    moves to it. The others with another value stay on their merged ids, set aside (a
    split that brings the id back brings them back), listed with `golden_id`, `field`
    and `kept` (the id whose override won); those with the winner's value are dropped
    as repeats."""
    out = MergedPins({g: dict(fields) for g, fields in found.items() if g not in merged})
    groups: dict[tuple[str, str], list[tuple[str, Row]]] = {}
    for golden_id, fields in found.items():
        if golden_id in merged:
            for name, row in fields.items():
                groups.setdefault((merged[golden_id], name), []).append((golden_id, row))
    for (survivor, name), others in sorted(groups.items()):
        others.sort(key=lambda pin: (pin[1]["set_at"], pin[0]), reverse=True)
        own = found.get(survivor, {}).get(name)
        if own is not None:
            owner, winner = survivor, own
        else:
            owner, winner = others[0]
            out.moved.append((owner, name, survivor))
            out.pins.setdefault(survivor, {})[name] = winner
        for golden_id, row in others:
            if golden_id == owner:
                continue
            if row["value"] == winner["value"]:
                out.dropped.append((golden_id, name))
            else:
                out.set_aside.append(row | {"golden_id": golden_id, "field": name, "kept": owner})
    return out


def store_merges(conn: Connection, merged: MergedPins) -> None:
    """Store what `follow_merges` found, once the surviving golden records are stored."""
    for golden_id, name in merged.dropped:
        _delete(conn, golden_id, name)
    for old, name, new in merged.moved:
        _delete(conn, old, name)
        row = merged.pins[new][name]
        set_pin(
            conn, new, name, row["value"], reason=row["reason"], by=row["set_by"], at=row["set_at"]
        )


def _delete(conn: Connection, golden_id: str, field: str) -> None:
    conn.execute(
        delete(golden_override).where(
            golden_override.c.golden_id == golden_id, golden_override.c.field == field
        )
    )


def _row(row: Any) -> Row:
    return {"value": row.value, "reason": row.reason, "set_by": row.set_by, "set_at": row.set_at}
