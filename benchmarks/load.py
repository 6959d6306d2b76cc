"""Benchmark: bulk file load of the demo company's four systems on SQLite, by stage,
against the raw SQLite insert rate of the same rows (the ceiling to approach).

    .venv/bin/python benchmarks/load.py [--records 1000000] [--seed 7] [--data DIR]
                                        [--workers N]

Stages, each in a process of its own so that each has its own peak memory:

- parse: read every file (CSV and gzipped JSON Lines) into source records, with the
  readers' checks (encoding, size, NUL);
- map: parse, then standardize, validate and map every record (the mapping's work,
  without the store);
- load: `accord load` of the four files into a new store (parse, map, store, queue for
  matching), the figure the target is about; with `--workers N`, N processes map
  beside the one storing (ACCORD_LOAD_WORKERS), and only this stage runs;
- raw insert: the rows that load stored (source records, canonical records, heads and
  work queue rows), inserted again into an empty store of the same schema with plain
  `sqlite3` `executemany`, 1,000 records per transaction, ids given: what SQLite itself
  costs for the same bytes, with none of Accord's work.

Writes benchmarks/results/load-sqlite-<records>.json and prints a summary. The data comes
from the demo generator (same seed, same data): `--records` source records need about
`records / 2.72` customers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accord.config.loader import load_project
from accord.demo.generator import generate
from accord.demo.run import inputs, write_project
from accord.digest import digest
from accord.intake.load import load_file
from accord.intake.mapping import RecordMapper
from accord.intake.readers import SourceFile
from accord.runtime.heap import freeze_once
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import RESULTS, _commit, machine

RECORDS_PER_CUSTOMER = 2.72  # the demo generator's four systems, on average
STAGES = ("parse", "map", "load")


def stage(name: str, root: Path, data: Path) -> dict[str, Any]:
    """Run one stage over the four files; returns its counts, time and peak memory (of
    this process and, for a load, of the processes mapping for it)."""
    project = load_project(root)
    freeze_once()  # as a load does (`load_file`): what is held by now, out of the collector's sight
    engine = None
    if name == "load":
        engine = make_engine(f"sqlite:///{root / 'bench.sqlite3'}")
        upgrade(engine)
    systems: dict[str, Any] = {}
    for system, path in inputs(data):
        mapping = project.mapping(system)
        mapper = RecordMapper(mapping, project.config.systems[system])
        started = time.perf_counter()
        read = 0
        if engine is not None:
            report = load_file(engine, project, system, path, actor="bench")
            read = report.read
        else:
            for raw in SourceFile(path, mapping.config.format, mapper.source_columns()):
                read += 1
                if name == "map" and raw.fields is not None:
                    mapper.map(raw.fields)
                    digest(raw.fields)
        seconds = time.perf_counter() - started
        systems[system] = {
            "records": read,
            "seconds": round(seconds, 2),
            "records_per_second": round(read / seconds),
        }
    records = sum(s["records"] for s in systems.values())
    seconds = sum(s["seconds"] for s in systems.values())
    return {
        "records": records,
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        # the largest of the mapping processes (each started for one file and gone)
        "peak_rss_mib_mapping_process": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ),
        "systems": systems,
    }


TABLES = {
    "source_record": (
        "id",
        "load_id",
        "system",
        "source_id",
        "version",
        "content_hash",
        "payload",
        "received_at",
    ),
    "canonical_record": (
        "id",
        "source_record_id",
        "system",
        "source_id",
        "entity_type",
        "mapping_version",
        "data",
        "issues",
        "created_at",
    ),
    "record_head": (
        "system",
        "source_id",
        "version",
        "content_hash",
        "source_record_id",
        "canonical_record_id",
        "updated_at",
    ),
    "work_item": (
        "id",
        "system",
        "source_id",
        "entity_type",
        "token",
        "enqueued_at",
        "attempts",
    ),
}


def raw_insert(loaded: Path, empty: Path, batch: int = 1000) -> dict[str, Any]:
    """Insert the rows of `loaded` into `empty` (same schema, no records) with plain
    sqlite3, the way the store's connection is set up (WAL, synchronous=NORMAL, foreign
    keys on), `batch` records per transaction; only the inserts are timed."""
    source = sqlite3.connect(loaded)
    rows = {
        table: source.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid").fetchall()
        for table, columns in TABLES.items()
    }
    loads = source.execute("SELECT * FROM load").fetchall()
    source.close()
    target = sqlite3.connect(empty, isolation_level=None)
    target.execute("PRAGMA journal_mode=WAL")
    target.execute("PRAGMA synchronous=NORMAL")
    target.execute("PRAGMA foreign_keys=ON")
    marks = ", ".join("?" * len(loads[0]))
    target.executemany(f"INSERT INTO load VALUES ({marks})", loads)
    records = len(rows["source_record"])
    statements = {
        table: f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
        for table, columns in TABLES.items()
    }
    started = time.perf_counter()
    for start in range(0, records, batch):
        target.execute("BEGIN IMMEDIATE")
        for table, statement in statements.items():
            target.executemany(statement, rows[table][start : start + batch])
        target.execute("COMMIT")
    seconds = time.perf_counter() - started
    target.close()
    return {
        "records": records,
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds),
    }


def run(records: int, seed: int, data: Path | None, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "project"
        write_project(root)
        generate_seconds = None
        if data is None or not (data / "crm.csv").exists():
            data = data or Path(scratch) / "data"
            customers = math.ceil(records / RECORDS_PER_CUSTOMER)
            print(f"generating {customers:,} customers into {data}", flush=True)
            started = time.perf_counter()
            generate(data, seed=seed, customers=customers)
            generate_seconds = round(time.perf_counter() - started, 2)
        stages: dict[str, Any] = {}
        # by stage in one process; with mapping processes, the load alone (its stages
        # overlap, so they cannot be told apart by subtraction)
        for name in STAGES if not workers else ("load",):
            print(f"stage {name}", flush=True)
            command = [sys.executable, __file__, "--stage", name, "--root", str(root)]
            out = subprocess.run(
                [*command, "--data", str(data)],
                env=os.environ | {"ACCORD_LOAD_WORKERS": str(workers)},
                capture_output=True,
                text=True,
                check=True,
            )
            stages[name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(stages[name]), flush=True)
        if workers:
            return {
                "benchmark": "load",
                "backend": "sqlite",
                "seed": seed,
                "source_records": stages["load"]["records"],
                "mapping_processes": workers,
                "stages": stages,
                "load_records_per_second": stages["load"]["records_per_second"],
                "load_peak_rss_mib": stages["load"]["peak_rss_mib"],
                "mapping_process_peak_rss_mib": stages["load"]["peak_rss_mib_mapping_process"],
                "machine": machine(),
                "commit": _commit(),
                "date": time.strftime("%Y-%m-%d"),
            }
        empty = Path(scratch) / "empty.sqlite3"
        shutil.copy(root / "bench.sqlite3", empty)
        with sqlite3.connect(empty) as conn:
            for table in (*reversed(TABLES), "load"):
                conn.execute(f"DELETE FROM {table}")
        conn.close()
        print("stage raw insert", flush=True)
        stages["raw_insert"] = raw_insert(root / "bench.sqlite3", empty)
    parse, mapped, load = (stages[name]["seconds"] for name in STAGES)
    records_read = stages["load"]["records"]
    per_stage = {
        "parse": parse,
        "standardize_validate_map": round(mapped - parse, 2),
        "store_and_queue": round(load - mapped, 2),
    }
    return {
        "benchmark": "load",
        "backend": "sqlite",
        "seed": seed,
        "source_records": records_read,
        "mapping_processes": workers,
        "generate_seconds": generate_seconds,
        "stages": stages,
        "seconds_by_stage": per_stage,
        "records_per_second_by_stage": {
            k: round(records_read / v) if v > 0 else None for k, v in per_stage.items()
        },
        "load_records_per_second": stages["load"]["records_per_second"],
        "raw_insert_records_per_second": stages["raw_insert"]["records_per_second"],
        "load_peak_rss_mib": stages["load"]["peak_rss_mib"],
        "machine": machine(),
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, help="a folder of generated demo data to reuse")
    parser.add_argument("--workers", type=int, default=0, help="mapping processes in load")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.root, args.data)))
        return
    result = run(args.records, args.seed, args.data, args.workers)
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-{args.workers}-mapping-processes" if args.workers else ""
    out = RESULTS / f"load-sqlite-{args.records}{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "stages"}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
