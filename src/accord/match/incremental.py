"""Incremental matching: one record against the customers already known, with the model a
full resolve learned, without reading every record.

The store hands over a *neighbourhood*: the record, the records that share a blocking key
with it (found through the match index), and every member of the customers they and the
record belong to. This module scores the pairs that matter with the stored model (value
frequencies come from the index's counts, so a rare surname weighs what it weighs in a
full resolve) and clusters the neighbourhood again, as the full engine would:

- customers the record does not touch are not in the neighbourhood, and do not change;
- customers in it are kept whole (their records were linked before), except the one the
  record leaves: its other members are scored among themselves again, so a record that
  held a customer together does not leave two strangers in one customer behind it;
- the record's links (deterministic rules, then model links strongest first) join it to
  customers, or merge customers it bridges, through the same guard as the full engine:
  a link that would put contradicting values (`match.conflicts`, `one_per_system`) into
  one customer goes to review instead;
- steward decisions are applied over everything, as in a full resolve;
- pairs in the review band that end in different customers go to review.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from accord.config.matching import MatchConfig
from accord.match.clusters import GuardedClusters, clusters
from accord.match.columns import Columns, IntArray
from accord.match.comparisons import CompiledComparison
from accord.match.decisions import Decision, apply_decisions
from accord.match.interface import Link
from accord.match.learned import (
    SYSTEM_COLUMN,
    _contradiction_test,
    deterministic_links,
    record_columns,
)
from accord.match.model import ModelParams, explain_pairs, level_matrix, score

KEPT_RULE = "kept"  # a link between two records of a customer the change did not touch


@dataclass
class Node:
    """A record in the neighbourhood: its key, match features and current customer."""

    key: tuple[str, str]
    features: dict[str, str]
    golden_id: str | None


@dataclass
class ScoredPairs:
    left: IntArray
    right: IntArray
    weight: np.ndarray
    probability: np.ndarray


@dataclass
class LocalResult:
    groups: list[list[int]]  # node indexes, every node in exactly one group
    links: list[Link]  # links that formed the groups (kept, steward, rule, model)
    review: list[Link]  # pairs for a steward, with explanations
    pairs_scored: int


class NeighbourhoodScorer:
    """The stored model applied to a handful of records."""

    def __init__(self, config: MatchConfig, params: ModelParams) -> None:
        if config.model is None:
            raise ValueError("incremental matching needs the learned engine")
        self.config = config
        self.model = config.model
        self.params = params
        self._compiled: tuple[Columns, list[CompiledComparison]] | None = None

    def columns(
        self, nodes: Sequence[Node], frequencies: Mapping[str, tuple[Mapping[str, int], int]]
    ) -> Columns:
        """The nodes as columns, with value frequencies (per term column: counts per
        value and the number of records with a value) taken from the index."""
        columns = record_columns([node.features for node in nodes])
        for ref, (counts, present) in frequencies.items():
            if columns.has(ref):
                columns.use_frequencies(ref, counts, present)
        return columns

    def score(self, columns: Columns, left: IntArray, right: IntArray) -> ScoredPairs:
        comparisons = self.compile(columns)
        levels = level_matrix(comparisons, left, right)
        scored = score(self.params, comparisons, columns, levels, left)
        return ScoredPairs(left, right, scored.weight, scored.probability)

    def compile(self, columns: Columns) -> list[CompiledComparison]:
        """The comparisons bound to `columns` (bound once per columns: the bindings keep
        the scores they computed)."""
        if self._compiled is None or self._compiled[0] is not columns:
            self._compiled = (
                columns,
                [CompiledComparison(c, columns) for c in self.model.comparisons],
            )
        return self._compiled[1]

    def explain(self, columns: Columns, pairs: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
        if not pairs:
            return []
        left = np.array([a for a, _ in pairs], dtype=np.int64)
        right = np.array([b for _, b in pairs], dtype=np.int64)
        return explain_pairs(self.params, self.compile(columns), columns, left, right)

    def allowed(self, nodes: Sequence[Node], record: int, others: Sequence[int]) -> list[int]:
        """The others the link type lets the record be compared with."""
        link_type = self.model.link_type
        system = nodes[record].key[0]
        if link_type == "link_only":
            return [o for o in others if nodes[o].key[0] != system]
        if link_type == "dedupe_only":
            return [o for o in others if nodes[o].key[0] == system]
        return list(others)

    def cluster(
        self,
        nodes: Sequence[Node],
        columns: Columns,
        *,
        record: int,
        regroup: Sequence[int],
        decisions: Sequence[Decision],
        prescored: ScoredPairs | None = None,
    ) -> LocalResult:
        """Cluster the neighbourhood: `nodes[record]` is the record that changed;
        `regroup` are the other members of the customer it was in (scored among
        themselves again); every other node's customer is kept whole. `prescored` are
        scores of some of the record's pairs already worked out (with the same model and
        the same frequencies on the record's side)."""
        thresholds = self.model.thresholds
        size = len(nodes)
        others = self.allowed(nodes, record, [i for i in range(size) if i != record])
        pairs = [(record, o) for o in others]
        pairs += [(a, b) for i, a in enumerate(regroup) for b in regroup[i + 1 :]]
        left = np.array([a for a, _ in pairs], dtype=np.int64)
        right = np.array([b for _, b in pairs], dtype=np.int64)
        scored = self._score_reusing(columns, left, right, prescored)

        comparisons = self.compile(columns)
        candidates = self._candidates(columns, comparisons, pairs, scored)

        # customers kept whole are joined first, then the links through the guard
        guarded: dict[str, Any] = {
            ref: columns.values(ref) for ref in self.config.conflicts if columns.has(ref)
        }
        unique = None
        if self.model.one_per_system:
            guarded[SYSTEM_COLUMN] = [node.key[0] for node in nodes]
            unique = {SYSTEM_COLUMN: frozenset(self.model.one_per_system)}
        guard = GuardedClusters(size, guarded, _contradiction_test(columns, comparisons), unique)
        moving = {record, *regroup}
        kept: list[Link] = []
        first_of: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if i in moving or node.golden_id is None:
                continue
            if node.golden_id in first_of:
                guard.join(first_of[node.golden_id], i)
                kept.append(Link(first_of[node.golden_id], i, KEPT_RULE, None))
            else:
                first_of[node.golden_id] = i
        accepted: list[Link] = []
        held: list[Link] = []
        for link in candidates:
            reason = guard.offer(link.left, link.right)
            if reason is None:
                accepted.append(link)
            else:
                held.append(_with_reason(link, f"contradicting {reason}"))
        links, apart = apply_decisions(size, [*kept, *accepted], decisions)
        held += apart
        groups = clusters(size, ((link.left, link.right) for link in links))
        group_of = {i: g for g, group in enumerate(groups) for i in group}

        review = [link for link in held if group_of[link.left] != group_of[link.right]]
        middle = np.flatnonzero(
            (scored.probability >= thresholds.review) & (scored.probability < thresholds.link)
        )
        middle = middle[np.argsort(-scored.weight[middle], kind="stable")]
        review += [
            Link(
                int(left[k]),
                int(right[k]),
                "model",
                float(scored.probability[k]),
                float(scored.weight[k]),
                "uncertain",
            )
            for k in middle.tolist()
            if group_of[int(left[k])] != group_of[int(right[k])]
        ]
        decided_pairs = {(d.left, d.right) for d in decisions} | {
            (d.right, d.left) for d in decisions
        }
        review = [link for link in review if (link.left, link.right) not in decided_pairs]
        explanations = self.explain(columns, [(link.left, link.right) for link in review])
        review = [
            _with_explanation(link, explanation)
            for link, explanation in zip(review, explanations, strict=True)
        ]
        return LocalResult(groups, links, review, len(pairs))

    def links_of_record(
        self, columns: Columns, pairs: Sequence[tuple[int, int]], scored: ScoredPairs
    ) -> set[int]:
        """The other records of `pairs` the record would link to, by a deterministic rule or
        above the link threshold (before the guard)."""
        return (
            {
                link.right if link.left == pairs[0][0] else link.left
                for link in self._candidates(columns, self.compile(columns), pairs, scored)
            }
            if pairs
            else set()
        )

    def _score_reusing(
        self, columns: Columns, left: IntArray, right: IntArray, prescored: ScoredPairs | None
    ) -> ScoredPairs:
        if prescored is None or len(prescored.left) == 0:
            return self.score(columns, left, right)
        known = {
            (a, b): k
            for k, (a, b) in enumerate(
                zip(prescored.left.tolist(), prescored.right.tolist(), strict=True)
            )
        }
        at = np.array(
            [known.get((a, b), -1) for a, b in zip(left.tolist(), right.tolist(), strict=True)],
            dtype=np.int64,
        )
        weight = np.empty(len(left), dtype=np.float64)
        probability = np.empty(len(left), dtype=np.float64)
        have = at >= 0
        weight[have] = prescored.weight[at[have]]
        probability[have] = prescored.probability[at[have]]
        todo = np.flatnonzero(~have)
        if len(todo):
            rest = self.score(columns, left[todo], right[todo])
            weight[todo] = rest.weight
            probability[todo] = rest.probability
        return ScoredPairs(left, right, weight, probability)

    def _candidates(
        self,
        columns: Columns,
        comparisons: Sequence[CompiledComparison],
        pairs: Sequence[tuple[int, int]],
        scored: ScoredPairs,
    ) -> list[Link]:
        """The links to offer, strongest first: deterministic rules' among `pairs`, then
        the model's above the link threshold."""
        wanted = set(pairs) | {(b, a) for a, b in pairs}
        contradicts = _contradiction_test(columns, comparisons)
        decided, _ = deterministic_links(columns, self.config.rules, self.config, None, contradicts)
        candidates: list[Link] = [
            Link(d.left, d.right, d.rule, 1.0, None) for d in decided if (d.left, d.right) in wanted
        ]
        strong = np.flatnonzero(scored.probability >= self.model.thresholds.link)
        strong = strong[np.argsort(-scored.weight[strong], kind="stable")]
        candidates += [
            Link(
                int(scored.left[k]),
                int(scored.right[k]),
                "model",
                float(scored.probability[k]),
                float(scored.weight[k]),
            )
            for k in strong.tolist()
        ]
        return candidates


def _with_reason(link: Link, reason: str) -> Link:
    return Link(link.left, link.right, link.rule, link.score, link.weight, reason, link.explanation)


def _with_explanation(link: Link, explanation: dict[str, Any]) -> Link:
    return Link(link.left, link.right, link.rule, link.score, link.weight, link.reason, explanation)
