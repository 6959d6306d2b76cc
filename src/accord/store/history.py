"""What happened to a golden customer, read from where it is kept: its changes in the
outbox (`golden_change`, by golden id), the merges of other customers into it, and the
steward decisions about its member records (`match_decision`). Every read searches by
index; each returns the newest `limit` first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, or_, select

from accord.store.dialect import keys_in
from accord.store.tables import crosswalk, golden_change, match_decision

Key = tuple[str, str]


def changes_of(conn: Connection, golden_id: str, limit: int) -> list[dict[str, Any]]:
    """The customer's own outbox changes (created, updated, merged, retired; repairs
    for one target left out), newest first."""
    rows = conn.execute(
        select(
            golden_change.c.id,
            golden_change.c.golden_id,
            golden_change.c.change,
            golden_change.c.fields,
            golden_change.c.merged_into,
            golden_change.c.changed_at,
        )
        .where(golden_change.c.golden_id == golden_id, golden_change.c.target.is_(None))
        .order_by(golden_change.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def merges_into(conn: Connection, golden_id: str, limit: int) -> list[dict[str, Any]]:
    """The merges of other customers into this one that its members remember (each
    member's previous golden id), newest first."""
    previous = conn.execute(
        select(crosswalk.c.previous_golden_id)
        .where(crosswalk.c.golden_id == golden_id, crosswalk.c.previous_golden_id.is_not(None))
        .distinct()
    ).scalars()
    others = sorted({str(p) for p in previous} - {golden_id})
    if not others:
        return []
    rows = conn.execute(
        select(
            golden_change.c.id,
            golden_change.c.golden_id,
            golden_change.c.change,
            golden_change.c.merged_into,
            golden_change.c.changed_at,
        )
        .where(
            golden_change.c.golden_id.in_(others),
            golden_change.c.change == "merged",
            golden_change.c.merged_into == golden_id,
        )
        .order_by(golden_change.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def decisions_about(conn: Connection, keys: Sequence[Key], limit: int) -> list[dict[str, Any]]:
    """The decisions in force about pairs one of whose records is among `keys`, newest
    first (a pair decided again keeps only its latest decision)."""
    if not keys:
        return []
    c = match_decision.c
    rows = conn.execute(
        select(match_decision)
        .where(
            or_(
                keys_in(c.left_system, c.left_source_id, keys),
                keys_in(c.right_system, c.right_source_id, keys),
            )
        )
        .order_by(match_decision.c.decided_at.desc(), match_decision.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]
