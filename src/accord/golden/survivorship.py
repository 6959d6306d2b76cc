"""Survivorship: which member's value becomes the golden value of each field, and why.

Each field has a strategy (`survivorship.fields.<field>.strategy`, else
`survivorship.default_strategy`; docs/survivorship.md):

- `source_priority` (the default): the field's own priority list, else the systems that
  are its authority, then the default list; ties go to the newest by the source's own
  change time (when mapped, else when Accord received it).
- `most_recent`: the newest by the hybrid logical clock's stamp at intake (`accord.hlc`;
  records stored before the clock existed by their observed time); ties by priority.
- `most_complete`: the member with the most published fields filled; ties by priority,
  then recency (the clock).
- `most_frequent`: the value most members hold, compared in the field's normal form;
  ties by priority, then recency (the clock).

A system whose `proposes` list leaves a field out is no candidate for it (ownership: its
value stays on its record, for matching, but never survives). A steward's override (a
`Pin`) wins over every strategy. The last tie-break is always
system and source id, so the outcome never depends on the order of the members. The
lineage names the criterion that decided against the best candidate holding another
value, and keeps the losing distinct values.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accord.config.models import Strategy, SurvivorshipConfig, SystemConfig
from accord.hlc import Stamp, was_clamped
from accord.model import lineage as lineage_form
from accord.model.customer import CUSTOMER_FIELDS, FIELDS_BY_NAME, FieldType
from accord.standardize import name_key

PUBLISHED_FIELDS = tuple(f.name for f in CUSTOMER_FIELDS if not f.input_only)
MAX_ALTERNATIVES = 10
STEWARD = "@steward"  # the `system` of an overridden value (no system can be named so)
STEWARD_OVERRIDE = "steward_override"
_TEXT_TYPES = frozenset({FieldType.STRING, FieldType.NAME, FieldType.COMPANY_NAME})


@dataclass(frozen=True)
class Member:
    system: str
    source_id: str
    source_record_id: int
    canonical_record_id: int
    mapping_version: str
    data: dict[str, Any]
    received_at: datetime
    hlc: str | None = None  # the clock's stamp at intake; None for records stored before

    @functools.cached_property
    def observed_at(self) -> str:
        """When the value was true at the source, as ISO text (comparable, stored in lineage)."""
        updated = self.data.get("source_updated_at")
        return str(updated) if updated else self.received_at.isoformat()

    @functools.cached_property
    def recency(self) -> tuple[int, int]:
        """The clock's order, larger is newer: the stamp; a record without one, its
        observed time in milliseconds before any stamp of that millisecond."""
        if self.hlc is not None:
            stamp = Stamp.parse(self.hlc)
            return (stamp.physical, stamp.logical)
        return (_millis(self.observed_at), -1)

    @functools.cached_property
    def clamped(self) -> bool:
        """Whether the clock believed the source's change time only up to the skew."""
        if self.hlc is None:
            return False
        updated = self.data.get("source_updated_at")
        return was_clamped(Stamp.parse(self.hlc), _millis(str(updated)) if updated else None)

    @functools.cached_property
    def completeness(self) -> int:
        """How many published fields the record fills."""
        return sum(1 for f in PUBLISHED_FIELDS if self.data.get(f) not in (None, ""))


@dataclass(frozen=True)
class Pin:
    """A steward's override of one field's golden value."""

    value: Any
    reason: str
    set_by: str
    set_at: datetime


def normal_form(field: str, value: Any) -> str:
    """What `most_frequent` compares: text fields without case, accents or punctuation,
    the others without case (their values are standardized already)."""
    canonical = FIELDS_BY_NAME.get(field)
    text = str(value)
    if canonical is not None and canonical.type in _TEXT_TYPES:
        return name_key(text)
    return text.casefold()


class Survivorship:
    def __init__(self, config: SurvivorshipConfig, systems: dict[str, SystemConfig]) -> None:
        self._priority: dict[str, dict[str, int]] = {}
        self._strategy: dict[str, Strategy] = {}
        # field -> the systems whose values may not survive for it (ownership: `proposes`)
        self._silent: dict[str, frozenset[str]] = {}
        for field in PUBLISHED_FIELDS:
            self._silent[field] = frozenset(
                name
                for name, s in systems.items()
                if s.proposes is not None and field not in s.proposes and field not in s.authority
            )
            authorities = [name for name, s in systems.items() if field in s.authority]
            explicit = config.fields.get(field)
            if explicit is not None and explicit.priority is not None:
                order = explicit.priority
            else:
                order = authorities + config.default_priority
            ranks: dict[str, int] = {}
            for system in order:
                ranks.setdefault(system, len(ranks))
            self._priority[field] = ranks
            self._strategy[field] = config.strategy_of(field)

    def rank(self, field: str, system: str) -> int:
        """`system`'s place in `field`'s source priority: lower wins; unlisted last. A
        steward's override comes before every system."""
        if system == STEWARD:
            return -1
        ranks = self._priority.get(field, {})
        return ranks.get(system, len(ranks))

    def strategy(self, field: str) -> Strategy:
        return self._strategy.get(field, "source_priority")

    def build(
        self, members: Sequence[Member], pins: Mapping[str, Pin] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The golden values and, per field, their lineage; `pins` (field -> a steward's
        override) win over the strategies."""
        data, packed = self.build_packed(members, pins)
        return data, lineage_form.unpack(data, packed)

    def build_packed(
        self, members: Sequence[Member], pins: Mapping[str, Pin] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """`build`, with the lineage in the form it is stored in (`model.lineage`): each
        winning record named once."""
        # by system and source id: the last tie-break, and what makes the outcome
        # independent of the order members come in
        stable = sorted(members, key=lambda m: (m.system, m.source_id))
        # newest first by observed time: the order within a source rank (source_priority)
        ordered = sorted(stable, key=lambda m: m.observed_at, reverse=True)
        newest: dict[int, int] | None = None  # by the clock, worked out when first needed
        data: dict[str, Any] = {}
        lineage: dict[str, Any] = {}
        winners = _Winners()
        for field in PUBLISHED_FIELDS:
            pin = pins.get(field) if pins else None
            strategy = self._strategy[field]
            if strategy == "source_priority" or len(stable) < 2:
                candidates = [m for m in ordered if m.data.get(field) not in (None, "")]
            else:
                candidates = [m for m in stable if m.data.get(field) not in (None, "")]
            silent = self._silent[field]
            if silent:  # systems that may not propose this field
                candidates = [m for m in candidates if m.system not in silent]
            if not candidates:
                if pin is not None:
                    data[field] = pin.value
                    lineage[field] = _pinned(pin, [], field)
                continue
            ranks = self._priority[field]
            if strategy == "source_priority":
                rule = self._by_priority(candidates, field)
            else:
                if newest is None:
                    newest = _dense_ranks(stable, lambda m: m.recency)
                criteria = _criteria(strategy, field, candidates, ranks, newest)
                rule = _by_criteria(candidates, criteria, _comparable(strategy, field))
            winner = candidates[0]
            if pin is not None:
                data[field] = pin.value
                lineage[field] = _pinned(pin, candidates, field)
                continue
            value = winner.data[field]
            data[field] = value
            entry: dict[str, Any] = {
                "member": winners.at(winner),
                "rule": rule,
                "candidates": len(candidates),
            }
            if len(candidates) > 1:
                alternatives = _alternatives(candidates, value, field)
                if alternatives:
                    entry["alternatives"] = alternatives
            if strategy != "source_priority" and winner.hlc is not None:
                entry["hlc"] = winner.hlc
                if winner.clamped:
                    entry["clock_clamped"] = True
            lineage[field] = entry
        return data, {"members": winners.listed, "fields": lineage}

    def _by_priority(self, candidates: list[Member], field: str) -> str:
        """Sort `candidates` (newest first by observed time) by source rank, in place;
        returns the deciding rule."""
        ranks = self._priority[field]
        unlisted = len(ranks)
        if len(candidates) > 1:
            candidates.sort(key=lambda m: ranks.get(m.system, unlisted))
        winner = candidates[0]
        rival = next((m for m in candidates[1:] if m.data[field] != winner.data[field]), None)
        if rival is None:
            return "agreed" if len(candidates) > 1 else "only_value"
        if ranks.get(winner.system, unlisted) < ranks.get(rival.system, unlisted):
            return "source_priority"
        if winner.observed_at != rival.observed_at:
            return "most_recent"
        return "stable_order"


class _Winners:
    """The member records whose values won, each listed once in the stored lineage."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self._places: dict[int, int] = {}  # id(member) -> its place in `listed`

    def at(self, member: Member) -> int:
        """`member`'s place in the list, listing it if it is not yet."""
        place = self._places.get(id(member))
        if place is None:
            place = self._places[id(member)] = len(self.listed)
            self.listed.append(
                {
                    "system": member.system,
                    "source_id": member.source_id,
                    "source_record_id": member.source_record_id,
                    "canonical_record_id": member.canonical_record_id,
                    "mapping_version": member.mapping_version,
                    "observed_at": member.observed_at,
                }
            )
        return place


# (the rule a criterion decides by, the criterion: lower wins)
Criterion = tuple[str, Callable[[Member], int]]


def _criteria(
    strategy: Strategy,
    field: str,
    candidates: list[Member],
    ranks: dict[str, int],
    newest: dict[int, int],
) -> list[Criterion]:
    unlisted = len(ranks)

    def priority(m: Member) -> int:
        return ranks.get(m.system, unlisted)

    def recency(m: Member) -> int:
        return newest[id(m)]

    if strategy == "most_recent":
        return [("most_recent", recency), ("source_priority", priority)]
    if strategy == "most_complete":
        return [
            ("most_complete", lambda m: -m.completeness),
            ("source_priority", priority),
            ("most_recent", recency),
        ]
    forms = {id(m): normal_form(field, m.data[field]) for m in candidates}
    counts = Counter(forms.values())
    return [
        ("most_frequent", lambda m: -counts[forms[id(m)]]),
        ("source_priority", priority),
        ("most_recent", recency),
    ]


def _comparable(strategy: Strategy, field: str) -> Callable[[Member], Any]:
    """What makes two candidates' values the same value: `most_frequent` compares them
    in the field's normal form, the other strategies as they are."""
    if strategy == "most_frequent":
        return lambda m: normal_form(field, m.data[field])
    return lambda m: m.data[field]


def _by_criteria(
    candidates: list[Member], criteria: list[Criterion], comparable: Callable[[Member], Any]
) -> str:
    """Sort `candidates` (in system and source id order) by the criteria, in place (the
    sort is stable: system and source id break the last tie); returns the rule that
    decided against the best candidate holding another value."""
    if len(candidates) == 1:
        return "only_value"
    candidates.sort(key=lambda m: tuple(criterion(m) for _, criterion in criteria))
    winner = candidates[0]
    value = comparable(winner)
    rival = next((m for m in candidates[1:] if comparable(m) != value), None)
    if rival is None:
        return "agreed"
    for rule, criterion in criteria:
        if criterion(winner) != criterion(rival):
            return rule
    return "stable_order"


def _dense_ranks(members: Sequence[Member], key: Callable[[Member], Any]) -> dict[int, int]:
    """id(member) -> its place by `key`, largest first; equal keys share a place."""
    distinct = sorted({key(m) for m in members}, reverse=True)
    place = {k: i for i, k in enumerate(distinct)}
    return {id(m): place[key(m)] for m in members}


def _pinned(pin: Pin, candidates: list[Member], field: str) -> dict[str, Any]:
    """A steward's override's lineage entry, as stored (its value is the golden value)."""
    at = pin.set_at.isoformat()
    return {
        "system": STEWARD,
        "source_id": pin.set_by,
        "source_record_id": None,
        "canonical_record_id": None,
        "mapping_version": None,
        "observed_at": at,
        "rule": STEWARD_OVERRIDE,
        "by": pin.set_by,
        "at": at,
        "reason": pin.reason,
        "candidates": len(candidates),
        "alternatives": _alternatives(candidates, pin.value, field, first=0),
    }


def _alternatives(
    ranked: list[Member], value: Any, field: str, *, first: int = 1
) -> list[dict[str, Any]]:
    seen = {_key(value)}
    out = []
    for member in ranked[first:]:
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


def _millis(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return 0
