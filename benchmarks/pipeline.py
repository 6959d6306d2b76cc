"""Benchmark: the demo pipeline end to end (generate, load four systems, resolve) and the
first-cut matcher's quality against the generator's ground truth.

    .venv/bin/python benchmarks/pipeline.py [--customers 5000] [--seed 7] [--postgres URL]

Writes benchmarks/results/pipeline-<backend>-<customers>.json and prints a summary.
The data comes from the demo generator (same seed, same data), so runs are reproducible.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from accord.demo.generator import generate
from accord.demo.run import inputs, score, write_project
from accord.golden.resolve import resolve
from accord.intake.load import load_file
from accord.settings import Settings
from accord.store.engine import make_engine
from accord.store.migrate import upgrade
from accord.workspace import Workspace

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
        "calibration": calibration(),
    }


CALIBRATION_LOOPS = 3_000_000
CALIBRATION_ROWS = 100_000


def calibration() -> dict[str, Any]:
    """Two fixed workloads, timed, so that figures from machines of one kind (which differ
    by 1.5 to 3 times: benchmarks/README.md) can be told apart from changes of code: a
    pure-Python loop (ns an iteration, best of three) and plain `sqlite3` inserts into a
    new file in WAL mode (rows a second, 1,000 a transaction). Also the load average
    when measured: a busy machine reads slower on both."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(CALIBRATION_LOOPS):
            total += i
        best = min(best, time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as scratch:
        db = sqlite3.connect(Path(scratch) / "calibration.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, key TEXT UNIQUE, body TEXT)")
        body = "x" * 200
        started = time.perf_counter()
        for start in range(0, CALIBRATION_ROWS, 1000):
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO t VALUES (?, ?, ?)",
                ((i, f"key-{i:09d}", body) for i in range(start, start + 1000)),
            )
            db.execute("COMMIT")
        inserts = CALIBRATION_ROWS / (time.perf_counter() - started)
        db.close()
    return {
        "python_loop_ns": round(best / CALIBRATION_LOOPS * 1e9, 1),
        "sqlite_inserts_per_second": round(inserts),
        "load_average": round(os.getloadavg()[0], 2),
    }


class StageMemory:
    """The process's peak resident memory in each stage of a resolve, and that of the
    process with its children (the resolve's process beside it, `golden/parallel.py`),
    sampled four times a second on a thread of its own (`stage` is the resolve's
    progress callback)."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self.with_children: dict[str, int] = {}
        self.current = "before"
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def stage(self, name: str) -> None:
        self.current = name

    def stop(self) -> None:
        self.running = False
        self.thread.join()

    def _sample(self) -> None:
        while self.running:
            mib = _rss_mib()
            self.peaks[self.current] = max(self.peaks.get(self.current, 0), mib)
            mib += _children_rss_mib()
            self.with_children[self.current] = max(self.with_children.get(self.current, 0), mib)
            time.sleep(0.25)


def _rss_mib(status: Path = Path("/proc/self/status")) -> int:
    try:
        lines = status.read_text().splitlines()
    except OSError:  # a child that has just ended
        return 0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def _children_rss_mib() -> int:
    """The resident memory of this process's children, together. A child not yet
    running its own program (forked, its `exec` to come: it still has this process's
    command line) is left out: until then it shows this process's pages as its own."""
    own = Path("/proc/self/cmdline").read_bytes()
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == own:
                    continue
            except OSError:
                continue
            total += _rss_mib(Path(f"/proc/{pid}/status"))
    return total


def fresh_schema(postgres_url: str, schema: str) -> str:
    """A URL for `postgres_url` whose search path is `schema`, dropped and made anew."""
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    sep = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{sep}options=-csearch_path%3D{schema}"


def fresh_store(postgres_url: str | None, schema: str, sqlite_path: Path) -> Engine:
    """A migrated, empty store: in `schema` (made anew) of `postgres_url`, or else the
    SQLite file `sqlite_path`."""
    url = fresh_schema(postgres_url, schema) if postgres_url else f"sqlite:///{sqlite_path}"
    engine = make_engine(url)
    upgrade(engine)
    return engine


def run(customers: int, seed: int, postgres_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "project"
        write_project(root)
        data = root / "data"
        started = time.perf_counter()
        generate(data, seed=seed, customers=customers)
        generate_seconds = time.perf_counter() - started

        engine = fresh_store(postgres_url, "accord_bench", root / "bench.sqlite3")
        workspace = Workspace(root, engine, Settings())

        loads = {}
        for system, path in inputs(data):
            report = load_file(engine, workspace.project, system, path, actor="bench")
            loads[system] = {
                "read": report.read,
                "stored": report.new,
                "quarantined": report.quarantined,
                "flagged": report.flagged,
                "seconds": round(report.seconds, 3),
                "records_per_second": round(report.read / report.seconds),
            }
        memory = StageMemory()
        resolved = resolve(engine, workspace.project, actor="bench", progress=memory.stage)
        memory.stage("rerun")
        again_started = time.perf_counter()
        rerun = resolve(engine, workspace.project, actor="bench")
        rerun_seconds = time.perf_counter() - again_started
        memory.stop()
        scores = score(resolved.assignment, data)
        engine.dispose()

    records = sum(v["read"] for v in loads.values())
    load_seconds = sum(v["seconds"] for v in loads.values())
    return {
        "benchmark": "pipeline",
        "backend": "postgresql" if postgres_url else "sqlite",
        "customers": customers,
        "seed": seed,
        "source_records": records,
        "generate_seconds": round(generate_seconds, 2),
        "load": loads,
        "load_seconds": round(load_seconds, 2),
        "load_records_per_second": round(records / load_seconds),
        "resolve": {
            "records": resolved.records,
            "golden_records": resolved.golden_records,
            "links": resolved.links,
            "links_by_rule": resolved.links_by_rule,
            "pairs_compared": resolved.pairs_compared,
            "oversized_blocks": len(resolved.oversized_blocks),
            "seconds_by_stage": {k: round(v, 3) for k, v in resolved.seconds.items()},
            "seconds": round(sum(resolved.seconds.values()), 2),
            "rerun_seconds_nothing_changed": round(rerun_seconds, 2),
            "rerun_seconds_by_stage": {k: round(v, 3) for k, v in rerun.seconds.items()},
            "peak_rss_mib_by_stage": memory.peaks,
            "peak_rss_with_children_mib_by_stage": memory.with_children,
            "rerun_writes": rerun.created + rerun.updated + rerun.merged + rerun.retired,
        },
        "quality": {
            "pairwise_precision": round(scores.precision, 4),
            "pairwise_recall": round(scores.recall, 4),
            "pairwise_f1": round(scores.f1, 4),
            "true_pairs": scores.true_pairs,
            "predicted_pairs": scores.predicted_pairs,
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": machine(),
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", help="a postgresql+psycopg:// URL to run on instead")
    args = parser.parse_args()
    result = run(args.customers, args.seed, args.postgres)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"pipeline-{result['backend']}-{args.customers}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
