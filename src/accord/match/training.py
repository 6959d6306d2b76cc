"""Learning the model's weights from unlabelled records (see `accord.match.model`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np

from accord.config.matching import ModelConfig
from accord.match.blocking import Blocked, pairs_for_rule, rule_blocks, rule_name
from accord.match.columns import Columns, FloatArray, IntArray, root_column
from accord.match.comparisons import CompiledComparison
from accord.match.model import (
    EPSILON,
    ModelParams,
    Session,
    combine,
    estimate_u,
    expectation_maximisation,
    fresh_params,
    group_indexes,
    initial_m,
    level_matrix,
    random_pairs,
    total_pairs,
)

Progress = Callable[[str], None]


def train(
    columns: Columns,
    comparisons: Sequence[CompiledComparison],
    config: ModelConfig,
    max_block_size: int,
    blocked: Blocked,
    *,
    sources: IntArray | None = None,
    progress: Progress | None = None,
) -> ModelParams:
    say = progress or (lambda _: None)
    training = config.training
    rng = np.random.default_rng(training.seed)
    params = fresh_params(comparisons, config)
    size = len(columns)
    possible = total_pairs(size, sources, config.link_type)
    if possible == 0 or len(blocked) == 0:
        params.training = {"note": "no pairs to learn from", "possible_pairs": possible}
        return params

    say("estimating u from random pairs")
    sample = random_pairs(size, training.u_sample_pairs, rng, sources, config.link_type)
    for p, u in zip(params.comparisons, estimate_u(comparisons, sample), strict=True):
        p.u = u
    u_arrays = [np.asarray(p.u) for p in params.comparisons]

    sessions, estimates = _sessions(
        columns,
        comparisons,
        config,
        max_block_size=max_block_size,
        u_arrays=u_arrays,
        rng=rng,
        sources=sources,
        say=say,
    )
    never = []
    for p, found in zip(params.comparisons, estimates, strict=True):
        if found:
            mean = np.mean(np.vstack(found), axis=0)
            mean[1:] /= mean[1:].sum()
            p.m = mean.tolist()
            p.estimated_in = len(found)
        else:
            never.append(p.name)

    say("estimating how often two records are one customer")
    params.prior, iterations, converged = _prior(
        params,
        comparisons,
        config,
        blocked=blocked,
        u_arrays=u_arrays,
        never=never,
        rng=rng,
        possible=possible,
    )
    expected_matches = params.prior * possible
    params.training = {
        "records": size,
        "possible_pairs": possible,
        "blocked_pairs": len(blocked),
        "u_sample_pairs": len(sample[0]),
        "sessions": [asdict(s) for s in sessions],
        "prior_iterations": iterations,
        "prior_converged": converged,
        "expected_matches": round(expected_matches, 1),
        "estimated_on_all_blocked_pairs": never,
    }
    return params


def _sessions(
    columns: Columns,
    comparisons: Sequence[CompiledComparison],
    config: ModelConfig,
    *,
    max_block_size: int,
    u_arrays: list[FloatArray],
    rng: np.random.Generator,
    sources: IntArray | None,
    say: Progress,
) -> tuple[list[Session], list[list[FloatArray]]]:
    """One EM session per blocking rule; per comparison, the m of each session that
    could estimate it."""
    training = config.training
    sessions: list[Session] = []
    estimates: list[list[FloatArray]] = [[] for _ in comparisons]
    for rule in config.blocking:
        blocked_columns = {root_column(ref) for ref in rule}
        active = [not (c.base_columns & blocked_columns) for c in comparisons]
        if not any(active):
            continue
        say(f"learning m on pairs blocked by {rule_name(rule)}")
        left, right, _ = pairs_for_rule(
            rule_blocks(columns, rule, max_block_size), max_block_size, sources, config.link_type
        )
        if len(left) == 0:
            continue
        if len(left) > training.max_pairs_per_session:
            chosen = rng.choice(len(left), training.max_pairs_per_session, replace=False)
            left, right = left[chosen], right[chosen]
        chosen_comparisons = [c for c, on in zip(comparisons, active, strict=True) if on]
        levels = level_matrix(chosen_comparisons, left, right)
        m_start = [initial_m(len(c.config.levels)) for c in chosen_comparisons]
        u_active = [u for u, on in zip(u_arrays, active, strict=True) if on]
        m, prior, iterations, converged = expectation_maximisation(
            levels,
            m_start,
            u_active,
            0.1,
            update_m=[True] * len(chosen_comparisons),
            max_iterations=training.max_iterations,
            tolerance=training.tolerance,
            groups=group_indexes([c.name for c in chosen_comparisons], config.correlated),
        )
        positions = [i for i, on in enumerate(active) if on]
        for position, estimate in zip(positions, m, strict=True):
            estimates[position].append(estimate)
        sessions.append(
            Session(
                rule_name(rule),
                len(left),
                [c.name for c in chosen_comparisons],
                iterations,
                round(prior, 6),
                converged,
            )
        )

    return sessions, estimates


def _prior(
    params: ModelParams,
    comparisons: Sequence[CompiledComparison],
    config: ModelConfig,
    *,
    blocked: Blocked,
    u_arrays: list[FloatArray],
    never: list[str],
    rng: np.random.Generator,
    possible: int,
) -> tuple[float, int, bool]:
    """The share of blocked pairs that are matches, by EM with m and u held. Comparisons
    no session could estimate (every blocking rule reads their columns) are learned here,
    on all blocked pairs, together with it."""
    training = config.training
    left, right = blocked.left, blocked.right
    if len(left) > training.max_pairs_per_session:
        chosen = rng.choice(len(left), training.max_pairs_per_session, replace=False)
        left, right = left[chosen], right[chosen]
    levels = level_matrix(comparisons, left, right)
    m_all, _, iterations, converged = expectation_maximisation(
        levels,
        [np.asarray(p.m) for p in params.comparisons],
        u_arrays,
        0.1,
        update_m=[p.name in never for p in params.comparisons],
        max_iterations=training.max_iterations,
        tolerance=training.tolerance,
        groups=group_indexes([c.name for c in comparisons], config.correlated),
    )
    for p, learned in zip(params.comparisons, m_all, strict=True):
        p.m = learned.tolist()
    weights = combine(
        np.column_stack([p.weights()[levels[:, c]] for c, p in enumerate(params.comparisons)]),
        group_indexes([c.name for c in comparisons], config.correlated),
    )
    return global_prior(weights, len(blocked) / max(len(left), 1), possible), iterations, converged


def global_prior(
    weights: FloatArray, scale: float, possible: int, max_iterations: int = 200
) -> float:
    """The chance that two random records are one customer: the fixed point of
    lambda = (expected matches among all pairs) / (all pairs), where the expected matches
    are the match probabilities of the blocked pairs (`weights` of a sample of them,
    each standing for `scale` pairs) under that same lambda, and pairs no blocking rule
    lets through count as non-matches. This is EM for lambda over every pair, with m and
    u held. (EM over the blocked pairs alone overstates it: inside a block on postcode,
    agreeing on postcode looks like evidence for every pair.)"""
    prior = min(0.5, max(len(weights) * scale / max(possible, 1), EPSILON / 1000))
    for _ in range(max_iterations):
        logit = math.log2(prior / (1 - prior))
        expected = float((1.0 / (1.0 + np.exp2(-np.clip(logit + weights, -60, 60)))).sum())
        updated = min(0.5, max(expected * scale / max(possible, 1), EPSILON / 1000))
        if abs(updated - prior) <= 1e-4 * prior:
            return updated
        prior = updated
    return prior
