"""Comparisons: for each pair of records, which level of agreement each piece of evidence
reaches.

Level 0 is "null" (either side lacks the comparison's column: no evidence either way),
levels 1..k are the configured ones from strongest to weakest (a pair takes the first it
passes), and level k+1 is "else" (evidence against). Every level is computed for a whole
array of pairs at once; string similarities run in rapidfuzz's C++ across both cores,
and each level is only tried on the pairs no stronger level has claimed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, Jaro, JaroWinkler, Levenshtein
from rapidfuzz.process import cpdist

from accord.config.matching import Comparison, Level
from accord.match.columns import Columns, IntArray, root_column

Mask = npt.NDArray[np.bool_]
LevelTest = Callable[[Columns, str, Any, IntArray, IntArray], Mask]

EARTH_RADIUS_KM = 6371.0088
PARALLEL_FROM = 20_000  # pairs


def _present(columns: Columns, ref: str, left: IntArray, right: IntArray) -> Mask:
    codes = columns.codes(ref)
    both: Mask = (codes[left] >= 0) & (codes[right] >= 0)
    return both


def _exact(columns: Columns, ref: str, _: Any, left: IntArray, right: IntArray) -> Mask:
    codes = columns.codes(ref)
    a = codes[left]
    same: Mask = (a >= 0) & (a == codes[right])
    return same


def _similarity(
    scorer: Callable[..., float], scale: float = 1.0, *, at_least: bool = True
) -> LevelTest:
    def test(columns: Columns, ref: str, param: Any, left: IntArray, right: IntArray) -> Mask:
        out = np.zeros(len(left), dtype=bool)
        both = np.flatnonzero(_present(columns, ref, left, right))
        if len(both) == 0:
            return out
        values = columns.values(ref)
        threshold = param * scale if at_least else param
        # The cutoff lets rapidfuzz stop early (banded edit distances, early exits). It is
        # set a hair low, and the float32 scores cpdist returns are compared with the
        # threshold in float32, so that a score of exactly the threshold passes.
        cutoff = threshold - 1e-6 * scale if at_least else threshold
        scores = cpdist(
            values[left[both]],
            values[right[both]],
            scorer=scorer,
            score_cutoff=cutoff,
            # threads pay off on big arrays only: starting them costs about a millisecond
            workers=-1 if len(both) >= PARALLEL_FROM else 1,
        )
        limit = np.asarray(threshold, dtype=scores.dtype)
        out[both] = scores >= limit if at_least else scores <= limit
        return out

    return test


def _jaccard(columns: Columns, ref: str, param: Any, left: IntArray, right: IntArray) -> Mask:
    out = np.zeros(len(left), dtype=bool)
    values = columns.values(ref)
    for k in np.flatnonzero(_present(columns, ref, left, right)):
        a, b = set(values[left[k]].split()), set(values[right[k]].split())
        out[k] = len(a & b) / max(len(a | b), 1) >= param
    return out


def _derived_equal(derivation: str) -> LevelTest:
    def test(columns: Columns, ref: str, _: Any, left: IntArray, right: IntArray) -> Mask:
        return _exact(columns, f"{ref}~{derivation}", None, left, right)

    return test


def _phonetic(columns: Columns, ref: str, param: Any, left: IntArray, right: IntArray) -> Mask:
    return _derived_equal(str(param))(columns, ref, None, left, right)


def _initial(columns: Columns, ref: str, _: Any, left: IntArray, right: IntArray) -> Mask:
    values = columns.values(ref)
    initials = columns.values(f"{ref}~initial")
    a, b = values[left], values[right]
    out = np.zeros(len(left), dtype=bool)
    both = np.flatnonzero((a != None) & (b != None))  # noqa: E711
    if len(both):
        lengths_a = np.fromiter((len(v) for v in a[both]), dtype=np.int64, count=len(both))
        lengths_b = np.fromiter((len(v) for v in b[both]), dtype=np.int64, count=len(both))
        same_start = initials[left[both]] == initials[right[both]]
        out[both] = same_start & ((lengths_a == 1) | (lengths_b == 1))
    return out


def _swapped_with(columns: Columns, ref: str, param: Any, left: IntArray, right: IntArray) -> Mask:
    mine, other = columns.values(ref), columns.values(str(param))
    a_mine, b_mine = mine[left], mine[right]
    a_other, b_other = other[left], other[right]
    present = (a_mine != None) & (a_other != None) & (b_mine != None) & (b_other != None)  # noqa: E711
    swapped: Mask = present & (a_mine == b_other) & (a_other == b_mine)
    return swapped


def _swapped_day_month(columns: Columns, ref: str, _: Any, left: IntArray, right: IntArray) -> Mask:
    swapped = columns.values(f"{ref}~dmswap")
    plain = columns.values(ref)
    a = swapped[left]
    out: Mask = (a != None) & (a == plain[right]) & (a != plain[left])  # noqa: E711
    return out


def _within_days(columns: Columns, ref: str, param: Any, left: IntArray, right: IntArray) -> Mask:
    days = columns.days(ref)
    with np.errstate(invalid="ignore"):
        out: Mask = np.abs(days[left] - days[right]) <= param
    return out


def _within(columns: Columns, ref: str, param: Any, left: IntArray, right: IntArray) -> Mask:
    numbers = columns.numbers(ref)
    with np.errstate(invalid="ignore"):
        out: Mask = np.abs(numbers[left] - numbers[right]) <= param
    return out


def _within_percent(
    columns: Columns, ref: str, param: Any, left: IntArray, right: IntArray
) -> Mask:
    numbers = columns.numbers(ref)
    a, b = numbers[left], numbers[right]
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.maximum(np.abs(a), np.abs(b))
        out: Mask = (np.abs(a - b) <= scale * param / 100.0) | (a == b)
    return out


def _within_km(columns: Columns, ref: str, param: Any, left: IntArray, right: IntArray) -> Mask:
    points = columns.points(ref)
    (lat1, lon1), (lat2, lon2) = points[left].T, points[right].T
    with np.errstate(invalid="ignore"):
        h = (
            np.sin((lat2 - lat1) / 2) ** 2
            + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        )
        out: Mask = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(h, 1.0))) <= param
    return out


# The levels scored by a rapidfuzz scorer: scorer, scale of its scores, higher is closer.
SCORERS: dict[str, tuple[Callable[..., float], float, bool]] = {
    "jaro_winkler": (JaroWinkler.normalized_similarity, 1.0, True),
    "jaro": (Jaro.normalized_similarity, 1.0, True),
    "levenshtein": (Levenshtein.distance, 1.0, False),
    # optimal string alignment: Damerau-Levenshtein where no substring is edited twice,
    # the usual typo model, and bit-parallel in rapidfuzz (true DL is ten times slower)
    "damerau_levenshtein": (OSA.distance, 1.0, False),
    "token_sort": (fuzz.token_sort_ratio, 100.0, True),
    "token_set": (fuzz.token_set_ratio, 100.0, True),
}

TESTS: dict[str, LevelTest] = {
    "exact": _exact,
    **{
        kind: _similarity(scorer, scale, at_least=at_least)
        for kind, (scorer, scale, at_least) in SCORERS.items()
    },
    "jaccard": _jaccard,
    "phonetic": _phonetic,
    "nickname": _derived_equal("root"),
    "initial": _initial,
    "swapped_with": _swapped_with,
    "swapped_day_month": _swapped_day_month,
    "within_days": _within_days,
    "within": _within,
    "within_percent": _within_percent,
    "within_km": _within_km,
}


def level_columns(level: Level, comparison: Comparison) -> list[str]:
    """The column references a level reads."""
    if level.kind == "all":
        return [ref for part in level.param for ref in level_columns(part, comparison)]
    ref = level.column or comparison.column
    extra = {
        "phonetic": [f"{ref}~{level.param}"],
        "nickname": [f"{ref}~root"],
        "initial": [f"{ref}~initial"],
        "swapped_day_month": [f"{ref}~dmswap"],
        "swapped_with": [str(level.param)],
    }.get(level.kind, [])
    return [ref, *extra]


class CompiledComparison:
    """A comparison bound to the records' columns."""

    def __init__(self, config: Comparison, columns: Columns) -> None:
        self.config = config
        self.name = config.name
        self.columns = columns
        self.labels = ["null", *(level.label for level in config.levels), "else"]
        self.else_level = len(config.levels) + 1
        first = config.levels[0]
        # the level term-frequency adjustments apply to: exact agreement on the column itself
        self.exact_level = (
            1 if first.kind == "exact" and first.column in (None, config.column) else None
        )
        self.base_columns = {
            root_column(ref) for level in config.levels for ref in level_columns(level, config)
        } | {root_column(config.column)}

    def levels(self, left: IntArray, right: IntArray) -> npt.NDArray[np.int8]:
        """The level of each pair."""
        out = np.full(len(left), self.else_level, dtype=np.int8)
        undecided = _present(self.columns, self.config.column, left, right)
        out[~undecided] = 0
        todo = np.flatnonzero(undecided)
        scores: dict[tuple[str, str], npt.NDArray[np.float32]] = {}
        for number, level in enumerate(self.config.levels, start=1):
            if len(todo) == 0:
                break
            if level.kind in SCORERS:
                passed = self._scored(level, todo, left, right, scores)
            else:
                passed = self._passes(level, left[todo], right[todo])
            out[todo[passed]] = number
            todo = todo[~passed]
        return out

    def _scored(
        self,
        level: Level,
        todo: IntArray,
        left: IntArray,
        right: IntArray,
        scores: dict[tuple[str, str], npt.NDArray[np.float32]],
    ) -> Mask:
        """A similarity level. Levels of one kind on one column share one computation:
        the first computes the score of every pair still undecided, down to the loosest
        of their thresholds; the others read it."""
        ref = level.column or self.config.column
        scorer, scale, at_least = SCORERS[level.kind]
        key = (level.kind, ref)
        if key not in scores:
            params = [
                other.param
                for other in self.config.levels
                if other.kind == level.kind and (other.column or self.config.column) == ref
            ]
            loosest = min(params) * scale - 1e-6 * scale if at_least else max(params)
            full = np.full(len(left), np.nan, dtype=np.float32)
            both = todo[_present(self.columns, ref, left[todo], right[todo])]
            if len(both):
                values = self.columns.values(ref)
                full[both] = cpdist(
                    values[left[both]],
                    values[right[both]],
                    scorer=scorer,
                    score_cutoff=loosest,
                    workers=-1 if len(both) >= PARALLEL_FROM else 1,
                )
            scores[key] = full
        limit = np.float32(level.param * scale if at_least else level.param)
        found = scores[key][todo]
        with np.errstate(invalid="ignore"):
            passed: Mask = found >= limit if at_least else found <= limit
        return passed

    def _passes(self, level: Level, left: IntArray, right: IntArray) -> Mask:
        if level.kind == "all":
            passed = np.ones(len(left), dtype=bool)
            for part in level.param:
                todo = np.flatnonzero(passed)
                passed[todo] = self._passes(part, left[todo], right[todo])
            return passed
        ref = level.column or self.config.column
        return TESTS[level.kind](self.columns, ref, level.param, left, right)

    def values_of(self, record: int) -> str | None:
        value = self.columns.values(self.config.column)[record]
        return None if value is None else str(value)
