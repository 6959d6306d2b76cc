"""What sync out keeps, and pruning the rest (`accord sync prune`).

Every golden change stays in the outbox (`golden_change`) and every delivery in
`sync_delivery` until pruned. Pruning removes, among what is older than the retention:
- deliveries sent (the target holds their effect; health reads only recent ones);
- outbox changes every configured target has planned (each target's cursor is past
  them) that no remaining delivery refers to (pending, or a dead letter that may be
  replayed) and no conflict waiting for a steward was met on. The newest change always
  stays, so that change ids never come back.

A target configured later, or one whose cursor is behind what was pruned, cannot replay
the history: it starts from a snapshot, one `repair` change per active customer with
its golden values as they are then (`dispatch.TargetDispatcher.plan`). A configured
target that has never run does not hold pruning back; it will start from a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from accord.config.loader import Project
from accord.store import outbox
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.tables import golden_change
from accord.store.types import utcnow
from accord.sync.dispatch import targets

CHUNK = 10_000  # outbox ids looked at per transaction


@dataclass
class PruneReport:
    before: datetime  # what was older than this could go
    deliveries: int = 0  # sent deliveries removed
    changes: int = 0  # outbox changes removed
    kept_from: int = 0  # the outbox is kept from here on (the slowest target's cursor)
    held_back_by: str | None = None  # the target whose cursor that is
    never_ran: list[str] = field(default_factory=list)  # targets to start from a snapshot


def prune(
    engine: Engine,
    project: Project,
    older_than: timedelta,
    *,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PruneReport:
    """Remove what sync out no longer needs among what is older than `older_than`; see
    the module's text. `progress(done, total)` follows the outbox's ids."""
    report = PruneReport((now or utcnow()) - older_than)
    configured = targets(project)
    with writing(engine) as conn:
        cursors = outbox.cursors(conn)
        # deliveries of targets no longer configured still refer to changes: keep those
        known = sorted(set(cursors) | set(configured))
        report.deliveries = sync_store.prune_sent(conn, known, report.before)
    running = {t: cursors[t] for t in configured if t in cursors}
    report.never_ran = sorted(set(configured) - set(cursors))
    with engine.connect() as conn:
        lowest, highest = conn.execute(
            select(func.min(golden_change.c.id), func.max(golden_change.c.id))
        ).one()
    if lowest is None:
        return report
    if running:
        report.held_back_by, report.kept_from = min(running.items(), key=lambda kv: kv[1])
    else:
        report.kept_from = int(highest)
    # the newest change always stays: SQLite numbers new changes after the highest id
    # there is (store.dialect.next_ids), and ids must never come back
    low, floor = int(lowest) - 1, min(report.kept_from, int(highest) - 1)
    total = max(0, floor - low)
    while low < floor:
        high = min(low + CHUNK, floor)
        with writing(engine) as conn:
            unneeded = sync_store.unneeded_changes(conn, known, low, high, report.before)
            report.changes += outbox.prune(conn, unneeded)
        low = high
        if progress is not None:
            progress(total - (floor - low), total)
    return report
