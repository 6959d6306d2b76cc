"""Measuring a clustering against ground truth: pairwise precision, recall and F1."""

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
    common = predicted.keys() & truth.keys()
    predicted_sizes = Counter(predicted[r] for r in common)
    truth_sizes = Counter(truth[r] for r in common)
    both_sizes = Counter((predicted[r], truth[r]) for r in common)
    return PairwiseScores(
        true_pairs=sum(_pairs(n) for n in truth_sizes.values()),
        predicted_pairs=sum(_pairs(n) for n in predicted_sizes.values()),
        correct_pairs=sum(_pairs(n) for n in both_sizes.values()),
    )


def _pairs(n: int) -> int:
    return n * (n - 1) // 2
