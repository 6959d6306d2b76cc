"""Benchmark: how much recall the learned matcher's own blocking and comparisons allow.

    .venv/bin/python benchmarks/recall_ceiling.py [--customers 20000] [--seed 7]

Issue 4 asks for pairwise precision and recall of at least 0.97, unsupervised. This asks
what the best recall is that ANY classifier over the matcher's blocking and comparisons
could reach at precision >= 0.97 on the demo company, with the ground truth as an oracle,
and where the rest is lost. It generates and maps the demo company as `match_scale.py`
does (same functions, same seed, same data), runs the learned engine with the demo
project's settings, then, with the engine's own blocking, comparison levels (the gamma
vector of each pair) and learned weights, against the truth:

1. the true pairs no blocking rule produces (out of reach of any model over these rules);
2. the oracle over gamma: blocked pairs grouped by their gamma vector (one cell per
   combination of levels), cells taken purest first while precision stays >= the target.
   Any classifier that sees only the levels (every Fellegi-Sunter model without term
   frequencies, whatever its weights) picks whole cells, so it cannot do better. The same
   with cells split by the model's match weight (rounded to 1 bit: the term-frequency
   adjustments), with the deterministic rules' pairs forced in, and cross-fitted (cells
   chosen on one half of the pairs, scored on the other) for how much of the ceiling is
   in-sample luck;
3. the matcher's own match weight as the score, with the threshold chosen with the truth,
   and the configured thresholds as they are;
4. the missed true pairs at the configured settings: not blocked, held by the guard, in
   the review band, below it; and the gamma cells that hold most of them.

Figures are over pairs (pair level: the pairs a classifier accepts) unless they say
`cluster`: the benchmarks' pairwise scores are over final clusters, where transitive
closure turns A-B and B-C into A-C too. The oracle's pairs are also clustered (connected
components, and through the engine's guarded clustering) and scored the same way.

The pair-level oracle is exact for whole cells (its LP bound is printed beside it). The
cluster-level searches only try prefixes of the purity order (bisection, assuming
precision falls as cells are added; it nearly does), so they are lower bounds on the best
cluster-level choice of cells.

Writes benchmarks/results/recall-ceiling-<customers>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).parent))

from accord.demo.run import read_truth
from accord.match.blocking import block, pairs_within
from accord.match.clusters import component_labels
from accord.match.columns import Columns
from accord.match.comparisons import CompiledComparison
from accord.match.evaluate import pairwise_scores
from accord.match.learned import (
    SCORE_CHUNK,
    LearnedEngine,
    LearnedResult,
    ScoredLink,
    _contradiction_test,
    deterministic_links,
    score_pairs,
)
from accord.match.model import ModelParams, level_matrix, score
from match_scale import demo_company, peak_mib, read_features
from pipeline import _commit, machine

RESULTS = Path(__file__).parent / "results"
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Key = tuple[str, str]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, help="reuse (or keep) generated data here")
    parser.add_argument("--precision", type=float, default=0.97, help="the precision target")
    parser.add_argument("--top", type=int, default=12, help="cells to show per list")
    args = parser.parse_args()

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        project, data = demo_company(Path(tmp), args.data, args.customers, args.seed)
        print("mapping and building features ...", flush=True)
        keys, systems, table = read_features(project, data)
        truth = read_truth(data / "truth.csv")
    seconds["generate_map_features"] = time.perf_counter() - started
    print(f"  {len(keys):,} records", flush=True)

    started = time.perf_counter()
    columns = Columns(table, len(keys))
    del table
    engine = LearnedEngine(project.config.match)
    result = engine.run(columns, systems=systems, progress=lambda s: print("  ..", s, flush=True))
    seconds["match"] = time.perf_counter() - started

    started = time.perf_counter()
    study = Study(
        engine,
        columns,
        keys=keys,
        systems=systems,
        truth=truth,
        result=result,
        target=args.precision,
        seed=args.seed,
    )
    report = study.report(args.top)
    seconds["analysis"] = time.perf_counter() - started

    report = {
        "benchmark": "recall-ceiling",
        "customers": args.customers,
        "seed": args.seed,
        "precision_target": args.precision,
        **report,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "peak_mib": round(peak_mib()),
        "commit": _commit(),
        "machine": machine() | {"load_average_at_end": os.getloadavg()},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"recall-ceiling-{args.customers}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report)
    print(f"wrote {out}")


@dataclass
class Cut:
    """What a classifier that accepts some pairs gets, over pairs."""

    true_positives: int
    false_positives: int
    true_pairs: int

    @property
    def precision(self) -> float:
        accepted = self.true_positives + self.false_positives
        return self.true_positives / accepted if accepted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
        }


def scores_dict(scores: Any) -> dict[str, Any]:
    return {
        "precision": round(scores.precision, 4),
        "recall": round(scores.recall, 4),
        "f1": round(scores.f1, 4),
    }


class Study:
    """The engine's blocked pairs, their levels and scores, and the truth about them."""

    def __init__(
        self,
        engine: LearnedEngine,
        columns: Columns,
        *,
        keys: Sequence[Key],
        systems: Sequence[str],
        truth: dict[Key, str],
        result: LearnedResult,
        target: float,
        seed: int,
    ) -> None:
        assert result.params is not None  # noqa: S101  (the learned engine trains one)
        self.engine, self.columns, self.keys, self.systems = engine, columns, keys, systems
        self.truth, self.result, self.target = truth, result, target
        self.params: ModelParams = result.params
        self.rng = np.random.default_rng(seed)
        self.size = len(columns)
        self.comparisons = [CompiledComparison(c, columns) for c in engine.model.comparisons]
        self.system_names = sorted(set(systems))
        self.sources = np.array([self.system_names.index(s) for s in systems], dtype=np.int64)
        self._truth()
        print("  .. the engine's blocking, levels and scores again", flush=True)
        self._blocked()
        self._rules()
        # where each true pair is among the blocked pairs (-1: not blocked)
        self.true_index = self.find(self.true_key)
        self.cluster_of = np.empty(self.size, dtype=np.int64)
        for number, group in enumerate(result.clusters):
            self.cluster_of[group] = number

    def _truth(self) -> None:
        """The truth as a label per record (-1: a record the truth does not know), and
        every true pair, sorted."""
        parties: dict[str, int] = {}
        truth = self.truth
        self.label = np.array(
            [parties.setdefault(truth[k], len(parties)) if k in truth else -1 for k in self.keys],
            dtype=np.int64,
        )
        self.unknown_records = int((self.label < 0).sum())
        known = np.flatnonzero(self.label >= 0)
        left, right = pairs_within(self.label[known], known)
        left, right = np.minimum(left, right), np.maximum(left, right)
        order = np.argsort(left * self.size + right)
        self.true_left, self.true_right = left[order], right[order]
        self.true_key = self.true_left * self.size + self.true_right
        self.true_pairs = len(self.true_key)

    def _blocked(self) -> None:
        """The engine's blocked pairs (between records the truth knows), their levels,
        match weights and probabilities, and their gamma cells."""
        config, model = self.engine.config, self.engine.model
        blocked = block(
            self.columns, model.blocking, config.max_block_size, self.sources, model.link_type
        )
        valid = (self.label[blocked.left] >= 0) & (self.label[blocked.right] >= 0)
        self.blocked_pairs_all = len(blocked)
        self.left, self.right = blocked.left[valid], blocked.right[valid]
        self.is_true = self.label[self.left] == self.label[self.right]
        levels = np.vstack(
            [
                level_matrix(
                    self.comparisons,
                    self.left[s : s + SCORE_CHUNK],
                    self.right[s : s + SCORE_CHUNK],
                )
                for s in range(0, max(len(self.left), 1), SCORE_CHUNK)
            ]
        )
        weights, probabilities = score_pairs(
            self.params, self.comparisons, self.columns, _as_blocked(self.left, self.right)
        )
        self.weight, self.probability = weights.astype(np.float64), probabilities
        pair_key = self.left * self.size + self.right
        order = np.argsort(pair_key)
        self.sorted_pair_key, self.sorted_pair_index = pair_key[order], order
        # the gamma vector of each pair as one integer, and its cell
        self.base = base = max(c.else_level for c in self.comparisons) + 1
        code = np.zeros(len(self.left), dtype=np.int64)
        for c in range(len(self.comparisons)):
            code = code * base + levels[:, c].astype(np.int64)
        self.cell_code, cell = np.unique(code, return_inverse=True)
        self.cell: Ints = cell.reshape(-1).astype(np.int64)

    def _rules(self) -> None:
        """The deterministic rules' pairs (linked before the model)."""
        config, size = self.engine.config, self.size
        contradicts = _contradiction_test(self.columns, self.comparisons)
        decided, _ = deterministic_links(
            self.columns, config.rules, config, self.sources, contradicts
        )
        left = np.array([link.left for link in decided], dtype=np.int64)
        right = np.array([link.right for link in decided], dtype=np.int64)
        left, right = np.minimum(left, right), np.maximum(left, right)
        ok = (self.label[left] >= 0) & (self.label[right] >= 0)
        rule_key = np.unique(left[ok] * size + right[ok])
        self.rule_key = rule_key
        self.rule_true = int((self.label[rule_key // size] == self.label[rule_key % size]).sum())
        self.rule_false = len(rule_key) - self.rule_true
        self.by_rule = self.find(rule_key) >= 0  # per rule pair: blocked too
        self.pair_by_rule = np.zeros(len(self.left), dtype=bool)
        self.pair_by_rule[self.find(rule_key)[self.by_rule]] = True
        self.true_by_rule = np.isin(self.true_key, rule_key)

    def find(self, pair_keys: Ints) -> Ints:
        """The index of each pair among the blocked pairs, -1 where it is not blocked."""
        if len(self.sorted_pair_key) == 0:
            return np.full(len(pair_keys), -1, dtype=np.int64)
        at = np.searchsorted(self.sorted_pair_key, pair_keys)
        at = np.minimum(at, len(self.sorted_pair_key) - 1)
        found = self.sorted_pair_key[at] == pair_keys
        out: Ints = np.where(found, self.sorted_pair_index[at], -1).astype(np.int64)
        return out

    # ---- oracles

    def oracle(
        self,
        groups: Ints,
        pairs: Bools,
        *,
        forced_true: int = 0,
        forced_false: int = 0,
        true_pairs: int | None = None,
    ) -> tuple[Cut, float, Bools, Ints, int]:
        """The best choice of whole groups (cells) of the `pairs` for recall at
        precision >= target: purest first, then any further cell that still fits.
        Returns the cut, the LP bound on recall (a share of the cell that breaks the
        target), which groups were chosen, the groups in order of purity, and how many of
        them the purity-ordered prefix takes."""
        count = int(groups.max(initial=-1)) + 1
        total = np.bincount(groups[pairs], minlength=count)
        true = np.bincount(groups[pairs & self.is_true], minlength=count)
        false = total - true
        purity = np.divide(true, np.maximum(total, 1))
        order = np.lexsort((-true, -purity))
        order = order[total[order] > 0]
        tp = forced_true + np.cumsum(true[order])
        fp = forced_false + np.cumsum(false[order])
        precision = tp / np.maximum(tp + fp, 1)
        fits = np.flatnonzero(precision >= self.target)
        prefix = int(fits[-1]) + 1 if len(fits) else 0
        chosen = np.zeros(count, dtype=bool)
        chosen[order[:prefix]] = True
        tp_now = forced_true + int(true[order[:prefix]].sum())
        fp_now = forced_false + int(false[order[:prefix]].sum())
        denominator = self.true_pairs if true_pairs is None else true_pairs
        lp = float(tp_now)
        if prefix < len(order):
            g = order[prefix]
            slack = tp_now - self.target * (tp_now + fp_now)
            cost = self.target * total[g] - true[g]
            share = min(1.0, max(0.0, slack / cost)) if cost > 0 else 1.0
            lp += share * true[g]
        for g in order[prefix:].tolist():
            if tp_now + true[g] >= self.target * (tp_now + fp_now + total[g]):
                chosen[g] = True
                tp_now, fp_now = tp_now + int(true[g]), fp_now + int(false[g])
        cut = Cut(tp_now, fp_now, denominator)
        return cut, lp / max(denominator, 1), chosen, order, prefix

    def cross_fitted(self, groups: Ints, pairs: Bools) -> dict[str, Any]:
        """Cells chosen on one half of the pairs (and of the unblocked true pairs), scored
        on the other, both ways round: the ceiling without in-sample luck."""
        fold = self.rng.integers(0, 2, len(self.left)).astype(bool)
        unblocked_fold = self.rng.integers(0, 2, self.true_pairs).astype(bool)
        unblocked = self.true_index < 0
        cuts = []
        for side in (False, True):
            train = pairs & (fold == side)
            test = pairs & (fold != side)
            _, _, chosen, _, _ = self.oracle(groups, train)
            taken = test & chosen[groups]
            true_test = int((test & self.is_true).sum()) + int(
                (unblocked & (unblocked_fold != side)).sum()
            )
            tp = int((taken & self.is_true).sum())
            cuts.append(Cut(tp, int(taken.sum()) - tp, true_test))
        precision = sum(c.true_positives for c in cuts) / max(
            sum(c.true_positives + c.false_positives for c in cuts), 1
        )
        recall = sum(c.true_positives for c in cuts) / max(sum(c.true_pairs for c in cuts), 1)
        return {"precision": round(precision, 4), "recall": round(recall, 4)}

    def score_oracle(self, pairs: Bools, *, rules: bool) -> tuple[Cut, float]:
        """The best threshold on the model's match weight, chosen with the truth."""
        index = np.flatnonzero(pairs)
        index = index[np.argsort(-self.weight[index], kind="stable")]
        weight = self.weight[index]
        forced_true = self.rule_true if rules else 0
        forced_false = self.rule_false if rules else 0
        tp = forced_true + np.cumsum(self.is_true[index])
        fp = forced_false + np.cumsum(~self.is_true[index])
        ends = np.flatnonzero(np.append(weight[1:] != weight[:-1], True))  # last of each tie
        fits = ends[(tp[ends] / np.maximum(tp[ends] + fp[ends], 1)) >= self.target]
        if len(fits) == 0:
            return Cut(forced_true, forced_false, self.true_pairs), math.inf
        last = int(fits[-1])
        return Cut(int(tp[last]), int(fp[last]), self.true_pairs), float(weight[last])

    def accepted(self, accept: Bools, *, rules: bool) -> Cut:
        """The pair-level cut of accepting `accept` (and the rules' pairs)."""
        taken = accept.copy()
        extra_true = extra_false = 0
        if rules:
            taken |= self.pair_by_rule
            not_blocked = self.rule_key[~self.by_rule]
            same = self.label[not_blocked // self.size] == self.label[not_blocked % self.size]
            extra_true, extra_false = int(same.sum()), int((~same).sum())
        tp = int((taken & self.is_true).sum()) + extra_true
        fp = int((taken & ~self.is_true).sum()) + extra_false
        return Cut(tp, fp, self.true_pairs)

    # ---- clusters

    def cluster_scores(self, accept: Bools, *, guarded: bool) -> dict[str, Any]:
        """Pairwise scores over clusters of the accepted pairs and the rules' pairs:
        connected components, or the engine's guarded clustering (strongest first)."""
        index = np.flatnonzero(accept & ~self.pair_by_rule)
        index = index[np.argsort(-self.weight[index], kind="stable")]
        rule_left, rule_right = self.rule_key // self.size, self.rule_key % self.size
        if guarded:
            candidates = [
                ScoredLink(a, b, "rule", 1.0)
                for a, b in zip(rule_left.tolist(), rule_right.tolist(), strict=True)
            ] + [
                ScoredLink(a, b, "model", 1.0, w)
                for a, b, w in zip(
                    self.left[index].tolist(),
                    self.right[index].tolist(),
                    self.weight[index].tolist(),
                    strict=True,
                )
            ]
            clusters, _, held = self.engine._cluster(
                self.columns, self.comparisons, self.systems, candidates
            )
            labels = np.empty(self.size, dtype=np.int64)
            for number, group in enumerate(clusters):
                labels[group] = number
        else:
            held = []
            labels = component_labels(
                self.size,
                np.concatenate([rule_left, self.left[index]]),
                np.concatenate([rule_right, self.right[index]]),
            )
        out = scores_dict(self.pairwise(labels))
        if guarded:
            out["held_by_guard"] = len(held)
        return out

    def pairwise(self, labels: Ints) -> Any:
        assignment = dict(zip(self.keys, labels.tolist(), strict=True))
        return pairwise_scores(assignment, self.truth)

    def best_by_bisection(
        self, accept_at: Callable[[int], Bools], high: int, *, guarded: bool
    ) -> tuple[int, dict[str, Any]]:
        """The largest step (0..high) whose clusters keep precision >= target, assuming
        precision falls as steps grow (it nearly does); returns it and its scores."""
        low, best = 0, self.cluster_scores(accept_at(0), guarded=guarded)
        if best["precision"] < self.target:
            return 0, best
        while low < high:
            middle = (low + high + 1) // 2
            scores = self.cluster_scores(accept_at(middle), guarded=guarded)
            if scores["precision"] >= self.target:
                low, best = middle, scores
            else:
                high = middle - 1
        return low, best

    def best_prefix(
        self, groups: Ints, order: Ints, *, guarded: bool
    ) -> tuple[int, dict[str, Any]]:
        """The most cells, purest first, whose clusters keep precision >= target. The
        search stops at cells half of whose pairs are false: beyond, components grow so
        large that the guard's checks would not finish (nor help)."""
        count = int(groups.max(initial=-1)) + 1
        true = np.bincount(groups[self.is_true], minlength=count)
        total = np.bincount(groups, minlength=count)
        half = int((true[order] * 2 >= total[order]).sum())
        rank = np.full(count, count, dtype=np.int64)
        rank[order] = np.arange(len(order))
        return self.best_by_bisection(lambda k: rank[groups] < k, half, guarded=guarded)

    # ---- description

    def describe_cell(self, cell: int) -> dict[str, str]:
        code = int(self.cell_code[cell])
        levels = []
        for _ in self.comparisons:
            levels.append(code % self.base)
            code //= self.base
        levels.reverse()
        return {
            c.name: c.labels[level]
            for c, level in zip(self.comparisons, levels, strict=True)
            if level != 0
        }

    def system_pair(self, left: Ints, right: Ints) -> list[str]:
        names = self.system_names
        return [
            "-".join(sorted((names[a], names[b])))
            for a, b in zip(self.sources[left].tolist(), self.sources[right].tolist(), strict=True)
        ]

    # ---- the report

    def report(self, top: int) -> dict[str, Any]:
        result, thresholds = self.result, self.engine.model.thresholds
        everything = np.ones(len(self.left), dtype=bool)
        blocked_true = int(self.is_true.sum())
        unblocked = self.true_index < 0
        reachable = blocked_true + int((unblocked & self.true_by_rule).sum())
        report: dict[str, Any] = {
            "records": self.size,
            "records_not_in_truth": self.unknown_records,
            "true_pairs": self.true_pairs,
            "blocked_pairs": self.blocked_pairs_all,
            "blocked_pairs_known_records": len(self.left),
            "gamma_cells": len(self.cell_code),
            "rules": {"pairs": len(self.rule_key), "true": self.rule_true},
            "model_weights": {
                "prior": round(self.params.prior_weight, 3),
                **{
                    c.name: dict(zip(c.labels, np.round(c.weights(), 2).tolist(), strict=True))
                    for c in self.params.comparisons
                },
            },
        }
        print("  .. oracles", flush=True)

        # 1. blocking
        kinds = self.columns.values("kind")
        unblocked_left = self.true_left[unblocked]
        unblocked_right = self.true_right[unblocked]
        report["blocking"] = {
            "true_pairs_blocked": blocked_true,
            "true_pairs_not_blocked": int(unblocked.sum()),
            "of_which_linked_by_a_rule": int((unblocked & self.true_by_rule).sum()),
            "of_which_kinds_differ": int((kinds[unblocked_left] != kinds[unblocked_right]).sum()),
            "recall_ceiling": round(reachable / max(self.true_pairs, 1), 4),
        }

        # 2. oracles over pairs
        cut, lp, chosen, order, prefix = self.oracle(self.cell, everything)
        forced = self.oracle(
            self.cell,
            ~self.pair_by_rule,
            forced_true=self.rule_true,
            forced_false=self.rule_false,
        )
        tf_groups = self.tf_cells()
        tf_cut, tf_lp, tf_chosen, tf_order, _ = self.oracle(tf_groups, everything)
        score_cut, score_weight = self.score_oracle(everything, rules=False)
        score_rules_cut, score_rules_weight = self.score_oracle(~self.pair_by_rule, rules=True)
        strong = self.probability >= thresholds.link
        linked = self.linked_pairs()
        report["pair_level"] = {
            "blocking_ceiling_recall": report["blocking"]["recall_ceiling"],
            "oracle_gamma": cut.as_dict()
            | {
                "recall_lp_bound": round(lp, 4),
                "cells_chosen": int(chosen.sum()),
                "cross_fitted": self.cross_fitted(self.cell, everything),
            },
            "oracle_gamma_rules_first": forced[0].as_dict()
            | {"recall_lp_bound": round(forced[1], 4)},
            "oracle_gamma_and_weight": tf_cut.as_dict()
            | {
                "recall_lp_bound": round(tf_lp, 4),
                "cells": int(tf_groups.max(initial=-1)) + 1,
                "cells_chosen": int(tf_chosen.sum()),
                "cross_fitted": self.cross_fitted(tf_groups, everything),
            },
            "oracle_model_weight": score_cut.as_dict()
            | {
                "threshold_weight": round(score_weight, 3),
                "threshold_probability": _probability(score_weight),
            },
            "oracle_model_weight_rules_first": score_rules_cut.as_dict()
            | {
                "threshold_weight": round(score_rules_weight, 3),
                "threshold_probability": _probability(score_rules_weight),
            },
            "actual_model_above_link": self.accepted(strong, rules=False).as_dict(),
            "actual_model_above_link_and_rules": self.accepted(strong, rules=True).as_dict(),
            "actual_links_made": linked.as_dict(),
            "actual_above_review": self.accepted(
                self.probability >= thresholds.review, rules=True
            ).as_dict(),
        }

        # clusters
        print("  .. clusters of the oracles' pairs", flush=True)
        accept = chosen[self.cell]
        assignment = {self.keys[i]: n for n, group in enumerate(result.clusters) for i in group}
        cluster: dict[str, Any] = {
            "actual": scores_dict(pairwise_scores(assignment, self.truth)),
            "every_blocked_true_pair_components": self.cluster_scores(self.is_true, guarded=False),
            "every_blocked_true_pair_guarded": self.cluster_scores(self.is_true, guarded=True),
            "oracle_gamma_components": self.cluster_scores(accept, guarded=False),
            "oracle_gamma_guarded": self.cluster_scores(accept, guarded=True),
        }
        report["cluster_level"] = cluster
        for name, groups, ranking, guarded in (
            ("oracle_gamma_components_best_prefix", self.cell, order, False),
            ("oracle_gamma_guarded_best_prefix", self.cell, order, True),
            ("oracle_gamma_and_weight_guarded_best_prefix", tf_groups, tf_order, True),
        ):
            steps, scores = self.best_prefix(groups, ranking, guarded=guarded)
            cluster[name] = scores | {"cells": steps}
        cluster["oracle_gamma_guarded_best_prefix"]["cells_of_pair_level_prefix"] = prefix
        ranked = np.unique(self.weight[self.probability >= thresholds.review])[::-1]
        steps, scores = self.best_by_bisection(
            lambda k: self.weight >= ranked[k - 1] if k else np.zeros(len(self.left), bool),
            len(ranked),
            guarded=True,
        )
        best_weight = float(ranked[steps - 1]) if steps else math.inf
        cluster["model_weight_best_threshold_guarded"] = scores | {
            "threshold_weight": round(best_weight, 3),
            "threshold_probability": _probability(best_weight),
        }

        # 3. the missed true pairs at the configured settings
        print("  .. missed pairs", flush=True)
        report["missed"] = self.missed(top)
        return report

    def tf_cells(self) -> Ints:
        """Cells split further by the match weight rounded down to a whole bit: within one
        gamma cell, weights differ only by term frequencies."""
        bucket = np.floor(self.weight).astype(np.int64)
        bucket -= bucket.min(initial=0)
        _, groups = np.unique(
            self.cell * (int(bucket.max(initial=0)) + 1) + bucket, return_inverse=True
        )
        out: Ints = groups.reshape(-1).astype(np.int64)
        return out

    def linked_pairs(self) -> Cut:
        """The links the engine made (rules and model, after the guard), as pairs."""
        links = self.result.links
        left = np.array([min(x.left, x.right) for x in links], dtype=np.int64)
        right = np.array([max(x.left, x.right) for x in links], dtype=np.int64)
        ok = (self.label[left] >= 0) & (self.label[right] >= 0)
        key = np.unique(left[ok] * self.size + right[ok])
        same = self.label[key // self.size] == self.label[key % self.size]
        return Cut(int(same.sum()), int((~same).sum()), self.true_pairs)

    def missed(self, top: int) -> dict[str, Any]:
        thresholds = self.engine.model.thresholds
        together = self.cluster_of[self.true_left] == self.cluster_of[self.true_right]
        index = self.true_index
        blocked = index >= 0
        probability = np.where(blocked, self.probability[np.maximum(index, 0)], np.nan)
        rule = self.true_by_rule
        categories = {
            "linked_by_a_rule": rule,
            "not_blocked": ~blocked & ~rule,
            "at_or_above_link": blocked & ~rule & (probability >= thresholds.link),
            "review_band": blocked
            & ~rule
            & (probability >= thresholds.review)
            & (probability < thresholds.link),
            "below_review": blocked & ~rule & (probability < thresholds.review),
        }
        out: dict[str, Any] = {
            "true_pairs_not_in_one_cluster": int((~together).sum()),
            "by_category": {
                name: {
                    "true_pairs": int(mask.sum()),
                    "in_one_cluster": int((mask & together).sum()),
                    "missed": int((mask & ~together).sum()),
                }
                for name, mask in categories.items()
            },
        }
        held = {
            (min(x.left, x.right), max(x.left, x.right)): x.reason or ""
            for x in self.result.review
            if x.reason and x.reason.startswith("contradicting")
        }
        high = np.flatnonzero(categories["at_or_above_link"] & ~together)
        out["held_reasons"] = dict(
            Counter(
                held.get((a, b), "not held itself")
                for a, b in zip(
                    self.true_left[high].tolist(), self.true_right[high].tolist(), strict=True
                )
            ).most_common()
        )
        missed = ~together
        out["missed_by_systems"] = dict(
            Counter(self.system_pair(self.true_left[missed], self.true_right[missed])).most_common(
                8
            )
        )

        # the cells holding most of the missed, blocked true pairs
        cells_total = np.bincount(self.cell, minlength=len(self.cell_code))
        cells_true = np.bincount(self.cell[self.is_true], minlength=len(self.cell_code))
        missed_blocked = index[missed & blocked & ~rule]
        missed_cells = np.bincount(self.cell[missed_blocked], minlength=len(self.cell_code))
        rows = []
        for cell in np.argsort(-missed_cells, kind="stable")[:top].tolist():
            if missed_cells[cell] == 0:
                break
            in_cell = missed_blocked[self.cell[missed_blocked] == cell]
            rows.append(
                {
                    "levels": self.describe_cell(cell),
                    "missed": int(missed_cells[cell]),
                    "true": int(cells_true[cell]),
                    "false": int(cells_total[cell] - cells_true[cell]),
                    "purity": round(cells_true[cell] / cells_total[cell], 3),
                    "median_probability_of_missed": round(
                        float(np.median(self.probability[in_cell])), 3
                    ),
                    "systems": dict(
                        Counter(
                            self.system_pair(self.left[in_cell], self.right[in_cell])
                        ).most_common(3)
                    ),
                }
            )
        out["top_missed_cells"] = rows
        out["missed_blocked_true_pairs_in_cells_purer_than_target"] = int(
            (
                cells_true[self.cell[missed_blocked]]
                >= self.target * cells_total[self.cell[missed_blocked]]
            ).sum()
        )

        # the true pairs no rule blocks: their levels and what the model would say
        far = np.flatnonzero(~blocked & ~rule)
        if len(far):
            left, right = self.true_left[far], self.true_right[far]
            levels = level_matrix(self.comparisons, left, right)
            scored = score(self.params, self.comparisons, self.columns, levels, left)
            described = Counter(
                json.dumps(
                    {
                        c.name: c.labels[level]
                        for c, level in zip(self.comparisons, row, strict=True)
                        if level != 0
                    }
                )
                for row in levels.tolist()
            )
            out["not_blocked"] = {
                "true_pairs": len(far),
                "would_score_at_or_above_link": int((scored.probability >= thresholds.link).sum()),
                "would_score_in_review_band": int(
                    (
                        (scored.probability >= thresholds.review)
                        & (scored.probability < thresholds.link)
                    ).sum()
                ),
                "in_one_cluster_anyway": int(together[far].sum()),
                "systems": dict(Counter(self.system_pair(left, right)).most_common(5)),
                "top_cells": [
                    {"levels": json.loads(text), "true": n}
                    for text, n in described.most_common(top)
                ],
            }
        return out


def _as_blocked(left: Ints, right: Ints) -> Any:
    """A minimal stand-in for `Blocked` with the pairs `score_pairs` reads."""

    class Pairs:
        def __init__(self) -> None:
            self.left, self.right = left, right

        def __len__(self) -> int:
            return len(self.left)

    return Pairs()


def _probability(weight: float) -> float | None:
    if math.isinf(weight):
        return None
    return round(1.0 / (1.0 + math.pow(2.0, -max(min(weight, 60.0), -60.0))), 4)


def print_summary(report: dict[str, Any]) -> None:
    pair, cluster = report["pair_level"], report["cluster_level"]
    print(
        f"\n{report['customers']:,} customers, {report['records']:,} records, "
        f"{report['true_pairs']:,} true pairs, {report['blocked_pairs']:,} blocked pairs, "
        f"{report['gamma_cells']:,} gamma cells"
    )
    print(f"{'pair level (precision >= target)':48} {'P':>7} {'R':>7}")
    print(f"{'  blocking ceiling':48} {'':>7} {pair['blocking_ceiling_recall']:>7}")
    for name in (
        "oracle_gamma",
        "oracle_gamma_rules_first",
        "oracle_gamma_and_weight",
        "oracle_model_weight",
        "oracle_model_weight_rules_first",
        "actual_model_above_link",
        "actual_model_above_link_and_rules",
        "actual_links_made",
        "actual_above_review",
    ):
        row = pair[name]
        print(f"  {name:46} {row['precision']:>7} {row['recall']:>7}")
        if "cross_fitted" in row:
            fitted = row["cross_fitted"]
            print(f"  {'  cross-fitted':46} {fitted['precision']:>7} {fitted['recall']:>7}")
    print("cluster level")
    for name, row in cluster.items():
        print(f"  {name:46} {row['precision']:>7} {row['recall']:>7}")
    missed = report["missed"]
    print(json.dumps(missed["by_category"], indent=1))
    for row in missed["top_missed_cells"]:
        print(
            f"  missed {row['missed']:>5}  true {row['true']:>5}  false {row['false']:>5}  "
            f"p~{row['median_probability_of_missed']}  {row['levels']}"
        )


if __name__ == "__main__":
    main()
