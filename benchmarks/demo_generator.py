"""Throughput of the demo data generator: customers per second and peak memory.

    .venv/bin/python benchmarks/demo_generator.py [CUSTOMERS]

Generates CUSTOMERS (default 100,000) customers into a temporary folder, removed after,
and prints wall-clock and CPU rates (with and without drawing the Faker pools, which
happens once per process) and the process's peak resident memory.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from accord.demo.generator import _pools, generate

SEED = 7


def main() -> None:
    customers = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    started, cpu_started = time.perf_counter(), time.process_time()
    _pools(SEED)  # Faker pools, drawn once per process (generate() would do it too)
    pools_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="accord-demo-bench-") as folder:
        generating, cpu_generating = time.perf_counter(), time.process_time()
        summary = generate(Path(folder), seed=SEED, customers=customers)
        wall = time.perf_counter() - generating
        cpu = time.process_time() - cpu_generating
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
    total = time.perf_counter() - started
    total_cpu = time.process_time() - cpu_started
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        peak_kb //= 1024
    party_rows = summary.truth_rows
    print(f"customers          {customers:,}")
    print(f"party rows         {party_rows:,} ({party_rows / max(customers, 1):.2f} per customer)")
    print(f"all rows           {sum(summary.files.values()):,} in {len(summary.files)} files")
    print(f"output size        {size / 1e6:.1f} MB")
    print(f"faker pools        {pools_seconds:.2f} s")
    print(f"generate           {wall:.2f} s wall, {cpu:.2f} s cpu")
    print(f"customers/s        {customers / wall:,.0f} wall, {customers / cpu:,.0f} cpu")
    print(f"customers/s total  {customers / total:,.0f} wall, {customers / total_cpu:,.0f} cpu")
    print(f"peak RSS           {peak_kb / 1024:.1f} MB")


if __name__ == "__main__":
    main()
