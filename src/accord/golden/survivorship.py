"""Survivorship: which member's value becomes the golden value of each field, and why.

Per field, candidates are ranked by source priority (the field's own list, else the
systems that are its authority, then the default list), then by recency (the source's
own change time when mapped, else when Accord received it), then by system and source id
so the outcome never depends on input order. The losing distinct values are kept beside
the winner in the lineage.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accord.config.models import SurvivorshipConfig, SystemConfig
from accord.model.customer import CUSTOMER_FIELDS

PUBLISHED_FIELDS = tuple(f.name for f in CUSTOMER_FIELDS if not f.input_only)
MAX_ALTERNATIVES = 10


@dataclass(frozen=True)
class Member:
    system: str
    source_id: str
    source_record_id: int
    canonical_record_id: int
    mapping_version: str
    data: dict[str, Any]
    received_at: datetime

    @functools.cached_property
    def observed_at(self) -> str:
        """When the value was true at the source, as ISO text (comparable, stored in lineage)."""
        updated = self.data.get("source_updated_at")
        return str(updated) if updated else self.received_at.isoformat()


class Survivorship:
    def __init__(self, config: SurvivorshipConfig, systems: dict[str, SystemConfig]) -> None:
        self._priority: dict[str, dict[str, int]] = {}
        for field in PUBLISHED_FIELDS:
            authorities = [name for name, s in systems.items() if field in s.authority]
            explicit = config.fields.get(field)
            order = explicit.priority if explicit else authorities + config.default_priority
            ranks: dict[str, int] = {}
            for system in order:
                ranks.setdefault(system, len(ranks))
            self._priority[field] = ranks

    def rank(self, field: str, system: str) -> int:
        """`system`'s place in `field`'s source priority: lower wins; unlisted last."""
        ranks = self._priority.get(field, {})
        return ranks.get(system, len(ranks))

    def build(self, members: Sequence[Member]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The golden values and, per field, their lineage."""
        # Newest first, then by system and source id: the order within a source rank,
        # worked out once for every field.
        ordered = sorted(members, key=lambda m: (m.system, m.source_id))
        ordered.sort(key=lambda m: m.observed_at, reverse=True)
        data: dict[str, Any] = {}
        lineage: dict[str, Any] = {}
        for field in PUBLISHED_FIELDS:
            candidates = [m for m in ordered if m.data.get(field) not in (None, "")]
            if not candidates:
                continue
            ranks = self._priority[field]
            unlisted = len(ranks)
            if len(candidates) > 1:
                candidates.sort(key=lambda m: ranks.get(m.system, unlisted))
            winner = candidates[0]
            value = winner.data[field]
            data[field] = value
            lineage[field] = {
                "value": value,
                "system": winner.system,
                "source_id": winner.source_id,
                "source_record_id": winner.source_record_id,
                "canonical_record_id": winner.canonical_record_id,
                "mapping_version": winner.mapping_version,
                "observed_at": winner.observed_at,
                "rule": _deciding_rule(candidates, ranks, unlisted, field),
                "candidates": len(candidates),
                "alternatives": _alternatives(candidates, value, field)
                if len(candidates) > 1
                else [],
            }
        return data, lineage


def _deciding_rule(ranked: list[Member], ranks: dict[str, int], unlisted: int, field: str) -> str:
    """Which criterion picked the winner over the best candidate with another value."""
    winner = ranked[0]
    rival = next((m for m in ranked[1:] if m.data[field] != winner.data[field]), None)
    if rival is None:
        return "agreed" if len(ranked) > 1 else "only_value"
    if ranks.get(winner.system, unlisted) < ranks.get(rival.system, unlisted):
        return "source_priority"
    if winner.observed_at != rival.observed_at:
        return "most_recent"
    return "stable_order"


def _alternatives(ranked: list[Member], value: Any, field: str) -> list[dict[str, Any]]:
    seen = {_key(value)}
    out = []
    for member in ranked[1:]:
        other = member.data[field]
        if _key(other) in seen:
            continue
        seen.add(_key(other))
        out.append({"value": other, "system": member.system, "source_id": member.source_id})
        if len(out) == MAX_ALTERNATIVES:
            break
    return out


def _key(value: Any) -> str:
    return repr(value)
