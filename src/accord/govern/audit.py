"""The audit log: typed events, appended in the caller's transaction, hash-chained.

Each entry's hash covers its own fields and the previous entry's hash, and sequence
numbers are dense from 1, so editing, deleting or inserting any entry (including the last
ones: the counter remembers how many were written) is detected by `verify`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, desc, select, update

from accord.digest import digest
from accord.errors import InputRejected
from accord.govern.permissions import Actor, Permission, require
from accord.store.dialect import insert_rows
from accord.store.tables import audit_log, counter
from accord.store.types import utcnow

GENESIS = "0" * 64


class AuditAction(StrEnum):
    PROJECT_APPLIED = "project.applied"
    LOAD_COMPLETED = "load.completed"
    LOAD_WITHDRAWN = "load.withdrawn"
    QUARANTINE_CORRECTED = "quarantine.corrected"
    QUARANTINE_REPLAYED = "quarantine.replayed"  # stored by a replay load
    QUARANTINE_RETRIED = "quarantine.retried"  # replayed, still failing: open, new reasons
    QUARANTINE_DISCARDED = "quarantine.discarded"
    RESOLVE_COMPLETED = "resolve.completed"
    GOLDEN_CREATED = "golden.created"
    GOLDEN_UPDATED = "golden.updated"
    GOLDEN_MERGED = "golden.merged"
    GOLDEN_RETIRED = "golden.retired"
    GOLDEN_RESTORED = "golden.restored"
    GOLDEN_OVERRIDDEN = "golden.overridden"  # a steward pinned a field's value
    GOLDEN_OVERRIDE_CLEARED = "golden.override_cleared"
    # a merge met two overrides of one field: one stays, the other is set aside
    GOLDEN_OVERRIDE_SET_ASIDE = "golden.override_set_aside"
    MATCH_DECIDED = "match.decided"
    USER_CREATED = "user.created"
    USER_SIGNED_IN = "user.signed_in"
    USER_SIGN_IN_FAILED = "user.sign_in_failed"
    USER_SIGNED_OUT = "user.signed_out"
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105  (an action name)
    USER_ROLE_CHANGED = "user.role_changed"
    USER_DEACTIVATED = "user.deactivated"  # and their sessions ended
    USER_REACTIVATED = "user.reactivated"
    USER_MFA_ENROLLED = "user.mfa_enrolled"
    USER_MFA_DISABLED = "user.mfa_disabled"  # by the person, with a current code
    USER_MFA_RESET = "user.mfa_reset"  # by an administrator, for someone who lost theirs
    USER_MFA_FAILED = "user.mfa_failed"  # a wrong or reused code
    USER_RECOVERY_CODE_USED = "user.recovery_code_used"
    API_KEY_CREATED = "api_key.created"
    POLL_RESET = "poll.reset"
    SYNC_CONFLICT_DECIDED = "sync.conflict_decided"


@dataclass(frozen=True)
class AuditEvent:
    action: AuditAction
    subject_type: str
    subject_id: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    broken_at: int | None = None  # the sequence number of the first bad entry
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def record(conn: Connection, actor: str, events: Sequence[AuditEvent]) -> None:
    """Append `events` in the caller's transaction. Writers serialize on the counter row."""
    if not events:
        return
    last = conn.execute(
        update(counter)
        .where(counter.c.name == "audit_seq")
        .values(value=counter.c.value + len(events))
        .returning(counter.c.value)
    ).scalar_one()
    seq = last - len(events) + 1
    prev_hash = (
        conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq - 1)).scalar_one()
        if seq > 1
        else GENESIS
    )
    at = utcnow()
    rows = []
    for offset, event in enumerate(events):
        row = {
            "seq": seq + offset,
            "at": at,
            "actor": actor,
            "action": str(event.action),
            "subject_type": event.subject_type,
            "subject_id": event.subject_id,
            "details": event.details,
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = entry_hash(row)
        rows.append(row)
    insert_rows(conn, audit_log, rows)


def entry_hash(row: dict[str, Any]) -> str:
    """The hash of one entry: its fields and the previous hash, as canonical JSON."""
    at: datetime = row["at"]
    content = {
        "seq": row["seq"],
        "at": at.isoformat(timespec="microseconds"),
        "actor": row["actor"],
        "action": row["action"],
        "subject_type": row["subject_type"],
        "subject_id": row["subject_id"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
    }
    return digest(content)


def verify(
    conn: Connection, progress: Callable[[int], None] | None = None, batch_size: int = 5000
) -> VerifyResult:
    """Walk the whole chain; the result names the first entry that does not verify."""
    expected_seq = 1
    prev_hash = GENESIS
    while True:  # keyset pages: bounded memory, no long-lived cursor
        page = conn.execute(
            select(audit_log)
            .where(audit_log.c.seq >= expected_seq)
            .order_by(audit_log.c.seq)
            .limit(batch_size)
        ).all()
        for row in page:
            entry = dict(row._mapping)
            seq = entry["seq"]
            if seq != expected_seq:
                return VerifyResult(
                    expected_seq - 1, expected_seq, f"entry {expected_seq} is missing"
                )
            if entry["prev_hash"] != prev_hash:
                return VerifyResult(seq - 1, seq, "its link to the entry before does not match")
            if entry_hash(entry) != entry["hash"]:
                return VerifyResult(seq - 1, seq, "its content does not match its hash")
            prev_hash = entry["hash"]
            expected_seq += 1
        if progress is not None:
            progress(len(page))
        if len(page) < batch_size:
            break
    written = conn.execute(
        select(counter.c.value).where(counter.c.name == "audit_seq")
    ).scalar_one()
    if written != expected_seq - 1:
        return VerifyResult(
            expected_seq - 1,
            expected_seq,
            f"{written - expected_seq + 1} entries from {expected_seq} on are missing",
        )
    return VerifyResult(expected_seq - 1)


def count(conn: Connection) -> int:
    return int(
        conn.execute(select(counter.c.value).where(counter.c.name == "audit_seq")).scalar_one()
    )


# ---- reading, for people (the audit log page)

MAX_LOG_PAGE = 200


@dataclass(frozen=True)
class LogFilter:
    """What a reader of the log narrows it to; None: any. Times are aware datetimes."""

    actor: str | None = None  # as written: "user:anna", "cli:root", "system:crm"
    action: str | None = None  # "golden.merged", ...
    subject_type: str | None = None  # "golden", "quarantine", "load", ...
    subject_id: str | None = None
    since: datetime | None = None  # at or after
    until: datetime | None = None  # before


@dataclass(frozen=True)
class LogPage:
    """Entries newest first; `older` is the `before` that reads the next page, None
    when this one reaches the oldest entry that matches."""

    items: list[dict[str, Any]]
    older: int | None


def entries(
    conn: Connection,
    actor: Actor,
    where: LogFilter,
    *,
    before: int | None = None,
    limit: int = 50,
) -> LogPage:
    """Entries matching `where`, newest first, with sequence numbers under `before`:
    keyset pages on the sequence number (a range of its primary key), never an
    offset. Raises NotAllowed without audit:read."""
    require(actor, Permission.AUDIT_READ)
    if not 1 <= limit <= MAX_LOG_PAGE:
        raise InputRejected(f"limit must be between 1 and {MAX_LOG_PAGE}")
    if where.since and where.until and where.since >= where.until:
        raise InputRejected("the time range is empty: its start is not before its end")
    query = select(audit_log).order_by(desc(audit_log.c.seq)).limit(limit + 1)
    if before is not None:
        query = query.where(audit_log.c.seq < before)
    for column, value in (
        (audit_log.c.actor, where.actor),
        (audit_log.c.action, where.action),
        (audit_log.c.subject_type, where.subject_type),
        (audit_log.c.subject_id, where.subject_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(audit_log.c.at >= where.since)
    if where.until is not None:
        query = query.where(audit_log.c.at < where.until)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    older = int(rows[limit - 1]["seq"]) if len(rows) > limit else None
    return LogPage(rows[:limit], older)


def check_chain(
    conn: Connection, actor: Actor, progress: Callable[[int], None] | None = None
) -> VerifyResult:
    """`verify` for a reader of the log: raises NotAllowed without audit:read."""
    require(actor, Permission.AUDIT_READ)
    return verify(conn, progress)
