"""The scale-out mode end to end: the same workload run by one `accord worker` process
on SQLite, and by separate intake, matching and delivery processes on PostgreSQL
coordinated through NATS JetStream (`ACCORD_BUS_URL`), ends with the same golden
records and the same records in the target systems.

The workload is the demo company (its four systems loaded and resolved with the learned
engine, its billing and service desk peers holding their own records), then CRM
exports dropped into a watched folder one after another while the workers run: phone
and city changes, new contacts, and contacts that are new records of known customers.
Every golden change reaches both peers through the workers alone."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from ruamel.yaml import YAML
from sqlalchemy import Engine, func, select

from accord.config.loader import load_project
from accord.demo.generator import generate
from accord.demo.peers import PeerProcess
from accord.demo.run import (
    DEMO_TARGETS,
    add_deliveries,
    inputs,
    seed_peers,
    start_peers,
    token_variable,
    write_project,
)
from accord.golden.resolve import resolve
from accord.intake.load import load_file
from accord.store import outbox, queue
from accord.store.engine import make_engine
from accord.store.migrate import upgrade
from accord.store.tables import crosswalk, golden_change, golden_record, sync_delivery
from accord.sync.bus import RELAY, BusConfig
from tests.conftest import _empty
from tests.sync.jetstream import NATS_URL, delete_stream, jetstream_available, stream_size

CUSTOMERS = 150
EXPORTS = 3  # CRM files dropped while the workers run
CHANGED = 12  # contacts changed in each export
SETTLED = 180.0  # seconds for everything to arrive


@dataclass
class Outcome:
    golden: dict[frozenset[tuple[str, str]], dict[str, Any]]  # members -> golden values
    peers: dict[str, dict[Any, Any]]  # system -> record -> (fields, deleted) there
    deliveries: dict[str, int]  # target -> deliveries sent
    unsent: int  # deliveries not sent (pending or dead)
    changes: int = 0  # golden changes in the outbox
    streamed: int = 0  # messages on the bus


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo-data")
    generate(data, customers=CUSTOMERS, seed=23)
    return data


def test_scale_out_over_nats_gives_the_same_golden_records_and_deliveries(
    demo_data: Path, postgres_engine: Engine, tmp_path: Path
) -> None:
    jetstream_available()
    exports = _exports(demo_data)

    sqlite = make_engine(f"sqlite:///{tmp_path / 'single.sqlite3'}")
    upgrade(sqlite)
    try:
        single = _run(tmp_path / "single", demo_data, sqlite, exports, roles=[[]], bus=False)
    finally:
        sqlite.dispose()

    _empty(postgres_engine)
    roles = [
        ["--no-match", "--no-sync"],  # intake
        ["--no-intake", "--no-sync"],  # matching, twice
        ["--no-intake", "--no-sync"],
        ["--no-intake", "--no-match"],  # delivery, twice
        ["--no-intake", "--no-match"],
    ]
    scaled = _run(tmp_path / "scaled", demo_data, postgres_engine, exports, roles=roles, bus=True)

    assert single.unsent == scaled.unsent == 0
    assert set(single.golden) == set(scaled.golden)  # the same customers, member for member
    different = {m for m in single.golden if single.golden[m] != scaled.golden[m]}
    assert not different, [(sorted(m), single.golden[m], scaled.golden[m]) for m in different]
    for system in DEMO_TARGETS:
        assert single.peers[system] == scaled.peers[system], system
    assert single.deliveries == scaled.deliveries
    assert single.deliveries["billing"] > CUSTOMERS // 2  # the check saw real work
    # in the scaled run, every golden change went over the bus, once
    assert scaled.streamed == scaled.changes > CUSTOMERS


# ---- the workload


def _exports(data: Path) -> list[list[dict[str, str]]]:
    """CRM exports: each changes the phone and city of some contacts, adds a new
    contact, and adds a second record of a known contact (another id, same person)."""
    with (data / "crm.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["RecordType"] == "Contact" and r["Email"]]
    files = []
    for n in range(EXPORTS):
        chosen = rows[n * CHANGED : (n + 1) * CHANGED]
        changed = [
            r | {"Phone": f"+44 20 7946 {n}{i:03d}", "City": f"Newtown {n}"}
            for i, r in enumerate(chosen)
        ]
        new = rows[0] | {
            "Id": f"003NEW{n:06d}",
            "FirstName": f"Quentin{n}",
            "LastName": "Zebedee",
            "Email": f"quentin{n}.zebedee@example.org",
            "Phone": f"+44 20 7946 9{n}00",
        }
        twin = rows[-1 - n] | {"Id": f"003TWIN{n:05d}"}
        files.append([*changed, new, twin])
    return files


def _run(
    root: Path,
    data: Path,
    engine: Engine,
    exports: list[list[dict[str, str]]],
    *,
    roles: list[list[str]],
    bus: bool,
) -> Outcome:
    project_dir = root / "project"
    write_project(project_dir)
    name = f"scale-{uuid.uuid4().hex[:8]}"  # a stream of its own on the bus
    _configure(project_dir, name)
    peers = start_peers(root)
    try:
        add_deliveries(project_dir, peers)
        project = load_project(project_dir)
        seed_peers(project, data, peers)
        for system, path in inputs(data):
            load_file(engine, project, system, path, actor="test")
        resolve(engine, project, actor="test")

        env = {"ACCORD_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
        env |= {token_variable(s): os.environ[token_variable(s)] for s in peers}
        if bus:
            env["ACCORD_BUS_URL"] = NATS_URL
        with _workers(project_dir, env, root, roles) as alive:
            for n, rows in enumerate(exports):
                _drop(project_dir, f"export-{n}.csv", rows)
                time.sleep(0.3)
            _wait_until(
                "every export stored, matched and delivered",
                lambda: alive() and _settled(engine, project_dir, len(exports), bus=bus),
            )
        outcome = _outcome(engine, peers)
        if bus:
            outcome.streamed = stream_size(BusConfig([NATS_URL], name, 1).stream)
        return outcome
    finally:
        for peer in peers.values():
            peer.stop()
        if bus:
            delete_stream(BusConfig([NATS_URL], name, 1).stream)


def _configure(project_dir: Path, name: str) -> None:
    """The project named `name`, with the CRM's exports taken from a watched folder."""
    yaml = YAML()
    path = project_dir / "accord.yaml"
    document = yaml.load(path)
    document["project"] = name
    document["systems"]["crm"]["intake"] = {
        "drop": {"folder": "drops/crm", "every": "1s", "settle": "0s"}
    }
    yaml.dump(document, path)
    (project_dir / "drops" / "crm").mkdir(parents=True)


def _drop(project_dir: Path, name: str, rows: list[dict[str, str]]) -> None:
    """Write an export beside the folder, then move it in whole."""
    folder = project_dir / "drops" / "crm"
    partial = folder.parent / f".{name}.part"
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    partial.rename(folder / name)


@contextlib.contextmanager
def _workers(
    project_dir: Path, env: dict[str, str], root: Path, roles: list[list[str]]
) -> Iterator[Callable[[], bool]]:
    """Worker processes, one per role; yields a check that they are all alive. Stops
    them with SIGTERM and checks that each ended well."""
    accord = Path(sys.executable).parent / "accord"
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for n, args in enumerate(roles):
            log = root / f"worker-{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [str(accord), "worker", "run", str(project_dir), *args],
                    env=os.environ | env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append((process, log))

        def alive() -> bool:
            for process, log in processes:
                if process.poll() is not None:
                    raise AssertionError(f"a worker ended early:\n{log.read_text()[-3000:]}")
            return True

        yield alive
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, log in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.returncode == 0, log.read_text()[-3000:]


def _settled(engine: Engine, project_dir: Path, exports: int, *, bus: bool) -> bool:
    done = project_dir / "drops" / "crm" / "done"
    if len(list(done.glob("export-*.csv"))) < exports:
        return False
    with engine.connect() as conn:
        if queue.backlog(conn):
            return False
        last = outbox.last_id(conn)
        places = [outbox.cursor(conn, t) for t in DEMO_TARGETS]
        if bus:
            places.append(outbox.cursor(conn, RELAY))
        if any(place < last for place in places):
            return False
        waiting = conn.execute(
            select(func.count()).select_from(sync_delivery).where(sync_delivery.c.state != "sent")
        ).scalar_one()
    return waiting == 0


def _wait_until(what: str, check: Callable[[], bool], seconds: float = SETTLED) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


# ---- what came of it


def _outcome(engine: Engine, peers: dict[str, PeerProcess]) -> Outcome:
    with engine.connect() as conn:
        members: dict[str, set[tuple[str, str]]] = {}
        for golden_id, system, source_id in conn.execute(
            select(crosswalk.c.golden_id, crosswalk.c.system, crosswalk.c.source_id)
        ):
            members.setdefault(golden_id, set()).add((system, source_id))
        golden = {
            frozenset(members[golden_id]): data
            for golden_id, data in conn.execute(
                select(golden_record.c.golden_id, golden_record.c.data).where(
                    golden_record.c.status == "active"
                )
            )
        }
        sent: dict[str, int] = dict(
            conn.execute(
                select(sync_delivery.c.target, func.count())
                .where(sync_delivery.c.state == "sent")
                .group_by(sync_delivery.c.target)
            ).all()
        )
        unsent = conn.execute(
            select(func.count()).select_from(sync_delivery).where(sync_delivery.c.state != "sent")
        ).scalar_one()
        changes = conn.execute(select(func.count()).select_from(golden_change)).scalar_one()
    by_golden = {g: frozenset(m) for g, m in members.items()}
    held = {
        system: {
            # a record Accord created is named by its golden id, which differs between
            # the runs: it is named by the customer's members instead
            by_golden.get(record_id, record_id): (record.get("fields"), record.get("deleted"))
            for record_id, record in _records(system, peer).items()
        }
        for system, peer in peers.items()
    }
    return Outcome(golden, held, sent, unsent, changes)


def _records(system: str, peer: PeerProcess) -> dict[str, dict[str, Any]]:
    token = os.environ[token_variable(system)]
    found: dict[str, dict[str, Any]] = {}
    with httpx2.Client(
        base_url=peer.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        after = ""
        while True:
            page = client.get(f"/{peer.resource}", params={"after": after, "limit": 1000}).json()
            found.update({item["id"]: item for item in page["items"]})
            if not page["next"]:
                return found
            after = page["next"]
