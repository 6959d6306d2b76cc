"""What a matcher takes and gives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from accord.config.matching import MatchConfig

__all__ = ["Link", "MatchRecord", "MatchResult", "Matcher", "OversizedBlock", "build_matcher"]


@dataclass(frozen=True)
class OversizedBlock:
    """A blocking key shared by too many records to compare them all: reported, skipped."""

    rule: str
    key: str
    size: int


@dataclass(frozen=True, slots=True)
class MatchRecord:
    """A record as matchers see it: its key and its comparable features (no empties)."""

    key: tuple[str, str]  # (system, source id)
    kind: str | None
    features: dict[str, str]


@dataclass(frozen=True, slots=True)
class Link:
    """Evidence that records `left` and `right` (indexes into the input) are one customer."""

    left: int
    right: int
    rule: str
    score: float | None = None  # match probability, for the learned engine
    weight: float | None = None  # match weight (log2 Bayes factor), for the learned engine
    reason: str | None = None  # for a pair held for review: why it was not linked
    explanation: dict[str, Any] | None = None  # for review: the learned engine's explanation


@dataclass
class MatchResult:
    links: list[Link]
    pairs_compared: int = 0
    oversized_blocks: list[OversizedBlock] = field(default_factory=list)
    review: list[Link] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Matcher(Protocol):
    def link(self, records: Sequence[MatchRecord]) -> MatchResult:
        """Every link found among `records`; pairs already linked may be left out."""
        ...

    def explain(self, pairs: Sequence[tuple[int, int]]) -> list[dict[str, Any] | None]:
        """After `link`, an explanation per pair of record indexes (None if the engine
        has none to give)."""
        ...


def build_matcher(config: MatchConfig) -> Matcher:
    """The matcher the project's match settings ask for."""
    # engines load on demand
    if config.engine == "learned":
        from accord.match.learned import LearnedMatcher  # noqa: PLC0415

        return LearnedMatcher(config)
    from accord.match.rules import RuleMatcher  # noqa: PLC0415

    return RuleMatcher(config)
