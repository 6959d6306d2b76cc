"""The demo: a project for the demo company, its data loaded and resolved, and the
result measured against the generator's ground truth."""

from __future__ import annotations

import csv
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from accord.match.evaluate import PairwiseScores, pairwise_scores

if TYPE_CHECKING:
    from accord.config.loader import Project
    from accord.demo.peers import Kind, PeerProcess

PROJECT_TEMPLATE = Path(__file__).parent / "project"

# Which generated file each demo system loads.
DEMO_FILES: dict[str, str] = {
    "crm": "crm.csv",
    "erp": "erp_customers.csv",
    "billing": "billing_accounts.jsonl.gz",
    "service": "service_requesters.csv",
}


# Which generated file each demo system's linked records load from: (system, kind, file).
DEMO_LINKED_FILES: tuple[tuple[str, str, str], ...] = (
    ("erp", "order", "erp_orders.csv"),
    ("billing", "invoice", "billing_invoices.jsonl.gz"),
    ("service", "ticket", "service_tickets.csv"),
)


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


def linked_inputs(data: Path) -> list[tuple[str, str, Path]]:
    """(system, kind, file) for each demo system's linked records, from a folder the
    generator wrote."""
    return [(system, kind, data / name) for system, kind, name in DEMO_LINKED_FILES]


def score(assignment: dict[tuple[str, str], str], data: Path) -> PairwiseScores:
    """Pairwise precision and recall of a resolve's assignment against the ground truth
    the generator wrote beside the data, over the records the resolve saw."""
    return pairwise_scores(assignment, read_truth(data / "truth.csv"))


# The demo's billing and service desk also receive golden changes (docs/sync.md), each
# from a peer service of its own: target field -> canonical field.
DEMO_TARGETS: dict[str, tuple[Kind, dict[str, str]]] = {
    "billing": (
        "billing",
        {
            "first_name": "given_name",
            "last_name": "family_name",
            "company": "organization_name",
            "email_address": "email",  # billing is its authority: never written there
            "phone": "phone",
            "street": "street",
            "postcode": "postcode",
            "city": "city",
            "country": "country",
            "vat_number": "tax_id",
        },
    ),
    "service": (
        "service_desk",
        {
            "first_name": "given_name",
            "last_name": "family_name",
            "email": "email",
            "phone": "phone",
            "company": "employer",
            "country": "country",
        },
    ),
}


# target -> canonical field -> how an edit there crossing a golden change is settled (the
# sync story, accord.demo.story, shows one of each)
DEMO_CONFLICTS: dict[str, dict[str, str]] = {
    "billing": {"city": "newest"},
    "service": {"phone": "steward"},
}


def token_variable(system: str) -> str:
    return f"ACCORD_DEMO_{system.upper()}_TOKEN"


def start_peers(root: Path) -> dict[str, PeerProcess]:
    """Start a peer service for each demo target (its store under `root/peers`), with a
    fresh token each, put in this process's environment for Accord to read."""
    from accord.demo.peers import PeerProcess  # noqa: PLC0415  (FastAPI is slow to import)

    started: dict[str, PeerProcess] = {}
    try:
        for system, (kind, _) in DEMO_TARGETS.items():
            token = secrets.token_urlsafe(24)
            os.environ[token_variable(system)] = token
            folder = root / "peers"
            folder.mkdir(parents=True, exist_ok=True)
            peer = PeerProcess(kind, folder / f"{system}.sqlite3", token=token)
            started[system] = peer.start()
    except BaseException:
        for peer in started.values():
            peer.stop()
        raise
    return started


SEED_BATCH = 500  # records a `:batch` request seeds


def seed_peers(project: Project, data: Path, peers: dict[str, PeerProcess]) -> dict[str, int]:
    """Give each peer the records its system holds in the demo data (the billing accounts,
    the service desk's requesters), as the real systems would before Accord is switched
    on: each source record mapped as Accord reads it, laid out in the peer's fields, under
    its source id (so the crosswalk's members are records the peer has). Returns how many
    each peer took."""
    import httpx2  # noqa: PLC0415

    from accord.intake.mapping import MappedRecord, RecordMapper  # noqa: PLC0415
    from accord.intake.readers import SourceFile  # noqa: PLC0415

    seeded: dict[str, int] = {}
    for system, peer in peers.items():
        fields = DEMO_TARGETS[system][1]
        mapping = project.mapping(system)
        mapper = RecordMapper(mapping, project.config.systems[system])
        source = SourceFile(
            data / DEMO_FILES[system], mapping.config.format, mapper.source_columns()
        )
        operations: list[dict[str, object]] = []
        for raw in source:
            mapped = None if raw.fields is None else mapper.map(raw.fields)
            if not isinstance(mapped, MappedRecord):
                continue  # what Accord quarantines, the demo system holds badly: left out
            values = {f: mapped.data[c] for f, c in fields.items() if mapped.data.get(c)}
            operations.append(
                {
                    "op": "put",
                    "id": mapped.source_id,
                    "fields": values,
                    "if_none_match": "*",
                    "key": f"seed:{mapped.source_id}",
                }
            )
        token = os.environ[token_variable(system)]
        with httpx2.Client(
            base_url=peer.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            for start in range(0, len(operations), SEED_BATCH):
                chunk = operations[start : start + SEED_BATCH]
                response = client.post(f"/{peer.resource}:batch", json={"operations": chunk})
                response.raise_for_status()
        seeded[system] = len(operations)
    return seeded


def add_deliveries(root: Path, peers: dict[str, PeerProcess]) -> None:
    """Give the demo project's targets a `deliver` block pointing at their running peers
    (the demo owns its accord.yaml; comments and order are kept)."""
    from ruamel.yaml import YAML  # noqa: PLC0415

    yaml = YAML()
    path = root / "accord.yaml"
    document = yaml.load(path.read_text(encoding="utf-8"))
    for system, peer in peers.items():
        fields = DEMO_TARGETS[system][1]
        document["systems"][system]["deliver"] = {
            "http": {
                "url": peer.url,
                "resource": peer.resource,
                "token_env": token_variable(system),
                "batch": 200,
            },
            "fields": dict(fields),
            "conflicts": dict(DEMO_CONFLICTS[system]),
            "retry": {"max_attempts": 12, "backoff": "1s", "max_backoff": "2m"},
        }
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)
