"""Loads as units: list them, show one, and withdraw one.

Withdrawing a load (a file, a push batch, a poll, a replay) takes back what it stored,
as one transaction, without deleting anything: its source record versions stay stored,
but those that are still current stop being so. Each record's head goes back to the
version before (the newest one stored by a load that is not withdrawn), or, when the load
created the record, the record leaves the current records. A version that a later load
has superseded already is left alone: the head stays on the later version, and the
report says so. The load's open quarantine entries are discarded, and the load is marked
`withdrawn` (a second withdrawal is refused).

The golden layer notices at the next resolve: a reverted record's current canonical
record differs from the one its match index entry holds (`records.changed_since_matched`),
and a removed record has an index entry but no current record
(`records.removed_since_matched`); a full resolve drops it from its customer, too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from accord.errors import Conflict, InputRejected, NotFound
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.govern.permissions import Actor, Permission, require
from accord.linked import is_linked_version
from accord.paging import Page, check_window
from accord.store import quarantine as store
from accord.store.engine import writing

EXAMPLES = 20  # records named in a withdrawal's report, of each kind


def loads(
    conn: Connection,
    actor: Actor,
    *,
    system: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Loads, newest first."""
    require(actor, Permission.RECORDS_READ)
    check_window(limit, offset)
    items, total = store.list_loads(conn, system=system, status=status, limit=limit, offset=offset)
    return Page(items, total, limit, offset)


def load(conn: Connection, actor: Actor, load_id: int) -> dict[str, Any]:
    """One load, with its quarantine entries counted by status."""
    require(actor, Permission.RECORDS_READ)
    found = store.get_load(conn, load_id)
    if found is None:
        raise NotFound(f"no load {load_id}", hint="`accord loads list` shows the loads")
    return found | {"quarantine": store.quarantine_counts(conn, load_id)}


@dataclass
class WithdrawReport:
    load_id: int
    system: str
    versions: int = 0  # source record versions the load stored
    reverted: int = 0  # heads moved back to the version before
    removed: int = 0  # records the load created: no longer current
    superseded: int = 0  # a later load's version is current: left as it is
    not_current: int = 0  # already not current for another reason (a withdrawn later load)
    discarded: int = 0  # the load's open quarantine entries
    examples: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _note(self, kind: str, key: tuple[str, str]) -> None:
        named = self.examples.setdefault(kind, [])
        if len(named) < EXAMPLES:
            named.append(f"{key[0]}:{key[1]}")


def withdraw(engine: Engine, load_id: int, *, actor: Actor, force: bool = False) -> WithdrawReport:
    """Withdraw one load as a unit (see the module's text). A load still `running` is
    refused unless `force` (one left running by a process that died)."""
    require(actor, Permission.LOADS_WITHDRAW)
    with writing(engine) as conn:
        found = store.get_load(conn, load_id, lock=True)
        if found is None:
            raise NotFound(f"no load {load_id}", hint="`accord loads list` shows the loads")
        if found["status"] == "withdrawn":
            raise Conflict(
                f"load {load_id} is withdrawn already",
                hint=f"nothing to do; `accord loads show DIR {load_id}` says what it reverted",
            )
        if is_linked_version(found["mapping_version"], found["system"]):
            raise InputRejected(
                f"load {load_id} stored linked records, which keep no versions to go back to",
                hint="load a corrected file again: each record is replaced by what it sends",
            )
        if found["status"] == "running" and not force:
            raise InputRejected(
                f"load {load_id} is still running",
                hint="wait for it to finish; if its process died, withdraw it with --force",
            )
        report = WithdrawReport(load_id, found["system"])
        for chunk in store.versions_of_load(conn, load_id):
            _withdraw_chunk(conn, load_id, chunk, report)
        open_entries = store.open_of_load(conn, load_id)
        note = f"load {load_id} withdrawn"
        store.close(conn, open_entries, status="discarded", by=actor.label, note=note)
        report.discarded = len(open_entries)
        counts = dict(found["counts"]) | {"withdrawal": report.as_dict()}
        store.mark_withdrawn(conn, load_id, counts)
        summary = {k: v for k, v in report.as_dict().items() if k != "load_id"}
        events = [AuditEvent(AuditAction.LOAD_WITHDRAWN, "load", str(load_id), summary)]
        events += [
            AuditEvent(
                AuditAction.QUARANTINE_DISCARDED,
                "quarantine",
                str(entry_id),
                {"system": found["system"], "load_id": load_id, "reason": note},
            )
            for entry_id in open_entries
        ]
        record(conn, actor.label, events)
    return report


def _withdraw_chunk(
    conn: Connection, load_id: int, chunk: list[store.Version], report: WithdrawReport
) -> None:
    keys = sorted({(v.system, v.source_id) for v in chunk})
    heads = store.head_versions(conn, keys)
    standing = store.standing_versions(conn, keys, besides=load_id)
    moves: list[store.Version] = []
    drops: list[tuple[str, str]] = []
    withdrawn: list[store.Version] = []  # those whose head moves back or goes
    for version in chunk:
        key = (version.system, version.source_id)
        report.versions += 1
        head = heads.get(key)
        if head is None or head[0] != version.id:
            if head is not None and head[1] > version.version:
                report.superseded += 1
                report._note("superseded", key)
            else:
                report.not_current += 1
            continue
        earlier = [v for v in standing.get(key, []) if v.version < version.version]
        withdrawn.append(version)
        if earlier:
            moves.append(earlier[-1])
            report.reverted += 1
            report._note("reverted", key)
        else:
            drops.append(key)
            report.removed += 1
            report._note("removed", key)
    canonical = store.latest_canonical(conn, [v.id for v in moves])
    store.point_heads(conn, [(v, canonical[v.id]) for v in moves])
    store.drop_heads(conn, drops)
    store.queue_for_matching(conn, withdrawn)
