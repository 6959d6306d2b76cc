"""The keys of the match index: how a record is found again without reading every record.

Incremental matching (`golden/incremental.py`) asks the store for the records that share
a blocking key with a new record, and for how common the new record's values are. Both
questions are answered by 64-bit keys worked out here, the same way for one record and
for a million:

- a *block key* per blocking rule (and per deterministic rule's `equal` columns) whose
  columns all have a value: two records share it exactly when the rule would put them
  in one block (barring a 2^-64 collision, which costs a wasted comparison, not a link);
- a *term key* per value of each term-frequency column, and a *total key* per such
  column, whose counts give the value's frequency as the full engine computes it.

A key hashes the rule's name with its values, so a key from one rule never meets one
from another. The index is only valid for the match settings that built it: its entries
carry the settings' digest, and matching refuses an index built under other settings.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accord.config.matching import MatchConfig
from accord.digest import canonical_json, digest
from accord.match.columns import Columns

KeyArray = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
_SEPARATOR = "\x1f"
SMALL = 64  # records: fewer than this are keyed one by one


@dataclass(frozen=True)
class IndexPlan:
    """Which keys the index holds, for one project's match settings."""

    blocks: tuple[tuple[str, tuple[str, ...]], ...]  # (name, column references)
    terms: tuple[str, ...]  # columns whose values' frequencies are counted
    settings: str  # digest of the match settings

    @classmethod
    def of(cls, config: MatchConfig) -> IndexPlan:
        blocks: list[tuple[str, tuple[str, ...]]] = []
        terms: list[str] = []
        if config.model is not None:
            blocks += [("block:" + "+".join(rule), tuple(rule)) for rule in config.model.blocking]
            terms = sorted({c.column for c in config.model.comparisons if c.term_frequency})
        for rule in config.rules:
            equal = (*rule.equal, "kind") if rule.kind is not None else tuple(rule.equal)
            blocks.append(("rule:" + rule.name, equal))
        return cls(tuple(blocks), tuple(terms), settings_digest(config))

    @property
    def columns(self) -> set[str]:
        """Every column reference the keys read."""
        return {ref for _, refs in self.blocks for ref in refs} | set(self.terms)


def settings_digest(config: MatchConfig) -> str:
    return digest(config.model_dump(mode="json"))


def text_key(text: str) -> int:
    """A signed 64-bit key for a text (the first 8 bytes of its BLAKE2b hash)."""
    raw = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


def total_key(column: str) -> int:
    """The key whose count is the number of entries with a value in `column`."""
    return text_key(f"total{_SEPARATOR}{column}")


def _keys(name: str, columns: Columns, refs: Sequence[str]) -> tuple[KeyArray, Mask]:
    """Per record, the key of `name` over the values of `refs`, and whether every one of
    them has a value. Each distinct combination of values is hashed once."""
    if len(columns) <= SMALL:
        return _few_keys(name, columns, refs)
    codes = [columns.codes(ref).astype(np.int64) for ref in refs]
    present = np.ones(len(columns), dtype=bool)
    for column_codes in codes:
        present &= column_codes >= 0
    keys = np.zeros(len(columns), dtype=np.int64)
    records = np.flatnonzero(present)
    if len(records) == 0:
        return keys, present
    first, inverse = _distinct_rows([c[records] for c in codes])
    first = records[first]  # a record holding each combination
    values = [columns.values(ref) for ref in refs]
    hashed = np.fromiter(
        (text_key(_SEPARATOR.join([name, *(str(v[r]) for v in values)])) for r in first.tolist()),
        dtype=np.int64,
        count=len(first),
    )
    keys[records] = hashed[inverse]
    return keys, present


def _distinct_rows(codes: list[KeyArray]) -> tuple[KeyArray, KeyArray]:
    """The distinct combinations of the columns of non-negative `codes`, as (the first
    row holding each, each row's combination). The codes are folded into one integer
    per row when they fit (a one-dimensional unique is many times faster than one over
    rows); otherwise numpy compares rows."""
    sizes = [int(c.max()) + 1 if len(c) else 1 for c in codes]
    if math.prod(sizes) < 2**62:
        folded = np.zeros(len(codes[0]), dtype=np.int64)
        for column, size in zip(codes, sizes, strict=True):
            folded = folded * size + column
        _, first, inverse = np.unique(folded, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(
            np.stack(codes, axis=1), axis=0, return_index=True, return_inverse=True
        )
    return first.astype(np.int64), inverse.reshape(-1)


def _few_keys(name: str, columns: Columns, refs: Sequence[str]) -> tuple[KeyArray, Mask]:
    """`_keys` for a handful of records (incremental matching), without numpy's set
    operations, which cost more than they save on a few values."""
    values = [columns.values(ref) for ref in refs]
    keys = np.zeros(len(columns), dtype=np.int64)
    present = np.zeros(len(columns), dtype=bool)
    for record in range(len(columns)):
        parts = [column[record] for column in values]
        if all(part is not None for part in parts):
            keys[record] = text_key(_SEPARATOR.join([name, *(str(part) for part in parts)]))
            present[record] = True
    return keys, present


@dataclass
class IndexKeys:
    """The keys of a set of records (`columns`' rows)."""

    blocks: list[tuple[KeyArray, Mask]]  # per block rule of the plan
    terms: list[tuple[KeyArray, Mask]]  # per term column of the plan
    totals: list[int]  # per term column

    def block_keys(self, record: int) -> list[int]:
        found = [int(keys[record]) for keys, present in self.blocks if present[record]]
        return list(dict.fromkeys(found))  # a rule listed twice is one key

    def counted_keys(self, record: int) -> list[int]:
        """Every key whose count includes this record: its block keys, its term keys and
        the totals of the columns it has a value in."""
        out = self.block_keys(record)
        for (keys, present), total in zip(self.terms, self.totals, strict=True):
            if present[record]:
                out += [int(keys[record]), total]
        return out

    def block_pairs(self, records: KeyArray) -> tuple[KeyArray, KeyArray]:
        """The block keys of many records at once, as (keys, owners): `owners[i]` is the
        position in `records` of the record holding `keys[i]`. A rule listed twice gives
        one key; the pairs come sorted by key."""
        if len(records) <= SMALL:  # incremental matching's: numpy's calls cost more
            pairs = sorted(
                {(k, n) for n, r in enumerate(records.tolist()) for k in self.block_keys(r)}
            )
            return (
                np.array([k for k, _ in pairs], dtype=np.int64),
                np.array([n for _, n in pairs], dtype=np.int64),
            )
        keys = [k[records][p[records]] for k, p in self.blocks]
        owners = [np.flatnonzero(p[records]) for _, p in self.blocks]
        if not keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        key, owner = np.concatenate(keys), np.concatenate(owners)
        order = np.lexsort((owner, key))
        key, owner = key[order], owner[order]
        kept = np.ones(len(key), dtype=bool)
        kept[1:] = (key[1:] != key[:-1]) | (owner[1:] != owner[:-1])
        return key[kept], owner[kept].astype(np.int64)

    def counts(self, records: KeyArray) -> tuple[KeyArray, KeyArray]:
        """How many of `records` each key's count includes, as (keys, counts): what
        `counted_keys` gives record by record, for many at once."""
        if len(records) <= SMALL:
            counted = Counter(k for r in records.tolist() for k in self.counted_keys(r))
            found = np.array(sorted(counted), dtype=np.int64)
            return found, np.array([counted[k] for k in found.tolist()], dtype=np.int64)
        parts = [self.block_pairs(records)[0]]
        for (keys, present), total in zip(self.terms, self.totals, strict=True):
            holding = present[records]
            parts += [keys[records][holding], np.full(int(holding.sum()), total, dtype=np.int64)]
        found, counts = np.unique(np.concatenate(parts), return_counts=True)
        return found, counts.astype(np.int64)


def joined(parts: Sequence[IndexKeys]) -> IndexKeys:
    """The keys of several sets of records (under one plan), as one, in their order."""
    first = parts[0]
    return IndexKeys(
        [_joined([p.blocks[n] for p in parts]) for n in range(len(first.blocks))],
        [_joined([p.terms[n] for p in parts]) for n in range(len(first.terms))],
        first.totals,
    )


def _joined(pieces: Sequence[tuple[KeyArray, Mask]]) -> tuple[KeyArray, Mask]:
    return np.concatenate([k for k, _ in pieces]), np.concatenate([m for _, m in pieces])


def index_keys(plan: IndexPlan, columns: Columns, *, blocks: bool = True) -> IndexKeys:
    """The records' keys; without `blocks`, only their term and total keys."""
    block_keys = [_keys(name, columns, refs) for name, refs in plan.blocks] if blocks else []
    terms = [_keys("term:" + column, columns, [column]) for column in plan.terms]
    return IndexKeys(block_keys, terms, [total_key(column) for column in plan.terms])


def entry_digest(plan: IndexPlan, features: dict[str, str]) -> str:
    """What an index entry was built from: its features under these settings."""
    return hashlib.sha256(
        (plan.settings + _SEPARATOR + canonical_json(features)).encode()
    ).hexdigest()
