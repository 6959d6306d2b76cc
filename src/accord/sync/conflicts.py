"""A steward settles a conflict its field's policy left waiting (`steward`): keep the
target's value, or ours, delivered through the normal path (a `repair` change for that
target). The decision holds while both values stay what they were: delivery meets the
same conflict again and settles it as decided (`plan.settle`, `earlier`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from accord.errors import Conflict, InputRejected, NotFound
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.govern.permissions import Actor, Permission, require
from accord.store import outbox
from accord.store import sync as sync_store
from accord.store.engine import writing


def decide(
    engine: Engine, actor: Actor, conflict_id: int, keep: str, note: str = ""
) -> dict[str, Any]:
    """Settle conflict `conflict_id`; returns it as it now stands."""
    require(actor, Permission.MATCHES_DECIDE)
    if keep not in ("ours", "theirs"):
        raise InputRejected(f"keep {keep!r}? keep `ours` (the golden value) or `theirs`")
    with writing(engine) as conn:
        found = sync_store.get_conflict(conn, conflict_id)
        if found is None:
            raise NotFound(
                f"no conflict {conflict_id}",
                hint="list them: `accord sync conflicts DIR --waiting`",
            )
        if not sync_store.decide_conflict(conn, conflict_id, keep, actor.label):
            raise Conflict(
                f"conflict {conflict_id} is not waiting: it was settled ({found['kept']})",
                hint="only conflicts left to a steward (policy `steward`) wait for a decision",
            )
        if keep == "ours" and not outbox.record_repairs(
            conn, found["target"], {found["golden_id"]: []}
        ):
            raise Conflict(
                f"customer {found['golden_id']} is no longer active: merged or retired since",
                hint="its current golden record has been delivered on its own",
            )
        record(
            conn,
            actor.label,
            [
                AuditEvent(
                    AuditAction.SYNC_CONFLICT_DECIDED,
                    "sync_conflict",
                    str(conflict_id),
                    {
                        "target": found["target"],
                        "record_id": found["record_id"],
                        "field": found["field"],
                        "keep": keep,
                        "note": note,
                    },
                )
            ],
        )
        decided = sync_store.get_conflict(conn, conflict_id)
    assert decided is not None  # noqa: S101  (read in the transaction that decided it)
    return decided
