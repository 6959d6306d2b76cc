"""Benchmark: received-to-golden latency under steady load, read back from integration
health (issue 5).

    .venv/bin/python benchmarks/golden_latency.py [--customers 30000] [--rates 200,1000]
                                                  [--seconds 60] [--postgres URL]

Generates the demo company, loads every system but the CRM and resolves it (so the
learned model and the match index exist and the worker matches incrementally), then
starts one matching worker as a process of its own (`accord worker run --no-intake
--no-sync`, as in production beside `accord serve`). For each rate in `--rates`, the
CRM's records are pushed in-process (`intake.push.push`, the push API's path without
HTTP: batches of a tenth of a second's records, each stored and queued in one
transaction) at that steady rate for `--seconds`, then the worker is left to match what
is left. The figures are what `accord status` and `/metrics` report: each record's wait
from its queue row's `enqueued_at` to the worker's matching transaction, recorded in
`match_wait`, as nearest-rank p50 / p95 / p99 (`store.health.waits`) over the records
of that phase. Also recorded: the backlog's peak, how fast the worker matched, and the
load average (the machine is shared). Writes benchmarks/results/golden-latency-<backend>.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from accord.config.loader import load_project
from accord.demo.generator import generate
from accord.demo.run import inputs, write_project
from accord.golden.resolve import resolve
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.intake.push import push
from accord.runtime.health import PERCENTILES
from accord.store import queue
from accord.store.health import waits
from accord.store.types import utcnow

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import RESULTS, _commit, fresh_store, machine

PUSHED = "crm"
TICK = 0.1  # seconds between batches: a batch holds a tick's records


def _worker(root: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    accord = Path(sys.executable).parent / "accord"
    env = dict(os.environ, ACCORD_DATABASE_URL=url)
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(accord), "worker", "run", str(root), "--no-intake", "--no-sync"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _backlog(engine: Any) -> int:
    with engine.connect() as conn:
        return queue.backlog(conn)


def _phase(
    engine: Any, project: Any, rows: list[dict[str, str]], rate: int, seconds: int
) -> dict[str, Any]:
    """Push `rows` at `rate` a second for `seconds` (or until they run out), then wait
    until the worker has matched them; the phase's waits as health reads them."""
    actor = Actor("system", PUSHED, Role.SYSTEM)
    per_batch = max(1, round(rate * TICK))
    since = utcnow()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    pushed, peak, late = 0, 0, 0.0
    while pushed < len(rows) and time.perf_counter() - started < seconds:
        due = started + pushed / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        else:
            late = max(late, -wait)
        body = orjson.dumps({"records": rows[pushed : pushed + per_batch]})
        push(
            engine,
            project,
            PUSHED,
            body,
            content_encoding=None,
            idempotency_key=None,
            actor=actor,
        )
        pushed += len(rows[pushed : pushed + per_batch])
        if pushed % (per_batch * 10) == 0:
            peak = max(peak, _backlog(engine))
    pushing = time.perf_counter() - started
    load_pushing = os.getloadavg()[0]
    left = _backlog(engine)
    peak = max(peak, left)
    while (waiting := _backlog(engine)) > 0:
        if time.perf_counter() - started > seconds + 900:
            raise SystemExit(f"the worker left {waiting:,} records after 15 minutes")
        time.sleep(0.2)
    drained = time.perf_counter() - started
    with engine.connect() as conn:
        found = waits(conn, since, [*PERCENTILES, 100]).get(PUSHED)
    if found is None:
        raise SystemExit("nothing was matched")
    return {
        "rate": rate,
        "seconds": seconds,
        "pushed": pushed,
        "pushed_per_second": round(pushed / pushing),
        "push_behind_schedule_max_s": round(late, 3),
        "backlog_peak": peak,
        "backlog_when_push_ended": left,
        "until_matched_s": round(drained, 1),
        "matched": found.matched,
        "matched_per_second": round(found.matched / drained),
        "latency_s": {f"p{p}": round(found.seconds[p], 3) for p in (*PERCENTILES, 100)},
        "load_average": [round(load_before, 2), round(load_pushing, 2)],
    }


def run(customers: int, rates: list[int], seconds: int, postgres: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "project"
        write_project(root)
        data = root / "data"
        generate(data, seed=7, customers=customers)
        engine = fresh_store(postgres, "accord_bench_latency", root / "latency.sqlite3")
        url = engine.url.render_as_string(hide_password=False)
        project = load_project(root)
        started = time.perf_counter()
        for system, path in inputs(data):
            if system != PUSHED:
                load_file(engine, project, system, path, actor="bench")
        base = resolve(engine, project, actor="bench")
        print(f"base: {base.records:,} records resolved in {time.perf_counter() - started:.0f} s")
        with (data / "crm.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        # a phase ends early when the rows run out (`pushed` says how many it sent)

        worker = _worker(root, url, Path(scratch) / "worker.log")
        phases = []
        try:
            offset = 0
            for rate in rates:
                phase = _phase(
                    engine, project, rows[offset : offset + rate * seconds], rate, seconds
                )
                offset += phase["pushed"]
                print(json.dumps(phase))
                phases.append(phase)
        finally:
            worker.terminate()
            worker.wait(timeout=120)
            log = (Path(scratch) / "worker.log").read_text(errors="replace")
        # the worker's report at exit: it matched incrementally, never by a full resolve
        full = [line for line in log.splitlines() if "full resolves" in line]
        full_resolves = int(re.sub(r"\D", "", full[-1])) if full else None
        engine.dispose()
    return {
        "benchmark": "golden-latency",
        "backend": "postgresql" if postgres else "sqlite",
        "customers": customers,
        "base_records": base.records,
        "worker": "one process, batches of 200 (accord worker run --no-intake --no-sync)",
        "worker_full_resolves": full_resolves,
        "phases": phases,
        "machine": machine(),
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=30_000)
    parser.add_argument("--rates", default="200,1000", help="records a second, one phase each")
    parser.add_argument("--seconds", type=int, default=60, help="how long each phase pushes")
    parser.add_argument("--postgres", help="a postgresql+psycopg:// URL instead of SQLite")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    result = run(args.customers, rates, args.seconds, args.postgres)
    out = RESULTS / f"golden-latency-{result['backend']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
