"""Training: u from random pairs, one EM session per blocking rule, and the prior."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.config.matching import ModelConfig
from accord.match.blocking import Blocked, block
from accord.match.columns import Columns
from accord.match.comparisons import CompiledComparison
from accord.match.model import EPSILON, ModelParams, initial_m, random_pairs
from accord.match.training import total_pairs, train
from tests.match.people import generate

MODEL = {
    "blocking": [["email"], ["family_name", "birth_date"], ["postcode", "given_name~root"]],
    "comparisons": [
        {
            "name": "given_name",
            "column": "given_name",
            "levels": ["exact", "nickname", {"jaro_winkler": 0.8}],
            "term_frequency": True,
        },
        {
            "name": "family_name",
            "column": "family_name",
            "levels": ["exact", {"jaro_winkler": 0.8}],
        },
        {
            "name": "birth_date",
            "column": "birth_date",
            "levels": ["exact", {"damerau_levenshtein": 1}],
        },
        {"name": "email", "column": "email", "levels": ["exact"]},
        {"name": "postcode", "column": "postcode", "levels": ["exact"]},
    ],
    "training": {"u_sample_pairs": 50_000, "seed": 5},
}


def test_total_pairs_by_link_type() -> None:
    sources = np.array([0, 0, 0, 1, 1], dtype=np.int64)
    assert total_pairs(5, None, "link_only") == 10
    assert total_pairs(5, sources, "dedupe_and_link") == 10
    assert total_pairs(5, sources, "link_only") == 6
    assert total_pairs(5, sources, "dedupe_only") == 4
    assert total_pairs(0, None, "dedupe_and_link") == 0
    assert total_pairs(1, None, "dedupe_and_link") == 0


def test_random_pairs_are_ordered_and_in_range() -> None:
    rng = np.random.default_rng(1)
    left, right = random_pairs(1_000, 5_000, rng)
    assert len(left) == 5_000
    assert (left < right).all() and (left >= 0).all() and (right < 1_000).all()


def test_random_pairs_are_every_pair_when_there_are_few() -> None:
    left, right = random_pairs(6, 100, np.random.default_rng(1))
    assert sorted(zip(left.tolist(), right.tolist(), strict=True)) == [
        (i, j) for i in range(6) for j in range(i + 1, 6)
    ]
    assert len(random_pairs(1, 100, np.random.default_rng(1))[0]) == 0
    assert len(random_pairs(0, 100, np.random.default_rng(1))[0]) == 0


@pytest.mark.parametrize(("link_type", "same"), [("link_only", False), ("dedupe_only", True)])
def test_random_pairs_respect_the_link_type(link_type: str, same: bool) -> None:
    sources = np.array([0, 1] * 500, dtype=np.int64)
    left, right = random_pairs(1_000, 2_000, np.random.default_rng(2), sources, link_type)
    assert len(left) > 0
    assert ((sources[left] == sources[right]) == same).all()


def test_random_pairs_are_distinct() -> None:
    """Regression: the pairs were drawn with replacement and repeats were kept."""
    left, right = random_pairs(100, 4_000, np.random.default_rng(1))  # of 4,950 pairs
    assert len(set(zip(left.tolist(), right.tolist(), strict=True))) == len(left) == 4_000


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 120), wanted=st.integers(1, 8_000), seed=st.integers(0, 2**16))
def test_random_pairs_are_distinct_ordered_pairs(size: int, wanted: int, seed: int) -> None:
    left, right = random_pairs(size, wanted, np.random.default_rng(seed))
    pairs = list(zip(left.tolist(), right.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs) <= wanted
    assert all(0 <= a < b < size for a, b in pairs)
    total = size * (size - 1) // 2
    if total <= wanted:
        assert len(pairs) == total


def test_random_pairs_give_as_many_as_wanted_when_there_are_enough() -> None:
    for size, wanted in [(100, 2_474), (1_000, 249_000)]:
        left, _ = random_pairs(size, wanted, np.random.default_rng(1))
        assert len(left) == wanted, (size, wanted)


def _trained(people: int = 400, **overrides: object) -> tuple[ModelParams, Blocked, Columns]:
    data = generate(people, seed=3)
    columns = data.columns()
    config = ModelConfig.model_validate({**MODEL, **overrides})
    comparisons = [CompiledComparison(c, columns) for c in config.comparisons]
    blocked = block(columns, config.blocking, 200)
    return train(columns, comparisons, config, 200, blocked), blocked, columns


def test_train_estimates_every_comparison_and_reports_its_sessions() -> None:
    params, blocked, columns = _trained()
    training = params.training
    assert training["records"] == len(columns)
    assert training["possible_pairs"] == len(columns) * (len(columns) - 1) // 2
    assert training["blocked_pairs"] == len(blocked)
    assert training["u_sample_pairs"] == 50_000
    sessions = {s["rule"]: s for s in training["sessions"]}
    assert set(sessions) == {"email", "family_name+birth_date", "postcode+given_name~root"}
    # a session leaves out the comparisons that read its own rule's columns
    assert "email" not in sessions["email"]["active"]
    assert {"family_name", "birth_date"}.isdisjoint(sessions["family_name+birth_date"]["active"])
    assert {"given_name", "postcode"}.isdisjoint(sessions["postcode+given_name~root"]["active"])
    estimated_in = {p.name: p.estimated_in for p in params.comparisons}
    assert estimated_in == {
        "given_name": 2,
        "family_name": 2,
        "birth_date": 2,
        "email": 2,
        "postcode": 2,
    }
    assert training["estimated_on_all_blocked_pairs"] == []
    assert EPSILON / 1000 <= params.prior <= 0.5
    for p in params.comparisons:
        assert p.m[0] == 0.0 and p.u[0] == 0.0
        assert sum(p.m[1:]) == pytest.approx(1.0, abs=1e-3)
        assert sum(p.u[1:]) == pytest.approx(1.0)
        assert all(0.0 <= x <= 1.0 for x in p.m + p.u)
        weights = p.weights()
        assert weights[1] > 0 > weights[-1], p.name  # agreeing is evidence for, else against


def test_a_comparison_every_rule_reads_is_learned_on_all_blocked_pairs() -> None:
    params, _, _ = _trained(
        blocking=[["email", "given_name"], ["given_name", "postcode"]],
    )
    assert params.training["estimated_on_all_blocked_pairs"] == ["given_name"]
    given = next(p for p in params.comparisons if p.name == "given_name")
    assert given.estimated_in == 0
    assert given.m != pytest.approx(initial_m(3).tolist())  # EM moved it from its start


def test_training_is_deterministic_for_a_seed() -> None:
    first, _, _ = _trained(200)
    second, _, _ = _trained(200)
    assert first.to_dict() == second.to_dict()


def test_no_pairs_to_learn_from() -> None:
    columns = Columns(
        {
            name: [f"{name}{i}" for i in range(30)]
            for name in ("given_name", "family_name", "birth_date", "email", "postcode")
        },
        30,
    )
    config = ModelConfig.model_validate(MODEL)
    comparisons = [CompiledComparison(c, columns) for c in config.comparisons]
    blocked = block(columns, config.blocking, 200)
    assert len(blocked) == 0
    params = train(columns, comparisons, config, 200, blocked)
    assert params.training == {"note": "no pairs to learn from", "possible_pairs": 435}
    assert params.prior == 1e-4
    empty = Columns({name: [] for name in columns.names}, 0)
    params = train(
        empty,
        [CompiledComparison(c, empty) for c in config.comparisons],
        config,
        200,
        block(empty, config.blocking, 200),
    )
    assert params.training == {"note": "no pairs to learn from", "possible_pairs": 0}


@pytest.mark.parametrize("link_type", ["link_only", "dedupe_only"])
def test_random_pairs_give_as_many_allowed_pairs_as_wanted(link_type: str) -> None:
    """Regression: pairs the link type forbids were dropped after drawing, so a
    link_only run got about half the u sample it asked for."""
    sources = np.array([0] * 1_000 + [1] * 1_000, dtype=np.int64)
    left, right = random_pairs(2_000, 50_000, np.random.default_rng(3), sources, link_type)
    assert len(left) == 50_000
    assert len(set(zip(left.tolist(), right.tolist(), strict=True))) == 50_000
    same = sources[left] == sources[right]
    assert bool(same.all()) if link_type == "dedupe_only" else not same.any()
