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


def evaluate(
    assignment: dict[tuple[str, str], str], truth: dict[tuple[str, str], str]
) -> PairwiseScores:
    """Pairwise precision and recall of a resolve over the records it saw."""
    return pairwise_scores(assignment, truth)
