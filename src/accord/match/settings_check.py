"""Checking that match settings only name columns the data has."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from accord.config.matching import Level, MatchConfig
from accord.match.columns import DERIVATIONS, derivation


@dataclass(frozen=True)
class ColumnProblem:
    loc: tuple[str | int, ...]  # where in the settings, as keys and list positions
    message: str
    hint: str | None = None


def column_problems(config: MatchConfig, available: Collection[str]) -> list[ColumnProblem]:
    """Every reference to a column that is not in `available`, or to an unknown derivation."""
    problems = []
    for loc, ref in _references(config):
        problem = _check(ref, available)
        if problem is not None:
            problems.append(ColumnProblem(loc, *problem))
    return problems


def _check(ref: str, available: Collection[str]) -> tuple[str, str | None] | None:
    base, *derived = ref.split("~")
    if base not in available:
        close = difflib.get_close_matches(base, list(available), n=1)
        hint = (
            f"did you mean {close[0]!r}?" if close else "columns: " + ", ".join(sorted(available))
        )
        return f"no column {base!r}", hint
    for name in derived:
        if derivation(name) is None:
            return f"{ref!r}: no derivation {name!r}", "derivations: " + ", ".join(DERIVATIONS)
    return None


def _references(config: MatchConfig) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for i, rule in enumerate(config.rules):
        if rule.kind is not None:
            yield ("rules", i, "kind"), "kind"
        for j, ref in enumerate(rule.equal):
            yield ("rules", i, "equal", j), ref
        for ref in rule.similar:
            yield ("rules", i, "similar", ref), ref
    for i, ref in enumerate(config.conflicts):
        yield ("conflicts", i), ref
    if config.model is None:
        return
    for i, columns in enumerate(config.model.blocking):
        for j, column in enumerate(columns):
            yield ("model", "blocking", i, j), column
    for i, comparison in enumerate(config.model.comparisons):
        yield ("model", "comparisons", i, "column"), comparison.column
        for j, level in enumerate(comparison.levels):
            for ref in _level_refs(level):
                yield ("model", "comparisons", i, "levels", j), ref


def _level_refs(level: Level) -> Iterator[str]:
    if level.kind == "all":
        for part in level.param:
            yield from _level_refs(part)
        return
    if level.column is not None:
        yield level.column
    if level.kind == "swapped_with":
        yield str(level.param)
