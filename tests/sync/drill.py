"""A fault drill for sync out: real processes, real faults, every change counted.

Used by tests/sync/test_fault_drill.py (a few thousand changes, in `make test`) and by
benchmarks/sync_faults.py (100,000 changes, figures recorded).

The drill
- gives a project three targets: `billing` and `service`, the demo's HTTP peers (each its
  own process and SQLite store), and `erp`, a JetStream subject of its own;
- starts `workers` `accord sync run` processes, which compete for the targets through
  their leases;
- writes `changes` golden changes to the outbox at `rate` a second while they run: new
  customers, changes of delivered and of undelivered fields, and retirements;
- meanwhile injects faults: the peers answer 500s and 429s, hang past the client's
  timeout, lose answers after committing (so writes are sent again), and are SIGKILLed
  and started again after a while; workers are SIGKILLed in the middle of their rounds
  and started again; on PostgreSQL the workers' connections are terminated;
- waits until no target has anything waiting, then checks, per target, that what arrived
  is exactly the effect of every change, once, in each customer's order: the peers'
  write logs record by record, the stream event by event.

The expected effect is worked out here from the changes, independently of Accord's
delivery code: what a peer should hold after each change, and so which writes it should
have seen.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import orjson
from ruamel.yaml import YAML
from sqlalchemy import Engine, func, select, text

from accord.config.loader import Project, load_project
from accord.demo.peers import PeerProcess
from accord.demo.run import DEMO_TARGETS
from accord.store import outbox
from accord.store.engine import writing
from accord.store.tables import sync_delivery
from accord.sync.bus import BusConfig
from accord.sync.dispatch import status
from tests.sync.jetstream import NATS_URL, Subject, delete_stream, stream_size

TOKEN = "drill-token"
HTTP_TARGETS = ("billing", "service")
STREAM_TARGET = "erp"
STREAM_FIELDS = {"first_name": "given_name", "last_name": "family_name", "phone": "phone"}
STREAM_FIELDS |= {"town": "city"}
CHANGED_FIELDS = ("phone", "city", "email", "employer", "street", "postcode")


@dataclass
class DrillSettings:
    changes: int = 3_000
    workers: int = 2
    rate: float = 1_500.0  # changes written to the outbox a second
    seed: int = 11
    peer_faults: dict[str, Any] = field(
        default_factory=lambda: {
            "error_rate": 0.05,
            "throttle_rate": 0.03,
            "throttle_retry_after": 1,
            "timeout_rate": 0.01,
            "hang_seconds": 2.5,  # past the client's 1 s timeout
            "fail_after_commit_rate": 0.05,
        }
    )
    kill_worker_every: float = 3.0  # seconds
    peer_outage_every: float = 6.0
    peer_outage_for: float = 2.0
    drop_connections_every: float = 2.5  # PostgreSQL only
    lease: str = "2s"
    deadline: float = 300.0  # seconds for the whole drill
    bus: bool = False  # the scale-out mode: changes reach the workers over JetStream


@dataclass
class DrillReport:
    backend: str
    changes: int
    seconds: float
    deliveries: dict[str, int]  # target -> deliveries planned (the changes concerning it)
    writes: dict[str, int]  # HTTP target -> writes it applied; stream -> events stored
    worker_kills: int = 0
    peer_outages: int = 0
    peer_seconds_down: float = 0.0
    connection_drops: int = 0
    attempts: int = 0  # delivery attempts in all
    retried: int = 0  # deliveries that took more than one attempt
    most_attempts: int = 0
    problems: list[str] = field(default_factory=list)
    streamed: int = 0  # with the bus: the changes it holds (each once)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the workload --------------------------------------------------------------------


def workload(count: int, seed: int) -> list[dict[str, Any]]:
    """`count` golden changes, as the outbox takes them: a quarter new customers, one in
    fifty retirements, the rest changes of one field each, interleaved, every change of a
    customer after its creation and none after its retirement."""
    rng = random.Random(seed)
    to_create = max(1, count // 4)
    to_retire = count // 50
    to_update = count - to_create - to_retire
    changes: list[dict[str, Any]] = []
    customers: dict[str, dict[str, Any]] = {}
    live: list[str] = []
    while to_create or to_update or to_retire:
        left = to_create + to_update + to_retire
        pick = rng.random() * left
        if to_create and (not live or pick < to_create):
            golden_id = f"G{len(customers):07d}"
            n = len(customers)
            customers[golden_id] = {
                "given_name": f"Given{n}",
                "family_name": f"Family{n % 997}",
                "email": f"c{n}@drill.example",
                "phone": f"+4930{n:08d}",
                "city": rng.choice(["Köln", "Berlin", "Zürich", "Łódź", "O'Brien Town"]),
                "country": rng.choice(["DE", "CH", "PL"]),
                "employer": f"Firm {n % 113}",
                "street": f"Hauptstraße {n % 300}",
                "postcode": f"{10000 + n % 89999}",
            }
            live.append(golden_id)
            to_create -= 1
            changes.append(_change(golden_id, "created", dict(customers[golden_id]), None))
        elif to_update and (pick < to_create + to_update or len(live) < 2):
            golden_id = rng.choice(live)
            name = rng.choice(CHANGED_FIELDS)
            customers[golden_id][name] = f"{name}-{len(changes)}"
            to_update -= 1
            changes.append(_change(golden_id, "updated", dict(customers[golden_id]), [name]))
        else:
            golden_id = live.pop(rng.randrange(len(live)))
            to_retire -= 1
            changes.append(_change(golden_id, "retired", None, None))
    return changes


def _change(
    golden_id: str, kind: str, data: dict[str, Any] | None, fields: list[str] | None
) -> dict[str, Any]:
    return {
        "golden_id": golden_id,
        "change": kind,
        "data": data,
        "sources": dict.fromkeys(data, "crm") if data else None,
        "fields": fields,
    }


def expected_writes(
    changes: list[dict[str, Any]], fields: dict[str, str], authority: frozenset[str]
) -> dict[str, list[tuple[str, dict[str, Any] | None]]]:
    """record id -> the writes a peer holding the target's records should see, in order:
    the record created with the delivered fields, each change that alters what it holds,
    its deletion on retirement."""
    held: dict[str, dict[str, Any] | None] = {}
    writes: dict[str, list[tuple[str, dict[str, Any] | None]]] = defaultdict(list)
    for change in changes:
        golden_id = change["golden_id"]
        if change["change"] == "retired":
            if held.get(golden_id) is not None:
                writes[golden_id].append(("delete", None))
                held[golden_id] = None
            continue
        data = change["data"]
        wanted = {
            name: data[canonical]
            for name, canonical in fields.items()
            if canonical not in authority and data.get(canonical) not in (None, "")
        }
        current = held.get(golden_id)
        after = {**(current or {}), **wanted}
        if after and after != current:
            writes[golden_id].append(("put", after))
            held[golden_id] = after
    return dict(writes)


def expected_events(changes: list[dict[str, Any]], fields: dict[str, str]) -> list[int]:
    """The positions (0-based) of the changes a subscriber should get an event for."""
    delivered = set(fields.values())
    return [
        i
        for i, c in enumerate(changes)
        if c["change"] != "updated" or any(f in delivered for f in c["fields"])
    ]


# --- the setting ---------------------------------------------------------------------


def add_targets(
    root: Path, peers: dict[str, PeerProcess], subject: Subject, settings: DrillSettings
) -> Project:
    """Give the project at `root` its drill targets; returns it loaded."""
    yaml = YAML()
    path = root / "accord.yaml"
    document = yaml.load(path.read_text(encoding="utf-8"))
    common = {
        "retry": {"max_attempts": 1000, "backoff": "50ms", "max_backoff": "1s"},
        "breaker": {"failures": 5, "reset": "1s"},
        "lease": settings.lease,
        "batch_size": 500,
    }
    if settings.bus:  # a stream of its own on the bus
        document["project"] = f"drill-{uuid.uuid4().hex[:8]}"
    for system, peer in peers.items():
        document["systems"][system]["deliver"] = {
            "http": {
                "url": peer.url,
                "resource": peer.resource,
                "token_env": "DRILL_PEER_TOKEN",
                "batch": 100,
                "timeout": "1s",
            },
            "fields": dict(DEMO_TARGETS[system][1]),
            **common,
        }
    document["systems"][STREAM_TARGET]["deliver"] = {
        "nats": {"url_env": "DRILL_NATS_URL", "subject": subject.subject, "timeout": "2s"},
        "fields": dict(STREAM_FIELDS),
        **common,
    }
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)
    return load_project(root)


class Workers:
    """`accord sync run` processes on the project, SIGKILLed and started again at will."""

    def __init__(self, root: Path, url: str, count: int, logs: Path, *, bus: bool) -> None:
        self.root = root
        self.logs = logs
        self.env = os.environ | {
            "ACCORD_DATABASE_URL": url,
            "DRILL_PEER_TOKEN": TOKEN,
            "DRILL_NATS_URL": NATS_URL,
        }
        if bus:
            self.env["ACCORD_BUS_URL"] = NATS_URL
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self.started = 0

    def start(self, slot: int) -> None:
        accord = Path(sys.executable).parent / "accord"
        self.started += 1
        with (self.logs / f"worker-{self.started}.log").open("wb") as out:
            self.processes[slot] = subprocess.Popen(
                [str(accord), "sync", "run", str(self.root)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def __enter__(self) -> Workers:
        for slot in range(len(self.processes)):
            self.start(slot)
        return self

    def kill(self, slot: int) -> None:
        process = self.processes[slot]
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def exited(self) -> list[int]:
        """Exit codes of workers that stopped on their own (not killed by the drill)."""
        codes = [p.poll() for p in self.processes if p is not None]
        return [code for code in codes if code is not None and code != -signal.SIGKILL]

    def __exit__(self, *_: object) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            if process is not None:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.logs.glob("worker-*.log")):
            content = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(content))
        return "\n".join(out)


def _peer_client(peer: PeerProcess) -> httpx2.Client:
    return httpx2.Client(
        base_url=peer.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


def set_faults(peer: PeerProcess, faults: dict[str, Any], seed: int) -> None:
    with _peer_client(peer) as client:
        client.put("/_faults", json={**faults, "seed": seed}).raise_for_status()


def peer_log(peer: PeerProcess) -> list[dict[str, Any]]:
    """Every write the peer applied, in order."""
    entries: list[dict[str, Any]] = []
    with _peer_client(peer) as client:
        while True:
            after = entries[-1]["seq"] if entries else 0
            page = client.get("/_log", params={"after_seq": after, "limit": 1000})
            page.raise_for_status()
            found = page.json()
            entries.extend(found)
            if len(found) < 1000:
                return entries


class Chaos:
    """The faults, on a thread of their own, until stopped."""

    def __init__(
        self,
        settings: DrillSettings,
        workers: Workers,
        peers: dict[str, PeerProcess],
        drop_connections: Callable[[], int] | None,
        report: DrillReport,
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.peers = peers
        self.drop_connections = drop_connections
        self.report = report
        self.rng = random.Random(settings.seed)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="drill-chaos", daemon=True)
        self.failure: BaseException | None = None

    def _run(self) -> None:
        s = self.settings
        now = time.monotonic()
        next_kill = now + s.kill_worker_every
        next_outage = now + s.peer_outage_every
        next_drop = now + s.drop_connections_every
        down: tuple[PeerProcess, float, float] | None = None  # peer, back at, went down
        try:
            while not self.stop.wait(0.05):
                now = time.monotonic()
                if now >= next_kill:
                    slot = self.rng.randrange(len(self.workers.processes))
                    self.workers.kill(slot)
                    self.workers.start(slot)
                    self.report.worker_kills += 1
                    next_kill = now + s.kill_worker_every * self.rng.uniform(0.5, 1.5)
                if down is None and now >= next_outage:
                    peer = self.rng.choice(list(self.peers.values()))
                    peer.kill()
                    self.report.peer_outages += 1
                    down = (peer, now + s.peer_outage_for, now)
                if down is not None and now >= down[1]:
                    peer, _, since = down
                    self._bring_back(peer)
                    self.report.peer_seconds_down += time.monotonic() - since
                    down = None
                    next_outage = time.monotonic() + s.peer_outage_every
                if self.drop_connections is not None and now >= next_drop:
                    self.report.connection_drops += self.drop_connections()
                    next_drop = now + s.drop_connections_every * self.rng.uniform(0.5, 1.5)
        except BaseException as exc:  # noqa: BLE001  (reported by `end`)
            self.failure = exc
        finally:
            if down is not None:
                self._bring_back(down[0])
                self.report.peer_seconds_down += time.monotonic() - down[2]

    def _bring_back(self, peer: PeerProcess) -> None:
        peer.start()
        set_faults(peer, self.settings.peer_faults, self.rng.randrange(1 << 30))

    def __enter__(self) -> Chaos:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def _dropper(engine: Engine, application: str) -> Callable[[], int] | None:
    """On PostgreSQL: a function terminating the workers' connections (by their
    application name), returning how many it ended."""
    if engine.dialect.name != "postgresql":
        return None

    def drop() -> int:
        with engine.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": application},
            ).scalar_one()
            conn.commit()
        return int(ended)

    return drop


def _worker_url(engine: Engine, application: str) -> str:
    url = engine.url
    if url.get_backend_name() == "postgresql":
        url = url.update_query_dict({"application_name": application})
    return url.render_as_string(hide_password=False)


# --- the drill -----------------------------------------------------------------------


@contextmanager
def _peers(folder: Path, faults: dict[str, Any], seed: int) -> Iterator[dict[str, PeerProcess]]:
    started: dict[str, PeerProcess] = {}
    try:
        for system in HTTP_TARGETS:
            kind = DEMO_TARGETS[system][0]
            started[system] = PeerProcess(kind, folder / f"{system}.sqlite3", token=TOKEN).start()
            set_faults(started[system], faults, seed)
        yield started
    finally:
        for peer in started.values():
            peer.stop()


def run_drill(
    engine: Engine,
    root: Path,
    work: Path,
    settings: DrillSettings,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> DrillReport:
    """Run the drill against the migrated store `engine` and the project at `root`
    (`work` holds the peers' stores and the workers' logs); see the module's text."""
    changes = workload(settings.changes, settings.seed)
    report = DrillReport(engine.dialect.name, len(changes), 0.0, {}, {})
    application = f"accord-drill-{uuid.uuid4().hex[:8]}"
    subject = Subject()
    subject.create()
    on_bus: str | None = None  # the project's stream, with the bus
    try:
        with _peers(work, settings.peer_faults, settings.seed) as peers:
            project = add_targets(root, peers, subject, settings)
            if settings.bus:
                on_bus = BusConfig([NATS_URL], project.config.project, 1).stream
            started = time.monotonic()
            with (
                Workers(
                    root,
                    _worker_url(engine, application),
                    settings.workers,
                    work,
                    bus=settings.bus,
                ) as workers,
                Chaos(settings, workers, peers, _dropper(engine, application), report) as chaos,
            ):
                _produce(engine, changes, settings.rate, progress)
                _drain(
                    engine,
                    project,
                    workers=workers,
                    chaos=chaos,
                    deadline=started + settings.deadline,
                    progress=progress,
                )
            report.seconds = round(time.monotonic() - started, 1)
            if chaos.failure is not None:
                raise chaos.failure
            _check(engine, project, peers=peers, subject=subject, changes=changes, report=report)
            if on_bus is not None:
                report.streamed = stream_size(on_bus)
    finally:
        subject.delete()
        if on_bus is not None:
            delete_stream(on_bus)
    return report


def _produce(
    engine: Engine,
    changes: list[dict[str, Any]],
    rate: float,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Write the changes to the outbox at `rate` a second, in tenths of a second."""
    chunk = max(1, int(rate / 10))
    started = time.monotonic()
    for start in range(0, len(changes), chunk):
        time.sleep(max(0.0, started + start / rate - time.monotonic()))
        with writing(engine) as conn:
            outbox.record(conn, changes[start : start + chunk])
        if progress is not None:
            progress("written", min(start + chunk, len(changes)), len(changes))


def _drain(
    engine: Engine,
    project: Project,
    *,
    workers: Workers,
    chaos: Chaos,
    deadline: float,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Wait, faults still going, until no target has anything waiting."""
    while True:
        states = status(engine, project)
        waiting = sum(s.waiting for s in states)
        dead = sum(s.dead for s in states)
        if dead:
            raise AssertionError(f"{dead} dead letter(s): the drill never refuses a write")
        if progress is not None:
            with engine.connect() as conn:
                total = conn.execute(select(func.count()).select_from(sync_delivery)).scalar_one()
            progress("delivered", max(0, int(total) - waiting), int(total))
        if waiting == 0:
            return
        if chaos.failure is not None:
            raise chaos.failure
        if workers.exited():
            raise AssertionError(f"a worker stopped by itself\n{workers.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{waiting} deliveries still waiting at the deadline\n{workers.log_tail()}"
            )
        time.sleep(0.5)


def _check(
    engine: Engine,
    project: Project,
    *,
    peers: dict[str, PeerProcess],
    subject: Subject,
    changes: list[dict[str, Any]],
    report: DrillReport,
) -> None:
    """Every change's effect arrived once, in each customer's order: `report.problems`
    lists what did not (empty when all did)."""
    problems = report.problems
    with engine.connect() as conn:
        rows = conn.execute(
            select(sync_delivery.c.target, sync_delivery.c.state, sync_delivery.c.attempts)
        ).all()
    states = Counter((r.target, r.state) for r in rows)
    report.deliveries = dict(Counter(r.target for r in rows))
    report.attempts = sum(r.attempts for r in rows)
    report.retried = sum(1 for r in rows if r.attempts > 1)
    report.most_attempts = max((r.attempts for r in rows), default=0)
    for (target, state), count in sorted(states.items()):
        if state != "sent":
            problems.append(f"{target}: {count} deliveries {state}")

    for system, peer in peers.items():
        config = project.config.systems[system]
        assert config.deliver is not None
        expected = expected_writes(changes, config.deliver.fields, frozenset(config.authority))
        log = peer_log(peer)
        report.writes[system] = len(log)
        problems.extend(write_problems(system, expected, log))

    ids = _change_ids(engine)
    wanted = [ids[i] for i in expected_events(changes, STREAM_FIELDS)]
    events = [orjson.loads(data) for data in subject.payloads()]
    report.writes[STREAM_TARGET] = len(events)
    problems.extend(event_problems(STREAM_TARGET, wanted, events))


def write_problems(
    system: str,
    expected: dict[str, list[tuple[str, dict[str, Any] | None]]],
    log: list[dict[str, Any]],
) -> list[str]:
    """How a peer's write log differs from the writes expected of the changes: a write
    applied twice, a record whose writes are not exactly the expected ones in order
    (one missing, one more, one out of place), versions not rising one by one."""
    problems = []
    keys = Counter(entry["key"] for entry in log)
    repeated = sorted(key for key, n in keys.items() if n > 1)
    if repeated:
        problems.append(f"{system}: {len(repeated)} writes applied twice, e.g. {repeated[0]}")
    arrived: dict[str, list[tuple[str, dict[str, Any] | None]]] = defaultdict(list)
    versions: dict[str, list[int]] = defaultdict(list)
    for entry in log:
        arrived[entry["id"]].append((entry["op"], entry["fields"]))
        versions[entry["id"]].append(entry["version"])
    wrong = sorted(g for g in expected.keys() | arrived.keys() if expected.get(g) != arrived.get(g))
    if wrong:
        gid = wrong[0]
        problems.append(
            f"{system}: {len(wrong)} records whose writes differ from the changes', e.g. "
            f"{gid}: expected {expected.get(gid)}, arrived {arrived.get(gid)}"
        )
    gaps = sorted(g for g, seen in versions.items() if seen != list(range(1, len(seen) + 1)))
    if gaps:
        problems.append(f"{system}: {len(gaps)} records with versions not rising one by one")
    return problems


def event_problems(target: str, wanted: list[int], events: list[dict[str, Any]]) -> list[str]:
    """How a stream's events differ from one per wanted change id, each customer's in the
    order of its changes."""
    problems = []
    got = [int(e["id"]) for e in events]
    counted = Counter(got)
    if counted != Counter(wanted):
        missing = sorted(set(wanted) - set(got))
        twice = sorted(i for i, n in counted.items() if n > 1)
        extra = sorted(set(got) - set(wanted))
        problems.append(
            f"{target}: {len(missing)} events missing (e.g. {missing[:3]}), "
            f"{len(twice)} twice (e.g. {twice[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})"
        )
    last: dict[str, int] = {}
    disorder = 0
    for change_id, event in zip(got, events, strict=True):
        golden_id = event["subject"]
        if change_id < last.get(golden_id, 0):
            disorder += 1
        last[golden_id] = max(change_id, last.get(golden_id, 0))
    if disorder:
        problems.append(f"{target}: {disorder} events after a later change of their customer")
    return problems


def _change_ids(engine: Engine) -> list[int]:
    """The outbox ids of the drill's changes, in the order written."""
    with engine.connect() as conn:
        return [c.id for c in outbox.headings_after(conn, 0, 10_000_000)]
