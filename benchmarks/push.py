"""Benchmark: the push API under a load generator on loopback.

    .venv/bin/python benchmarks/push.py [--customers 20000] [--batch 500] [--clients 4]
                                        [--processes 2] [--match-workers 0] [--postgres URL]

Generates the demo company's CRM records, starts `accord serve` as a process of its own
(`--processes` answering HTTP; `--match-workers` matching beside them: 0 by default, as
when workers run on their own with `accord worker run`, so what is measured is intake),
and sends every record in batches (each with its Idempotency-Key) from `--clients`
concurrent connections; records per second over the whole run and the latency of each
request (p50, p95, p99). Then sends the first batches again with their keys, to time
answers replayed. Writes benchmarks/results/push-<backend>.json.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from accord.demo.generator import generate
from accord.demo.run import write_project
from accord.govern import identity
from accord.store.engine import writing

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import RESULTS, _commit, fresh_store, machine

PORT = 8765


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _server(
    root: Path, env: dict[str, str], processes: int, match_workers: int
) -> subprocess.Popen[bytes]:
    accord = Path(sys.executable).parent / "accord"
    options = ["--processes", str(processes), "--workers", str(match_workers)]
    server = subprocess.Popen(
        [str(accord), "serve", str(root), "--port", str(PORT), *options],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the server did not come up on port {PORT}")


def run(
    customers: int,
    batch: int,
    clients: int,
    postgres_url: str | None,
    *,
    processes: int = 2,
    match_workers: int = 0,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "project"
        write_project(root)
        generate(root / "data", seed=7, customers=customers)
        with (root / "data" / "crm.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        env = dict(os.environ)
        engine = fresh_store(postgres_url, "accord_push", root / "push.sqlite3")
        env["ACCORD_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
        with writing(engine) as conn:
            key = identity.create_api_key(conn, "crm", created_by="bench")
        engine.dispose()

        bodies = [
            (f"batch-{i:06d}", json.dumps({"records": rows[i : i + batch]}).encode())
            for i in range(0, len(rows), batch)
        ]
        server = _server(root, env, processes, match_workers)
        try:
            latencies, statuses, wall = _send(bodies, key, clients)
            replays, replay_statuses, _ = _send(bodies[:20], key, clients)
        finally:
            server.terminate()
            server.wait()
    accepted = sum(s.get("accepted", 0) for s in statuses)
    return {
        "benchmark": "push",
        "backend": "postgresql" if postgres_url else "sqlite",
        "records": len(rows),
        "batch": batch,
        "clients": clients,
        "server_processes": processes,
        "match_workers": match_workers,
        "requests": len(bodies),
        "accepted": accepted,
        "rejected": sum(s.get("rejected", 0) for s in statuses),
        "seconds": round(wall, 2),
        "records_per_second": round(len(rows) / wall),
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 1),
            "p95": round(_percentile(latencies, 0.95) * 1000, 1),
            "p99": round(_percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
        "replayed_latency_ms_p50": round(_percentile(replays, 0.5) * 1000, 1),
        "replayed_all": all(s.get("replayed") for s in replay_statuses),
        "machine": machine(),
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _send(
    bodies: list[tuple[str, bytes]], key: str, clients: int
) -> tuple[list[float], list[dict[str, Any]], float]:
    latencies: list[float] = []
    answers: list[dict[str, Any]] = []
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        while True:
            with lock:
                if not queue:
                    return
                idempotency_key, body = queue.pop()
            started = time.perf_counter()
            connection.request(
                "POST",
                "/api/v1/systems/crm/records",
                body=body,
                headers={
                    "X-API-Key": key,
                    "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key,
                },
            )
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                with lock:
                    failures.append(f"{response.status}: {payload[:300]!r}")
                continue
            answer = json.loads(payload)
            with lock:
                latencies.append(elapsed)
                answers.append(answer["counts"] | {"replayed": answer["replayed"]})

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, the first: {failures[0]}")
    return latencies, answers, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2, help="server processes")
    parser.add_argument("--match-workers", type=int, default=0)
    parser.add_argument("--postgres", help="a postgresql+psycopg:// URL to run on instead")
    args = parser.parse_args()
    result = run(
        args.customers,
        args.batch,
        args.clients,
        args.postgres,
        processes=args.processes,
        match_workers=args.match_workers,
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"push-{result['backend']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
