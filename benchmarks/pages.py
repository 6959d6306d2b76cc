"""Benchmark: server-side render time of every page of the web app, on the demo company.

    .venv/bin/python benchmarks/pages.py [--customers 5000] [--requests 40] [--postgres URL]

Builds the demo company (generate, load the four systems, resolve with the learned
engine, load linked records) in a fresh store, signs an admin in, then requests every
page (every GET route of the web app that is not the JSON API) `--requests` times
in-process, through the whole application (routing, sign-in check, reads, template),
and reports p50, p95 and the slowest per page. Path parameters are filled from the
store: the customer with the most member records and linked records (the heaviest page),
the first open review, the first open quarantine entry. The target (issue 6): every page
under 200 ms at p95.

Writes benchmarks/results/pages-<backend>-<customers>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from rich.progress import Progress
from sqlalchemy import Engine, text
from starlette.routing import BaseRoute

from accord.demo.generator import generate
from accord.demo.run import inputs, linked_inputs, write_project
from accord.golden.resolve import resolve
from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake.load import load_file
from accord.linked.intake import load_linked_file
from accord.settings import Settings
from accord.store.engine import writing
from accord.web.app import create_app
from accord.web.auth import SESSION_COOKIE
from accord.web.errors import MACHINE_PATHS
from accord.workspace import Workspace

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import RESULTS, _commit, fresh_store, machine

PASSWORD = "a long enough password for the benchmark"  # noqa: S105  (a throwaway store)
TARGET_MS = 200
NOT_PAGES = {"/", "/login", *MACHINE_PATHS}  # a redirect, the open form, JSON for programs


def _pages(routes: list[BaseRoute]) -> list[str]:
    found: list[str] = []
    for route in routes:
        page = isinstance(route, APIRoute) and not route.include_in_schema
        if page and "GET" in route.methods and route.path not in NOT_PAGES:
            found.append(route.path)
        included = getattr(route, "original_router", None)
        if included is not None:
            found.extend(_pages(included.routes))
    return sorted(set(found))


def _values(engine: Engine) -> dict[str, str]:
    """A value for each path parameter: the heaviest customer, the first open review and
    quarantine entry."""
    queries = {
        "golden_id": "SELECT golden_id FROM golden_record WHERE status = 'active' "
        "ORDER BY member_count DESC, golden_id LIMIT 1",
        "review_id": "SELECT min(id) FROM match_review WHERE status = 'open'",
        "entry_id": "SELECT min(id) FROM quarantine WHERE status = 'open'",
    }
    values: dict[str, str] = {}
    with engine.connect() as conn:
        for name, sql in queries.items():
            found = conn.execute(text(sql)).scalar()
            if found is not None:
                values[name] = str(found)
    return values


def _build(root: Path, engine: Engine, customers: int, seed: int) -> Workspace:
    write_project(root)
    workspace = Workspace(root, engine, Settings())
    with Progress() as progress:
        task = progress.add_task("generating the demo company", total=customers)
        generate(
            root / "data",
            seed=seed,
            customers=customers,
            progress=lambda n: progress.advance(task, n),
        )
        for system, path in inputs(root / "data"):
            load_file(engine, workspace.project, system, path, actor="bench")
    resolve(engine, workspace.project, actor="bench")
    for system, kind, path in linked_inputs(root / "data"):
        mapping = workspace.project.linked_mapping(system, kind)
        load_linked_file(engine, workspace.project, mapping, path, actor="bench")
    return workspace


def run(customers: int, seed: int, requests: int, postgres_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "project"
        engine = fresh_store(postgres_url, "bench_pages", Path(scratch) / "accord.sqlite3")
        workspace = _build(root, engine, customers, seed)
        with writing(engine) as conn:
            identity.create_user(conn, "admin", PASSWORD, Role.ADMIN, created_by="bench")
        _, session = identity.sign_in(engine, "admin", PASSWORD)
        app = create_app(workspace)
        values = _values(engine)
        results: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        with TestClient(app) as client, Progress() as progress:
            client.cookies.set(SESSION_COOKIE, session.token)
            pages = _pages(app.routes)
            task = progress.add_task("requesting pages", total=len(pages) * requests)
            for path in pages:
                missing = [p for p in re.findall(r"\{(\w+)\}", path) if p not in values]
                if missing:
                    skipped[path] = f"no value for {', '.join(missing)}"
                    progress.advance(task, requests)
                    continue
                url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
                first = client.get(url)
                if first.status_code != 200:  # a step that needs more than its address
                    skipped[path] = f"answered {first.status_code} without a query"
                else:
                    results[path] = _measure(client, url, requests)
                progress.advance(task, requests)
        engine.dispose()
    slowest = max((r["p95_ms"] for r in results.values()), default=0.0)
    return {
        "benchmark": "pages",
        "backend": "postgresql" if postgres_url else "sqlite",
        "customers": customers,
        "requests_per_page": requests,
        "pages": results,
        "skipped": skipped,
        "slowest_p95_ms": slowest,
        "target_p95_ms": TARGET_MS,
        "met": slowest < TARGET_MS,
        "commit": _commit(),
        "machine": machine(),
    }


def _measure(client: TestClient, url: str, requests: int) -> dict[str, Any]:
    first = client.get(url)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    times.sort()
    return {
        "url": url,
        "bytes": len(first.content),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "max_ms": round(times[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--postgres", help="a postgresql+psycopg:// URL to run on instead")
    args = parser.parse_args()
    result = run(args.customers, args.seed, args.requests, args.postgres)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"pages-{result['backend']}-{args.customers}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for path, figures in result["pages"].items():
        print(f"{path:40} p50 {figures['p50_ms']:7.1f} ms  p95 {figures['p95_ms']:7.1f} ms")
    for path, why in result["skipped"].items():
        print(f"{path:40} skipped: {why}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
