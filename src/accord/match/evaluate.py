"""Measuring a clustering against ground truth: pairwise and B-cubed precision, recall
and F1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

Record = TypeVar("Record", bound=Hashable)


@dataclass(frozen=True)
class PairwiseScores:
    true_pairs: int  # pairs the truth puts together
    predicted_pairs: int  # pairs the clustering puts together
    correct_pairs: int  # in both

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def pairwise_scores(
    predicted: Mapping[Record, Hashable], truth: Mapping[Record, Hashable]
) -> PairwiseScores:
    """Scores over the records both mappings know (record -> cluster label), counted
    without listing pairs: n records in a group make n*(n-1)/2 pairs."""
    _, predicted_sizes, truth_sizes, both_sizes = _sizes(predicted, truth)
    return PairwiseScores(
        true_pairs=sum(_pairs(n) for n in truth_sizes.values()),
        predicted_pairs=sum(_pairs(n) for n in predicted_sizes.values()),
        correct_pairs=sum(_pairs(n) for n in both_sizes.values()),
    )


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _sizes(
    predicted: Mapping[Record, Hashable], truth: Mapping[Record, Hashable]
) -> tuple[int, Counter[Hashable], Counter[Hashable], Counter[tuple[Hashable, Hashable]]]:
    """Over the records both mappings know: how many, the size of each predicted cluster,
    of each true group, and of each (predicted cluster, true group) overlap."""
    common = predicted.keys() & truth.keys()
    return (
        len(common),
        Counter(predicted[r] for r in common),
        Counter(truth[r] for r in common),
        Counter((predicted[r], truth[r]) for r in common),
    )


@dataclass(frozen=True)
class BCubedScores:
    """Cluster-level scores (Bagga and Baldwin's B-cubed): for each record, the share of
    its predicted cluster that truly belongs with it (precision) and the share of its
    true cluster that the prediction put with it (recall), averaged over records."""

    records: int
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def bcubed_scores(
    predicted: Mapping[Record, Hashable], truth: Mapping[Record, Hashable]
) -> BCubedScores:
    """B-cubed over the records both mappings know, in one pass over counts."""
    records, predicted_sizes, truth_sizes, both_sizes = _sizes(predicted, truth)
    if not records:
        return BCubedScores(0, 1.0, 1.0)
    precision = recall = 0.0
    for (cluster, entity), overlap in both_sizes.items():
        # each of the `overlap` records in this cell scores overlap / cluster size
        precision += overlap * overlap / predicted_sizes[cluster]
        recall += overlap * overlap / truth_sizes[entity]
    return BCubedScores(records, precision / records, recall / records)
