"""Benchmark and proof: 100,000 golden changes delivered through faults (issue 5).

    .venv/bin/python benchmarks/sync_faults.py [--changes 100000] [--rate 1500]
                                               [--workers 2] [--postgres URL]

Runs the fault drill of tests/sync/drill.py at full size: two `accord sync run`
processes deliver the changes to two HTTP peers (billing, service desk) and a JetStream
subject, while the peers answer 500s and 429s, hang past the client's timeout, lose
answers after committing and are SIGKILLed for a while; workers are SIGKILLed mid-round
and started again; on PostgreSQL the workers' database connections are cut. It then
counts, per target, that every change's effect arrived exactly once, in each customer's
order, and records what it took in benchmarks/results/sync-faults-<backend>.json.

Needs NATS with JetStream at 127.0.0.1:4222 (or ACCORD_TEST_NATS_URL). Exits 1 when the
count finds a problem.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.sync.drill import DrillSettings, run_drill

from accord.demo.run import write_project
from pipeline import RESULTS, _commit, fresh_store, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1_500.0, help="changes written a second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=3_600.0, help="seconds at most")
    parser.add_argument("--postgres", help="a PostgreSQL URL instead of SQLite")
    args = parser.parse_args()
    settings = DrillSettings(
        changes=args.changes, rate=args.rate, workers=args.workers, deadline=args.deadline
    )
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        write_project(root)
        engine = fresh_store(args.postgres, "accord_bench_sync_faults", root / "accord.sqlite3")
        work = Path(folder) / "work"
        work.mkdir()
        with Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ) as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(f"changes {stage}", total=total)
                bar.update(tasks[stage], completed=done, total=total)

            report = run_drill(engine, root, work, settings, progress=progress)
        engine.dispose()
    result = {
        "benchmark": "sync-faults",
        "commit": _commit(),
        "machine": machine(),
        "settings": {
            "changes": settings.changes,
            "rate": settings.rate,
            "workers": settings.workers,
            "peer_faults": settings.peer_faults,
            "kill_worker_every_s": settings.kill_worker_every,
            "peer_outage_every_s": settings.peer_outage_every,
            "peer_outage_for_s": settings.peer_outage_for,
            "drop_connections_every_s": settings.drop_connections_every,
            "lease": settings.lease,
        },
        **report.as_dict(),
        "changes_per_second": round(report.changes / report.seconds) if report.seconds else None,
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    out = RESULTS / f"sync-faults-{report.backend}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if report.problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
