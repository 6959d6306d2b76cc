"""A pair's explanation as the steps of a waterfall chart (pure): the prior, then each
comparison's weight added to the running total the way the model adds it, to the total
that gives the match probability.

The model counts a group of correlated comparisons (surname, address and landline of a
household) by its strongest agreement only; their disagreements count in full
(`match.model.combine`). So a step says what the comparison weighed on its own and what
it counted for, and the steps add up to the model's total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    label: str
    left: str | None
    right: str | None
    level: str
    weight: float  # what the comparison weighs on its own (term frequencies included)
    counted: float  # what it adds to the total
    start: float  # the running total before it
    note: str = ""

    @property
    def end(self) -> float:
        return self.start + self.counted


@dataclass(frozen=True)
class Waterfall:
    prior_weight: float
    steps: list[Step]
    total: float
    probability: float

    @property
    def extent(self) -> tuple[float, float]:
        """The lowest and highest running totals, zero and the prior included."""
        points = [0.0, self.prior_weight, self.total]
        points += [value for step in self.steps for value in (step.start, step.end)]
        return min(points), max(points)


def waterfall(explanation: dict[str, Any]) -> Waterfall:
    """The steps of an explanation (`steward.service.review`'s `explanation`). Comparisons
    with no values on either side (level `null`) weigh nothing and are left out."""
    rows = explanation.get("comparisons") or []
    counted = _counted(rows)
    steps: list[Step] = []
    running = float(explanation["prior_weight"])
    for row, (value, note) in zip(rows, counted, strict=True):
        if row["level"] == "null" and value == 0.0:
            continue
        steps.append(
            Step(
                label=str(row["comparison"]).replace("_", " "),
                left=row["left"],
                right=row["right"],
                level=str(row["level"]),
                weight=_weight(row),
                counted=value,
                start=running,
                note=note,
            )
        )
        running += value
    total = float(explanation.get("match_weight", running))
    probability = explanation.get("probability")
    if probability is None:
        probability = 1.0 / (1.0 + math.pow(2.0, -max(min(total, 60.0), -60.0)))
    return Waterfall(float(explanation["prior_weight"]), steps, total, float(probability))


def _weight(row: dict[str, Any]) -> float:
    return float(row["weight"]) + float(row.get("term_frequency_adjustment") or 0.0)


def _counted(rows: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """What each comparison adds, and why when that is not its own weight: in a
    correlated group only the strongest agreement counts."""
    strongest: dict[int, int] = {}
    for i, row in enumerate(rows):
        group = row.get("correlated_group")
        if group is None or _weight(row) <= 0:
            continue
        if group not in strongest or _weight(row) > _weight(rows[strongest[group]]):
            strongest[group] = i
    out: list[tuple[float, str]] = []
    for i, row in enumerate(rows):
        group, weight = row.get("correlated_group"), _weight(row)
        if group is None or weight <= 0 or strongest.get(group) == i:
            out.append((weight, ""))
        else:
            best = str(rows[strongest[group]]["comparison"]).replace("_", " ")
            out.append((0.0, f"correlated with {best}: only the strongest agreement counts"))
    return out
