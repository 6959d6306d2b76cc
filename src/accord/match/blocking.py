"""Blocking: which pairs of records are worth comparing at all.

A blocking rule names columns that must be equal (and present) on both records. Rules are
OR'd: a pair is compared if any rule holds. Each rule's pairs are made by sorting the
records by the rule's key and pairing within each run of equal keys, all in numpy, so the
cost is the sort plus the pairs themselves. A pair that an earlier rule already produced
is dropped by testing the earlier rules' keys on the pair, not by a global sort.

A key shared by more than `max_block_size` records (everyone called "N/A", one shared
mailbox) is reported and skipped rather than allowed to produce millions of pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from accord.match.columns import Columns, IntArray
from accord.match.interface import OversizedBlock


@dataclass
class RuleReport:
    rule: str
    pairs: int = 0  # pairs this rule produces on its own
    new_pairs: int = 0  # of those, pairs no earlier rule produced
    blocks: int = 0
    largest_block: int = 0


@dataclass
class Blocked:
    left: IntArray
    right: IntArray
    rule: npt.NDArray[np.int8]  # index of the first rule that produced each pair
    reports: list[RuleReport] = field(default_factory=list)
    oversized: list[OversizedBlock] = field(default_factory=list)
    keys: list[IntArray] = field(default_factory=list, repr=False)  # per rule, per record

    def __len__(self) -> int:
        return len(self.left)


def rule_name(rule: Sequence[str]) -> str:
    return "+".join(rule)


def rule_key(columns: Columns, rule: Sequence[str]) -> IntArray:
    """One integer per record: equal when all of the rule's columns are equal; -1 when
    any of them is missing."""
    key = columns.codes(rule[0]).astype(np.int64)
    for ref in rule[1:]:
        codes = columns.codes(ref).astype(np.int64)
        missing = (key < 0) | (codes < 0)
        combined = key * (int(codes.max(initial=0)) + 1) + codes
        _, dense = np.unique(combined, return_inverse=True)
        key = dense.astype(np.int64)
        key[missing] = -1
    return key


@dataclass
class RuleBlocks:
    """One rule's blocks: each record's key (-1 when it has no key or its block is too
    big to use), and the records in key order."""

    name: str
    key: IntArray
    order: IntArray
    starts: IntArray
    sizes: IntArray
    oversized: list[OversizedBlock]


def rule_blocks(columns: Columns, rule: Sequence[str], max_block_size: int) -> RuleBlocks:
    name = rule_name(rule)
    key = rule_key(columns, rule)
    present = np.flatnonzero(key >= 0)
    order = present[np.argsort(key[present], kind="stable")]
    sorted_keys = key[order]
    boundaries = np.flatnonzero(np.diff(sorted_keys)) + 1
    starts = (
        np.concatenate([[0], boundaries]).astype(np.int64) if len(order) else np.zeros(0, np.int64)
    )
    sizes = np.diff(np.concatenate([starts, [len(order)]])).astype(np.int64)
    too_big = sizes > max_block_size
    oversized = [
        OversizedBlock(name, describe_key(columns, rule, int(order[start])), int(size))
        for start, size in zip(starts[too_big], sizes[too_big], strict=True)
    ]
    if too_big.any():
        key = key.copy()
        for start, size in zip(starts[too_big], sizes[too_big], strict=True):
            key[order[start : start + size]] = -1
    return RuleBlocks(name, key, order, starts, sizes, oversized)


def pairs_for_rule(
    blocks: RuleBlocks,
    max_block_size: int,
    sources: IntArray | None = None,
    link_type: str = "dedupe_and_link",
) -> tuple[IntArray, IntArray, RuleReport]:
    """Every pair (left < right) that agrees on the rule, from blocks no larger than the cap."""
    report = RuleReport(blocks.name)
    sizes, starts, order = blocks.sizes, blocks.starts, blocks.order
    usable = (sizes >= 2) & (sizes <= max_block_size)
    report.blocks = int(usable.sum())
    report.largest_block = int(sizes[usable].max(initial=0))
    lefts, rights = [], []
    for size in np.unique(sizes[usable]):
        block_starts = starts[usable & (sizes == size)]
        i, j = np.triu_indices(int(size), 1)
        lefts.append(order[(block_starts[:, None] + i[None, :]).ravel()])
        rights.append(order[(block_starts[:, None] + j[None, :]).ravel()])
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, report
    left = np.concatenate(lefts)
    right = np.concatenate(rights)
    left, right = np.minimum(left, right), np.maximum(left, right)
    if sources is not None and link_type != "dedupe_and_link":
        same = sources[left] == sources[right]
        keep = ~same if link_type == "link_only" else same
        left, right = left[keep], right[keep]
    report.pairs = len(left)
    return left, right, report


def satisfies(key: IntArray, left: IntArray, right: IntArray) -> npt.NDArray[np.bool_]:
    """Which of the pairs share a usable key of a rule."""
    a = key[left]
    result: npt.NDArray[np.bool_] = (a >= 0) & (a == key[right])
    return result


def block(
    columns: Columns,
    rules: Sequence[Sequence[str]],
    max_block_size: int,
    sources: IntArray | None = None,
    link_type: str = "dedupe_and_link",
) -> Blocked:
    """The union of every rule's pairs, each pair once, labelled with its first rule."""
    lefts, rights, labels = [], [], []
    reports: list[RuleReport] = []
    oversized: list[OversizedBlock] = []
    keys: list[IntArray] = []
    for index, rule in enumerate(rules):
        blocks = rule_blocks(columns, rule, max_block_size)
        left, right, report = pairs_for_rule(blocks, max_block_size, sources, link_type)
        keep = np.ones(len(left), dtype=bool)
        for earlier in keys:
            keep &= ~satisfies(earlier, left, right)
        keys.append(blocks.key)
        big = blocks.oversized
        left, right = left[keep], right[keep]
        report.new_pairs = len(left)
        reports.append(report)
        oversized += big
        lefts.append(left)
        rights.append(right)
        labels.append(np.full(len(left), index, dtype=np.int8))
    empty = np.zeros(0, dtype=np.int64)
    return Blocked(
        np.concatenate(lefts) if lefts else empty,
        np.concatenate(rights) if rights else empty,
        np.concatenate(labels) if labels else np.zeros(0, dtype=np.int8),
        reports,
        oversized,
        keys,
    )


def describe_key(columns: Columns, rule: Sequence[str], record: int) -> str:
    """A block's values as a report shows them: the record's values of the rule's
    columns, cut to 80 characters."""
    return "|".join(str(columns.values(ref)[record]) for ref in rule)[:80]


def pairs_within(groups: IntArray, records: IntArray) -> tuple[IntArray, IntArray]:
    """Every pair of `records` that share a value of `groups` (one entry per record)."""
    order = np.argsort(groups, kind="stable")
    groups, records = groups[order], records[order]
    if len(records) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    starts = np.concatenate([[0], np.flatnonzero(np.diff(groups)) + 1]).astype(np.int64)
    sizes = np.diff(np.concatenate([starts, [len(records)]])).astype(np.int64)
    lefts, rights = [], []
    for size in np.unique(sizes[sizes >= 2]):
        block_starts = starts[sizes == size]
        i, j = np.triu_indices(int(size), 1)
        lefts.append(records[(block_starts[:, None] + i[None, :]).ravel()])
        rights.append(records[(block_starts[:, None] + j[None, :]).ravel()])
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(lefts), np.concatenate(rights)
