"""Benchmark: loading a million ERP orders as linked records, then reading them back by
customer and counting orphans, on SQLite (or the store ACCORD_DATABASE_URL names).

    .venv/bin/python benchmarks/linked_load.py [--orders 1000000] [--customers 100000]

Writes a semicolon CSV of orders in the demo ERP's shape (VBELN;KUNNR;ERDAT;NETWR;WAERK)
for `--customers` customer ids, one in a hundred of them never loaded (orphans), loads
it with `accord load --linked order`'s service twice (the second load must write
nothing), and times: the loads, one customer's records (newest first, a page of 50),
the orphan count per system (the health report's query), and a page of orphans with
reasons. Prints a summary and writes benchmarks/results/linked-load-<orders>.json.

Written with the linked records (issue 5); not yet run on the benchmark machine.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from accord.config.loader import load_project
from accord.demo.run import write_project
from accord.golden.resolve import resolve
from accord.govern.permissions import cli_actor
from accord.intake.load import load_file
from accord.linked import service
from accord.linked.intake import load_linked_file
from accord.store import linked as linked_store
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

RESULTS = Path(__file__).parent / "results"


def _write_customers(path: Path, customers: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(
            "KUNNR;KTOKD;NAME1;NAME2;STRAS;PSTLZ;ORT01;LAND1;TELF1;SMTP_ADDR;STCEG;GEBDAT;ERDAT\n"
        )
        for n in range(customers):
            if n % 100 == 99:
                continue  # never loaded: its orders are orphans
            out.write(f"{n:010d};FIRM;Firma {n} GmbH;;Weg {n};10115;Berlin;DE;;;;;01.01.2010\n")


def _write_orders(path: Path, orders: int, customers: int) -> None:
    rng = random.Random(7)  # noqa: S311  (test data, nothing secret)
    with path.open("w", encoding="utf-8") as out:
        out.write("VBELN;KUNNR;ERDAT;NETWR;WAERK\n")
        for n in range(orders):
            day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2005, 2025)
            cents = rng.randint(1_000, 5_000_000)
            customer = rng.randrange(customers)
            out.write(
                f"{n:010d};{customer:010d};{day:02d}.{month:02d}.{year};"
                f"{cents // 100}.{cents % 100:02d};EUR\n"
            )


def _timed(results: dict[str, Any], name: str, run: Any) -> Any:
    started = time.perf_counter()
    value = run()
    results[name] = round(time.perf_counter() - started, 3)
    print(f"{name}: {results[name]} s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    results: dict[str, Any] = {"orders": args.orders, "customers": args.customers}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_project(root / "project")
        project = load_project(root / "project")
        engine = make_engine(f"sqlite:///{root / 'accord.sqlite3'}")
        upgrade(engine)
        customers, orders = root / "erp.csv", root / "erp_orders.csv"
        _write_customers(customers, args.customers)
        _write_orders(orders, args.orders, args.customers)
        load_file(engine, project, "erp", customers, actor="bench", workers=0)
        _timed(results, "resolve seconds", lambda: resolve(engine, project, actor="bench"))
        mapping = project.linked_mapping("erp", "order")
        first = _timed(
            results,
            "load seconds",
            lambda: load_linked_file(engine, project, mapping, orders, actor="bench"),
        )
        again = _timed(
            results,
            "reload seconds",
            lambda: load_linked_file(engine, project, mapping, orders, actor="bench"),
        )
        results["records per second"] = round(args.orders / results["load seconds"])
        results["first load"] = first.counts()
        results["reload unchanged"] = again.unchanged
        actor = cli_actor()
        with engine.connect() as conn:
            _timed(
                results,
                "one customer's page seconds",
                lambda: service.of_customer(conn, actor, "C0000001"),
            )
            counts = _timed(
                results, "orphan counts seconds", lambda: linked_store.orphan_counts(conn)
            )
            _timed(results, "orphan page seconds", lambda: service.orphans(conn, actor))
        results["orphans"] = counts
        results["peak rss MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        engine.dispose()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"linked-load-{args.orders}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
