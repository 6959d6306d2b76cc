"""The deterministic rule engine: records that agree exactly on a rule's `equal` features
and are similar enough on its `similar` features are linked, unless a `conflicts` feature
is present on both and differs.

Blocking is the `equal` key itself, so cost grows with the number of records and the
size of the blocks, not with the square of the records. A block larger than
`max_block_size` (everyone sharing "info@" or a placeholder) is reported and skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

from accord.config.matching import MatchConfig, MatchRule
from accord.match.clusters import DisjointSet
from accord.match.features import SIMILARITY
from accord.match.interface import Link, MatchRecord, MatchResult, OversizedBlock


class RuleMatcher:
    def __init__(self, config: MatchConfig) -> None:
        self.config = config

    def link(self, records: Sequence[MatchRecord]) -> MatchResult:
        result = MatchResult(links=[])
        joined = DisjointSet(len(records))
        for rule in self.config.rules:
            for key, members in self._blocks(rule, records).items():
                if len(members) > self.config.max_block_size:
                    result.oversized_blocks.append(
                        OversizedBlock(rule.name, "|".join(key)[:80], len(members))
                    )
                    continue
                for left, right in combinations(members, 2):
                    if joined.same(left, right):
                        continue  # an earlier rule already put them together
                    result.pairs_compared += 1
                    if self._agrees(rule, records[left], records[right]):
                        joined.union(left, right)
                        result.links.append(Link(left, right, rule.name))
        return result

    def explain(self, pairs: Sequence[tuple[int, int]]) -> list[dict[str, Any] | None]:
        """Rules say which rule linked a pair; they weigh no evidence to explain."""
        return [None] * len(pairs)

    @staticmethod
    def _blocks(
        rule: MatchRule, records: Sequence[MatchRecord]
    ) -> dict[tuple[str, ...], list[int]]:
        blocks: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            if rule.kind is not None and record.kind != rule.kind:
                continue
            features = record.features
            if all(name in features for name in rule.equal):
                blocks[tuple(features[name] for name in rule.equal)].append(index)
        return blocks

    def _agrees(self, rule: MatchRule, a: MatchRecord, b: MatchRecord) -> bool:
        if a.kind != b.kind:
            return False
        for name in self.config.conflicts:
            left, right = a.features.get(name), b.features.get(name)
            if left is not None and right is not None and left != right:
                return False
        for name, threshold in rule.similar.items():
            left, right = a.features.get(name), b.features.get(name)
            if left is None or right is None or SIMILARITY[name](left, right) < threshold:
                return False
        return True
