"""Keeping the match index in step with the records: a full resolve brings every entry up
to date (and removes the entries of records that are gone); incremental matching updates
the entry of each record it matches. Only what changed is written: a re-run over
unchanged data writes nothing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection

from accord.match.index import IndexKeys, IndexPlan, KeyArray, entry_digest, index_keys
from accord.match.learned import record_columns
from accord.store import match_index as store

Key = tuple[str, str]
_BATCH = 10_000  # index rows made at a time


@dataclass
class IndexChange:
    added: int = 0
    rewritten: int = 0  # new features: keys replaced
    moved: int = 0  # same features, a new canonical record
    removed: int = 0


def sync_index(
    conn: Connection,
    plan: IndexPlan,
    records: Sequence[tuple[Key, int, dict[str, str]]],
    *,
    complete: bool,
    existing: dict[Key, tuple[int, str, int]] | None = None,
    stored_features: Mapping[int, dict[str, str]] | None = None,
    planned: IndexKeys | None = None,
) -> IndexChange:
    """Make the entries of `records` ((system, source id), canonical record id, match
    features) current. With `complete`, `records` are all the records there are, and
    entries of any other record are removed. `existing` are the records' entries (id,
    digest, canonical record id), `stored_features` their features by entry id, and
    `planned` the keys of `records` (in their order), when the caller has them already.

    Records are taken `_PART` at a time, so that what a full resolve works out for its
    million entries (digests, columns, keys) is never all in memory at once; the changes
    of the keys' counts are added up across parts and written last."""
    if existing is None:
        existing = store.digests(conn, None if complete else [key for key, _, _ in records])
    order = None
    if planned is not None:
        order = {key: position for position, (key, _, _) in enumerate(records)}
    sync = _Sync(conn, plan, existing, stored_features or {}, planned, order)
    if complete:
        wanted = {key for key, _, _ in records}
        removed = [key for key in existing if key not in wanted]
        del wanted
        sync.remove([existing[key][0] for key in removed])
        store.delete_entries(conn, [existing[key][0] for key in removed])
        sync.change.removed = len(removed)
    for start in range(0, len(records), _PART):
        sync.part(records[start : start + _PART])
    store.change_counts(conn, _summed(sync.counted))
    return sync.change


def drop_entries(
    conn: Connection, plan: IndexPlan, entries: Sequence[tuple[int, dict[str, str]]]
) -> None:
    """Remove these entries ((entry id, features)) of records that are no longer current,
    their keys, and their share of the keys' counts."""
    if not entries:
        return
    sync = _Sync(conn, plan, {}, dict(entries), None, None)
    sync.remove([entry_id for entry_id, _ in entries])
    store.delete_entries(conn, [entry_id for entry_id, _ in entries])
    store.change_counts(conn, _summed(sync.counted))


_PART = 100_000  # records whose entries are worked out at a time


@dataclass
class _Sync:
    conn: Connection
    plan: IndexPlan
    existing: dict[Key, tuple[int, str, int]]
    stored_features: Mapping[int, dict[str, str]]
    planned: IndexKeys | None
    order: dict[Key, int] | None  # position of each record among those `planned`
    change: IndexChange = field(default_factory=IndexChange)
    # (keys, how many entries more or fewer), to be added up
    counted: list[tuple[KeyArray, KeyArray]] = field(default_factory=list)

    def part(self, records: Sequence[tuple[Key, int, dict[str, str]]]) -> None:
        """Make the entries of these records current, and their keys."""
        conn, existing = self.conn, self.existing
        wanted = {
            key: (canonical, features, entry_digest(self.plan, features))
            for key, canonical, features in records
        }
        new = [key for key in wanted if key not in existing]
        rewrite = [key for key in wanted if key in existing and existing[key][1] != wanted[key][2]]
        moved = [
            key
            for key in wanted
            if key in existing
            and existing[key][1] == wanted[key][2]
            and existing[key][2] != wanted[key][0]
        ]
        self.remove([existing[key][0] for key in rewrite])
        store.update_entries(
            conn,
            [
                {
                    "id": existing[key][0],
                    "canonical_record_id": wanted[key][0],
                    "features": wanted[key][1],
                    "digest": wanted[key][2],
                }
                for key in [*rewrite, *moved]
            ],
        )
        ids = store.insert_entries(
            conn,
            (
                {
                    "system": key[0],
                    "source_id": key[1],
                    "canonical_record_id": wanted[key][0],
                    "features": wanted[key][1],
                    "digest": wanted[key][2],
                }
                for key in new
            ),
        )
        fresh = [*rewrite, *new]
        if fresh:
            if self.planned is None or self.order is None:
                keys = index_keys(self.plan, record_columns([wanted[key][1] for key in fresh]))
                positions = list(range(len(fresh)))
            else:
                keys, order = self.planned, self.order
                positions = [order[key] for key in fresh]
            entry_ids = [existing[key][0] if key in existing else ids[key] for key in fresh]
            added, change_of_counts = _key_changes(keys, positions, entry_ids, 1)
            store.add_keys(conn, added)
            self.counted.append(change_of_counts)
        self.change.added += len(new)
        self.change.rewritten += len(rewrite)
        self.change.moved += len(moved)

    def remove(self, old_ids: list[int]) -> None:
        """Remove the keys of the entries `old_ids` (their features from
        `stored_features`, or read from the store) and note how their counts change."""
        if not old_ids:
            return
        known = self.stored_features
        read = store.features_of(self.conn, [i for i in old_ids if i not in known])
        features = [known[i] if i in known else read[i] for i in old_ids]
        keys = index_keys(self.plan, record_columns(features))
        stale, change_of_counts = _key_changes(keys, range(len(old_ids)), old_ids, -1)
        store.remove_keys(self.conn, stale)
        self.counted.append(change_of_counts)


def _key_changes(
    keys: IndexKeys, records: Sequence[int], entry_ids: Sequence[int], sign: int
) -> tuple[Iterator[tuple[int, int]], tuple[KeyArray, KeyArray]]:
    """For `records`, whose entries are `entry_ids` (in order): their (block key, entry
    id) rows, made a batch at a time (a full resolve has millions), and how they change
    each key's count (`sign`: +1 for entries added, -1 for entries removed)."""
    chosen = np.asarray(records, dtype=np.int64)
    block, owners = keys.block_pairs(chosen)
    found, counts = keys.counts(chosen)
    return _pairs(block, np.asarray(entry_ids, dtype=np.int64)[owners]), (found, sign * counts)


def _pairs(first: KeyArray, second: KeyArray) -> Iterator[tuple[int, int]]:
    for start in range(0, len(first), _BATCH):
        end = start + _BATCH
        yield from zip(first[start:end].tolist(), second[start:end].tolist(), strict=True)


def _summed(counted: list[tuple[KeyArray, KeyArray]]) -> Iterator[tuple[int, int]]:
    """(key, change) for every key, the changes of each key added up."""
    if not counted:
        return
    if len(counted) == 1:  # each part's keys are distinct already
        yield from _pairs(*counted[0])
        return
    keys = np.concatenate([k for k, _ in counted])
    changes = np.concatenate([c for _, c in counted])
    distinct, inverse = np.unique(keys, return_inverse=True)
    total = np.zeros(len(distinct), dtype=np.int64)
    np.add.at(total, inverse.reshape(-1), changes)
    yield from _pairs(distinct, total)
