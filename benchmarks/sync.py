"""Benchmark: golden changes delivered to a local HTTP peer (issue 5).

    .venv/bin/python benchmarks/sync.py [--customers 20000] [--rate 1000] [--seconds 20]
                                        [--batch 200] [--postgres URL]

Starts the demo's billing peer (its own process and SQLite store) and measures, into a
fresh Accord store:

1. *backlog, creates*: `--customers` golden changes of new customers written to the
   outbox at once (as a first full resolve would), then delivered: each a create in the
   peer (`If-None-Match: *`), in batches of `--batch` writes a request;
2. *backlog, updates*: a change of every customer's phone, delivered as conditional
   updates (`If-Match`);
3. *steady load*: changes written at `--rate` a second for `--seconds` while the
   dispatcher runs; the latency of each, from the golden change to its delivery being
   recorded as sent (p50, p95, p99).

The outbox is filled directly (`store.outbox.record`), not by resolving, so what is
measured is delivery. First, the peer alone (`--peer-only` runs just that): the same
creates and updates sent to a fresh peer of their own as prepared `:batch` requests, one
at a time, with no Accord in between: what the peer takes at most, so that what is left
of a delivery's time is seen to be Accord's. Writes
benchmarks/results/sync-<backend>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import select

from accord.config.loader import load_project
from accord.demo.peers import PeerProcess
from accord.demo.run import write_project
from accord.store import outbox
from accord.store.engine import writing
from accord.store.tables import golden_change, sync_delivery
from accord.sync.dispatch import RoundReport, run

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import RESULTS, _commit, fresh_store, machine

TOKEN = "benchmark-token"  # noqa: S105
DELIVER = """
    deliver:
      http: {{url: "{url}", resource: accounts, token_env: BENCH_BILLING_TOKEN, batch: {batch}}}
      fields: {{first_name: given_name, last_name: family_name, phone: phone, town: city}}
      batch_size: 1000
"""


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def _change(i: int, phone: str, *, new: bool = False) -> dict[str, Any]:
    """A golden change of customer `i`: new (all fields), or a change of its phone."""
    data = {"given_name": f"Given{i}", "family_name": f"Family{i}", "phone": phone, "city": "Köln"}
    return {
        "golden_id": f"C{i:07d}",
        "change": "created" if new else "updated",
        "data": data,
        "sources": dict.fromkeys(data, "crm"),
        "fields": None if new else ["phone"],
    }


def _fill(engine: Any, count: int, suffix: str, *, new: bool) -> None:
    for start in range(0, count, 5_000):
        with writing(engine) as conn:
            outbox.record(
                conn,
                [
                    _change(i, f"+4930{i:07d}{suffix}", new=new)
                    for i in range(start, min(count, start + 5_000))
                ],
            )


def _peer_alone(folder: Path, customers: int, batch: int) -> dict[str, int]:
    """Writes a second the peer takes with nothing but a client in front of it: the
    creates, then the updates (If-Match on version 1), `batch` a request, each request's
    body made before the clock starts and every answer read and checked."""
    rates = {}
    with PeerProcess("billing", folder / "peer-alone.sqlite3", token=TOKEN) as peer:
        client = httpx2.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        url = f"{peer.url}/{peer.resource}:batch"
        for name, new in (("creates", True), ("updates", False)):
            bodies = []
            for start in range(0, customers, batch):
                operations = []
                for i in range(start, min(customers, start + batch)):
                    change = _change(i, f"+4930{i:07d}{0 if new else 1}", new=new)["data"]
                    operation = {
                        "op": "put",
                        "id": f"C{i:07d}",
                        "key": f"bench:{name}:{i}",
                        "fields": {
                            "first_name": change["given_name"],
                            "last_name": change["family_name"],
                            "phone": change["phone"],
                            "town": change["city"],
                        },
                    }
                    operation["if_none_match" if new else "if_match"] = "*" if new else '"1"'
                    operations.append(operation)
                bodies.append(json.dumps({"operations": operations}).encode())
            started = time.perf_counter()
            for body in bodies:
                response = client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
                answers = response.json()["results"]
                if response.status_code != 200 or any(a["status"] >= 300 for a in answers):
                    raise SystemExit(f"the peer refused a write: {response.text[:300]}")
            rates[f"{name}_per_second"] = round(customers / (time.perf_counter() - started))
        client.close()
    print(f"peer alone: {rates}")
    return rates


def _deliver(engine: Any, project: Any) -> tuple[float, float, RoundReport]:
    """Deliver until nothing is due: the seconds it took, the CPU seconds this process
    (Accord: the peer is a process of its own) spent, and the totals."""
    started, cpu = time.perf_counter(), time.process_time()
    totals = run(engine, project, ["billing"], stop=threading.Event(), until_idle=True)
    return time.perf_counter() - started, time.process_time() - cpu, totals["billing"]


def _latencies(engine: Any, after: int) -> list[float]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(golden_change.c.changed_at, sync_delivery.c.finished_at)
            .join(sync_delivery, sync_delivery.c.change_id == golden_change.c.id)
            .where(golden_change.c.id > after, sync_delivery.c.state == "sent")
        ).all()
    return [(f - c).total_seconds() * 1000 for c, f in rows]


def _steady(engine: Any, project: Any, args: argparse.Namespace) -> tuple[int, list[float]]:
    """Changes written at a steady rate while the dispatcher runs; each one's latency."""
    with engine.connect() as conn:
        before = outbox.last_id(conn)
    stop = threading.Event()
    dispatcher = threading.Thread(
        target=run,
        args=(engine, project, ["billing"]),
        kwargs={"stop": stop, "idle_wait": 0.05},
    )
    dispatcher.start()
    written = 0
    started = time.perf_counter()
    tick = 0.1
    per_tick = max(1, int(args.rate * tick))
    while time.perf_counter() - started < args.seconds:
        due = started + (written / args.rate)
        time.sleep(max(0.0, due - time.perf_counter()))
        with writing(engine) as conn:
            outbox.record(
                conn,
                [
                    _change(i % args.customers, f"+4930{i:07d}{2 + written % 7}")
                    for i in range(written, written + per_tick)
                ],
            )
        written += per_tick
    time.sleep(3)
    stop.set()
    dispatcher.join()
    latencies = _latencies(engine, before)
    return written, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1_000, help="changes a second, steady phase")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200, help="writes per peer request")
    parser.add_argument("--postgres", help="a PostgreSQL URL instead of SQLite")
    parser.add_argument(
        "--peer-only", action="store_true", help="measure the peer alone, without Accord"
    )
    args = parser.parse_args()
    os.environ["BENCH_BILLING_TOKEN"] = TOKEN
    with tempfile.TemporaryDirectory() as folder:
        peer_alone = _peer_alone(Path(folder), args.customers, args.batch)
        if args.peer_only:
            return
        root = Path(folder) / "project"
        write_project(root)
        engine = fresh_store(args.postgres, "accord_bench_sync", root / "accord.sqlite3")
        with PeerProcess("billing", Path(folder) / "peer.sqlite3", token=TOKEN) as peer:
            config = root / "accord.yaml"
            text = config.read_text(encoding="utf-8")
            anchor = "    authority: [email]\n"
            block = DELIVER.format(url=peer.url, batch=args.batch).lstrip("\n")
            config.write_text(text.replace(anchor, anchor + block, 1), encoding="utf-8")
            project = load_project(root)

            _fill(engine, args.customers, "0", new=True)
            creates, creates_cpu, created = _deliver(engine, project)
            print(
                f"creates: {created.sent:,} in {creates:.1f} s = {created.sent / creates:,.0f}/s"
                f", Accord's CPU {creates_cpu / created.sent * 1e6:.0f} µs each"
            )
            _fill(engine, args.customers, "1", new=False)
            updates, updates_cpu, updated = _deliver(engine, project)
            print(
                f"updates: {updated.sent:,} in {updates:.1f} s = {updated.sent / updates:,.0f}/s"
                f", Accord's CPU {updates_cpu / updated.sent * 1e6:.0f} µs each"
            )

            written, latencies = _steady(engine, project, args)
        result = {
            "benchmark": "sync",
            "commit": _commit(),
            "machine": machine(),
            "backend": engine.dialect.name,
            "customers": args.customers,
            "batch": args.batch,
            "peer_alone": peer_alone,
            "creates_per_second": round(created.sent / creates),
            "updates_per_second": round(updated.sent / updates),
            "accord_cpu_us_per_create": round(creates_cpu / created.sent * 1e6),
            "accord_cpu_us_per_update": round(updates_cpu / updated.sent * 1e6),
            "steady": {
                "rate": args.rate,
                "seconds": args.seconds,
                "written": written,
                "delivered": len(latencies),
                "p50_ms": round(_percentile(latencies, 0.50), 1),
                "p95_ms": round(_percentile(latencies, 0.95), 1),
                "p99_ms": round(_percentile(latencies, 0.99), 1),
            },
        }
        print(json.dumps(result, indent=2))
        out = RESULTS / f"sync-{engine.dialect.name}.json"
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        engine.dispose()


if __name__ == "__main__":
    main()
