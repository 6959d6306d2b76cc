"""The learned engine: deterministic rules first, then blocking, a Fellegi-Sunter model
trained on the records themselves, scoring, and clustering in three bands.

- Pairs a deterministic rule accepts are linked before the model is consulted.
- Pairs with a match probability at or above `thresholds.link` are linked, strongest
  first, unless the link would put contradicting strong identifiers into one cluster
  (`match.conflicts`, `one_per_system`): such a link goes to review instead.
- Pairs between `thresholds.review` and `thresholds.link` go to review.
- Everything else is no link.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import JaroWinkler

from accord.config.matching import MatchConfig, MatchRule, ModelConfig
from accord.match.blocking import (
    Blocked,
    block,
    pairs_for_rule,
    pairs_within,
    rule_blocks,
)
from accord.match.blocking import satisfies as shares_key
from accord.match.clusters import ColumnValues, GuardedClusters, component_labels, groups_of
from accord.match.columns import CodeArray, Columns, IntArray, split_ref
from accord.match.comparisons import CompiledComparison
from accord.match.features import FEATURES, SIMILARITY
from accord.match.interface import Link, MatchRecord, MatchResult, OversizedBlock
from accord.match.model import ModelParams, explain_pairs, level_matrix, score
from accord.match.training import train

Progress = Callable[[str], None]
SCORE_CHUNK = 2_000_000  # pairs scored at once: bounds the memory of the level matrix
SYSTEM_COLUMN = "@system"


class ScoredLink(NamedTuple):
    """A link or a pair for review (a named tuple: millions are made at scale)."""

    left: int
    right: int
    rule: str  # a deterministic rule's name, or "model"
    probability: float
    weight: float | None = None
    reason: str | None = None  # for review: why it was not linked


@dataclass
class LearnedResult:
    clusters: list[list[int]]
    links: list[ScoredLink]  # the links that formed the clusters
    review: list[ScoredLink]
    params: ModelParams | None
    blocking: dict[str, Any]
    oversized: list[OversizedBlock]
    pairs_scored: int
    seconds: dict[str, float] = field(default_factory=dict)


class LearnedEngine:
    def __init__(self, config: MatchConfig) -> None:
        if config.model is None:
            raise ValueError("the learned engine needs match settings with a `model` section")
        self.config = config
        self.model: ModelConfig = config.model

    def run(
        self,
        columns: Columns,
        *,
        systems: Sequence[str] | None = None,
        progress: Progress | None = None,
        params: ModelParams | None = None,
    ) -> LearnedResult:
        """Resolve `columns`' records. `systems` names each record's source; `params`
        reuses a trained model instead of training one."""
        say = progress or (lambda _: None)
        clock = _Clock()
        sources = _codes(systems) if systems is not None else None
        comparisons = [CompiledComparison(c, columns) for c in self.model.comparisons]

        say("applying deterministic rules")
        decided, rule_oversized = deterministic_links(
            columns,
            self.config.rules,
            self.config,
            sources,
            _contradiction_test(columns, comparisons),
        )
        clock.lap("rules")

        say("blocking")
        blocked = block(
            columns,
            self.model.blocking,
            self.config.max_block_size,
            sources,
            self.model.link_type,
        )
        clock.lap("blocking")

        if params is None:
            params = train(
                columns,
                comparisons,
                self.model,
                self.config.max_block_size,
                blocked,
                sources=sources,
                progress=say,
            )
            clock.lap("training")

        say(f"scoring {len(blocked):,} pairs")
        weights, probabilities = score_pairs(params, comparisons, columns, blocked)
        clock.lap("scoring")

        say("clustering")
        thresholds = self.model.thresholds
        strong = np.flatnonzero(probabilities >= thresholds.link)
        strong = strong[np.argsort(-weights[strong], kind="stable")]
        candidates = decided + [
            ScoredLink(int(left), int(right), "model", float(p), float(w))
            for left, right, p, w in zip(
                blocked.left[strong].tolist(),
                blocked.right[strong].tolist(),
                probabilities[strong].tolist(),
                weights[strong].tolist(),
                strict=True,
            )
        ]
        clusters, links, review = self._cluster(columns, comparisons, systems, candidates)
        cluster_of = np.empty(len(columns), dtype=np.int64)
        for number, group in enumerate(clusters):
            cluster_of[group] = number
        middle = np.flatnonzero(
            (probabilities >= thresholds.review) & (probabilities < thresholds.link)
        )
        middle = middle[cluster_of[blocked.left[middle]] != cluster_of[blocked.right[middle]]]
        review += [
            ScoredLink(
                int(blocked.left[k]),
                int(blocked.right[k]),
                "model",
                float(probabilities[k]),
                float(weights[k]),
                "uncertain",
            )
            for k in middle[np.argsort(-weights[middle], kind="stable")].tolist()
        ]
        clock.lap("clustering")
        return LearnedResult(
            clusters=clusters,
            links=links,
            review=review,
            params=params,
            blocking=blocking_report(blocked, probabilities >= thresholds.link),
            oversized=rule_oversized + blocked.oversized,
            pairs_scored=len(blocked),
            seconds=clock.seconds,
        )

    def _cluster(
        self,
        columns: Columns,
        comparisons: Sequence[CompiledComparison],
        systems: Sequence[str] | None,
        candidates: Sequence[ScoredLink],
    ) -> tuple[list[list[int]], list[ScoredLink], list[ScoredLink]]:
        """Clusters from the candidate links (strongest first), with the guard applied
        where it matters: components are found first without it, the few that hold
        contradicting values are found in one vectorized pass, and only those are
        clustered link by link with the guard. Returns clusters, links, held links."""
        size = len(columns)
        pairs = np.array([(link.left, link.right) for link in candidates], dtype=np.int64)
        pairs = pairs.reshape(-1, 2)
        roots = component_labels(size, pairs[:, 0], pairs[:, 1])
        flagged, known = self._contradicting(columns, comparisons, systems, roots)
        guard = GuardedClusters(
            size,
            self._guarded_values(columns, systems),
            _contradiction_test(columns, comparisons, known),
            {SYSTEM_COLUMN: frozenset(self.model.one_per_system)} if systems is not None else None,
        )
        links: list[ScoredLink] = []
        held: list[ScoredLink] = []
        for link, is_flagged in zip(candidates, flagged[roots[pairs[:, 0]]].tolist(), strict=True):
            if not is_flagged or (reason := guard.offer(link.left, link.right)) is None:
                links.append(link)
            else:
                held.append(_held(link, f"contradicting {reason}"))
        # components without contradictions stand as found; the others as the guard built them
        labels = roots.copy()
        for record in np.flatnonzero(flagged[roots]).tolist():
            labels[record] = guard.forest.find(record)
        return groups_of(labels), links, held

    def _contradicting(
        self,
        columns: Columns,
        comparisons: Sequence[CompiledComparison],
        systems: Sequence[str] | None,
        roots: IntArray,
    ) -> tuple[npt.NDArray[np.bool_], dict[tuple[str, str, str], bool]]:
        """Per root, whether its component holds values that contradict each other; and,
        for the components that do, which pairs of values contradict."""
        flagged = np.zeros(len(roots), dtype=bool)
        in_cluster = np.bincount(roots, minlength=len(roots))[roots] > 1
        by_column = {c.config.column: c for c in comparisons}
        guarded: list[tuple[str, CodeArray, CompiledComparison | None]] = [
            (ref, columns.codes(ref), by_column.get(ref))
            for ref in self.config.conflicts
            if columns.has(ref)
        ]
        if systems is not None and self.model.one_per_system:
            # two records of a one-per-system system in one component contradict
            unique = set(self.model.one_per_system)
            system_codes = _codes(systems)
            system_codes[np.array([s not in unique for s in systems], dtype=bool)] = -1
            records = np.flatnonzero(in_cluster & (system_codes >= 0))
            width = int(system_codes.max(initial=0)) + 1
            keys, counts = np.unique(
                roots[records] * width + system_codes[records], return_counts=True
            )
            flagged[keys[counts > 1] // width] = True
        checked = []
        for ref, codes, comparison in guarded:
            records = np.flatnonzero(in_cluster & (codes >= 0))
            # one record per distinct value per component, then every pair of those
            key = roots[records] * (int(codes.max(initial=0)) + 1) + codes[records]
            _, first = np.unique(key, return_index=True)
            representatives = records[first]
            left, right = pairs_within(roots[representatives], representatives)
            if len(left) == 0:
                continue
            if comparison is None:
                contradicting = np.ones(len(left), dtype=bool)
            else:
                contradicting = comparison.levels(left, right) == comparison.else_level
            flagged[roots[left[contradicting]]] = True
            checked.append((ref, left, right, contradicting))
        # what was found here, for the pairs of values the guard will ask about again
        known: dict[tuple[str, str, str], bool] = {}
        for ref, left, right, contradicting in checked:
            values = columns.values(ref)
            ask = flagged[roots[left]]
            for a, b, verdict in zip(
                values[left[ask]].tolist(),
                values[right[ask]].tolist(),
                contradicting[ask].tolist(),
                strict=True,
            ):
                low, high = sorted((str(a), str(b)))
                known[(ref, low, high)] = bool(verdict)
        return flagged, known

    def _guarded_values(
        self, columns: Columns, systems: Sequence[str] | None
    ) -> dict[str, ColumnValues]:
        guarded: dict[str, ColumnValues] = {
            ref: columns.values(ref) for ref in self.config.conflicts if columns.has(ref)
        }
        if systems is not None and self.model.one_per_system:
            guarded[SYSTEM_COLUMN] = list(systems)
        return guarded


def record_columns(features: Sequence[Mapping[str, str | None]]) -> Columns:
    """Records' match features (with `kind`) as columns: every known feature, and any
    other the records carry."""
    names = sorted({*FEATURES, "kind"} | {name for record in features for name in record})
    return Columns(
        {name: [record.get(name) for record in features] for name in names}, len(features)
    )


def score_pairs(
    params: ModelParams,
    comparisons: Sequence[CompiledComparison],
    columns: Columns,
    blocked: Blocked,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Match weight and probability of every blocked pair, a chunk at a time (kept in
    float32: tens of millions of pairs, and seven digits are plenty)."""
    weights = np.empty(len(blocked), dtype=np.float32)
    probabilities = np.empty(len(blocked), dtype=np.float32)
    for start in range(0, len(blocked), SCORE_CHUNK):
        end = start + SCORE_CHUNK
        left, right = blocked.left[start:end], blocked.right[start:end]
        levels = level_matrix(comparisons, left, right)
        scored = score(params, comparisons, columns, levels, left)
        weights[start:end] = scored.weight
        probabilities[start:end] = scored.probability
    return weights, probabilities


def blocking_report(blocked: Blocked, linked: np.ndarray) -> dict[str, Any]:
    """Pairs per rule, and an estimate of the share of true matches the rules find.

    The estimate counts, for each linked pair, how many blocking rules would have found
    it: matches found by exactly one rule (f1) and by exactly two (f2) tell how many no
    rule finds (Chao's estimator, f1^2 / 2 f2), as in capture-recapture surveys."""
    left, right = blocked.left[linked], blocked.right[linked]
    caught = np.zeros(len(left), dtype=np.int64)
    for key in blocked.keys:
        caught += shares_key(key, left, right)
    f1, f2 = int((caught == 1).sum()), int((caught == 2).sum())
    found = len(left)
    if found == 0:
        recall = None
    elif f2 == 0:
        recall = None if f1 else 1.0
    else:
        recall = found / (found + f1 * f1 / (2 * f2))
    return {
        "rules": [
            {
                "rule": r.rule,
                "pairs": r.pairs,
                "new_pairs": r.new_pairs,
                "blocks": r.blocks,
                "largest_block": r.largest_block,
            }
            for r in blocked.reports
        ],
        "pairs": len(blocked),
        "linked_pairs": found,
        "linked_found_by_one_rule": f1,
        "linked_found_by_two_rules": f2,
        "estimated_recall": None if recall is None else round(recall, 4),
    }


def deterministic_links(
    columns: Columns,
    rules: Sequence[MatchRule],
    config: MatchConfig,
    sources: IntArray | None = None,
    contradicts: Callable[[str, int, int], bool] | None = None,
) -> tuple[list[ScoredLink], list[OversizedBlock]]:
    """Pairs the deterministic rules accept: equal on `equal`, similar enough on
    `similar`, of the rule's kind, allowed by the link type, and not contradicting each
    other on a `conflicts` column; and the blocks too big to use. Two values contradict
    as `contradicts(column, a, b)` says (the guard's test, `_contradiction_test`: a
    nickname or a typo does not); without it, when they differ."""
    links: list[ScoredLink] = []
    oversized: list[OversizedBlock] = []
    if not rules:
        return links, oversized
    link_type = config.model.link_type if config.model is not None else "dedupe_and_link"
    kinds = columns.values("kind") if columns.has("kind") else None
    conflicts = [(ref, columns.values(ref)) for ref in config.conflicts if columns.has(ref)]
    differ = contradicts or (lambda ref, a, b: True)
    for rule in rules:
        equal = [*rule.equal, "kind"] if rule.kind is not None and kinds is not None else rule.equal
        blocks = rule_blocks(columns, equal, config.max_block_size)
        oversized += [
            OversizedBlock(rule.name, block.key, block.size) for block in blocks.oversized
        ]
        left, right, _ = pairs_for_rule(blocks, config.max_block_size, sources, link_type)
        if rule.kind is not None and kinds is not None:
            keep = kinds[left] == rule.kind
            left, right = left[keep], right[keep]
        similar = [
            (columns.values(ref), SIMILARITY.get(split_ref(ref)[0], _jaro_winkler), threshold)
            for ref, threshold in rule.similar.items()
        ]
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            if any(
                c[a] is not None and c[b] is not None and c[a] != c[b] and differ(ref, a, b)
                for ref, c in conflicts
            ):
                continue
            if all(
                v[a] is not None and v[b] is not None and similarity(v[a], v[b]) >= threshold
                for v, similarity, threshold in similar
            ):
                links.append(ScoredLink(a, b, rule.name, 1.0))
    return links, oversized


def _jaro_winkler(a: str, b: str) -> float:
    return float(JaroWinkler.normalized_similarity(a, b))


def _contradiction_test(
    columns: Columns,
    comparisons: Sequence[CompiledComparison],
    known: dict[tuple[str, str, str], bool] | None = None,
) -> Callable[[str, int, int], bool]:
    """Two values of a guarded column contradict when the comparison on that column puts
    them at its `else` level (a typo is not a contradiction); without a comparison, when
    they differ. The verdict depends on the two values only, so it is kept per pair of
    values; `known` holds verdicts already worked out."""
    by_column = {c.config.column: c for c in comparisons}
    seen: dict[tuple[str, str, str], bool] = dict(known or {})

    def contradicts(column: str, a: int, b: int) -> bool:
        comparison = by_column.get(column)
        if comparison is None:
            return True
        values = columns.values(column)
        low, high = sorted((str(values[a]), str(values[b])))
        key = (column, low, high)
        if key not in seen:
            level = comparison.levels(np.array([a]), np.array([b]))[0]
            seen[key] = bool(level == comparison.else_level)
        return seen[key]

    return contradicts


def _held(link: ScoredLink, reason: str) -> ScoredLink:
    return ScoredLink(link.left, link.right, link.rule, link.probability, link.weight, reason)


def _codes(values: Sequence[str]) -> IntArray:
    seen: dict[str, int] = {}
    return np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.int64)


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self.started, 3)
        self.started = now


class LearnedMatcher:
    """The learned engine behind the `Matcher` interface, for a project's records."""

    def __init__(self, config: MatchConfig, progress: Progress | None = None) -> None:
        self.engine = LearnedEngine(config)
        self.progress = progress
        self._last: tuple[ModelParams | None, Columns] | None = None

    def explain(self, pairs: Sequence[tuple[int, int]]) -> list[dict[str, Any] | None]:
        """Explanations of pairs of the records last linked, with the model learned then."""
        if self._last is None or not pairs:
            return [None] * len(pairs)
        params, columns = self._last
        if params is None:
            return [None] * len(pairs)
        comparisons = [CompiledComparison(c, columns) for c in self.engine.model.comparisons]
        left = np.array([a for a, _ in pairs], dtype=np.int64)
        right = np.array([b for _, b in pairs], dtype=np.int64)
        return list(explain_pairs(params, comparisons, columns, left, right))

    def link(self, records: Sequence[MatchRecord]) -> MatchResult:
        columns = record_columns([record.features | {"kind": record.kind} for record in records])
        result = self.engine.run(
            columns,
            systems=[record.key[0] for record in records],
            progress=self.progress,
        )
        self._last = (result.params, columns)
        return MatchResult(
            links=[_as_link(link) for link in result.links],
            pairs_compared=result.pairs_scored,
            oversized_blocks=result.oversized,
            # explained when a steward opens one (`steward.service.review`, from the match
            # index and the saved model), not here: a resolve of a million records queues
            # some 200,000 pairs for review, most of them never opened
            review=[_as_link(link) for link in result.review],
            details={
                "model": result.params.to_dict() if result.params else None,
                "blocking": result.blocking,
                "seconds": result.seconds,
            },
        )


def _as_link(link: ScoredLink, explanation: dict[str, Any] | None = None) -> Link:
    return Link(
        link.left,
        link.right,
        link.rule,
        link.probability,
        link.weight,
        link.reason,
        explanation,
    )
