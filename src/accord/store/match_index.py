"""The match index in the store: entries (a record's match features), block keys, and
counts per key. See `match/index.py` for what the keys are."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, literal, select, update

from accord.store.dialect import insert_many, insert_rows, keys_in, one_of
from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import crosswalk, match_count, match_entry, match_key

Key = tuple[str, str]  # (system, source id)
WRITE_BATCH = 1000
_FEW = 8  # rows: up to this many are inserted with RETURNING, one statement


@dataclass(frozen=True)
class Entry:
    id: int
    system: str
    source_id: str
    features: dict[str, str]
    golden_id: str | None = None

    @property
    def key(self) -> Key:
        return self.system, self.source_id


def digests(conn: Connection, keys: Sequence[Key] | None = None) -> dict[Key, tuple[int, str, int]]:
    """(system, source id) -> (entry id, digest, canonical record id) of every entry, or
    of the entries of `keys`."""
    query = select(
        match_entry.c.id,
        match_entry.c.system,
        match_entry.c.source_id,
        match_entry.c.digest,
        match_entry.c.canonical_record_id,
    )
    if keys is None:
        chunks = [query]
    else:
        chunks = [
            query.where(
                keys_in(
                    match_entry.c.system,
                    match_entry.c.source_id,
                    keys[start : start + LOOKUP_CHUNK],
                )
            )
            for start in range(0, len(keys), LOOKUP_CHUNK)
        ]
    found: dict[Key, tuple[int, str, int]] = {}
    for chunk in chunks:
        for r in conn.execute(chunk):
            found[(r.system, r.source_id)] = (r.id, r.digest, r.canonical_record_id)
    return found


@dataclass(frozen=True)
class Lookup:
    """What the store knows of one record before it is matched: its entry (with digest
    and canonical record id) if it has one, and its golden id if it is linked."""

    entry: Entry | None
    digest: str | None
    canonical_record_id: int | None
    golden_id: str | None


def lookup(conn: Connection, key: Key) -> Lookup:
    """One record's entry and golden id, in one statement (a new record has a golden id
    but no entry until it is first matched; an entry may not be linked yet)."""
    row = conn.execute(_LOOKUP, {"system": key[0], "source_id": key[1]}).one()
    if row.id is None:
        return Lookup(None, None, None, row.golden_id)
    return Lookup(_entry(row), row.digest, row.canonical_record_id, row.golden_id)


_LOOKUP = select(
    select(crosswalk.c.golden_id)
    .where(
        crosswalk.c.system == bindparam("system"),
        crosswalk.c.source_id == bindparam("source_id"),
    )
    .scalar_subquery()
    .label("golden_id"),
    match_entry.c.id,
    match_entry.c.system,
    match_entry.c.source_id,
    match_entry.c.features,
    match_entry.c.digest,
    match_entry.c.canonical_record_id,
).select_from(
    select(literal(1).label("one"))
    .subquery()
    .outerjoin(
        match_entry,
        and_(
            match_entry.c.system == bindparam("system"),
            match_entry.c.source_id == bindparam("source_id"),
        ),
    )
)


def features_of(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(match_entry.c.id, match_entry.c.features).where(
                match_entry.c.id.in_(ids[start : start + LOOKUP_CHUNK])
            )
        )
        found.update({r.id: r.features for r in rows})
    return found


_INSERT_ENTRIES = match_entry.insert().returning(
    match_entry.c.id, match_entry.c.system, match_entry.c.source_id
)


def insert_entries(conn: Connection, rows: Iterable[dict[str, Any]]) -> dict[Key, int]:
    """Add entries (system, source_id, canonical_record_id, features, digest); returns
    their ids. `rows` are taken a batch at a time, so a generator is never all in memory."""
    ids: dict[Key, int] = {}
    pending = iter(rows)
    batch = list(itertools.islice(pending, _FEW + 1))
    if conn.dialect.name == "sqlite" and len(batch) > _FEW:
        # Many rows: ids above the largest, given here, so that the rows can go to the
        # driver's executemany (which returns nothing). The resolve holds the write lock.
        next_id = conn.execute(select(func.coalesce(func.max(match_entry.c.id), 0))).scalar_one()
        while batch:
            numbered = [row | {"id": next_id + 1 + n} for n, row in enumerate(batch)]
            insert_rows(conn, match_entry, numbered)
            ids.update({(row["system"], row["source_id"]): row["id"] for row in numbered})
            next_id += len(batch)
            batch = list(itertools.islice(pending, WRITE_BATCH * 10))
        return ids
    while batch:
        found = conn.execute(_INSERT_ENTRIES, batch)
        ids.update({(r.system, r.source_id): r.id for r in found})
        batch = list(itertools.islice(pending, WRITE_BATCH))
    return ids


def update_entries(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite entries by id: canonical_record_id, features, digest."""
    statement = (
        update(match_entry)
        .where(match_entry.c.id == bindparam("b_id"))
        .values(
            canonical_record_id=bindparam("canonical_record_id"),
            features=bindparam("features"),
            digest=bindparam("digest"),
        )
    )
    for start in range(0, len(rows), WRITE_BATCH):
        conn.execute(
            statement,
            [
                {
                    "b_id": r["id"],
                    "canonical_record_id": r["canonical_record_id"],
                    "features": r["features"],
                    "digest": r["digest"],
                }
                for r in rows[start : start + WRITE_BATCH]
            ],
        )


def delete_entries(conn: Connection, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), LOOKUP_CHUNK):
        conn.execute(
            delete(match_entry).where(match_entry.c.id.in_(ids[start : start + LOOKUP_CHUNK]))
        )


def add_keys(conn: Connection, pairs: Iterable[tuple[int, int]]) -> None:
    """Add (key hash, entry id) rows, taken a batch at a time."""
    pending = iter(pairs)
    while batch := list(itertools.islice(pending, WRITE_BATCH * 10)):
        insert_many(conn, match_key, ["key_hash", "entry_id"], batch)


def remove_keys(conn: Connection, pairs: Iterable[tuple[int, int]]) -> None:
    pending = iter(pairs)
    while batch := list(itertools.islice(pending, LOOKUP_CHUNK)):
        conn.execute(
            delete(match_key).where(keys_in(match_key.c.key_hash, match_key.c.entry_id, batch))
        )


def change_counts(conn: Connection, deltas: Mapping[int, int] | Iterable[tuple[int, int]]) -> None:
    """Add each delta to its key's count ((key, delta) pairs, or a mapping of them);
    counts that reach zero are removed."""
    pending = iter(deltas.items() if isinstance(deltas, Mapping) else deltas)
    emptied: list[int] = []
    while chunk := list(itertools.islice(pending, WRITE_BATCH * 10)):
        batch = [(k, d) for k, d in chunk if d]
        insert_many(
            conn,
            match_count,
            ["key_hash", "entries"],
            batch,
            add_on_conflict=(["key_hash"], "entries"),
        )
        emptied += [k for k, d in batch if d < 0]
    for start in range(0, len(emptied), LOOKUP_CHUNK):
        conn.execute(
            delete(match_count).where(
                match_count.c.key_hash.in_(emptied[start : start + LOOKUP_CHUNK]),
                match_count.c.entries <= 0,
            )
        )


def counts(conn: Connection, keys: Iterable[int]) -> dict[int, int]:
    """How many entries carry each key (keys no entry carries are left out)."""
    wanted = sorted(set(keys))
    found: dict[int, int] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = conn.execute(
            _statements(conn.dialect.name).counts, {"keys": wanted[start : start + LOOKUP_CHUNK]}
        )
        found.update({r.key_hash: r.entries for r in rows})
    return found


def _entries(*extra: Any, linked: bool = False) -> Any:
    """Entries with their golden ids (none for a record not linked yet); with `linked`,
    only linked entries, joined from the crosswalk's side (SQLite does not turn the outer
    join into an inner one for a condition on the golden id, and would scan every
    entry)."""
    columns = select(
        match_entry.c.id,
        match_entry.c.system,
        match_entry.c.source_id,
        match_entry.c.features,
        crosswalk.c.golden_id,
        *extra,
    )
    on = (crosswalk.c.system == match_entry.c.system) & (
        crosswalk.c.source_id == match_entry.c.source_id
    )
    if linked:
        return columns.select_from(crosswalk.join(match_entry, on))
    return columns.outerjoin(crosswalk, on)


def _entry(row: Any) -> Entry:
    return Entry(row.id, row.system, row.source_id, row.features, row.golden_id)


@dataclass(frozen=True)
class _Statements:
    """The statements incremental matching runs for every record, built once per
    dialect, each list bound as one parameter (`dialect.one_of`)."""

    counts: Any
    sharing: Any
    members: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    keys = one_of(match_key.c.key_hash, "keys", dialect)
    return _Statements(
        counts=select(match_count.c.key_hash, match_count.c.entries).where(
            one_of(match_count.c.key_hash, "keys", dialect)
        ),
        sharing=_entries().where(match_entry.c.id.in_(select(match_key.c.entry_id).where(keys))),
        members=_entries(linked=True).where(one_of(crosswalk.c.golden_id, "golden_ids", dialect)),
    )


def sharing(conn: Connection, keys: Sequence[int]) -> list[Entry]:
    """The entries that carry any of these block keys, each once, with golden ids."""
    found: dict[int, Entry] = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = {"keys": list(keys[start : start + LOOKUP_CHUNK])}
        for row in conn.execute(_statements(conn.dialect.name).sharing, chunk):
            found[row.id] = _entry(row)
    return sorted(found.values(), key=lambda e: e.id)


def members_of(conn: Connection, golden_ids: Sequence[str]) -> list[Entry]:
    """The entries of every record linked to these golden ids."""
    found: list[Entry] = []
    wanted = sorted(set(golden_ids))
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = conn.execute(
            _statements(conn.dialect.name).members,
            {"golden_ids": wanted[start : start + LOOKUP_CHUNK]},
        )
        found += [_entry(row) for row in rows]
    return sorted(found, key=lambda e: e.id)


def entries_for(conn: Connection, keys: Sequence[Key]) -> dict[Key, Entry]:
    """The entries of these records, with golden ids."""
    found: dict[Key, Entry] = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start : start + LOOKUP_CHUNK]
        rows = conn.execute(
            _entries().where(keys_in(match_entry.c.system, match_entry.c.source_id, chunk))
        )
        found.update({(row.system, row.source_id): _entry(row) for row in rows})
    return found
