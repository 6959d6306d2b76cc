"""The demo: a project for the demo company, its data loaded and resolved, and the
result measured against the generator's ground truth."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from accord.match.evaluate import PairwiseScores, pairwise_scores

PROJECT_TEMPLATE = Path(__file__).parent / "project"

# Which generated file each demo system loads.
DEMO_FILES: dict[str, str] = {
    "crm": "crm.csv",
    "erp": "erp_customers.csv",
    "billing": "billing_accounts.jsonl.gz",
    "service": "service_requesters.csv",
}


def write_project(root: Path) -> None:
    """Write (or refresh) the demo project's files under `root`; data and store are kept."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_TEMPLATE, root, dirs_exist_ok=True)


def read_truth(path: Path) -> dict[tuple[str, str], str]:
    """(system, source id) -> the real party it belongs to."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            (row["system"], row["source_id"]): row["party_id"] for row in csv.DictReader(handle)
        }


def inputs(data: Path) -> list[tuple[str, Path]]:
    """(system, file) for each demo system, from a folder the generator wrote."""
    return [(system, data / name) for system, name in DEMO_FILES.items()]


def score(assignment: dict[tuple[str, str], str], data: Path) -> PairwiseScores:
    """Pairwise precision and recall of a resolve's assignment against the ground truth
    the generator wrote beside the data, over the records the resolve saw."""
    return pairwise_scores(assignment, read_truth(data / "truth.csv"))
