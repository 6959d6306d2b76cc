"""The demo's sync story: what keeping systems in step looks like, told with the demo's
own data and peers, after the first delivery.

1. *A change in the CRM reaches billing*: a customer's phone changes in a CRM export;
   loaded and resolved, the new golden value is written to the billing and service
   desk peers.
2. *Crossing edits, settled by policy*: someone in billing edits a customer's city
   while the CRM changes it too; billing's `city` policy (`newest`) keeps the later one.
3. *Crossing edits, left to a steward*: the service desk edits a phone while the CRM
   changes it; the service desk's `phone` policy is `steward`, so the conflict waits in
   the queue (`accord sync conflicts`, `accord sync decide`).
4. *An outage that heals*: the billing peer is killed; a change made meanwhile waits,
   retried with back-off, and arrives once the peer is back.

Each scene returns a `Scene` (a table and a line of explanation) for the caller to show.
The customers are golden records held by one CRM person record only, so the CRM's values
win every field and the peers hold records Accord created for them.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
from sqlalchemy import func, select

from accord.errors import AccordError
from accord.golden.resolve import resolve
from accord.intake.load import load_file
from accord.store import sync as sync_store
from accord.store.tables import crosswalk, golden_record
from accord.store.types import utcnow
from accord.sync.dispatch import RoundReport, TargetStatus, run, status

if TYPE_CHECKING:
    from accord.demo.peers import PeerProcess
    from accord.workspace import Workspace

ACTOR = "demo"


@dataclass(frozen=True)
class Scene:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str


class StoryError(AccordError):
    """The story could not be told with this data."""


def tell(
    workspace: Workspace,
    peers: dict[str, PeerProcess],
    data: Path,
    token: Callable[[str], str],
) -> Iterator[Scene]:
    """The four scenes, in order; `token(system)` is the bearer token of its peer."""
    story = _Story(workspace, peers, data, token)
    first, second, third, fourth = story.customers(4)
    yield story.crm_change_reaches_billing(first)
    yield story.crossing_edit_settled_by_policy(second)
    yield story.crossing_edit_left_to_a_steward(third)
    yield story.outage_heals(fourth)


@dataclass(frozen=True)
class _Customer:
    golden_id: str
    crm_id: str
    name: str


class _Story:
    def __init__(
        self,
        workspace: Workspace,
        peers: dict[str, PeerProcess],
        data: Path,
        token: Callable[[str], str],
    ) -> None:
        self.workspace = workspace
        self.peers = peers
        self.data = data
        self.token = token
        self.files = 0

    # -- the cast

    def customers(self, count: int) -> list[_Customer]:
        """Active people held by one CRM record only, with a phone and a city."""
        engine = self.workspace.engine
        with engine.connect() as conn:
            single = (
                select(crosswalk.c.golden_id, func.min(crosswalk.c.source_id).label("crm_id"))
                .group_by(crosswalk.c.golden_id)
                .having(func.count() == 1, func.min(crosswalk.c.system) == "crm")
                .subquery()
            )
            rows = conn.execute(
                select(golden_record.c.golden_id, golden_record.c.data, single.c.crm_id)
                .join(single, single.c.golden_id == golden_record.c.golden_id)
                .where(golden_record.c.status == "active")
                .order_by(golden_record.c.golden_id)
                .limit(200)
            ).all()
        found = [
            _Customer(r.golden_id, r.crm_id, f"{r.data['given_name']} {r.data['family_name']}")
            for r in rows
            if r.data.get("kind") == "person"
            and all(r.data.get(f) for f in ("given_name", "family_name", "phone", "city"))
        ]
        if len(found) < count:
            raise StoryError(
                f"the demo data has {len(found)} customers held by the CRM alone; the sync "
                f"story needs {count}",
                hint="run the demo with more customers (--customers 1000 or more)",
            )
        return found[:count]

    # -- the scenes

    def crm_change_reaches_billing(self, customer: _Customer) -> Scene:
        before = self._held("billing", customer.golden_id)
        phone = _another_phone(before["phone"])
        path = self._crm_export({customer.crm_id: {"Phone": phone}})
        self._load_and_resolve(path)
        reports = self._deliver(["billing", "service"])
        billing = self._held("billing", customer.golden_id)
        service = self._held("service", customer.golden_id)
        return Scene(
            "1. A change in the CRM reaches billing",
            ["customer", "field", "billing before", "CRM export", "billing now", "service now"],
            [[customer.name, "phone", before["phone"], phone, billing["phone"], service["phone"]]],
            f"{path.name} loaded, resolved, and delivered: "
            f"{reports['billing'].sent} change(s) sent to billing, "
            f"{reports['service'].sent} to the service desk.",
        )

    def crossing_edit_settled_by_policy(self, customer: _Customer) -> Scene:
        self._edit("billing", customer.golden_id, {"city": "Billingham"})
        path = self._crm_export({customer.crm_id: {"City": "Bristol"}})
        self._load_and_resolve(path)
        self._deliver(["billing", "service"])
        [conflict] = self._conflicts("billing", customer.golden_id)
        now = self._held("billing", customer.golden_id)
        return Scene(
            "2. Crossing edits, settled by policy",
            [
                "customer",
                "field",
                "billing's edit",
                "CRM's change",
                "policy",
                "kept",
                "billing now",
            ],
            [
                [
                    customer.name,
                    conflict["field"],
                    conflict["theirs"],
                    conflict["ours"],
                    conflict["policy"],
                    conflict["kept"],
                    now["city"],
                ]
            ],
            "Billing changed the city while the CRM did too. Billing's `city` policy is "
            "`newest`: the CRM's change came later, so it is kept, and the conflict is "
            "recorded (accord sync conflicts).",
        )

    def crossing_edit_left_to_a_steward(self, customer: _Customer) -> Scene:
        held = self._held("service", customer.golden_id)
        theirs = _another_phone(held["phone"], 1)
        self._edit("service", customer.golden_id, {"phone": theirs})
        ours = _another_phone(held["phone"], 2)
        path = self._crm_export({customer.crm_id: {"Phone": ours}})
        self._load_and_resolve(path)
        self._deliver(["billing", "service"])
        [conflict] = self._conflicts("service", customer.golden_id)
        now = self._held("service", customer.golden_id)
        directory = self.workspace.root
        return Scene(
            "3. Crossing edits, left to a steward",
            [
                "conflict",
                "customer",
                "field",
                "service desk's edit",
                "CRM's change",
                "kept",
                "service desk now",
            ],
            [
                [
                    conflict["id"],
                    customer.name,
                    conflict["field"],
                    conflict["theirs"],
                    conflict["ours"],
                    conflict["kept"],
                    now["phone"],
                ]
            ],
            "The service desk's `phone` policy is `steward`: its value stays until someone "
            f"decides. See `accord sync conflicts {directory} --target service`; settle with "
            f"`accord sync decide {directory} {conflict['id']} --keep ours` (or theirs).",
        )

    def outage_heals(self, customer: _Customer) -> Scene:
        peer = self.peers["billing"]
        peer.kill()
        path = self._crm_export({customer.crm_id: {"City": "Brighton"}})
        self._load_and_resolve(path)
        self._deliver(["billing"], seconds=3)  # tried, failing, until the deadline
        down = self._status("billing")
        peer.start()
        reports = self._deliver(["billing"], seconds=120)
        after = self._status("billing")
        now = self._held("billing", customer.golden_id)
        return Scene(
            "4. Billing down, then back: nothing lost",
            ["", "billing waiting", "last error", "billing's city for " + customer.name],
            [
                ["while down", down.waiting, down.last_error or "", "(unreachable)"],
                ["once back", after.waiting, "", now["city"]],
            ],
            f"The billing peer was killed; the change waited, tried again with back-off, "
            f"and was sent once it was back ({reports['billing'].sent} sent, "
            f"{reports['billing'].dead} dead).",
        )

    # -- the means

    def _crm_export(self, changes: dict[str, dict[str, str]]) -> Path:
        """A CRM export of the changed records only: their rows of the demo's CRM file
        with `changes` (CRM id -> column -> value) laid over them, modified now."""
        source = self.data / "crm.csv"
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [row for row in reader if row["Id"] in changes]
        if len(rows) != len(changes):
            raise StoryError(f"{source} lacks some of the CRM ids {sorted(changes)}")
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.files += 1
        target = self.data / f"crm-changes-{self.files}.csv"
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, **changes[row["Id"]], "LastModified": stamp})
        return target

    def _load_and_resolve(self, path: Path) -> None:
        workspace = self.workspace
        report = load_file(workspace.engine, workspace.project, "crm", path, actor=ACTOR)
        if report.quarantined:
            raise StoryError(f"{path.name}: {report.quarantined} record(s) quarantined")
        resolve(workspace.engine, workspace.project, actor=ACTOR)

    def _deliver(self, targets: list[str], seconds: float = 60) -> dict[str, RoundReport]:
        return run(
            self.workspace.engine,
            self.workspace.project,
            targets,
            stop=threading.Event(),
            until_idle=True,
            idle_wait=0.05,
            deadline=utcnow() + timedelta(seconds=seconds),
        )

    def _client(self, system: str) -> httpx2.Client:
        peer = self.peers[system]
        return httpx2.Client(
            base_url=f"{peer.url}/{peer.resource}",
            headers={"Authorization": f"Bearer {self.token(system)}"},
            timeout=10,
        )

    def _held(self, system: str, record_id: str) -> dict[str, Any]:
        with self._client(system) as client:
            response = client.get(f"/{record_id}")
            response.raise_for_status()
            fields: dict[str, Any] = response.json()["fields"]
            return fields

    def _edit(self, system: str, record_id: str, changes: dict[str, Any]) -> None:
        """Someone working in `system` edits the record (a conditional write, as a user
        interface over it would)."""
        with self._client(system) as client:
            current = client.get(f"/{record_id}")
            current.raise_for_status()
            client.put(
                f"/{record_id}",
                json={"fields": {**current.json()["fields"], **changes}},
                headers={"If-Match": current.headers["etag"]},
            ).raise_for_status()

    def _status(self, target: str) -> TargetStatus:
        [found] = [
            s for s in status(self.workspace.engine, self.workspace.project) if s.target == target
        ]
        return found

    def _conflicts(self, target: str, golden_id: str) -> list[dict[str, Any]]:
        with self.workspace.engine.connect() as conn:
            return [c for c in sync_store.conflicts(conn, target) if c["record_id"] == golden_id]


def _another_phone(phone: str, step: int = 0) -> str:
    """The same number with its last three digits changed (still a valid number of the
    same length), different for each `step`."""
    digits = phone[-3:]
    replacement = f"{(int(digits) + 137 + 211 * step) % 1000:03d}" if digits.isdigit() else "123"
    return phone[:-3] + replacement
