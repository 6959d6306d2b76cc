"""Accord vs Splink 5 (DuckDB) on the FEBRL data sets: quality, time, memory.

    bash benchmarks/compare/setup.sh
    benchmarks/compare/.venv/bin/python benchmarks/compare/run.py

Runs in the comparison venv. For each data set and settings variant (tuned, first-cut,
no-ssid: see VARIANTS) it runs

- Accord: `.venv/bin/accord match run --settings settings/[variant/]<set>.yaml
  --input NAME=PATH ... --out out/accord/<variant>/<set>` as a subprocess, and
- Splink: `splink_side.py` with the same settings file and inputs, also as a subprocess,

each `--repeats` times, the two tools taking turns so that both see the same background
load. Wall time is the whole subprocess (median of the repeats), as is CPU time; peak
memory is the subprocess's maximum resident set size (os.wait4's ru_maxrss for that child
alone, the per-child form of getrusage(RUSAGE_CHILDREN), maximum over the repeats). Splink's
report also gives training + predict + cluster, and its total including imports.

Quality is measured on the final clusters against the truth (entity from rec_id):
pairwise precision / recall / F1 over the pairs the link type allows (all pairs for
dedupe; pairs across the two files for link_only), and B-cubed precision / recall / F1
over every record. Writes benchmarks/results/match-febrl.json and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATA = HERE / "data"
OUT = HERE / "out"
RESULTS = REPO / "benchmarks" / "results" / "match-febrl.json"
ACCORD = Path(os.environ.get("ACCORD_BIN", REPO / ".venv" / "bin" / "accord"))
# Where Accord's code is read from: the work tree (src/, as installed in .venv), or with
# --accord-snapshot a copy of src/ at HEAD, put first on the subprocess's PYTHONPATH, so
# that edits made to src/ while the benchmark runs cannot mix two versions in one result.
ACCORD_SRC: dict[str, Any] = {"path": REPO / "src", "env": None, "commit": None}

# Settings variants, each a folder holding <data set>.yaml; both tools read the same file.
VARIANTS: dict[str, dict[str, Any]] = {
    "tuned": {
        "folder": HERE / "settings",
        "about": "the main settings: first-cut plus two address blocking rules and a "
        "swapped-names level",
    },
    "first-cut": {
        "folder": HERE / "settings" / "first-cut",
        "about": "written before any result was seen",
    },
    "no-ssid": {
        "folder": HERE / "settings" / "no-ssid",
        "about": "stress: the tuned settings without the social security number",
    },
}

DATASETS: dict[str, dict[str, Any]] = {
    "febrl3": {
        "task": "dedupe 5,000 records (2,000 people)",
        "inputs": [("febrl3", DATA / "febrl3.csv")],
        "truth": DATA / "febrl3_truth.csv",
        "link_type": "dedupe_only",
    },
    "febrl4": {
        "task": "link 5,000 + 5,000 records, one-to-one",
        "inputs": [("febrl4a", DATA / "febrl4a.csv"), ("febrl4b", DATA / "febrl4b.csv")],
        "truth": DATA / "febrl4_truth.csv",
        "link_type": "link_only",
    },
}


# --- quality -------------------------------------------------------------------------


Key = tuple[str, str]  # (source, record id)


def read_truth(path: Path) -> dict[Key, str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {(row["source"], row["id"]): row["entity"] for row in csv.DictReader(handle)}


def read_clusters(path: Path, records: set[Key]) -> dict[Key, str]:
    """Cluster of every record; a record the output leaves out is a cluster of its own."""
    cluster: dict[Key, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = (row["source"], row["record_id"])
            if key not in records:
                raise ValueError(f"{path}: record {key} is not in the input")
            if key in cluster:
                raise ValueError(f"{path}: record {key} is in two clusters")
            cluster[key] = row["cluster_id"]
    for key in records - cluster.keys():
        cluster[key] = f"__single__{key[0]}__{key[1]}"
    return cluster


def _allowed_pairs(counts_by_source: Counter[str], link_type: str) -> int:
    """Pairs among a group of records that the link type allows."""
    n = sum(counts_by_source.values())
    within = sum(c * (c - 1) // 2 for c in counts_by_source.values())
    every = n * (n - 1) // 2
    if link_type == "link_only":
        return every - within
    if link_type == "dedupe_only":
        return within
    return every


def _prf(tp: float, predicted: float, actual: float) -> dict[str, float]:
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def evaluate(cluster: dict[Key, str], truth: dict[Key, str], link_type: str) -> dict[str, Any]:
    by_cluster: dict[str, Counter[str]] = {}
    by_entity: dict[str, Counter[str]] = {}
    by_cell: dict[tuple[str, str], Counter[str]] = {}
    for key, entity in truth.items():
        c = cluster[key]
        by_cluster.setdefault(c, Counter())[key[0]] += 1
        by_entity.setdefault(entity, Counter())[key[0]] += 1
        by_cell.setdefault((c, entity), Counter())[key[0]] += 1
    predicted = sum(_allowed_pairs(s, link_type) for s in by_cluster.values())
    actual = sum(_allowed_pairs(s, link_type) for s in by_entity.values())
    tp = sum(_allowed_pairs(s, link_type) for s in by_cell.values())

    # B-cubed: per record, the share of its cluster that is its entity (precision) and
    # the share of its entity that is in its cluster (recall); averaged over records.
    cluster_size = {c: sum(s.values()) for c, s in by_cluster.items()}
    entity_size = {e: sum(s.values()) for e, s in by_entity.items()}
    b_precision = b_recall = 0.0
    for (c, e), s in by_cell.items():
        n = sum(s.values())
        b_precision += n * n / cluster_size[c]
        b_recall += n * n / entity_size[e]
    records = len(truth)
    b_precision /= records
    b_recall /= records
    b_f1 = 2 * b_precision * b_recall / (b_precision + b_recall)

    sizes = Counter(cluster_size.values())
    return {
        "pairwise": {
            **_prf(tp, predicted, actual),
            "true_pairs": actual,
            "predicted_pairs": predicted,
            "correct_pairs": tp,
        },
        "bcubed": {"precision": b_precision, "recall": b_recall, "f1": b_f1},
        "clusters": len(by_cluster),
        "entities": len(by_entity),
        "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())},
    }


# --- running -------------------------------------------------------------------------


def run_measured(cmd: list[str], log: Path) -> dict[str, Any]:
    """Run `cmd`; its wall time and its own peak RSS (ru_maxrss of this child only)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as handle:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO, env=ACCORD_SRC["env"]
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{tail}")
    return {
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def tool_command(tool: str, settings: Path, spec: dict[str, Any], out: Path) -> list[str]:
    inputs = [f"--input={name}={path}" for name, path in spec["inputs"]]
    if tool == "accord":
        return [
            str(ACCORD),
            "match",
            "run",
            "--settings",
            str(settings),
            *inputs,
            "--out",
            str(out),
        ]
    return [
        sys.executable,
        str(HERE / "splink_side.py"),
        "--settings",
        str(settings),
        *inputs,
        "--out",
        str(out),
    ]


def run_tools(
    tools: list[str], variant: str, name: str, spec: dict[str, Any], repeats: int
) -> dict[str, dict[str, Any]]:
    """Run each tool `repeats` times, the tools taking turns (A B A B ...) so that both
    see the same background load on a shared machine; then score each tool's output."""
    settings = VARIANTS[variant]["folder"] / f"{name}.yaml"
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    failed: dict[str, str] = {}
    for i in range(repeats):
        for tool in tools:
            if tool in failed:
                continue
            out = OUT / tool / variant / name
            try:
                run = run_measured(tool_command(tool, settings, spec, out), out.with_suffix(".log"))
            except (RuntimeError, OSError) as exc:
                print(f"  {variant:9} {name} {tool:6} failed: {exc}", file=sys.stderr)
                failed[tool] = str(exc)
                continue
            run["in_process_seconds"] = _in_process(tool, out / "report.json")
            runs[tool].append(run)
            print(
                f"  {variant:9} {name} {tool:6} run {i + 1}/{repeats}: "
                f"{run['wall_seconds']:.2f} s, {run['cpu_seconds']:.2f} CPU s, "
                f"{run['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    results: dict[str, dict[str, Any]] = {}
    for tool in tools:
        if tool in failed:
            results[tool] = {"error": failed[tool]}
            continue
        try:
            results[tool] = _summarize(
                tool, settings, spec, OUT / tool / variant / name, runs[tool]
            )
        except (OSError, ValueError) as exc:
            results[tool] = {"error": str(exc)}
    return results


def _summarize(
    tool: str, settings: Path, spec: dict[str, Any], out: Path, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    truth = read_truth(spec["truth"])
    quality = evaluate(read_clusters(out / "clusters.csv", set(truth)), truth, spec["link_type"])
    report_path = out / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    model_path = out / "model.json"
    if tool == "accord" and model_path.exists():
        model = json.loads(model_path.read_text(encoding="utf-8"))
        report["model_prior"] = model.get("prior")
        report["model_training"] = model.get("training")
    return {
        "command": " ".join(tool_command(tool, settings, spec, out.relative_to(REPO))).replace(
            str(REPO) + "/", ""
        ),
        "wall_seconds_median": statistics.median(r["wall_seconds"] for r in runs),
        "wall_seconds_runs": [round(r["wall_seconds"], 3) for r in runs],
        "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in runs),
        "cpu_seconds_runs": [round(r["cpu_seconds"], 3) for r in runs],
        "in_process_seconds_median": statistics.median(r["in_process_seconds"] for r in runs),
        "in_process_seconds_runs": [round(r["in_process_seconds"], 3) for r in runs],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "load_average_1min_runs": [r["load_average_1min"] for r in runs],
        "quality": quality,
        "tool_report": {k: report[k] for k in report if k not in {"oversized_blocks"}},
    }


# --- the machine ---------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, Any]:
    compare = {
        pkg: metadata.version(pkg)
        for pkg in ("splink", "duckdb", "recordlinkage", "pandas", "pyarrow", "numpy")
    }
    accord_python = ACCORD.parent / "python"
    probe = (
        "import sys, json; from importlib import metadata as m; "
        "print(json.dumps({'python': sys.version.split()[0], "
        "**{p: m.version(p) for p in ('accord', 'numpy', 'rapidfuzz', 'jellyfish')}}))"
    )
    try:
        accord = json.loads(
            subprocess.run(
                [str(accord_python), "-c", probe],
                capture_output=True,
                text=True,
                check=True,
                env=ACCORD_SRC["env"],
            ).stdout
        )
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as exc:
        accord = {"error": str(exc)}
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "compare_python": platform.python_version(),
        "compare_packages": compare,
        "accord_env": accord,
        "accord_commit": ACCORD_SRC["commit"]
        if ACCORD_SRC["env"] is not None
        else git + ("+uncommitted changes in src/" if dirty else ""),
        "accord_code": "snapshot of HEAD" if ACCORD_SRC["env"] is not None else "work tree",
        "accord_src_sha256": src_digest(),
    }


def src_digest() -> str:
    """A digest of the Accord code the runs use, to tell whether it changed during a run."""
    digest = hashlib.sha256()
    root = ACCORD_SRC["path"]
    for path in sorted((root / "accord").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def snapshot_accord_src() -> None:
    """Run Accord from a copy of src/ at HEAD (see ACCORD_SRC)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    target = OUT / f"accord-src-{commit}"
    if not (target / "src" / "accord").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "HEAD", "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(target / "src"), env.get("PYTHONPATH", "")) if p
    )
    ACCORD_SRC.update(path=target / "src", env=env, commit=commit)


# --- report --------------------------------------------------------------------------


def _in_process(tool: str, report_path: Path) -> float:
    """Seconds from reading the input to the clusters, as the tool itself timed them:
    Accord's report total (read, block, train, score, cluster); Splink's load + training +
    predict + cluster. Neither includes interpreter start-up, imports or writing outputs."""
    try:
        seconds = json.loads(report_path.read_text(encoding="utf-8")).get("seconds", {})
    except (OSError, json.JSONDecodeError):
        return float("nan")
    if tool == "accord":
        return float(seconds.get("total", float("nan")))
    return float(seconds.get("load", float("nan")) + seconds.get("train_predict_cluster", 0.0))


def table(results: dict[str, Any]) -> str:
    head = (
        "| data set | settings | tool | pairwise P | pairwise R | pairwise F1 | B³ F1 "
        "| wall s | CPU s | in-process s | peak MiB |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results["datasets"].items():
        for variant, per_tool in entry["variants"].items():
            for tool, r in per_tool.items():
                if "error" in r:
                    lines.append(
                        f"| {name} | {variant} | {tool} | error: "
                        f"{r['error'].splitlines()[0][:60]} | | | | | | | |"
                    )
                    continue
                q = r["quality"]
                lines.append(
                    f"| {name} | {variant} | {tool} | {q['pairwise']['precision']:.4f} "
                    f"| {q['pairwise']['recall']:.4f} | {q['pairwise']['f1']:.4f} "
                    f"| {q['bcubed']['f1']:.4f} | {r['wall_seconds_median']:.2f} "
                    f"| {r['cpu_seconds_median']:.2f} | {r['in_process_seconds_median']:.2f} "
                    f"| {r['peak_rss_mib']:.0f} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument(
        "--tools", nargs="+", default=["accord", "splink"], choices=["accord", "splink"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--table-only", action="store_true", help="print the table of an existing results file"
    )
    parser.add_argument(
        "--accord-snapshot",
        action="store_true",
        help="run Accord from a copy of src/ at HEAD, not from the work tree",
    )
    args = parser.parse_args()
    if args.table_only:
        print(table(json.loads(args.results.read_text(encoding="utf-8"))))
        return

    if args.accord_snapshot:
        snapshot_accord_src()
    if not all(path.exists() for spec in DATASETS.values() for _, path in spec["inputs"]):
        subprocess.run([sys.executable, str(HERE / "prepare_febrl.py")], check=True)

    results: dict[str, Any] = {
        "benchmark": "match-febrl",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "repeats": args.repeats,
        "variants": {
            v: {
                "settings": str(VARIANTS[v]["folder"].relative_to(REPO)),
                "about": VARIANTS[v]["about"],
            }
            for v in args.variants
        },
        "datasets": {},
    }
    for name in args.datasets:
        spec = DATASETS[name]
        entry: dict[str, Any] = {
            "task": spec["task"],
            "link_type": spec["link_type"],
            "variants": {},
        }
        for variant in args.variants:
            entry["variants"][variant] = run_tools(args.tools, variant, name, spec, args.repeats)
        results["datasets"][name] = entry

    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if src_digest() != results["versions"]["accord_src_sha256"]:
        results["versions"]["accord_src_changed_during_run"] = True
        print(
            "warning: Accord's code changed while the benchmark ran; the results mix two "
            "versions (use --accord-snapshot)",
            file=sys.stderr,
        )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print()
    print(table(results))
    print(f"\nwritten: {args.results}")


if __name__ == "__main__":
    main()
