"""What a golden change asks of one target, and how a conflicting edit is settled: pure
functions, no store and no network.

- `relevant`: does the change concern the target at all?
- `desired`: the target's fields and the golden values they should hold.
- `merged_fields`: a record's fields with the desired values laid over them.
- `settle`: when the target changed a field since Accord last saw it (its base), the
  field's policy decides whose value stays; every such field is a `Conflict`.
- `backoff`: how long to wait before the next attempt.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from accord.config.sync import DeliveryConfig, RetryPolicy
from accord.store.outbox import Heading

# Statuses worth trying again later: the target is busy, down or slow.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def relevant(change: Heading, config: DeliveryConfig, target: str) -> bool:
    """Whether `change` may alter what `target` should hold: a new customer, a
    tombstone, a change of a delivered field, a change of members only (a record of the
    target may just have joined the customer), or a repair meant for this target."""
    if change.target is not None:
        return change.target == target
    if change.fields is None or change.tombstone or not change.fields:
        return True
    delivered = set(config.fields.values())
    return any(field in delivered for field in change.fields)


def wanted(
    changes: Iterable[Heading], config: DeliveryConfig, target: str
) -> list[tuple[int, str]]:
    """(change id, golden id) of the changes that concern `target`: what to plan."""
    return [(c.id, c.golden_id) for c in changes if relevant(c, config, target)]


def desired(
    data: Mapping[str, Any], config: DeliveryConfig, authority: frozenset[str]
) -> dict[str, Any]:
    """target field -> golden value, for the delivered fields the golden record has a
    value for. A field the target is the authority for is never written to it; a field
    with no golden value is left as the target has it."""
    out: dict[str, Any] = {}
    for target_field, canonical in config.fields.items():
        if canonical in authority:
            continue
        value = data.get(canonical)
        if value is not None and value != "":
            out[target_field] = value
    return out


def merged_fields(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {**current, **wanted}


@dataclass(frozen=True)
class Conflict:
    field: str  # the target's field
    canonical: str
    ours: Any
    theirs: Any
    policy: str
    kept: str  # ours, theirs, or waiting (for a steward; theirs stays meanwhile)


def settle(
    wanted: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    theirs: Mapping[str, Any],
    *,
    config: DeliveryConfig,
    target: str,
    sources: Mapping[str, str],
    rank: Callable[[str, str], int],
    their_time: datetime | None,
    our_time: datetime,
    earlier: Mapping[str, tuple[Any, Any, str]] | None = None,
) -> tuple[dict[str, Any], list[Conflict]]:
    """The values to write over `theirs` (the record as the target holds it now), and
    the conflicts met. A field conflicts when the target changed it since `base` (what
    Accord last saw) and it now differs from ours. With no base (Accord never saw the
    record), nothing conflicts: ours are written.

    Policies: `source_priority` keeps the value of the system ranked higher for the
    field (the target, or the system the golden value came from); `newest` keeps the
    later change (the target's own change time against the golden change's); `steward`
    keeps theirs and leaves the conflict waiting for a steward.

    The same conflict met again (`earlier`: field -> (ours, theirs, kept) of the last one
    recorded on the record) is settled as it was, and not returned again: a steward's
    decision holds, and a waiting conflict waits once."""
    to_write: dict[str, Any] = {}
    found: list[Conflict] = []
    for field, ours in wanted.items():
        current = theirs.get(field)
        if current == ours:
            continue
        if base is None or base.get(field) == current:
            to_write[field] = ours  # the target did not touch it: no conflict
            continue
        canonical = config.fields[field]
        policy = config.policy(canonical)
        before = (earlier or {}).get(field)
        if before is not None and before[0] == ours and before[1] == current:
            if before[2] == "ours":
                to_write[field] = ours
            continue
        if policy == "source_priority":
            source = sources.get(canonical, "")
            keep_ours = rank(canonical, source) <= rank(canonical, target)
        elif policy == "newest":
            keep_ours = their_time is None or our_time >= their_time
        else:
            keep_ours = False
        kept = "ours" if keep_ours else ("waiting" if policy == "steward" else "theirs")
        found.append(Conflict(field, canonical, ours, current, policy, kept))
        if keep_ours:
            to_write[field] = ours
    return to_write, found


def backoff(
    attempts: int,
    policy: RetryPolicy,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """The wait after failed attempt number `attempts` (1 for the first): exponential
    with full jitter, between half and all of `backoff * 2**(attempts-1)`, capped at
    `max_backoff`, and never shorter than the target's Retry-After."""
    draw = (rng or random).random()
    ceiling = min(
        policy.max_backoff.total_seconds(),
        policy.backoff.total_seconds() * 2 ** min(max(attempts - 1, 0), 30),
    )
    wait = ceiling * (0.5 + draw / 2)
    if retry_after is not None:
        wait = max(wait, min(retry_after, policy.max_backoff.total_seconds()))
    # whole microseconds, rounded up so as never to come in under Retry-After
    return min(timedelta(microseconds=math.ceil(wait * 1_000_000)), policy.max_backoff)
