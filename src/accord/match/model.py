"""The Fellegi-Sunter model: how much each level of each comparison says for or against
two records being one customer, learned from the records themselves, without labels.

For comparison c at level l, m = P(level | same customer) and u = P(level | different
customers); the level's match weight is log2(m/u). A pair's score is the prior's weight,
log2(lambda / (1 - lambda)) with lambda the chance that two random records are one
customer, plus the weights of its levels; its match probability is 2^s / (1 + 2^s).

Training, without labels:
- u is counted on random pairs, which are almost all different customers.
- m is estimated by expectation maximisation, one session per blocking rule. A session
  sees only pairs its rule lets through, so the comparisons that read the rule's own
  columns are left out of it (inside a block on surname every pair agrees on surname);
  each comparison's m is the mean over the sessions that could estimate it.
- lambda is estimated by EM on the blocked pairs with m and u held, scaled from the
  blocked pairs to all pairs.

Scoring adds two things the independence assumption gets wrong:
- term frequencies: an exact agreement on a rare value (a rare surname) is weighted by
  that value's own frequency instead of the average chance of agreeing;
- correlated evidence: comparisons in one `correlated` group (a household shares surname,
  address and landline) count their strongest agreement once, not once each; their
  disagreements still count in full.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.config.matching import ModelConfig
from accord.match.columns import Columns, FloatArray, IntArray
from accord.match.comparisons import CompiledComparison

LevelMatrix = npt.NDArray[np.int8]  # pairs x comparisons
Progress = Callable[[str], None]

MAX_DRAWS = 50  # rounds of random drawing for u before settling for fewer pairs
ENUMERATE_LIMIT = 20_000_000  # pairs: below this, sample from the list of all of them
# Probabilities are kept away from 0 and 1 so that every weight is finite.
EPSILON = 1e-6
MAX_WEIGHT = 30.0


@dataclass
class ComparisonParams:
    name: str
    labels: list[str]  # "null", the levels, "else"
    m: list[float]  # per level; index 0 (null) unused
    u: list[float]
    term_frequency: bool = False
    exact_level: int | None = None
    estimated_in: int = 0  # EM sessions that estimated m

    def weights(self) -> FloatArray:
        m = np.clip(np.asarray(self.m, dtype=np.float64), EPSILON, 1.0)
        u = np.clip(np.asarray(self.u, dtype=np.float64), EPSILON, 1.0)
        out = np.clip(np.log2(m / u), -MAX_WEIGHT, MAX_WEIGHT)
        out[0] = 0.0
        return out


@dataclass
class ModelParams:
    prior: float
    comparisons: list[ComparisonParams]
    correlated: list[list[str]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1.0 - self.prior))

    def to_dict(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "comparisons": [
                {
                    "name": c.name,
                    "levels": c.labels,
                    "m": c.m,
                    "u": c.u,
                    "weights": [round(w, 4) for w in c.weights().tolist()],
                    "term_frequency": c.term_frequency,
                    "exact_level": c.exact_level,
                    "estimated_in_sessions": c.estimated_in,
                }
                for c in self.comparisons
            ],
            "correlated": self.correlated,
            "training": self.training,
        }


def params_from_dict(data: dict[str, Any]) -> ModelParams:
    """A model as `ModelParams.to_dict` wrote it (kept in the store between resolves)."""
    return ModelParams(
        prior=float(data["prior"]),
        comparisons=[
            ComparisonParams(
                name=c["name"],
                labels=list(c["levels"]),
                m=[float(x) for x in c["m"]],
                u=[float(x) for x in c["u"]],
                term_frequency=bool(c.get("term_frequency", False)),
                exact_level=c.get("exact_level"),
                estimated_in=int(c.get("estimated_in_sessions", 0)),
            )
            for c in data["comparisons"]
        ],
        correlated=[list(group) for group in data.get("correlated", [])],
        training=dict(data.get("training", {})),
    )


def level_matrix(
    comparisons: Sequence[CompiledComparison], left: IntArray, right: IntArray
) -> LevelMatrix:
    out = np.zeros((len(left), len(comparisons)), dtype=np.int8)
    for c, comparison in enumerate(comparisons):
        out[:, c] = comparison.levels(left, right)
    return out


# ---- training


def estimate_u(
    comparisons: Sequence[CompiledComparison],
    pairs: tuple[IntArray, IntArray],
) -> list[list[float]]:
    """u per comparison and level, from (random) pairs, with add-one smoothing."""
    levels = level_matrix(comparisons, *pairs)
    out = []
    for c, comparison in enumerate(comparisons):
        counts = np.bincount(levels[:, c], minlength=comparison.else_level + 1).astype(float)
        counts[0] = 0.0
        counts[1:] += 1.0
        out.append((counts / counts[1:].sum()).tolist())
    return out


def total_pairs(size: int, sources: IntArray | None, link_type: str) -> int:
    """How many pairs the link type allows among `size` records."""
    every = size * (size - 1) // 2
    if sources is None or link_type == "dedupe_and_link":
        return every
    counts = np.bincount(sources).astype(np.int64)
    within = int((counts * (counts - 1) // 2).sum())
    return every - within if link_type == "link_only" else within


def random_pairs(
    size: int,
    wanted: int,
    rng: np.random.Generator,
    sources: IntArray | None = None,
    link_type: str = "dedupe_and_link",
) -> tuple[IntArray, IntArray]:
    """Up to `wanted` distinct random pairs of the kind the link type allows (every such
    pair when there are fewer), each allowed pair equally likely."""
    if sources is None or link_type == "dedupe_and_link":
        sources, link_type = None, "dedupe_and_link"
    allowed = total_pairs(size, sources, link_type)
    if allowed <= 2 * wanted and size * (size - 1) // 2 <= ENUMERATE_LIMIT:
        # few pairs in all: take every allowed one, or a sample of them without repeats
        left, right = np.triu_indices(size, 1)
        if sources is not None:
            same = sources[left] == sources[right]
            keep = ~same if link_type == "link_only" else same
            left, right = left[keep], right[keep]
        left, right = left.astype(np.int64), right.astype(np.int64)
        if len(left) > wanted:
            chosen = np.sort(rng.choice(len(left), wanted, replace=False))
            left, right = left[chosen], right[chosen]
        return left, right
    draw = _pair_drawer(size, rng, sources, link_type)
    seen = np.zeros(0, dtype=np.int64)
    for _ in range(MAX_DRAWS):
        if len(seen) >= min(wanted, allowed):
            break
        a, b = draw(int((wanted - len(seen)) * 1.1) + 16)
        low, high = np.minimum(a, b), np.maximum(a, b)
        merged = np.concatenate([seen, low * size + high])
        _, first = np.unique(merged, return_index=True)
        first.sort()  # keep the order drawn: a sorted sample would favour low ids
        seen = merged[first]
    seen = seen[:wanted]
    return seen // size, seen % size


def _pair_drawer(
    size: int, rng: np.random.Generator, sources: IntArray | None, link_type: str
) -> Callable[[int], tuple[IntArray, IntArray]]:
    """A function drawing n random allowed pairs (with repeats): any two records; two of
    different sources (link_only); or two of the same source (dedupe_only), each
    allowed pair equally likely."""
    if sources is None:

        def any_two(n: int) -> tuple[IntArray, IntArray]:
            a = rng.integers(0, size, n)
            b = (a + rng.integers(1, size, n)) % size  # never a itself
            return a, b

        return any_two
    order = np.argsort(sources, kind="stable")
    counts = np.bincount(sources).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if link_type == "link_only":
        weight = (counts * (size - counts)).astype(np.float64)
    else:
        weight = (counts * (counts - 1)).astype(np.float64)
    share = weight / weight.sum()

    def two(n: int) -> tuple[IntArray, IntArray]:
        source = rng.choice(len(counts), n, p=share)
        own = counts[source]
        i = np.floor(rng.random(n) * own).astype(np.int64)
        a = order[starts[source] + i]
        if link_type == "link_only":
            # a position among the records of every other source
            r = np.floor(rng.random(n) * (size - own)).astype(np.int64)
            r = np.where(r < starts[source], r, r + own)
            return a, order[r]
        j = np.floor(rng.random(n) * (own - 1)).astype(np.int64)
        j = j + (j >= i)  # any other record of the same source
        return a, order[starts[source] + j]

    return two


@dataclass
class Session:
    rule: str
    pairs: int
    active: list[str]
    iterations: int
    prior: float
    converged: bool


def expectation_maximisation(
    levels: LevelMatrix,
    m: list[FloatArray],
    u: list[FloatArray],
    prior: float,
    *,
    update_m: Sequence[bool],
    max_iterations: int,
    tolerance: float,
    groups: Sequence[Sequence[int]] = (),
) -> tuple[list[FloatArray], float, int, bool]:
    """EM for m (where `update_m`) and the prior, with u held; returns m, prior,
    iterations and whether it converged. `groups` are correlated comparisons (column
    indexes of `levels`), combined as in scoring."""
    m = [x.copy() for x in m]
    count = len(levels)
    if count == 0:
        return m, prior, 0, True
    for iteration in range(1, max_iterations + 1):
        posterior = _posterior(levels, m, u, prior, groups)
        new_prior = float(np.clip(posterior.mean(), EPSILON, 1 - EPSILON))
        change = abs(new_prior - prior)
        for c in range(levels.shape[1]):
            if not update_m[c]:
                continue
            size = len(m[c])
            mass = np.bincount(levels[:, c], weights=posterior, minlength=size)
            mass[0] = 0.0
            total = mass.sum()
            if total <= 0:
                continue
            new_m = np.clip(mass / total, EPSILON, 1.0)
            new_m[0] = 0.0
            change = max(change, float(np.abs(new_m - m[c]).max()))
            m[c] = new_m
        prior = new_prior
        if change < tolerance:
            return m, prior, iteration, True
    return m, prior, max_iterations, False


def _posterior(
    levels: LevelMatrix,
    m: Sequence[FloatArray],
    u: Sequence[FloatArray],
    prior: float,
    groups: Sequence[Sequence[int]] = (),
) -> FloatArray:
    contributions = np.empty(levels.shape, dtype=np.float64)
    for c in range(levels.shape[1]):
        weights = np.log2(np.clip(m[c], EPSILON, 1.0) / np.clip(u[c], EPSILON, 1.0))
        weights[0] = 0.0
        contributions[:, c] = weights[levels[:, c]]
    score = math.log2(prior / (1 - prior)) + combine(contributions, groups)
    result: FloatArray = 1.0 / (1.0 + np.exp2(-np.clip(score, -60, 60)))
    return result


def combine(contributions: FloatArray, groups: Sequence[Sequence[int]]) -> FloatArray:
    """Sum the comparisons' weights, counting only the strongest agreement of each group
    of correlated comparisons (their disagreements all count)."""
    grouped = {c for group in groups for c in group}
    free = [c for c in range(contributions.shape[1]) if c not in grouped]
    total: FloatArray = contributions[:, free].sum(axis=1)
    for group in groups:
        part = contributions[:, list(group)]
        total += np.maximum(part, 0.0).max(axis=1) + np.minimum(part, 0.0).sum(axis=1)
    return total


def group_indexes(names: Sequence[str], correlated: Sequence[Sequence[str]]) -> list[list[int]]:
    """The correlated groups as indexes into `names`, leaving out names not there."""
    out = []
    for group in correlated:
        indexes = [names.index(name) for name in group if name in names]
        if len(indexes) > 1:
            out.append(indexes)
    return out


def initial_m(levels: int) -> FloatArray:
    """A neutral start for EM: strong levels likely among matches, `else` unlikely."""
    shares = np.array([0.0] + [0.9 * 0.25**i for i in range(levels)] + [0.05])
    shares[1:] /= shares[1:].sum()
    return shares


# ---- scoring


@dataclass
class Scored:
    weight: FloatArray  # total match weight (log2 Bayes factor incl. the prior)
    probability: FloatArray


def score(
    params: ModelParams,
    comparisons: Sequence[CompiledComparison],
    columns: Columns,
    levels: LevelMatrix,
    left: IntArray,
) -> Scored:
    contributions = contribution_matrix(params, comparisons, columns, levels, left)
    total = params.prior_weight + _combine(params, contributions)
    probability = 1.0 / (1.0 + np.exp2(-np.clip(total, -60, 60)))
    return Scored(total, probability)


def contribution_matrix(
    params: ModelParams,
    comparisons: Sequence[CompiledComparison],
    columns: Columns,
    levels: LevelMatrix,
    left: IntArray,
) -> FloatArray:
    """Each pair's weight from each comparison, term-frequency adjustments included."""
    out = np.zeros(levels.shape, dtype=np.float64)
    for c, (p, comparison) in enumerate(zip(params.comparisons, comparisons, strict=True)):
        out[:, c] = p.weights()[levels[:, c]]
        if p.term_frequency and p.exact_level is not None:
            exact = levels[:, c] == p.exact_level
            if exact.any():
                out[exact, c] += tf_adjustment(p, columns, comparison.config.column, left[exact])
    return out


def tf_adjustment(
    params: ComparisonParams, columns: Columns, column: str, records: IntArray
) -> FloatArray:
    """log2(u_exact / frequency of the value): positive for rare values, negative for
    common ones."""
    assert params.exact_level is not None  # noqa: S101  (only called for exact levels)
    frequency = columns.frequency(column)[records]
    floor = 1.0 / max(columns.present(column), 1)
    u_exact = max(params.u[params.exact_level], EPSILON)
    adjusted: FloatArray = np.clip(
        np.log2(u_exact / np.maximum(frequency, floor)), -MAX_WEIGHT, MAX_WEIGHT
    )
    return adjusted


def _combine(params: ModelParams, contributions: FloatArray) -> FloatArray:
    names = [c.name for c in params.comparisons]
    return combine(contributions, group_indexes(names, params.correlated))


def explain(
    params: ModelParams,
    comparisons: Sequence[CompiledComparison],
    columns: Columns,
    left: int,
    right: int,
) -> dict[str, Any]:
    """Every comparison's level and weight for one pair, the prior and the total: the
    data of a waterfall chart."""
    pairs = np.array([left], dtype=np.int64), np.array([right], dtype=np.int64)
    return explain_pairs(params, comparisons, columns, *pairs)[0]


def explain_pairs(
    params: ModelParams,
    comparisons: Sequence[CompiledComparison],
    columns: Columns,
    left: IntArray,
    right: IntArray,
) -> list[dict[str, Any]]:
    """`explain` for many pairs at once: the levels and weights are computed for all of
    them together."""
    levels = level_matrix(comparisons, left, right)
    contributions = contribution_matrix(params, comparisons, columns, levels, left)
    totals = params.prior_weight + _combine(params, contributions)
    grouped = {name: i for i, group in enumerate(params.correlated) for name in group}
    weights = [p.weights() for p in params.comparisons]
    values = [columns.values(c.config.column) for c in comparisons]
    out = []
    for k, (a, b) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
        rows = []
        for c, p in enumerate(params.comparisons):
            level = int(levels[k, c])
            base = float(weights[c][level])
            left_value, right_value = values[c][a], values[c][b]
            rows.append(
                {
                    "comparison": p.name,
                    "left": None if left_value is None else str(left_value),
                    "right": None if right_value is None else str(right_value),
                    "level": p.labels[level],
                    "m": None if level == 0 else p.m[level],
                    "u": None if level == 0 else p.u[level],
                    "weight": round(base, 4),
                    "term_frequency_adjustment": round(float(contributions[k, c]) - base, 4),
                    "correlated_group": grouped.get(p.name),
                }
            )
        total = float(totals[k])
        out.append(
            {
                "prior": params.prior,
                "prior_weight": round(params.prior_weight, 4),
                "comparisons": rows,
                "correlated": params.correlated,
                "match_weight": round(total, 4),
                "probability": 1.0 / (1.0 + 2.0 ** -max(min(total, 60.0), -60.0)),
            }
        )
    return out


def fresh_params(comparisons: Sequence[CompiledComparison], config: ModelConfig) -> ModelParams:
    return ModelParams(
        prior=1e-4,
        comparisons=[
            ComparisonParams(
                name=c.name,
                labels=c.labels,
                m=initial_m(len(c.config.levels)).tolist(),
                u=[0.0] + [1.0 / (len(c.config.levels) + 1)] * (len(c.config.levels) + 1),
                term_frequency=c.config.term_frequency,
                exact_level=c.exact_level,
            )
            for c in comparisons
        ],
        correlated=[list(group) for group in config.correlated],
    )
