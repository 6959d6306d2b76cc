"""The Fellegi-Sunter model: weights, EM, term frequencies, correlated groups, explain."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from accord.config.matching import Comparison, ModelConfig
from accord.match.columns import Columns
from accord.match.comparisons import CompiledComparison
from accord.match.model import (
    EPSILON,
    MAX_WEIGHT,
    ComparisonParams,
    ModelParams,
    combine,
    estimate_u,
    expectation_maximisation,
    explain,
    fresh_params,
    group_indexes,
    initial_m,
    level_matrix,
    score,
    tf_adjustment,
)

# three comparisons of a known model: m and u per level (index 0 is the null level)
TRUE_M = [
    np.array([0.0, 0.80, 0.12, 0.08]),
    np.array([0.0, 0.70, 0.30]),
    np.array([0.0, 0.90, 0.06, 0.03, 0.01]),
]
TRUE_U = [
    np.array([0.0, 0.02, 0.08, 0.90]),
    np.array([0.0, 0.10, 0.90]),
    np.array([0.0, 0.005, 0.015, 0.08, 0.90]),
]
NULL_SHARE = [0.0, 0.2, 0.1]


def _simulate(pairs: int, prior: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Levels of `pairs` pairs drawn from the known model; and which pairs are matches."""
    rng = np.random.default_rng(seed)
    is_match = rng.random(pairs) < prior
    levels = np.zeros((pairs, len(TRUE_M)), dtype=np.int8)
    for c, (m, u) in enumerate(zip(TRUE_M, TRUE_U, strict=True)):
        drawn_m = rng.choice(len(m), pairs, p=m)
        drawn_u = rng.choice(len(u), pairs, p=u)
        levels[:, c] = np.where(is_match, drawn_m, drawn_u)
        levels[rng.random(pairs) < NULL_SHARE[c], c] = 0
    return levels, is_match


def test_em_recovers_a_known_model() -> None:
    levels, is_match = _simulate(200_000, prior=0.2, seed=11)
    m, prior, iterations, converged = expectation_maximisation(
        levels,
        [initial_m(len(m) - 2) for m in TRUE_M],
        TRUE_U,
        0.1,
        update_m=[True, True, True],
        max_iterations=500,
        tolerance=1e-7,
    )
    assert converged and iterations < 500
    assert prior == pytest.approx(is_match.mean(), abs=0.01)
    for estimated, true in zip(m, TRUE_M, strict=True):
        assert estimated[0] == 0.0
        assert estimated[1:].sum() == pytest.approx(1.0, abs=1e-3)
        assert np.abs(estimated[1:] - true[1:]).max() < 0.03, (estimated, true)


def test_em_holds_m_where_not_updated_and_stops_at_max_iterations() -> None:
    levels, _ = _simulate(5_000, prior=0.3, seed=3)
    start = [initial_m(len(m) - 2) for m in TRUE_M]
    m, _, iterations, converged = expectation_maximisation(
        levels, start, TRUE_U, 0.1, update_m=[False, True, False], max_iterations=2, tolerance=1e-12
    )
    assert (iterations, converged) == (2, False)
    assert m[0].tolist() == start[0].tolist()
    assert m[2].tolist() == start[2].tolist()
    assert m[1].tolist() != start[1].tolist()
    assert start[1].tolist() == initial_m(1).tolist()  # the inputs are not modified


def test_em_on_no_pairs_returns_its_start() -> None:
    start = [initial_m(2)]
    m, prior, iterations, converged = expectation_maximisation(
        np.zeros((0, 1), dtype=np.int8),
        start,
        [np.array([0, 0.1, 0.2, 0.7])],
        0.1,
        update_m=[True],
        max_iterations=10,
        tolerance=1e-5,
    )
    assert (prior, iterations, converged) == (0.1, 0, True)
    assert m[0].tolist() == start[0].tolist()


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 3)),
    seed=st.integers(0, 2**32 - 1),
    prior=st.floats(0.001, 0.999),
    grouped=st.booleans(),
)
def test_em_probabilities_stay_in_zero_one(
    shape: tuple[int, int], seed: int, prior: float, grouped: bool
) -> None:
    rng = np.random.default_rng(seed)
    pairs, comparisons = shape
    sizes = rng.integers(1, 4, comparisons)  # configured levels per comparison
    levels = np.column_stack([rng.integers(0, size + 2, pairs) for size in sizes]).astype(np.int8)
    u = []
    for size in sizes:
        raw = rng.random(size + 2) ** 4  # some levels all but impossible
        raw[0] = 0.0
        u.append(raw / raw[1:].sum())
    m, new_prior, _, _ = expectation_maximisation(
        levels,
        [initial_m(int(size)) for size in sizes],
        u,
        prior,
        update_m=[True] * comparisons,
        max_iterations=30,
        tolerance=1e-9,
        groups=[list(range(comparisons))] if grouped and comparisons > 1 else [],
    )
    assert EPSILON <= new_prior <= 1 - EPSILON
    for estimate in m:
        assert np.isfinite(estimate).all()
        assert (estimate >= 0).all() and (estimate <= 1).all()
        assert estimate[0] == 0.0


def test_weights_are_log2_of_m_over_u_and_bounded() -> None:
    params = ComparisonParams(
        name="c",
        labels=["null", "exact", "fuzzy", "else"],
        m=[0.0, 0.8, 0.15, 0.05],
        u=[0.0, 0.01, 0.04, 0.95],
    )
    weights = params.weights()
    assert weights[0] == 0.0
    assert weights[1:].tolist() == pytest.approx(
        [math.log2(0.8 / 0.01), math.log2(0.15 / 0.04), math.log2(0.05 / 0.95)]
    )
    extreme = ComparisonParams("c", ["null", "exact", "else"], m=[0.0, 1.0, 0.0], u=[0, 0.0, 1])
    w = extreme.weights()
    assert np.isfinite(w).all()
    assert w[1] == math.log2(1.0 / EPSILON) <= MAX_WEIGHT
    assert w[2] == math.log2(EPSILON) >= -MAX_WEIGHT


def test_prior_weight() -> None:
    assert ModelParams(prior=0.5, comparisons=[]).prior_weight == 0.0
    assert ModelParams(prior=0.2, comparisons=[]).prior_weight == pytest.approx(math.log2(0.25))


def test_initial_m_and_fresh_params() -> None:
    for levels in range(1, 13):
        start = initial_m(levels)
        assert len(start) == levels + 2
        assert start[0] == 0.0
        assert start[1:].sum() == pytest.approx(1.0)
        assert start[1] == start[1:].max()  # the strongest level is likeliest among matches
    columns = Columns({"a": ["x"]}, 1)
    comparison = CompiledComparison(
        Comparison(name="a", column="a", levels=["exact", "initial"], term_frequency=True),
        columns,
    )
    config = ModelConfig(blocking=[["a"]], comparisons=[comparison.config])
    (params,) = fresh_params([comparison], config).comparisons
    assert params.labels == ["null", "exact", "initial", "else"]
    assert params.u == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3])
    assert params.term_frequency and params.exact_level == 1


def test_estimate_u_counts_levels_with_add_one_smoothing() -> None:
    columns = Columns({"a": ["x", "x", "y", None]}, 4)
    comparison = CompiledComparison(Comparison(name="a", column="a", levels=["exact"]), columns)
    left, right = np.triu_indices(4, 1)
    # pairs: (0,1) exact; (0,2) (1,2) else; the three with record 3 null
    (u,) = estimate_u([comparison], (left.astype(np.int64), right.astype(np.int64)))
    assert u == pytest.approx([0.0, (1 + 1) / 5, (2 + 1) / 5])


# ---- scoring


def _scoring_fixture(
    correlated: list[list[str]],
) -> tuple[ModelParams, list[CompiledComparison], Columns]:
    family = ["zzyzx", "zzyzx"] + ["smith"] * 40 + ["jones"] * 18
    n = len(family)
    columns = Columns(
        {
            "family": family,
            "city": ["berlin"] * n,
            "phone": ["p1", "p1"] + [f"p{i}" for i in range(2, n)],
            "given": ["anna", "anne"] + ["bob"] * (n - 2),
        },
        n,
    )
    configs = [
        Comparison(name="family", column="family", levels=["exact"], term_frequency=True),
        Comparison(name="city", column="city", levels=["exact"]),
        Comparison(name="phone", column="phone", levels=["exact"]),
        Comparison(name="given", column="given", levels=["exact", {"jaro_winkler": 0.8}]),
    ]
    comparisons = [CompiledComparison(c, columns) for c in configs]
    frequency = columns.frequency("family")
    u_exact = float(np.unique(frequency) @ np.unique(frequency))  # sum of squared shares
    params = ModelParams(
        prior=0.001,
        comparisons=[
            ComparisonParams(
                "family", comparisons[0].labels, [0, 0.9, 0.1], [0, u_exact, 1 - u_exact], True, 1
            ),
            ComparisonParams("city", comparisons[1].labels, [0, 0.95, 0.05], [0, 0.3, 0.7]),
            ComparisonParams("phone", comparisons[2].labels, [0, 0.6, 0.4], [0, 0.001, 0.999]),
            ComparisonParams(
                "given", comparisons[3].labels, [0, 0.8, 0.15, 0.05], [0, 0.01, 0.02, 0.97]
            ),
        ],
        correlated=correlated,
    )
    return params, comparisons, columns


def test_term_frequency_adjustment_is_positive_for_rare_and_negative_for_common_values() -> None:
    params, comparisons, columns = _scoring_fixture([])
    family = params.comparisons[0]
    rare, common = tf_adjustment(family, columns, "family", np.array([0, 2], dtype=np.int64))
    assert rare > 0 > common
    n = len(columns)
    assert rare == pytest.approx(math.log2(family.u[1] / (2 / n)))
    assert common == pytest.approx(math.log2(family.u[1] / (40 / n)))

    # in scoring: exact agreement on the rare surname weighs more than on the common one
    left = np.array([0, 2], dtype=np.int64)
    right = np.array([1, 3], dtype=np.int64)
    levels = level_matrix(comparisons[:1], left, right)
    one = ModelParams(params.prior, params.comparisons[:1])
    scored = score(one, comparisons[:1], columns, levels, left)
    base = one.prior_weight + family.weights()[1]
    assert scored.weight.tolist() == pytest.approx([base + rare, base + common])
    # without term frequencies both get the average weight
    one.comparisons[0].term_frequency = False
    flat = score(one, comparisons[:1], columns, levels, left)
    assert flat.weight.tolist() == pytest.approx([base, base])


def test_combine_counts_a_groups_strongest_agreement_once_and_every_disagreement() -> None:
    contributions = np.array(
        [
            [3.0, 5.0, -2.0, 1.0],
            [-1.0, -4.0, -2.0, -1.0],
            [3.0, 5.0, 7.0, 0.0],
        ]
    )
    assert combine(contributions, []).tolist() == [7.0, -8.0, 15.0]
    assert combine(contributions, [[0, 1, 2]]).tolist() == [
        5.0 - 2.0 + 1.0,
        -1.0 - 4.0 - 2.0 - 1.0,
        7.0 + 0.0,
    ]
    assert combine(contributions, [[0, 1], [2, 3]]).tolist() == [5.0 - 2 + 1, -8.0, 5.0 + 7]


def test_group_indexes_ignore_unknown_names_and_singletons() -> None:
    names = ["a", "b", "c", "d"]
    assert group_indexes(names, [["a", "c"], ["b", "x"], ["d"]]) == [[0, 2]]


def test_a_household_counts_once_in_scores() -> None:
    params, comparisons, columns = _scoring_fixture([["family", "city", "phone"]])
    left, right = np.array([0], dtype=np.int64), np.array([1], dtype=np.int64)
    levels = level_matrix(comparisons, left, right)
    assert levels.tolist() == [[1, 1, 1, 2]]
    grouped = score(params, comparisons, columns, levels, left).weight[0]
    params.correlated = []
    independent = score(params, comparisons, columns, levels, left).weight[0]
    weights = [p.weights() for p in params.comparisons]
    tf = tf_adjustment(params.comparisons[0], columns, "family", left)[0]
    family, city, phone = weights[0][1] + tf, weights[1][1], weights[2][1]
    assert independent - grouped == pytest.approx(family + city + phone - max(family, city, phone))


def _explain_total(result: dict[str, Any]) -> float:
    free = 0.0
    groups: dict[int, list[float]] = {}
    for row in result["comparisons"]:
        value = row["weight"] + row["term_frequency_adjustment"]
        if row["correlated_group"] is None:
            free += value
        else:
            groups.setdefault(row["correlated_group"], []).append(value)
    grouped = sum(max(0.0, *values) + sum(v for v in values if v < 0) for values in groups.values())
    return float(result["prior_weight"]) + free + grouped


@pytest.mark.parametrize("correlated", [[], [["family", "city", "phone"]], [["city", "given"]]])
@pytest.mark.parametrize(("left", "right"), [(0, 1), (2, 3), (0, 2), (1, 45)])
def test_explain_adds_up_to_the_match_weight_and_probability(
    correlated: list[list[str]], left: int, right: int
) -> None:
    params, comparisons, columns = _scoring_fixture(correlated)
    result = explain(params, comparisons, columns, left, right)
    json.dumps(result)
    assert [row["comparison"] for row in result["comparisons"]] == [
        "family",
        "city",
        "phone",
        "given",
    ]
    assert _explain_total(result) == pytest.approx(result["match_weight"], abs=1e-3)
    weight = result["match_weight"]
    assert result["probability"] == pytest.approx(1 / (1 + 2**-weight), rel=1e-4)
    pair = np.array([left], dtype=np.int64), np.array([right], dtype=np.int64)
    scored = score(params, comparisons, columns, level_matrix(comparisons, *pair), pair[0])
    assert scored.weight[0] == pytest.approx(weight, abs=1e-4)
    assert scored.probability[0] == pytest.approx(result["probability"])
    row = result["comparisons"][0]
    assert row["left"] == columns.values("family")[left]
    assert row["level"] in comparisons[0].labels
    if row["level"] != "exact":
        assert row["term_frequency_adjustment"] == 0.0


def test_explain_of_a_null_level_has_no_m_or_u() -> None:
    params, comparisons, _ = _scoring_fixture([])
    columns = Columns(
        {"family": [None, "x"], "city": ["a", "a"], "phone": ["1", "2"], "given": ["a", "b"]}, 2
    )
    comparisons = [CompiledComparison(c.config, columns) for c in comparisons]
    row = explain(params, comparisons, columns, 0, 1)["comparisons"][0]
    assert (row["level"], row["m"], row["u"], row["weight"], row["left"]) == (
        "null",
        None,
        None,
        0.0,
        None,
    )


def test_probability_is_extreme_but_finite() -> None:
    params, comparisons, columns = _scoring_fixture([])
    params.prior = 0.5
    for p in params.comparisons:
        p.m = [0.0, 1.0] + [0.0] * (len(p.m) - 2)
        p.u = [0.0, EPSILON / 10] + [1.0] * (len(p.u) - 2)
    left, right = np.array([0], dtype=np.int64), np.array([1], dtype=np.int64)
    scored = score(params, comparisons, columns, level_matrix(comparisons, left, right), left)
    assert np.isfinite(scored.weight).all() and 0.0 <= scored.probability[0] <= 1.0


def test_model_params_serialise_to_json() -> None:
    params, _, _ = _scoring_fixture([["family", "city"]])
    document = json.loads(json.dumps(params.to_dict()))
    assert document["prior"] == 0.001
    assert document["correlated"] == [["family", "city"]]
    family = document["comparisons"][0]
    assert family["levels"] == ["null", "exact", "else"]
    assert family["weights"][0] == 0.0
    assert family["term_frequency"] is True and family["exact_level"] == 1


def test_a_comparison_in_two_correlated_groups_counts_once() -> None:
    """Regression: a comparison named in two correlated groups (or twice in one) had its
    disagreement counted once per mention; such groups are now refused."""
    spec = {
        "blocking": [["family"]],
        "comparisons": [
            {"name": name, "column": name, "levels": ["exact"]}
            for name in ("family", "city", "phone", "given")
        ],
    }
    for correlated in ([["family", "city"], ["family", "phone"]], [["family", "family", "city"]]):
        with pytest.raises(ValidationError, match="comparison 'family' is in more than one"):
            ModelConfig.model_validate({**spec, "correlated": correlated})
