"""A golden customer's history, newest first: its changes as delivered (created,
values updated, merged away, retired), the customers merged into it, the steward
decisions about its member records (merges and splits are decisions), and the values
pinned on it. Read behind the acting identity, from the outbox, the decisions and the
overrides: no table of its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from accord.errors import InputRejected, NotFound
from accord.govern.permissions import Actor, Permission, require
from accord.paging import check_window
from accord.store import golden as golden_store
from accord.store import history
from accord.store import overrides as override_store

MAX_OFFSET = 10_000  # each source is read up to offset + limit entries


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str  # created, updated, merged_in, merged_away, retired, same, different, pinned
    summary: str
    by: str = ""
    note: str = ""
    other: str | None = None  # another golden id the event names
    records: tuple[str, ...] = ()  # SYSTEM:SOURCE_ID of the records a decision is about


@dataclass(frozen=True)
class Timeline:
    golden_id: str
    events: list[Event]
    offset: int
    more: bool  # there are older events


def timeline(
    conn: Connection, actor: Actor, golden_id: str, *, limit: int = 20, offset: int = 0
) -> Timeline:
    """`limit` events from `offset` on, newest first. Raises NotFound for an unknown id."""
    require(actor, Permission.CUSTOMERS_READ)
    check_window(limit, offset)
    if offset > MAX_OFFSET:
        raise InputRejected(f"a timeline is read at most {MAX_OFFSET} events back")
    if golden_store.get(conn, golden_id) is None:
        raise NotFound(f"no customer {golden_id!r}")
    wanted = offset + limit + 1
    members = [(m["system"], m["source_id"]) for m in golden_store.members(conn, golden_id)]
    events = [
        *(_change(row) for row in history.changes_of(conn, golden_id, wanted)),
        *(_merged_in(row) for row in history.merges_into(conn, golden_id, wanted)),
        *(_decision(row) for row in history.decisions_about(conn, members, wanted)),
        *(_pin(row) for row in override_store.listed(conn, golden_id)),
    ]
    events.sort(key=lambda event: event.at, reverse=True)
    shown = events[offset : offset + limit]
    return Timeline(golden_id, shown, offset, more=len(events) > offset + limit)


def _change(row: dict[str, Any]) -> Event:
    change, at = row["change"], row["changed_at"]
    if change == "created":
        return Event(at, "created", "created")
    if change == "merged":
        return Event(at, "merged_away", "merged into another customer", other=row["merged_into"])
    if change == "retired":
        return Event(at, "retired", "retired: no member records left")
    fields = ", ".join(str(f).replace("_", " ") for f in row["fields"] or [])
    return Event(at, "updated", f"values changed: {fields}" if fields else "members changed")


def _merged_in(row: dict[str, Any]) -> Event:
    return Event(
        row["changed_at"],
        "merged_in",
        "another customer merged into this one",
        other=row["golden_id"],
    )


def _decision(row: dict[str, Any]) -> Event:
    same = row["decision"] == "same"
    records = (
        f"{row['left_system']}:{row['left_source_id']}",
        f"{row['right_system']}:{row['right_source_id']}",
    )
    summary = "decided the same customer" if same else "decided different customers"
    return Event(
        row["decided_at"],
        "same" if same else "different",
        summary,
        by=row["decided_by"],
        note=row["note"],
        records=records,
    )


def _pin(row: dict[str, Any]) -> Event:
    field = str(row["field"]).replace("_", " ")
    return Event(
        row["set_at"],
        "pinned",
        f"{field} pinned to {row['value']!r}",
        by=row["set_by"],
        note=row["reason"],
    )
