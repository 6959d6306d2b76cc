"""The scores the matcher is measured by, worked out by hand and against brute force."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.match.evaluate import bcubed_scores, pairwise_scores

# In truth a, b and c are one customer and d another; the prediction pairs a-b and c-d.
TRUTH = {"a": 1, "b": 1, "c": 1, "d": 2}
PREDICTED = {"a": "x", "b": "x", "c": "y", "d": "y"}


def test_pairwise_by_hand() -> None:
    scores = pairwise_scores(PREDICTED, TRUTH)
    # true pairs ab ac bc; predicted ab cd; correct ab
    assert (scores.true_pairs, scores.predicted_pairs, scores.correct_pairs) == (3, 2, 1)
    assert scores.precision == pytest.approx(1 / 2)
    assert scores.recall == pytest.approx(1 / 3)
    assert scores.f1 == pytest.approx(0.4)


def test_bcubed_by_hand() -> None:
    scores = bcubed_scores(PREDICTED, TRUTH)
    # precision per record: a 2/2, b 2/2, c 1/2, d 1/2; recall: a 2/3, b 2/3, c 1/3, d 1/1
    assert scores.records == 4
    assert scores.precision == pytest.approx(3 / 4)
    assert scores.recall == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1) / 4)


def test_only_records_both_know_count() -> None:
    predicted = PREDICTED | {"e": "x"}
    truth = TRUTH | {"f": 3}
    assert pairwise_scores(predicted, truth) == pairwise_scores(PREDICTED, TRUTH)
    assert bcubed_scores(predicted, truth) == bcubed_scores(PREDICTED, TRUTH)
    assert bcubed_scores({}, TRUTH).records == 0


labels = st.dictionaries(st.integers(0, 30), st.integers(0, 5), min_size=1, max_size=30)


@given(labels, labels)
def test_against_brute_force(predicted: dict[int, int], truth: dict[int, int]) -> None:
    common = sorted(predicted.keys() & truth.keys())
    pairs = list(combinations(common, 2))
    same_truth = {p for p in pairs if truth[p[0]] == truth[p[1]]}
    same_predicted = {p for p in pairs if predicted[p[0]] == predicted[p[1]]}
    scores = pairwise_scores(predicted, truth)
    assert scores.true_pairs == len(same_truth)
    assert scores.predicted_pairs == len(same_predicted)
    assert scores.correct_pairs == len(same_truth & same_predicted)
    if not common:
        return
    precision = sum(
        sum(truth[o] == truth[r] for o in common if predicted[o] == predicted[r])
        / sum(predicted[o] == predicted[r] for o in common)
        for r in common
    ) / len(common)
    recall = sum(
        sum(predicted[o] == predicted[r] for o in common if truth[o] == truth[r])
        / sum(truth[o] == truth[r] for o in common)
        for r in common
    ) / len(common)
    bcubed = bcubed_scores(predicted, truth)
    assert bcubed.precision == pytest.approx(precision)
    assert bcubed.recall == pytest.approx(recall)
