"""The hybrid logical clock's last stamp, kept in the store so that it survives restarts
and every process that stores records shares it (`accord.hlc`).

It is one `counter` row (`hlc`, the stamp packed into an integer). A batch reads it with
a row lock, takes its stamps from it in memory and writes the last one back, in the
transaction that stores the batch's records: two statements per batch, and concurrent
writers take turns on the row, so stamps never repeat and grow in commit order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection, select, update

from accord.hlc import Clock, Stamp
from accord.store.dialect import insert_new
from accord.store.tables import counter

COUNTER = "hlc"
DEFAULT_MAX_SKEW = timedelta(minutes=5)


def last_stamp(conn: Connection, *, lock: bool = False) -> Stamp:
    """The last stamp given (zero before the first); with `lock`, the row is held until
    the transaction ends."""
    query = select(counter.c.value).where(counter.c.name == COUNTER)
    if lock:
        query = query.with_for_update()
    value = conn.execute(query).scalar()
    if value is None:
        # (the migration adds the row; a store emptied by hand may not have it)
        insert_new(conn, counter, {"name": COUNTER, "value": 0})
        value = conn.execute(query).scalar_one()
    return Stamp.unpack(int(value))


def stamp(
    conn: Connection,
    source_times: Sequence[int | None],
    *,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> list[str]:
    """A stamp per record, in order, as text (`Stamp.text`), for records the sources
    changed at `source_times` (milliseconds, None when unknown); the clock advances once,
    in the caller's transaction, which must be writing."""
    if not source_times:
        return []
    clock = Clock(last_stamp(conn, lock=True), max_skew_ms=int(max_skew.total_seconds() * 1000))
    texts = clock.texts(source_times)
    conn.execute(update(counter).where(counter.c.name == COUNTER).values(value=clock.last.packed()))
    return texts
