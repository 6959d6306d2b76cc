"""The reads behind the operator's pages on a store of realistic size: the health page's
bucketed history (a day of records received, matched and delivered) and the audit log
(its pages, filters and a full verify).

    .venv/bin/python benchmarks/operator_pages.py [--records 1000000] [--audit 100000]
        [--postgres postgresql://127.0.0.1/test]

Rows are written straight into the tables (spread evenly over the last 24 hours), so
the figures measure the reads, not intake. Prints seconds per read, best of three."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.pipeline import fresh_store
from sqlalchemy import Connection, Engine, insert

from accord.govern import audit
from accord.govern.audit import AuditAction, AuditEvent
from accord.govern.permissions import cli_actor
from accord.runtime.health import HISTORY_PERCENTILE, WINDOWS
from accord.store import health
from accord.store.dialect import insert_rows
from accord.store.engine import writing
from accord.store.tables import (
    golden_change,
    load,
    match_wait,
    quarantine,
    source_record,
    sync_delivery,
    work_item,
)
from accord.store.types import utcnow

BATCH = 50_000


def fill(engine: Engine, records: int, audit_entries: int) -> None:
    now = utcnow()
    day = timedelta(days=1).total_seconds()

    def moment(i: int, count: int) -> Any:
        return now - timedelta(seconds=day * (count - i) / count)

    with writing(engine) as conn:
        conn.execute(
            insert(load).values(
                id=1,
                system="crm",
                channel="file",
                source_name="bench",
                mapping_version="crm@x",
                project_digest="x",
                status="done",
                counts={},
                actor="bench",
                started_at=now,
            )
        )
    for start in range(0, records, BATCH):
        span = range(start, min(start + BATCH, records))
        with writing(engine) as conn:
            insert_rows(
                conn,
                source_record,
                [
                    {
                        "id": i + 1,
                        "load_id": 1,
                        "system": "crm",
                        "source_id": f"S{i}",
                        "version": 1,
                        "content_hash": "h",
                        "payload": {},
                        "received_at": moment(i, records),
                        "hlc": None,
                    }
                    for i in span
                ],
            )
            insert_rows(
                conn,
                match_wait,
                [
                    {
                        "id": i + 1,
                        "system": "crm",
                        "matched_at": moment(i, records),
                        "seconds": float(i % 600),
                    }
                    for i in span
                ],
            )
            half = [i for i in span if i % 2 == 0]
            insert_rows(
                conn,
                golden_change,
                [
                    {
                        "id": i + 1,
                        "golden_id": f"C{i}",
                        "change": "updated",
                        "data": None,
                        "sources": None,
                        "fields": None,
                        "merged_into": None,
                        "target": None,
                        "changed_at": moment(i, records),
                    }
                    for i in half
                ],
            )
            insert_rows(
                conn,
                sync_delivery,
                [
                    {
                        "target": "billing",
                        "change_id": i + 1,
                        "golden_id": f"C{i}",
                        "state": "dead" if i % 100 == 0 else "sent",
                        "attempts": 1 + (i % 7 == 0),
                        "due_at": moment(i, records),
                        "last_status": 200,
                        "last_error": None,
                        "outcome": None,
                        "created_at": moment(i, records),
                        "finished_at": moment(i, records) + timedelta(seconds=i % 30),
                    }
                    for i in half
                ],
            )
            insert_rows(
                conn,
                quarantine,
                [
                    {
                        "id": i + 1,
                        "load_id": 1,
                        "system": "crm",
                        "source_id": f"S{i}",
                        "location": "bench",
                        "raw": "x",
                        "reasons": [],
                        "content_hash": "h",
                        "status": "open",
                        "created_at": moment(i, records),
                        "fields": None,
                        "correction": None,
                        "corrected_by": None,
                        "corrected_at": None,
                        "replay_load_id": None,
                        "note": None,
                        "closed_by": None,
                        "closed_at": None,
                    }
                    for i in span
                    if i % 100 == 0
                ],
            )
            insert_rows(
                conn,
                work_item,
                [
                    {
                        "id": i + 1,
                        "system": "crm",
                        "source_id": f"S{i}",
                        "entity_type": "customer",
                        "token": "t",
                        "enqueued_at": moment(i, records),
                        "lease_owner": None,
                        "lease_until": None,
                        "attempts": 0,
                        "last_error": None,
                        "covered_token": None,
                    }
                    for i in span
                    if i % 100 == 0
                ],
            )
    actions = list(AuditAction)
    for start in range(0, audit_entries, 1000):
        with writing(engine) as conn:
            audit.record(
                conn,
                "cli:bench",
                [
                    AuditEvent(
                        actions[i % len(actions)], "golden", f"C{i:07d}", {"n": i, "why": "x"}
                    )
                    for i in range(start, min(start + 1000, audit_entries))
                ],
            )


def best(run: Callable[[], Any]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def _history_reads(
    conn: Connection, edges: tuple[datetime, ...], moments: list[datetime]
) -> dict[str, Callable[[], Any]]:
    return {
        "stored_over": lambda: health.stored_over(conn, "crm", edges),
        "quarantined_over": lambda: health.quarantined_over(conn, "crm", edges),
        "waits_over": lambda: health.waits_over(conn, edges, HISTORY_PERCENTILE),
        "backlog_at": lambda: health.backlog_at(conn, moments),
        "finished_over": lambda: health.finished_over(conn, "billing", edges),
        "delivery_latency_over": lambda: health.delivery_latency_over(
            conn, "billing", edges, HISTORY_PERCENTILE
        ),
        "deliveries_waiting_at": lambda: health.deliveries_waiting_at(conn, "billing", moments),
    }


def measure(engine: Engine) -> dict[str, float]:
    found: dict[str, float] = {}
    reader = cli_actor()
    with engine.connect() as conn:
        for name, window in WINDOWS.items():
            edges = window.edges(utcnow())
            moments = [*edges[1:-1], utcnow()]
            reads = _history_reads(conn, edges, moments)
            for read, run in reads.items():
                found[f"health {name} {read}"] = best(run)
            found[f"health {name} all reads"] = sum(
                v for k, v in found.items() if k.startswith(f"health {name} ")
            )
        newest = audit.count(conn)
        filters = {
            "newest page": audit.LogFilter(),
            "an old page": audit.LogFilter(),
            "by action (1 in 25)": audit.LogFilter(action=str(AuditAction.GOLDEN_MERGED)),
            "by subject id (one entry)": audit.LogFilter(
                subject_type="golden", subject_id="C0000042"
            ),
            "by actor, none match": audit.LogFilter(actor="user:nobody"),
        }
        for name, where in filters.items():
            before = 100 if name == "an old page" else None
            found[f"audit {name}"] = best(
                lambda where=where, before=before: audit.entries(
                    conn, reader, where, before=before, limit=50
                )
            )
        started = time.perf_counter()
        result = audit.check_chain(conn, reader)
        found[f"audit verify {newest:,} entries"] = time.perf_counter() - started
        if not result.ok:
            raise SystemExit(f"the chain does not verify: {result}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=100_000)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        engine = fresh_store(args.postgres, "accord_bench_ops", Path(scratch) / "ops.sqlite3")
        started = time.perf_counter()
        fill(engine, args.records, args.audit)
        print(f"filled in {time.perf_counter() - started:.1f} s", flush=True)
        found = measure(engine)
        engine.dispose()
    print(json.dumps({k: round(v, 4) for k, v in found.items()}, indent=2))


if __name__ == "__main__":
    main()
