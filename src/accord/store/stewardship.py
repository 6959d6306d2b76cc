"""The review queue, steward decisions, and the learned model they are judged by."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, tuple_, update

from accord.store.dialect import insert_rows, one_of, upsert
from accord.store.tables import match_decision, match_model, match_review

Key = tuple[str, str]  # (system, source id)
Pair = tuple[Key, Key]
PAIR_COLUMNS = ["left_system", "left_source_id", "right_system", "right_source_id"]
WRITE_BATCH = 1000


def ordered(a: Key, b: Key) -> Pair:
    """A pair in its stored order: the smaller key on the left."""
    return (a, b) if a <= b else (b, a)


def _pair_of(row: Any) -> Pair:
    return (row.left_system, row.left_source_id), (row.right_system, row.right_source_id)


def _pair_values(pair: Pair) -> dict[str, str]:
    (left_system, left_id), (right_system, right_id) = ordered(*pair)
    return {
        "left_system": left_system,
        "left_source_id": left_id,
        "right_system": right_system,
        "right_source_id": right_id,
    }


# ---- decisions


def decisions(conn: Connection) -> dict[Pair, str]:
    """Every decision in force: pair -> "same" or "different"."""
    # in pair order, so that resolve meets contradicting decisions in the same order on
    # every backend however often a decision is recorded again
    rows = conn.execute(select(match_decision).order_by(*match_decision.c[*PAIR_COLUMNS]))
    return {_pair_of(r): r.decision for r in rows}


def record_decision(
    conn: Connection, pair: Pair, *, decision: str, note: str, actor: str, at: datetime
) -> None:
    """Decide a pair (a later decision about the same pair replaces the earlier one)."""
    record_decisions(conn, [(pair, decision, note)], actor=actor, at=at)


def record_decisions(
    conn: Connection, decided: Sequence[tuple[Pair, str, str]], *, actor: str, at: datetime
) -> None:
    """Decide many pairs, (pair, decision, note) each, in batched statements."""
    rows = [
        _pair_values(pair)
        | {"decision": decision, "note": note, "decided_by": actor, "decided_at": at}
        for pair, decision, note in decided
    ]
    for start in range(0, len(rows), WRITE_BATCH):
        upsert(conn, match_decision, rows[start : start + WRITE_BATCH], PAIR_COLUMNS)


def decision_of(conn: Connection, pair: Pair) -> dict[str, Any] | None:
    values = _pair_values(pair)
    row = conn.execute(
        select(match_decision).where(
            *(match_decision.c[name] == value for name, value in values.items())
        )
    ).first()
    return None if row is None else dict(row._mapping)


# ---- the review queue


def sync_reviews(conn: Connection, items: Sequence[dict[str, Any]], at: datetime) -> dict[str, int]:
    """Make the open queue what the latest resolve found: new pairs are added, pairs
    still uncertain are refreshed, open pairs no longer uncertain are withdrawn. Pairs a
    steward already decided are not queued again. Returns counts."""
    decided = set(decisions(conn))
    wanted: dict[Pair, dict[str, Any]] = {}
    for item in items:
        pair = ordered(item["left"], item["right"])
        if pair not in decided:
            wanted[pair] = item
    existing = {
        _pair_of(r): (r.id, r.status)
        for r in conn.execute(
            select(match_review.c.id, match_review.c.status, *match_review.c[*PAIR_COLUMNS])
        )
    }
    rows = [
        _review_row(pair, item, at)
        for pair, item in wanted.items()
        if existing.get(pair, (None, None))[1] != "decided"
    ]
    for start in range(0, len(rows), WRITE_BATCH):
        batch = rows[start : start + WRITE_BATCH]
        insert_rows(conn, match_review, batch, replace_on=PAIR_COLUMNS, keep=("first_seen_at",))
    new = sum(1 for pair in wanted if pair not in existing)
    gone = [
        review_id
        for pair, (review_id, status) in existing.items()
        if status == "open" and pair not in wanted
    ]
    _withdraw(conn, gone, at)
    return {"queued": len(rows), "new": new, "withdrawn": len(gone)}


def _withdraw(conn: Connection, review_ids: Sequence[int], at: datetime) -> None:
    """Open reviews no longer in doubt leave the queue (they are kept, as withdrawn)."""
    for start in range(0, len(review_ids), WRITE_BATCH):
        conn.execute(
            update(match_review)
            .where(match_review.c.id.in_(review_ids[start : start + WRITE_BATCH]))
            .values(status="withdrawn", updated_at=at)
        )


def _review_row(pair: Pair, item: dict[str, Any], at: datetime) -> dict[str, Any]:
    """An open review of `pair`, from what a resolve found about it."""
    return _pair_values(pair) | {
        "probability": item["probability"],
        "match_weight": item.get("weight"),
        "reason": item["reason"],
        "explanation": item.get("explanation") or {},
        "status": "open",
        "first_seen_at": at,
        "updated_at": at,
    }


_QUEUE_ORDER = (match_review.c.probability.desc(), match_review.c.id)


def list_reviews(
    conn: Connection, status: str = "open", limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A page of the queue, most likely matches first, and the total."""
    query = select(match_review).where(match_review.c.status == status)
    rows = conn.execute(query.order_by(*_QUEUE_ORDER).limit(limit).offset(offset))
    return [dict(r._mapping) for r in rows], count_reviews(conn, status)


def count_reviews(conn: Connection, status: str = "open") -> int:
    """How many reviews have `status`."""
    count = select(func.count()).select_from(match_review)
    return int(conn.execute(count.where(match_review.c.status == status)).scalar_one())


def first_open(conn: Connection, passed: Collection[int]) -> int | None:
    """The id of the first open review in queue order not among `passed`."""
    query = select(match_review.c.id).where(match_review.c.status == "open")
    if passed:
        query = query.where(match_review.c.id.not_in(list(passed)))
    found = conn.execute(query.order_by(*_QUEUE_ORDER).limit(1)).scalar()
    return None if found is None else int(found)


def get_review(conn: Connection, review_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(match_review).where(match_review.c.id == review_id)).first()
    return None if row is None else dict(row._mapping)


def close_reviews(conn: Connection, pairs: Sequence[Pair], at: datetime) -> None:
    """Mark the reviews of these pairs decided."""
    keys = [tuple(_pair_values(pair).values()) for pair in pairs]
    for start in range(0, len(keys), WRITE_BATCH):
        conn.execute(
            update(match_review)
            .where(tuple_(*match_review.c[*PAIR_COLUMNS]).in_(keys[start : start + WRITE_BATCH]))
            .values(status="decided", updated_at=at)
        )


# ---- the learned model


def save_model(
    conn: Connection,
    *,
    project_digest: str,
    params: dict[str, Any],
    blocking: dict[str, Any],
    at: datetime,
) -> None:
    """Keep what the learned engine learned at this resolve, unless it is what the last
    resolve learned (a re-run over unchanged data writes nothing)."""
    latest = latest_model(conn)
    if latest is not None and (latest["params"], latest["blocking"]) == (params, blocking):
        return
    conn.execute(
        match_model.insert().values(
            created_at=at, project_digest=project_digest, params=params, blocking=blocking
        )
    )


def latest_model_id(conn: Connection) -> int | None:
    """The id of the latest learned model (a cheap way to see whether it changed)."""
    value = conn.execute(select(func.max(match_model.c.id))).scalar_one()
    return None if value is None else int(value)


def latest_model(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(select(match_model).order_by(match_model.c.id.desc()).limit(1)).first()
    return None if row is None else dict(row._mapping)


def decisions_involving(conn: Connection, key: Key) -> dict[Pair, str]:
    """The decisions about pairs one of whose records is `key`."""
    rows = conn.execute(
        select(match_decision).where(
            ((match_decision.c.left_system == key[0]) & (match_decision.c.left_source_id == key[1]))
            | (
                (match_decision.c.right_system == key[0])
                & (match_decision.c.right_source_id == key[1])
            )
        )
    )
    return {_pair_of(r): r.decision for r in rows}


def decisions_among(
    conn: Connection, keys: Sequence[Key], *, involving: Key | None = None
) -> dict[Pair, str]:
    """The decisions about pairs of which both records are among `keys`, and, with
    `involving`, also every decision about that record (whoever the other record is), in
    the same statement."""
    wanted = set(keys)
    if involving is not None:
        wanted.add(involving)
    found: dict[Pair, str] = {}
    listed = sorted(wanted)
    for start in range(0, len(listed), WRITE_BATCH):
        by_system: dict[str, list[str]] = {}
        for system, source_id in listed[start : start + WRITE_BATCH]:
            by_system.setdefault(system, []).append(source_id)
        params: dict[str, Any] = {}
        for i, (system, ids) in enumerate(by_system.items()):
            params[f"system{i}"], params[f"ids{i}"] = system, ids
        if involving is not None:
            params["right_system"], params["right_source_id"] = involving
        statement = _decisions_among(conn.dialect.name, len(by_system), involving is not None)
        for r in conn.execute(statement, params):
            pair = _pair_of(r)
            if pair[1] in wanted or involving in pair:
                found[pair] = r.decision
    return dict(sorted(found.items()))


@functools.cache
def _decisions_among(dialect: str, systems: int, involving: bool) -> Any:
    """The statement of `decisions_among` for keys of this many systems, built once: one
    indexed `left_system = ? AND left_source_id IN (...)` per system."""
    c = match_decision.c
    condition = or_(
        *(
            and_(
                c.left_system == bindparam(f"system{i}"),
                one_of(c.left_source_id, f"ids{i}", dialect),
            )
            for i in range(systems)
        )
    )
    if involving:
        condition = condition | (
            (c.right_system == bindparam("right_system"))
            & (c.right_source_id == bindparam("right_source_id"))
        )
    return select(c.decision, *c[*PAIR_COLUMNS]).where(condition)


def queue_reviews(
    conn: Connection,
    items: Sequence[dict[str, Any]],
    at: datetime,
    *,
    involving: Key,
    ruled: Mapping[Pair, str] | None = None,
) -> dict[str, int]:
    """What incremental matching found about one record: its pairs in doubt are queued
    (or refreshed), and its open pairs no longer in doubt are withdrawn. Pairs a steward
    decided are not queued again; `ruled` are the decisions about the record, when the
    caller has read them already."""
    side = [
        (match_review.c.left_system == involving[0])
        & (match_review.c.left_source_id == involving[1]),
        (match_review.c.right_system == involving[0])
        & (match_review.c.right_source_id == involving[1]),
    ]
    existing = {
        _pair_of(r): (r.id, r.status)
        for r in conn.execute(
            select(match_review.c.id, match_review.c.status, *match_review.c[*PAIR_COLUMNS]).where(
                side[0] | side[1]
            )
        )
    }
    wanted = {ordered(item["left"], item["right"]): item for item in items}
    if ruled is None:
        ruled = decisions_involving(conn, involving)
    decided = {
        pair for pair in wanted if existing.get(pair, (None, None))[1] == "decided" or pair in ruled
    }
    rows = [_review_row(pair, item, at) for pair, item in wanted.items() if pair not in decided]
    upsert(conn, match_review, rows, PAIR_COLUMNS, keep=("first_seen_at",))
    gone = [
        review_id
        for pair, (review_id, status) in existing.items()
        if status == "open" and pair not in wanted
    ]
    _withdraw(conn, gone, at)
    return {
        "queued": len(rows),
        "new": sum(1 for pair in wanted if pair not in existing and pair not in decided),
        "withdrawn": len(gone),
    }
