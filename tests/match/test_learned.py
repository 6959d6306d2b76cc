"""The learned engine end to end on synthetic people: quality against the truth,
households kept apart, determinism, deterministic rules, the guards, the review band,
and awkward inputs."""

from __future__ import annotations

import copy
from itertools import combinations
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import OSA, JaroWinkler

from accord.config.matching import MatchConfig, ModelConfig
from accord.match import MatchRecord, build_matcher
from accord.match.blocking import Blocked, RuleReport
from accord.match.clusters import GuardedClusters
from accord.match.columns import Columns
from accord.match.comparisons import CompiledComparison
from accord.match.evaluate import pairwise_scores
from accord.match.incremental import NeighbourhoodScorer, Node
from accord.match.learned import (
    LearnedEngine,
    LearnedMatcher,
    LearnedResult,
    ScoredLink,
    blocking_report,
)
from accord.match.model import ComparisonParams, ModelParams
from tests.match.people import People, generate

SETTINGS: dict[str, Any] = {
    "engine": "learned",
    "conflicts": ["given_name", "birth_date"],
    "max_block_size": 100,
    "model": {
        "blocking": [
            ["email"],
            ["phone"],
            ["family_name~metaphone", "birth_date"],
            ["postcode", "given_name~root"],
            ["birth_date", "given_name~initial"],
            ["email~local"],
        ],
        "comparisons": [
            {
                "name": "given_name",
                "column": "given_name",
                "levels": [
                    "exact",
                    "nickname",
                    {"jaro_winkler": 0.92},
                    {"jaro_winkler": 0.8},
                    "initial",
                ],
                "term_frequency": True,
            },
            {
                "name": "family_name",
                "column": "family_name",
                "levels": [
                    "exact",
                    {"jaro_winkler": 0.92},
                    {"jaro_winkler": 0.8},
                    {"phonetic": "metaphone"},
                ],
                "term_frequency": True,
            },
            {
                "name": "birth_date",
                "column": "birth_date",
                "levels": ["exact", "swapped_day_month", {"damerau_levenshtein": 1}],
            },
            {
                "name": "email",
                "column": "email",
                "levels": [
                    "exact",
                    {"exact": True, "column": "email~local"},
                    {"damerau_levenshtein": 2},
                ],
                "term_frequency": True,
            },
            {"name": "phone", "column": "phone", "levels": ["exact"]},
            {
                "name": "address",
                "column": "street",
                "levels": [
                    {"all": ["exact", {"exact": True, "column": "postcode"}]},
                    {"jaro_winkler": 0.9},
                ],
            },
            {"name": "postcode", "column": "postcode", "levels": ["exact"]},
        ],
        "correlated": [["family_name", "address", "phone", "postcode"]],
        "thresholds": {"link": 0.95, "review": 0.5},
        "training": {"u_sample_pairs": 200_000, "seed": 1},
    },
}


MODEL_KEYS = set(ModelConfig.model_fields)


def _changed(settings: dict[str, Any], changes: dict[str, Any]) -> MatchConfig:
    settings = copy.deepcopy(settings)
    for key, value in changes.items():
        (settings["model"] if key in MODEL_KEYS else settings)[key] = value
    return MatchConfig.model_validate(settings)


def _config(**changes: Any) -> MatchConfig:
    return _changed(SETTINGS, changes)


def _model() -> ModelConfig:
    model = _config().model
    assert model is not None
    return model


@pytest.fixture(scope="module")
def people() -> People:
    return generate(2000, seed=7)


@pytest.fixture(scope="module")
def result(people: People) -> LearnedResult:
    return LearnedEngine(_config()).run(people.columns())


def _labels(clusters: list[list[int]]) -> dict[int, int]:
    return {record: number for number, group in enumerate(clusters) for record in group}


def test_quality_against_the_truth(people: People, result: LearnedResult) -> None:
    assert people.size > 3_500
    scores = pairwise_scores(_labels(result.clusters), dict(enumerate(people.truth)))
    # measured on this data (seed 7): precision 1.0, recall 0.938, F1 0.968 (the prior
    # is estimated over all pairs: 2,362 expected matching pairs against 2,397 true ones)
    assert scores.precision >= 0.99
    assert scores.recall >= 0.92
    assert scores.f1 >= 0.96
    assert result.blocking["estimated_recall"] is not None
    assert 0.9 <= result.blocking["estimated_recall"] <= 1.0


def test_the_prior_is_close_to_the_true_share_of_matching_pairs(
    people: People, result: LearnedResult
) -> None:
    assert result.params is not None
    true_pairs = pairwise_scores(dict(enumerate(people.truth)), dict(enumerate(people.truth)))
    expected = result.params.training["expected_matches"]
    assert abs(expected - true_pairs.true_pairs) <= 0.1 * true_pairs.true_pairs


def test_every_record_is_in_exactly_one_cluster(people: People, result: LearnedResult) -> None:
    members = sorted(r for group in result.clusters for r in group)
    assert members == list(range(people.size))
    assert all(group == sorted(group) for group in result.clusters)


def test_household_members_are_never_merged(people: People, result: LearnedResult) -> None:
    assert len(set(people.household_of.values())) > 100  # there are households to keep apart
    assert _household_merges(people, result.clusters) == 0


def _household_merges(people: People, clusters: list[list[int]]) -> int:
    merges = 0
    for group in clusters:
        persons = {people.truth[r] for r in group if people.truth[r] in people.household_of}
        households = [people.household_of[p] for p in persons]
        merges += len(households) - len(set(households))
    return merges


def test_the_guard_keeps_households_with_a_family_mailbox_apart() -> None:
    # every household also shares one email: the model alone links its members
    people = generate(1000, seed=11, household_share=0.5, shared_mailbox=1.0)
    unguarded = LearnedEngine(_config(conflicts=[])).run(people.columns())
    assert _household_merges(people, unguarded.clusters) > 100
    guarded = LearnedEngine(_config()).run(people.columns())
    assert _household_merges(people, guarded.clusters) == 0
    scores = pairwise_scores(_labels(guarded.clusters), dict(enumerate(people.truth)))
    # measured: precision 1.0, recall 0.94, F1 0.969 (unguarded: precision 0.31)
    assert scores.precision >= 0.99 and scores.f1 >= 0.95


def test_no_cluster_holds_contradicting_given_names_or_birth_dates(
    people: People, result: LearnedResult
) -> None:
    columns = people.columns()
    by_name = {c.name: CompiledComparison(c, columns) for c in _model().comparisons}
    for group in result.clusters:
        for a, b in combinations(group, 2):
            for name in ("given_name", "birth_date"):
                comparison = by_name[name]
                level = comparison.levels(np.array([a]), np.array([b]))[0]
                assert level != comparison.else_level, (people.records[a], people.records[b])


def test_links_and_review_bands(result: LearnedResult) -> None:
    thresholds = _model().thresholds
    assert result.links
    for link in result.links:
        assert link.rule == "model" and link.reason is None
        assert link.probability >= thresholds.link
    weights = [link.weight for link in result.links if link.weight is not None]
    assert len(weights) == len(result.links)
    assert weights == sorted(weights, reverse=True)  # strongest first
    cluster_of = _labels(result.clusters)
    reasons = {link.reason for link in result.review}
    assert "uncertain" in reasons
    assert any(r is not None and r.startswith("contradicting ") for r in reasons)
    for link in result.review:
        assert link.left < link.right
        if link.reason == "uncertain":
            assert thresholds.review <= link.probability < thresholds.link
            assert cluster_of[link.left] != cluster_of[link.right]
        else:
            assert link.reason in {"contradicting given_name", "contradicting birth_date"}
            assert link.probability >= thresholds.link


def test_the_blocking_report(result: LearnedResult) -> None:
    report = result.blocking
    assert [r["rule"] for r in report["rules"]] == [
        "email",
        "phone",
        "family_name~metaphone+birth_date",
        "postcode+given_name~root",
        "birth_date+given_name~initial",
        "email~local",
    ]
    assert sum(r["new_pairs"] for r in report["rules"]) == report["pairs"] == result.pairs_scored
    assert all(r["new_pairs"] <= r["pairs"] for r in report["rules"])
    assert report["linked_pairs"] >= len(result.links)
    assert result.oversized == []


def test_two_runs_give_identical_clusters_and_model(people: People, result: LearnedResult) -> None:
    again = LearnedEngine(_config()).run(people.columns())
    assert again.clusters == result.clusters
    assert again.links == result.links
    assert again.review == result.review
    assert result.params is not None and again.params is not None
    assert again.params.to_dict() == result.params.to_dict()
    assert again.blocking == result.blocking


def test_a_trained_model_can_be_reused(people: People, result: LearnedResult) -> None:
    again = LearnedEngine(_config()).run(people.columns(), params=result.params)
    assert again.clusters == result.clusters
    assert "training" not in again.seconds


def test_progress_is_reported() -> None:
    steps: list[str] = []
    LearnedEngine(_config()).run(generate(50, seed=1).columns(), progress=steps.append)
    assert steps[0] == "applying deterministic rules"
    assert "blocking" in steps and "clustering" in steps
    assert any(step.startswith("learning m on pairs blocked by") for step in steps)


# ---- small hand-made cases, with a hand-made model where the outcome must be exact


def _email_model(columns: Columns, config: MatchConfig) -> ModelParams:
    """Equal emails: +20; anything else: -20. Other comparisons say nothing."""
    assert config.model is not None
    params = []
    for comparison in config.model.comparisons:
        labels = CompiledComparison(comparison, columns).labels
        size = len(labels)
        if comparison.name == "email":
            m, u = [0.0, 1 - 1e-6, 1e-6], [0.0, 1e-6, 1 - 1e-6]
        else:
            m = u = [0.0] + [1.0 / (size - 1)] * (size - 1)
        params.append(ComparisonParams(comparison.name, labels, m, u))
    return ModelParams(prior=0.01, comparisons=params)


SMALL = {
    "engine": "learned",
    "conflicts": ["birth_date"],
    "model": {
        "blocking": [["email"], ["family_name"]],
        "comparisons": [
            {"name": "email", "column": "email", "levels": ["exact"]},
            {"name": "birth_date", "column": "birth_date", "levels": ["exact"]},
        ],
        "training": {"u_sample_pairs": 1_000},
    },
}


def _small(**changes: Any) -> MatchConfig:
    return _changed(SMALL, changes)


def test_deterministic_rules_link_before_the_model() -> None:
    # 0 and 1 share a tax id (rule); 1 and 2 share an email (model); 2's birth date
    # contradicts 0's, which 1 lacks: the rule's link comes first, so the model's goes
    # to review
    columns = Columns(
        {
            "email": [None, "x@y", "x@y"],
            "family_name": ["a", "b", "c"],
            "tax_id": ["t1", "t1", None],
            "birth_date": ["1980-01-01", None, "1990-02-02"],
        },
        3,
    )
    config = _small(rules=[{"name": "same_tax_id", "equal": ["tax_id"]}])
    result = LearnedEngine(config).run(columns, params=_email_model(columns, config))
    assert [(link.left, link.right, link.rule) for link in result.links] == [(0, 1, "same_tax_id")]
    assert result.links[0].probability == 1.0 and result.links[0].weight is None
    assert [(r.left, r.right, r.rule, r.reason) for r in result.review] == [
        (1, 2, "model", "contradicting birth_date")
    ]
    assert result.clusters == [[0, 1], [2]]


def test_deterministic_rules_skip_pairs_that_disagree_on_a_conflicts_column() -> None:
    columns = Columns(
        {
            "email": ["a", "b", "c", "d"],
            "family_name": ["p", "q", "r", "s"],
            "tax_id": ["t1", "t1", "t2", "t2"],
            "birth_date": ["1980-01-01", "1981-01-01", "1980-01-01", None],
            "given_name": ["anna", "anna", "bob", "rob"],
        },
        4,
    )
    config = _small(
        rules=[{"name": "tax_and_name", "equal": ["tax_id"], "similar": {"given_name": 0.7}}]
    )
    result = LearnedEngine(config).run(columns, params=_email_model(columns, config))
    # (0, 1) disagree on birth date; (2, 3) "bob"/"rob" is similar enough
    assert [(link.left, link.right) for link in result.links] == [(2, 3)]


def test_deterministic_rules_see_contradictions_as_the_guard_does() -> None:
    """A typo on a `conflicts` column holds a rule's link back no more than the guard
    holds the model's: only the column's comparison's `else` level contradicts. The
    same whether all records are resolved at once or one against its neighbours."""
    values = {
        "email": ["a", "b", "c", "d"],
        "family_name": ["p", "q", "r", "s"],
        "tax_id": ["t1", "t1", "t2", "t2"],
        "birth_date": ["1980-01-01", "1980-01-02", "1980-01-01", "1975-06-30"],
    }
    columns = Columns(values, 4)
    email = SMALL["model"]["comparisons"][0]
    birth_date = {
        "name": "birth_date",
        "column": "birth_date",
        "levels": ["exact", {"damerau_levenshtein": 1}],
    }
    config = _small(
        rules=[{"name": "same_tax_id", "equal": ["tax_id"]}], comparisons=[email, birth_date]
    )
    params = _email_model(columns, config)
    result = LearnedEngine(config).run(columns, params=params)
    # (0, 1): one digit apart, a typo; (2, 3): different birth dates
    assert [(link.left, link.right, link.rule) for link in result.links] == [(0, 1, "same_tax_id")]
    assert result.clusters == [[0, 1], [2], [3]]

    scorer = NeighbourhoodScorer(config, params)
    for known, new_record, linked in [(0, 1, True), (2, 3, False)]:
        nodes = [
            Node(("crm", str(i)), {name: column[i] for name, column in values.items()}, None)
            for i in (known, new_record)
        ]
        local = scorer.cluster(nodes, scorer.columns(nodes, {}), record=1, regroup=[], decisions=[])
        assert [link.rule for link in local.links] == (["same_tax_id"] if linked else [])


def test_a_deterministic_rules_kind_must_match() -> None:
    columns = Columns(
        {
            "email": ["a", "b", "c", "d"],
            "family_name": ["p", "q", "r", "s"],
            "tax_id": ["t1", "t1", "t2", "t2"],
            "kind": ["person", "person", "organization", "organization"],
        },
        4,
    )
    config = _small(rules=[{"name": "same_tax_id", "kind": "organization", "equal": ["tax_id"]}])
    result = LearnedEngine(config).run(columns, params=_email_model(columns, config))
    assert [(link.left, link.right) for link in result.links] == [(2, 3)]


def test_one_per_system_keeps_a_systems_records_apart() -> None:
    columns = Columns(
        {"email": ["x@y"] * 4, "family_name": ["a", "b", "c", "d"], "birth_date": [None] * 4}, 4
    )
    systems = ["crm", "crm", "erp", "web"]
    config = _small(one_per_system=["crm"])
    result = LearnedEngine(config).run(
        columns, systems=systems, params=_email_model(columns, config)
    )
    crm_clusters = [g for g in result.clusters if {0, 1} & set(g)]
    assert len(crm_clusters) == 2
    assert sum(len(g) for g in result.clusters) == 4
    assert {r.reason for r in result.review} == {"contradicting @system"}
    # without the guard all four are one customer
    config = _small()
    result = LearnedEngine(config).run(
        columns, systems=systems, params=_email_model(columns, config)
    )
    assert result.clusters == [[0, 1, 2, 3]]


def test_thresholds_make_three_bands() -> None:
    columns = Columns(
        {
            "email": ["x", "x", "y", "y", "z", "z"],
            "family_name": list("abcdef"),
            "birth_date": [None] * 6,
        },
        6,
    )
    config = _small(thresholds={"link": 0.9, "review": 0.6})
    params = _email_model(columns, config)
    # the same evidence for all three pairs; only the prior differs by run
    for prior, decided in [(0.5, "link"), (1e-6 * 0.7 / 0.3, "review"), (1e-9, "none")]:
        params.prior = prior
        result = LearnedEngine(config).run(columns, params=params)
        assert len(result.links) == (3 if decided == "link" else 0)
        assert len(result.review) == (3 if decided == "review" else 0)
        for link in result.review:
            assert link.reason == "uncertain" and 0.6 <= link.probability < 0.9


def test_empty_input() -> None:
    columns = Columns({"email": [], "family_name": [], "birth_date": []}, 0)
    result = LearnedEngine(_small()).run(columns, systems=[])
    assert (result.clusters, result.links, result.review, result.pairs_scored) == ([], [], [], 0)
    assert result.blocking["pairs"] == 0
    assert result.blocking["estimated_recall"] is None
    assert result.params is not None
    assert result.params.training["note"] == "no pairs to learn from"


def test_a_single_record() -> None:
    columns = Columns({"email": ["x@y"], "family_name": ["a"], "birth_date": [None]}, 1)
    result = LearnedEngine(_small()).run(columns, systems=["crm"])
    assert result.clusters == [[0]]
    assert result.links == result.review == []


def test_all_null_columns() -> None:
    columns = Columns(
        {"email": [None] * 50, "family_name": [""] * 50, "birth_date": [None] * 50}, 50
    )
    result = LearnedEngine(_small()).run(columns)
    assert result.clusters == [[i] for i in range(50)]
    assert result.pairs_scored == 0


def test_everyone_called_na_is_reported_and_capped(people: People) -> None:
    records = [dict(r, family_name="N/A") for r in people.records[:600]]
    columns = Columns({name: [r[name] for r in records] for name in records[0]}, len(records))
    result = LearnedEngine(
        _config(
            blocking=[["family_name"], ["email"], ["phone"]],
            max_block_size=50,
        )
    ).run(columns)
    assert [(b.rule, b.key, b.size) for b in result.oversized] == [("family_name", "N/A", 600)]
    assert result.blocking["rules"][0]["pairs"] == 0
    assert result.blocking["rules"][1]["pairs"] > 0  # later rules still pair
    assert result.links
    truth = dict(enumerate(people.truth[:600]))
    assert pairwise_scores(_labels(result.clusters), truth).precision >= 0.99


def test_a_giant_block_in_training_only_is_capped_too() -> None:
    # the session for this rule sees no usable block; training still finishes
    columns = Columns(
        {
            "email": [f"e{i % 150}" for i in range(300)],
            "family_name": ["N/A"] * 300,
            "birth_date": [None] * 300,
        },
        300,
    )
    result = LearnedEngine(_small(max_block_size=20)).run(columns)
    assert [(b.rule, b.size) for b in result.oversized] == [("family_name", 300)]
    assert result.pairs_scored == 150  # the email pairs
    assert result.params is not None
    sessions = result.params.training["sessions"]
    assert [s["rule"] for s in sessions] == ["email"]  # the capped rule had no pairs
    assert sorted(r for group in result.clusters for r in group) == list(range(300))


def test_the_engine_needs_a_model() -> None:
    config = MatchConfig.model_validate(
        {"engine": "rules", "rules": [{"name": "r", "equal": ["email"]}]}
    )
    with pytest.raises(ValueError, match="model"):
        LearnedEngine(config)


def test_the_matcher_interface() -> None:
    def record(key: str, email: str, given: str, kind: str = "person") -> MatchRecord:
        return MatchRecord(("crm", key), kind, {"email": email, "given_name": given})

    records = [record("1", "a@x", "anna"), record("2", "a@x", "anna"), record("3", "b@x", "bob")]
    config = _small(conflicts=["given_name"])
    matcher = build_matcher(config)
    assert isinstance(matcher, LearnedMatcher)
    result = matcher.link(records)
    assert result.pairs_compared == 1
    assert result.details["model"]["comparisons"][0]["name"] == "email"
    assert set(result.details) == {"model", "blocking", "seconds"}


def test_blocking_report_estimates_recall_from_rule_overlap() -> None:
    keys = [
        np.array([0, 0, 1, 1, 2, 2, -1, -1], dtype=np.int64),
        np.array([5, 5, -1, 7, 8, 8, 9, 9], dtype=np.int64),
    ]
    left = np.array([0, 2, 4, 6], dtype=np.int64)
    right = np.array([1, 3, 5, 7], dtype=np.int64)
    blocked = Blocked(
        left,
        right,
        np.array([0, 0, 0, 1], dtype=np.int8),
        [RuleReport("a", 3, 3, 3, 2), RuleReport("b", 3, 1, 3, 2)],
        [],
        keys,
    )
    # caught by: (0,1) both, (2,3) one, (4,5) both, (6,7) one
    report = blocking_report(blocked, np.array([True, True, True, True]))
    assert report["linked_pairs"] == 4
    assert report["linked_found_by_one_rule"] == 2
    assert report["linked_found_by_two_rules"] == 2
    assert report["estimated_recall"] == round(4 / (4 + 2 * 2 / (2 * 2)), 4)
    assert report["rules"][1] == {
        "rule": "b",
        "pairs": 3,
        "new_pairs": 1,
        "blocks": 3,
        "largest_block": 2,
    }
    only_one = blocking_report(blocked, np.array([False, True, False, True]))
    assert only_one["estimated_recall"] is None  # f2 = 0: no estimate
    everything_twice = blocking_report(blocked, np.array([True, False, True, False]))
    assert everything_twice["estimated_recall"] == 1.0
    nothing = blocking_report(blocked, np.zeros(4, dtype=bool))
    assert nothing["estimated_recall"] is None and nothing["linked_pairs"] == 0


# ---- bugs


def test_an_oversized_block_of_a_deterministic_rule_is_reported() -> None:
    """Regression: a deterministic rule's oversized blocks were skipped silently."""
    columns = Columns(
        {
            "email": [f"e{i}" for i in range(6)],
            "family_name": list("abcdef"),
            "tax_id": ["n/a"] * 6,
            "birth_date": [None] * 6,
        },
        6,
    )
    config = _small(max_block_size=3, rules=[{"name": "same_tax_id", "equal": ["tax_id"]}])
    result = LearnedEngine(config).run(columns, params=_email_model(columns, config))
    assert [(b.rule, b.size) for b in result.oversized] == [("same_tax_id", 6)]


def test_deterministic_rules_respect_link_only() -> None:
    """Regression: deterministic rules linked records of one source under link_only."""
    columns = Columns(
        {
            "email": ["a", "b", "c"],
            "family_name": ["p", "q", "r"],
            "tax_id": ["t1", "t1", "t2"],
            "birth_date": [None] * 3,
        },
        3,
    )
    config = _small(link_type="link_only", rules=[{"name": "same_tax_id", "equal": ["tax_id"]}])
    result = LearnedEngine(config).run(
        columns, systems=["crm", "crm", "erp"], params=_email_model(columns, config)
    )
    assert result.links == []


# ---- the engine's clustering against a plain guarded clustering


GIVEN_NAMES = ["anna", "anne", "bob", "rob", "robert", "carl", None]
BIRTH_DATES = ["1980-01-01", "1980-01-02", "1980-02-01", "1990-05-05", None]
CLUSTER_SETTINGS: dict[str, Any] = {
    "engine": "learned",
    "conflicts": ["given_name", "birth_date", "tax_id"],
    "model": {
        "blocking": [["given_name"]],
        "comparisons": [
            {
                "name": "given_name",
                "column": "given_name",
                "levels": ["exact", {"jaro_winkler": 0.8}],
            },
            {
                "name": "birth_date",
                "column": "birth_date",
                "levels": ["exact", {"damerau_levenshtein": 1}],
            },
        ],
        "one_per_system": ["crm"],
    },
}


def _contradicts(column: str, a: str, b: str) -> bool:
    """The scalar meaning of a contradiction under CLUSTER_SETTINGS."""
    if column == "given_name":
        return JaroWinkler.normalized_similarity(a, b) < 0.8
    if column == "birth_date":
        return OSA.distance(a, b) > 1
    return a != b  # tax_id: no comparison, any difference


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=st.integers(1, 14))
def test_the_engines_clustering_equals_guarded_clustering_link_by_link(
    data: st.DataObject, size: int
) -> None:
    def column(values: list[str | None]) -> list[str | None]:
        drawn: list[str | None] = data.draw(
            st.lists(st.sampled_from(values), min_size=size, max_size=size)
        )
        return drawn

    table = {
        "given_name": column(GIVEN_NAMES),
        "birth_date": column(BIRTH_DATES),
        "tax_id": column(["t1", "t2", None, None]),
    }
    systems = [str(s) for s in column(["crm", "erp", "web"])]
    use_systems = data.draw(st.booleans())
    links = data.draw(
        st.lists(
            st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)).filter(
                lambda p: p[0] != p[1]
            ),
            max_size=30,
        )
    )
    candidates = [
        ScoredLink(min(a, b), max(a, b), "model", 0.99, 10.0 - k / 100)
        for k, (a, b) in enumerate(links)
    ]
    columns = Columns(table, size)
    config = MatchConfig.model_validate(CLUSTER_SETTINGS)
    assert config.model is not None
    engine = LearnedEngine(config)
    comparisons = [CompiledComparison(c, columns) for c in config.model.comparisons]
    # the clustering step on its own, called directly
    got = engine._cluster(columns, comparisons, systems if use_systems else None, candidates)

    values: dict[str, list[str | None]] = dict(table)
    if use_systems:
        values["@system"] = list(systems)
    guard = GuardedClusters(
        size,
        values,
        lambda name, a, b: _contradicts(name, str(values[name][a]), str(values[name][b])),
        {"@system": frozenset({"crm"})} if use_systems else None,
    )
    accepted, held = [], []
    for link in candidates:
        reason = guard.offer(link.left, link.right)
        if reason is None:
            accepted.append(link)
        else:
            held.append((link.left, link.right, f"contradicting {reason}"))
    clusters, links_made, links_held = got
    assert clusters == guard.groups()
    assert links_made == accepted
    assert [(x.left, x.right, x.reason) for x in links_held] == held
