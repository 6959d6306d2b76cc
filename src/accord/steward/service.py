"""What a data steward does: read the review queue, look at a pair with its explanation,
decide it (the same customer, or different customers), and split records out of a
customer. Every call takes the acting identity; every decision is audited.

A decision is stored and honoured by every later resolve: `same` links the pair whatever
the matcher says, `different` keeps the two records in different customers however many
other links would chain them together. Golden records change at the next resolve.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from sqlalchemy import Connection

from accord.config.loader import Project
from accord.errors import Conflict, InputRejected, NotFound
from accord.golden.incremental import IncrementalResolver, IncrementalUnavailable, match_batch
from accord.golden.resolve import MATCHING_LOCK, ResolveReport
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.govern.permissions import Actor, Permission, require
from accord.paging import Page, check_window
from accord.store import golden as golden_store
from accord.store import records as record_store
from accord.store import stewardship as store
from accord.store.dialect import exclusive
from accord.store.types import utcnow

DecisionKind = Literal["same", "different"]
DECISIONS: tuple[str, ...] = ("same", "different")
MAX_NOTE_CHARS = 2000
MAX_ID = 2**63 - 1  # review ids are 64-bit
MAX_SKIPPED = 500  # pairs one sitting may pass over; the queue is read that far at most
Key = tuple[str, str]
Decided = list[tuple[tuple[Key, Key], str, str]]  # (pair, decision, note) each


def queue(
    conn: Connection, actor: Actor, *, status: str = "open", limit: int = 50, offset: int = 0
) -> Page:
    """A page of the review queue, most likely matches first."""
    require(actor, Permission.MATCHES_READ)
    if status not in {"open", "decided", "withdrawn"}:
        raise InputRejected(f"status must be open, decided or withdrawn, not {status!r}")
    check_window(limit, offset)
    items, total = store.list_reviews(conn, status, limit, offset)
    return Page([_summary(item) for item in items], total, limit, offset)


def review(
    conn: Connection, actor: Actor, review_id: int, project: Project | None = None
) -> dict[str, Any]:
    """One pair: both records as they are now, their customers, the explanation, and
    the decision if there is one.

    A pair queued by a full resolve of the learned engine is explained here, with
    `project`, from the match index and the model saved by that resolve (what
    `explain_pair` gives for any two records); one queued otherwise carries the
    explanation it was queued with."""
    require(actor, Permission.MATCHES_READ)
    item = store.get_review(conn, review_id) if 0 < review_id <= MAX_ID else None
    if item is None:
        raise NotFound(f"no review {review_id}", hint="list the queue for the ids")
    out = _summary(item) | {"explanation": _explanation(conn, project, item)}
    out["records"] = [_record(conn, key) for key in _keys(item)]
    out["decision"] = store.decision_of(conn, _pair(item))
    return out


def _explanation(conn: Connection, project: Project | None, item: dict[str, Any]) -> Any:
    """A review's explanation: the one stored with it, else worked out now; empty when
    there is no model to explain with (the rules engine, or matching settings changed
    since the last full resolve) or a record has left the match index."""
    if item["explanation"] or project is None:
        return item["explanation"]
    try:
        resolver = IncrementalResolver(project, store.latest_model(conn))
        return resolver.explain(conn, *_keys(item))
    except (IncrementalUnavailable, NotFound):
        return {}


def next_open(conn: Connection, actor: Actor, skipped: Collection[int] = ()) -> int | None:
    """The id of the first open pair in queue order that is not among `skipped` (the
    pairs passed over in this sitting), or None when there is none left."""
    require(actor, Permission.MATCHES_READ)
    if len(skipped) > MAX_SKIPPED:
        raise InputRejected(f"at most {MAX_SKIPPED} pairs can be skipped in one sitting")
    return store.first_open(conn, skipped)


def open_count(conn: Connection, actor: Actor) -> int:
    """How many pairs wait for a steward."""
    require(actor, Permission.MATCHES_READ)
    return store.count_reviews(conn, "open")


def decide(
    conn: Connection,
    actor: Actor,
    review_id: int,
    decision: str,
    note: str = "",
    *,
    now_in: Project | None = None,
) -> dict[str, Any]:
    """Decide a queued pair; `conn` must be writing. Returns the decision. With `now_in`
    (the project), the decision takes effect in the same transaction (`take_effect`);
    without, at the next resolve."""
    require(actor, Permission.MATCHES_DECIDE)
    item = store.get_review(conn, review_id) if 0 < review_id <= MAX_ID else None
    if item is None:
        raise NotFound(f"no review {review_id}", hint="list the queue for the ids")
    if item["status"] == "withdrawn":
        raise Conflict(
            f"review {review_id} was withdrawn: the latest resolve no longer doubts this pair",
            hint="to decide it anyway: `accord review decide-pair DIR SYS:ID SYS:ID ...`",
        )
    decided = decide_pair(conn, actor, *_keys(item), decision=decision, note=note)
    if now_in is not None:
        take_effect(conn, actor, now_in, list(_keys(item)))
    return decided


def decide_pair(
    conn: Connection, actor: Actor, left: Key, right: Key, *, decision: str, note: str = ""
) -> dict[str, Any]:
    """Decide any pair of records (they must exist); `conn` must be writing."""
    require(actor, Permission.MATCHES_DECIDE)
    _check_decision(decision, note)
    if left == right:
        raise InputRejected("a record is always the same customer as itself")
    for key in (left, right):
        if not record_store.heads(conn, key[0], [key[1]]):
            raise NotFound(f"no record {key[1]!r} in {key[0]!r}")
    pair = store.ordered(left, right)
    _store_decisions(conn, actor, [(pair, decision, note)])
    return {"left": list(pair[0]), "right": list(pair[1]), "decision": decision, "note": note}


def _store_decisions(conn: Connection, actor: Actor, decided: Decided) -> None:
    """Store decisions (pair, decision, note), close their reviews, audit each: a few
    batched statements however many pairs."""
    now = utcnow()
    store.record_decisions(conn, decided, actor=actor.label, at=now)
    store.close_reviews(conn, [pair for pair, _, _ in decided], now)
    record(
        conn,
        actor.label,
        [
            AuditEvent(
                AuditAction.MATCH_DECIDED,
                "pair",
                _pair_label(pair),
                {"left": list(pair[0]), "right": list(pair[1]), "decision": decision, "note": note},
            )
            for pair, decision, note in decided
        ],
    )


def split(
    conn: Connection,
    actor: Actor,
    golden_id: str,
    records: list[Key],
    note: str = "",
    *,
    now_in: Project | None = None,
) -> dict[str, Any]:
    """Split `records` out of a customer: each is decided different from every member
    that stays; the records split out stay together. `conn` must be writing. With
    `now_in` (the project), the split takes effect in the same transaction."""
    require(actor, Permission.MATCHES_DECIDE)
    row = golden_store.get(conn, golden_id)
    if row is None or row["status"] != "active":
        raise NotFound(f"no active customer {golden_id!r}")
    members = [(m["system"], m["source_id"]) for m in golden_store.members(conn, golden_id)]
    leaving = list(dict.fromkeys(records))
    unknown = [key for key in leaving if key not in members]
    if unknown:
        raise InputRejected(
            f"{', '.join(f'{s}:{i}' for s, i in unknown)} not in {golden_id}",
            hint="the members are listed by `accord show DIR " + golden_id + "`",
        )
    staying = [key for key in members if key not in leaving]
    if not leaving or not staying:
        raise InputRejected("split out at least one member, and leave at least one")
    _check_decision("different", note)
    apart = note or f"split from {golden_id}"
    together = note or f"split from {golden_id} together"
    decided = [
        (store.ordered(out, stay), "different", apart) for out in leaving for stay in staying
    ]
    decided += [
        (store.ordered(a, b), "same", together)
        for i, a in enumerate(leaving)
        for b in leaving[i + 1 :]
    ]
    _store_decisions(conn, actor, decided)
    if now_in is not None:
        take_effect(conn, actor, now_in, leaving)
    return {
        "golden_id": golden_id,
        "split_out": [list(k) for k in leaving],
        "decisions": len(decided),
    }


def take_effect(conn: Connection, actor: Actor, project: Project, records: list[Key]) -> bool:
    """Make the decisions just stored about `records` show now: match each again with the
    last full resolve's model, re-clustering its neighbourhood under every decision, in
    the caller's writing transaction (so a decision and its effect commit together).
    Returns False, changing nothing, when the project cannot match incrementally (the
    rules engine, no full resolve yet, or match settings changed since): then they show
    at the next full resolve."""
    require(actor, Permission.MATCHES_DECIDE)
    try:
        resolver = IncrementalResolver(project, store.latest_model(conn))
    except IncrementalUnavailable:
        return False
    exclusive(conn, MATCHING_LOCK)
    keys = list(dict.fromkeys(records))
    match_batch(conn, resolver, keys, actor=actor.label, report=ResolveReport(), again=True)
    return True


def explain_pair(
    conn: Connection, actor: Actor, project: Project, left: Key, right: Key
) -> dict[str, Any]:
    """Why the model thinks two records are (or are not) one customer: every comparison's
    values, level, m, u and match weight, the prior and the total (the data of a
    waterfall chart), for any two records, with the model of the last full resolve.
    Says too which customers they are in and what a steward decided about them."""
    require(actor, Permission.MATCHES_READ)
    if left == right:
        raise InputRejected("a record is always the same customer as itself")
    resolver = IncrementalResolver(project, store.latest_model(conn))
    explanation = resolver.explain(conn, left, right)
    golden = [golden_store.crosswalk_of(conn, *key) for key in (left, right)]
    return {
        "left": {"system": left[0], "source_id": left[1]},
        "right": {"system": right[0], "source_id": right[1]},
        "golden_ids": [None if g is None else g["golden_id"] for g in golden],
        "decision": store.decision_of(conn, store.ordered(left, right)),
        "explanation": explanation,
    }


def _check_decision(decision: str, note: str) -> None:
    if decision not in DECISIONS:
        raise InputRejected(f"decision must be 'same' or 'different', not {decision!r}")
    if len(note) > MAX_NOTE_CHARS:
        raise InputRejected(f"a note is at most {MAX_NOTE_CHARS} characters")


def _keys(item: dict[str, Any]) -> tuple[Key, Key]:
    return (
        (item["left_system"], item["left_source_id"]),
        (item["right_system"], item["right_source_id"]),
    )


def _pair(item: dict[str, Any]) -> tuple[Key, Key]:
    return store.ordered(*_keys(item))


def _pair_label(pair: tuple[Key, Key]) -> str:
    return f"{pair[0][0]}:{pair[0][1]}|{pair[1][0]}:{pair[1][1]}"[:256]


def _summary(item: dict[str, Any]) -> dict[str, Any]:
    left, right = _keys(item)
    return {
        "id": item["id"],
        "left": {"system": left[0], "source_id": left[1]},
        "right": {"system": right[0], "source_id": right[1]},
        "probability": item["probability"],
        "match_weight": item["match_weight"],
        "reason": item["reason"],
        "status": item["status"],
        "first_seen_at": item["first_seen_at"],
        "updated_at": item["updated_at"],
    }


def _record(conn: Connection, key: Key) -> dict[str, Any]:
    versions = record_store.source_record_versions(conn, *key)
    link = golden_store.crosswalk_of(conn, *key)
    latest = versions[0] if versions else {}
    return {
        "system": key[0],
        "source_id": key[1],
        "data": latest.get("data"),
        "golden": link,
    }
