"""Benchmark: the learned matcher on the demo company at scale, against its ground truth.

    .venv/bin/python benchmarks/match_scale.py [--customers 100000] [--seed 7]

Generates the demo company's four systems, maps every record through the demo project's
mappings (in memory: this measures matching, not the store), builds match features, and
runs the learned engine with the demo project's match settings: deterministic rules,
blocking, training (u by random sampling, m by EM), scoring and guarded clustering.
Reports time and peak memory per stage, pairwise and B-cubed precision, recall and F1,
and writes benchmarks/results/match-demo-<customers>.json. Same seed, same data.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from accord.config.loader import Project, load_project
from accord.demo.generator import generate
from accord.demo.run import inputs, read_truth, write_project
from accord.golden.relationships import referenced_employers
from accord.intake.mapping import MappedRecord, RecordMapper
from accord.intake.readers import SourceFile
from accord.match.columns import Columns
from accord.match.evaluate import bcubed_scores, pairwise_scores
from accord.match.features import FEATURES, company_key, features_of
from accord.match.learned import LearnedEngine
from pipeline import machine

RESULTS = Path(__file__).parent / "results"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def demo_company(
    scratch: Path, data: Path | None, customers: int, seed: int
) -> tuple[Project, Path]:
    """The demo project, written under `scratch`, and its company's data: in `data` if
    given (generated there unless it already holds a company), else under `scratch`."""
    root = scratch / "project"
    write_project(root)
    project = load_project(root)
    data = data or root / "data"
    if not (data / "truth.csv").exists():
        print(f"generating {customers:,} customers ...", flush=True)
        generate(data, seed=seed, customers=customers)
    return project, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, help="reuse (or keep) generated data here")
    args = parser.parse_args()

    seconds: dict[str, float] = {}
    memory: dict[str, float] = {}
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        project, data = demo_company(Path(tmp), args.data, args.customers, args.seed)
        seconds["generate"] = time.perf_counter() - started

        print("mapping and building features ...", flush=True)
        started = time.perf_counter()
        keys, systems, table = read_features(project, data)
        seconds["map_and_features"] = time.perf_counter() - started
        memory["after_features_mib"] = peak_mib()
        print(f"  {len(keys):,} records in {seconds['map_and_features']:.1f} s", flush=True)

        gc.collect()
        started = time.perf_counter()
        columns = Columns(table, len(keys))
        del table
        engine = LearnedEngine(project.config.match)
        result = engine.run(
            columns, systems=systems, progress=lambda s: print("  ..", s, flush=True)
        )
        seconds["match_total"] = time.perf_counter() - started
        memory["peak_mib"] = peak_mib()

        truth = read_truth(data / "truth.csv")
    assignment = {keys[i]: n for n, group in enumerate(result.clusters) for i in group}
    pairwise = pairwise_scores(assignment, truth)
    bcubed = bcubed_scores(assignment, truth)
    report: dict[str, Any] = {
        "benchmark": "match-demo",
        "customers": args.customers,
        "seed": args.seed,
        "records": len(keys),
        "pairs_scored": result.pairs_scored,
        "links": len(result.links),
        "review": len(result.review),
        "clusters": len(result.clusters),
        "pairwise": {
            "precision": round(pairwise.precision, 4),
            "recall": round(pairwise.recall, 4),
            "f1": round(pairwise.f1, 4),
        },
        "bcubed": {
            "precision": round(bcubed.precision, 4),
            "recall": round(bcubed.recall, 4),
            "f1": round(bcubed.f1, 4),
        },
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "match_stages_seconds": result.seconds,
        "memory": {k: round(v) for k, v in memory.items()},
        "blocking": result.blocking,
        "oversized_blocks": len(result.oversized),
        "prior": result.params.prior if result.params else None,
        "machine": machine()
        | {"load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"match-demo-{args.customers}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "records",
                    "pairwise",
                    "bcubed",
                    "seconds",
                    "match_stages_seconds",
                    "memory",
                )
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


def read_features(
    project: Any, data: Path
) -> tuple[list[tuple[str, str]], list[str], dict[str, list[str | None]]]:
    """Every record's key, system and features, as columns. Values are interned per
    column, so a million records with forty thousand surnames hold forty thousand strings.
    A contact's employer is its account's name (`referenced_employers`, as a resolve
    does), filled in once every record is read."""
    names = [*FEATURES, "kind"]
    table: dict[str, list[str | None]] = {name: [] for name in names}
    interned: dict[str, dict[str, str]] = {name: {} for name in names}
    keys: list[tuple[str, str]] = []
    systems: list[str] = []
    latest: dict[tuple[str, str], int] = {}
    # what `referenced_employers` reads, kept for the records it reads it from only
    referencing: dict[tuple[str, str], dict[str, Any]] = {}
    for system, path in inputs(data):
        mapping = project.mapping(system)
        mapper = RecordMapper(mapping, project.config.systems[system])
        for raw in SourceFile(path, mapping.config.format, mapper.source_columns()):
            if raw.fields is None:
                continue
            mapped = mapper.map(raw.fields)
            if not isinstance(mapped, MappedRecord):
                continue
            features = features_of(mapped.data)
            features["kind"] = mapped.data.get("kind") or ""
            key = (system, mapped.source_id)
            if key in latest:  # a later row of the same id replaces the earlier one
                position = latest[key]
            else:
                position = len(keys)
                latest[key] = position
                keys.append(key)
                systems.append(system)
                for name in names:
                    table[name].append(None)
            for name in names:
                value = features.get(name) or None
                table[name][position] = (
                    None if value is None else interned[name].setdefault(value, value)
                )
            slim = {
                name: mapped.data[name]
                for name in ("kind", "organization_name", "account_ref", "employer")
                if mapped.data.get(name)
            }
            if slim.get("organization_name") or slim.get("account_ref"):
                referencing[key] = slim
            else:
                referencing.pop(key, None)
    for key, name in referenced_employers(referencing.items()).items():
        value = company_key(name)  # as features_of keys an employer
        if value:
            table["employer"][latest[key]] = interned["employer"].setdefault(value, value)
    return keys, systems, table


if __name__ == "__main__":
    main()
