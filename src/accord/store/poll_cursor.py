"""The SQL polling channel's cursor: where each system's poll stopped (`poll_cursor`).

The store keeps the position as text and the name of its type; what the types mean is
the channel's business (`intake/poll.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select

from accord.store.dialect import upsert
from accord.store.tables import poll_cursor
from accord.store.types import utcnow


@dataclass(frozen=True)
class StoredCursor:
    watermark: str | None  # None until a run has stored a row
    watermark_type: str | None
    last_key: str | None
    key_type: str | None
    last_run_at: datetime | None


def read(conn: Connection, system: str) -> StoredCursor | None:
    """The cursor of `system`, or None when it was never polled (or was reset)."""
    row = conn.execute(select(poll_cursor).where(poll_cursor.c.system == system)).first()
    if row is None:
        return None
    return StoredCursor(
        row.watermark, row.watermark_type, row.last_key, row.key_type, row.last_run_at
    )


def move(
    conn: Connection,
    system: str,
    *,
    watermark: str,
    watermark_type: str,
    last_key: str,
    key_type: str,
) -> None:
    """Set the position, in the caller's transaction (the one storing the rows it covers)."""
    upsert(
        conn,
        poll_cursor,
        [
            {
                "system": system,
                "watermark": watermark,
                "watermark_type": watermark_type,
                "last_key": last_key,
                "key_type": key_type,
                "updated_at": utcnow(),
            }
        ],
        keys=["system"],
    )


def mark_run(conn: Connection, system: str, at: datetime) -> None:
    """Note that a run started at `at`, leaving the position as it is."""
    upsert(
        conn,
        poll_cursor,
        [{"system": system, "last_run_at": at, "updated_at": utcnow()}],
        keys=["system"],
    )


def reset(conn: Connection, system: str) -> bool:
    """Forget `system`'s position: its next run reads every row. True if there was one."""
    deleted = conn.execute(
        delete(poll_cursor).where(poll_cursor.c.system == system).returning(poll_cursor.c.system)
    )
    return deleted.first() is not None
