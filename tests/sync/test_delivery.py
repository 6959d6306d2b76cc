"""Sync out end to end: golden changes delivered to a real peer service (the demo's
billing peer, its own process and SQLite store) over HTTP, on both stores, with the
peer's faults switched on from outside, the peer killed and restarted, and edits made
in the peer while Accord writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from accord.demo.peers import PeerProcess
from accord.errors import AccordError, Conflict, NotAllowed
from accord.golden.resolve import resolve
from accord.govern.permissions import Actor, Role, cli_actor
from accord.intake.load import load_file
from accord.settings import Settings
from accord.steward.service import decide_pair
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.tables import audit_log, sync_cursor
from accord.store.types import utcnow
from accord.sync.conflicts import decide
from accord.sync.dispatch import RoundReport, TargetDispatcher, run, status
from accord.sync.reconcile import reconcile
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob, bob_row, crm_row, write_csv
from tests.sync.helpers import (
    deliver,
    expected_fields,
    golden_data,
    load,
    with_billing_delivery,
    with_service_delivery,
)

TOKEN = "billing-test-token"
TOKEN_ENV = "ACCORD_TEST_BILLING_TOKEN"

DELIVER = """
    deliver:
      http:
        url: "{url}"
        resource: accounts
        token_env: {token_env}
        batch: {batch}
        timeout: 2s
      fields:
        first_name: given_name
        last_name: family_name
        email_address: email
        phone: phone
        town: city
        country: country
      conflicts: {{city: newest}}
      retry: {{max_attempts: {attempts}, backoff: 20ms, max_backoff: 100ms}}
      breaker: {{failures: 3, reset: 300ms}}
"""


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[PeerProcess]:
    with PeerProcess("billing", tmp_path / "billing-peer.sqlite3", token=TOKEN) as process:
        yield process


@pytest.fixture
def synced(
    engine: Engine, demo_project_dir: Path, peer: PeerProcess, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    return _workspace(engine, demo_project_dir, peer, monkeypatch)


def _workspace(
    engine: Engine,
    root: Path,
    peer: PeerProcess,
    monkeypatch: pytest.MonkeyPatch,
    *,
    attempts: int = 50,
    batch: int = 50,
) -> Workspace:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    block = DELIVER.format(url=peer.url, token_env=TOKEN_ENV, attempts=attempts, batch=batch)
    return with_billing_delivery(engine, root, block)


def _client(peer: PeerProcess) -> httpx2.Client:
    return httpx2.Client(
        base_url=peer.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )


def _records(peer: PeerProcess) -> dict[str, dict[str, Any]]:
    with _client(peer) as client:
        found: dict[str, dict[str, Any]] = {}
        after = ""
        while True:
            page = client.get("/accounts", params={"after": after, "limit": 1000}).json()
            found.update({item["id"]: item for item in page["items"]})
            if not page["next"]:
                return found
            after = page["next"]


def _log(peer: PeerProcess) -> list[dict[str, Any]]:
    with _client(peer) as client:
        response = client.get("/_log", params={"after_seq": 0, "limit": 1000})
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries


def _faults(peer: PeerProcess, **settings: Any) -> None:
    with _client(peer) as client:
        client.put("/_faults", json=settings).raise_for_status()


def test_customers_are_created_in_the_target_then_their_changes_follow(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    rows = anna_chain_and_bob()
    load(synced, tmp_path, rows, "a.csv")
    golden = golden_data(synced)
    report = deliver(synced)
    assert report["sent"] == len(golden) and report["dead"] == 0
    held = _records(peer)
    assert {gid: r["fields"] for gid, r in held.items()} == {
        gid: expected_fields(data) for gid, data in golden.items()
    }

    load(synced, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777")], "b.csv")
    assert deliver(synced)["sent"] == 1
    [bob] = [gid for gid, data in golden_data(synced).items() if data.get("given_name") == "Bob"]
    after = _records(peer)[bob]
    assert after["fields"]["phone"] == "+49897777777"
    assert after["version"] == 2
    # each change was written once, in order, and nothing else was
    log = _log(peer)
    assert Counter(entry["id"] for entry in log) == Counter({**dict.fromkeys(golden, 1), bob: 2})
    assert deliver(synced)["taken"] == 0  # nothing left, nothing written twice
    assert len(_log(peer)) == len(log)
    [state] = status(synced.engine, synced.project)
    assert (state.waiting, state.sent, state.dead, state.alarm) == (0, len(golden) + 1, 0, None)


def test_faults_lose_nothing_and_apply_each_change_once(
    engine: Engine,
    demo_project_dir: Path,
    peer: PeerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # batches of 4 writes: many requests, so some fail three times in a row and wait
    synced = _workspace(engine, demo_project_dir, peer, monkeypatch, batch=4)
    rows = [
        crm_row(
            f"P{i}",
            FirstName=f"Name{i}",
            LastName="Fault",
            Email=f"p{i}@x.example",
            Phone=f"+49 30 {1000000 + i}",
            BirthDate="",
            PostalCode="10115",
        )
        for i in range(40)
    ]
    _faults(peer, error_rate=0.4, fail_after_commit_rate=0.25, seed=7)
    load(synced, tmp_path, rows, "a.csv")
    changed = [{**row, "City": "Potsdam"} if i % 2 == 0 else row for i, row in enumerate(rows)]
    load(synced, tmp_path, changed, "b.csv")  # a second change for half of them
    report = deliver(synced, seconds=120)
    golden = golden_data(synced)
    assert report["dead"] == 0
    assert report["retrying"] > 0  # the faults were met
    with _client(peer) as client:
        client.delete("/_faults").raise_for_status()
    held = _records(peer)
    assert {gid: r["fields"] for gid, r in held.items()} == {
        gid: expected_fields(data) for gid, data in golden.items()
    }
    log = _log(peer)
    keys = [entry["key"] for entry in log]
    assert len(keys) == len(set(keys))  # no change applied twice
    writes = Counter(entry["id"] for entry in log)
    assert max(writes.values()) <= 2  # created, and changed at most once
    assert sum(writes.values()) == len(golden) + sum(
        1 for data in golden.values() if data.get("city") == "Potsdam"
    )
    # per customer, its changes arrived in order: versions rise one by one
    for record_id in writes:
        versions = [e["version"] for e in log if e["id"] == record_id]
        assert versions == list(range(1, len(versions) + 1))


def test_a_target_down_opens_the_breaker_and_the_backlog_arrives_when_it_is_back(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    peer.kill()
    dispatcher = TargetDispatcher(synced.engine, synced.project, "billing")
    reports = []
    try:
        while not any(r.breaker_open for r in reports) and len(reports) < 200:
            reports.append(dispatcher.round())
            time.sleep(0.05)
    finally:
        dispatcher.close()
    assert reports[-1].breaker_open  # three failed requests in a row opened it
    assert sum(r.taken for r in reports) >= 3
    assert sum(r.sent for r in reports) == 0
    [state] = status(synced.engine, synced.project)
    assert state.waiting == len(golden_data(synced)) and state.last_error
    peer.start()
    report = deliver(synced)
    assert report["sent"] == len(golden_data(synced)) and report["dead"] == 0
    assert len(_records(peer)) == len(golden_data(synced))


def test_delivering_until_idle_to_a_dead_target_ends_at_its_deadline(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    # Found by the demo: with the breaker open, a round takes its deliveries and sends
    # none, and the loop went round again at once, never reaching the deadline.
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    peer.kill()
    finished = threading.Event()
    outcome: list[dict[str, Any]] = []

    def attempt() -> None:
        outcome.append(deliver(synced, seconds=2))
        finished.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert finished.wait(60), "delivery to a dead target never reached its deadline"
    assert outcome[0]["breaker_open"] and outcome[0]["sent"] == 0
    [state] = status(synced.engine, synced.project)
    assert state.waiting == len(golden_data(synced))


def test_an_edit_in_the_target_meanwhile_is_settled_by_the_field_policy(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    rows = anna_chain_and_bob()
    load(synced, tmp_path, rows, "a.csv")
    deliver(synced)
    [bob] = [gid for gid, data in golden_data(synced).items() if data.get("given_name") == "Bob"]
    with _client(peer) as client:  # someone in billing edits Bob's phone and town
        current = client.get(f"/accounts/{bob}").json()["fields"]
        edited = {**current, "phone": "+4989000000", "town": "Bonn"}
        client.put(f"/accounts/{bob}", json={"fields": edited}).raise_for_status()
    # meanwhile the CRM changes both too
    load(synced, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777", city="Aachen")], "b.csv")
    assert deliver(synced)["sent"] == 1
    fields = _records(peer)[bob]["fields"]
    # phone: survivorship ranks crm above billing for phone (source priority): ours.
    # town: `newest`; the golden change came after billing's edit: ours too.
    assert (fields["phone"], fields["town"]) == ("+4989777777" + "7", "Aachen")
    with synced.engine.connect() as conn:
        conflicts = {c["field"]: c for c in sync_store.conflicts(conn, "billing")}
    assert conflicts["phone"]["kept"] == "ours" and conflicts["phone"]["theirs"] == "+4989000000"
    assert conflicts["town"]["policy"] == "newest" and conflicts["town"]["kept"] == "ours"


def test_a_merge_deletes_the_record_accord_created_for_the_customer_merged_away(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    deliver(synced)
    before = set(golden_data(synced))
    with writing(synced.engine) as conn:
        decide_pair(conn, cli_actor(), ("crm", "C4"), ("crm", "C1"), decision="same")
    resolve(synced.engine, synced.project, actor="test")
    gone = before - set(golden_data(synced))
    assert len(gone) == 1
    report = deliver(synced)
    assert report["dead"] == 0
    held = _records(peer)
    assert set(held) == set(golden_data(synced))
    with _client(peer) as client:
        [merged_away] = gone
        assert client.get(f"/accounts/{merged_away}").status_code == 410  # a tombstone


def test_a_record_edited_in_the_target_is_still_deleted_with_the_edit_on_record(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    # Found in review: a delete meeting a 412 used to end "unchanged" and leave the
    # record of a customer merged away in the target.
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    deliver(synced)
    before = set(golden_data(synced))
    with _client(peer) as client:  # someone in billing edits every record's town
        for record_id in before:
            current = client.get(f"/accounts/{record_id}")
            client.put(
                f"/accounts/{record_id}",
                json={"fields": {**current.json()["fields"], "town": f"Edited {record_id}"}},
                headers={"If-Match": current.headers["etag"]},
            ).raise_for_status()
    with writing(synced.engine) as conn:
        decide_pair(conn, cli_actor(), ("crm", "C4"), ("crm", "C1"), decision="same")
    resolve(synced.engine, synced.project, actor="test")
    [merged_away] = before - set(golden_data(synced))
    assert deliver(synced)["dead"] == 0
    with _client(peer) as client:
        assert client.get(f"/accounts/{merged_away}").status_code == 410
    with synced.engine.connect() as conn:
        tombstones = [
            c for c in sync_store.conflicts(conn, "billing") if c["policy"] == "tombstone"
        ]
    assert [(c["record_id"], c["field"], c["theirs"], c["kept"]) for c in tombstones] == [
        (merged_away, "town", f"Edited {merged_away}", "ours")
    ]


def test_a_target_that_cannot_start_is_said_at_once_and_the_others_go_on(
    engine: Engine,
    demo_project_dir: Path,
    peer: PeerProcess,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with_service_delivery(
        engine,
        demo_project_dir,
        "    deliver:\n"
        "      file: {folder: exports, format: jsonl}\n"
        "      fields: {first_name: given_name, phone: phone}\n",
    )
    synced = _workspace(engine, demo_project_dir, peer, monkeypatch)
    monkeypatch.delenv(TOKEN_ENV)  # billing's token: unset
    load(synced, demo_project_dir, anna_chain_and_bob(), "a.csv")
    with pytest.raises(AccordError, match=f"{TOKEN_ENV} holding the target's token is not set"):
        run(
            synced.engine,
            synced.project,
            ["billing", "service"],
            stop=threading.Event(),
            until_idle=True,
            idle_wait=0.05,
            deadline=utcnow() + timedelta(seconds=60),
        )
    assert "sync to billing cannot start" in caplog.text
    [billing, service] = status(synced.engine, synced.project)
    assert service.sent == len(golden_data(synced)) and service.waiting == 0
    assert billing.sent == 0 and billing.waiting == len(golden_data(synced))


def test_a_refused_write_is_a_dead_letter_that_replays_once_fixed(
    synced: Workspace, peer: PeerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    monkeypatch.setenv(TOKEN_ENV, "a-wrong-token")
    report = deliver(synced)
    count = len(golden_data(synced))
    assert (report["sent"], report["dead"]) == (0, count)
    with synced.engine.connect() as conn:
        letters = sync_store.dead_letters(conn, "billing")
    assert len(letters) == count
    assert all(
        d["last_status"] == 401 and "refused by billing (401)" in d["last_error"] for d in letters
    )
    [state] = status(synced.engine, synced.project)
    assert state.alarm == f"{count} dead letter(s)"

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with writing(synced.engine) as conn:
        assert sync_store.replay(conn, "billing") == count
    assert deliver(synced)["sent"] == count
    assert len(_records(peer)) == count


def test_a_round_that_outlasts_its_lease_records_nothing_and_the_new_holder_delivers_once(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    """Worker A stalls mid-round past its lease; B takes the target over and delivers.
    A's late answers are rolled back at its fence, and every write counts once."""
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    count = len(golden_data(synced))
    slow = TargetDispatcher(synced.engine, synced.project, "billing", owner="A")
    quick = TargetDispatcher(synced.engine, synced.project, "billing", owner="B")
    assert slow.channel is not None
    real_apply = slow.channel.apply
    taken_over: list[RoundReport] = []

    def stalled_apply(operations: Any) -> Any:
        with writing(synced.engine) as conn:  # A's lease runs out while it is stalled
            conn.execute(sync_cursor.update().values(lease_until=utcnow() - timedelta(seconds=1)))
        taken_over.append(quick.round())
        return real_apply(operations)  # A's writes arrive late, repeated: applied once

    slow.channel.apply = stalled_apply  # type: ignore[method-assign]
    try:
        report = slow.round()
    finally:
        quick.close()
        slow.close()
    assert (
        report.held_elsewhere and report.sent == 0 and "took the target over" in str(report.error)
    )
    assert taken_over[0].sent == count
    [state] = status(synced.engine, synced.project)
    assert (state.waiting, state.sent, state.dead) == (0, count, 0)
    log = _log(peer)
    assert len(log) == count  # A's repeated writes were replays, not second writes
    assert len({entry["key"] for entry in log}) == count


def test_a_worker_process_matches_and_delivers_and_two_never_deliver_at_once(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    """Two real `accord worker run` processes: loaded records are matched, and the golden
    changes delivered, with no one-shot command; each change written once."""
    url = synced.engine.url.render_as_string(hide_password=False)
    env = os.environ | {"ACCORD_DATABASE_URL": url, TOKEN_ENV: TOKEN}
    accord = Path(sys.executable).parent / "accord"
    rows = anna_chain_and_bob()
    load_file(synced.engine, synced.project, "crm", write_csv(tmp_path / "a.csv", rows), actor="t")
    workers = []
    for i in range(2):
        with (tmp_path / f"worker-{i}.log").open("wb") as out:
            workers.append(
                subprocess.Popen(
                    [str(accord), "worker", "run", str(synced.root), "--no-intake"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        deadline = time.monotonic() + 90
        while len(_records(peer)) < 2:
            assert all(w.poll() is None for w in workers), _logs(tmp_path)
            assert time.monotonic() < deadline, _logs(tmp_path)
            time.sleep(0.2)
        expected = {gid: expected_fields(data) for gid, data in golden_data(synced).items()}
        assert {gid: r["fields"] for gid, r in _records(peer).items()} == expected
        assert len(_log(peer)) == len(expected)  # each written once, by one of the two
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)
    assert "delivering to billing" in _logs(tmp_path)


def _logs(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("worker-*.log")))


def test_reconcile_reports_drift_field_by_field_and_repairs_it_through_delivery(
    synced: Workspace, peer: PeerProcess, tmp_path: Path
) -> None:
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    deliver(synced)
    golden = golden_data(synced)
    [bob] = [gid for gid, data in golden.items() if data.get("given_name") == "Bob"]
    [anna] = [gid for gid in golden if gid != bob]
    with _client(peer) as client:  # someone edits Bob's town, deletes Anna, adds a stranger
        current = client.get(f"/accounts/{bob}").json()["fields"]
        client.put(f"/accounts/{bob}", json={"fields": {**current, "town": "Bonn"}})
        client.delete(f"/accounts/{anna}").raise_for_status()
        client.put("/accounts/X-1", json={"fields": {"last_name": "Stranger"}})
    found = reconcile(synced.engine, synced.project, "billing")
    assert (found.records, found.in_step, found.drifted) == (2, 0, 1)
    [drift] = found.drift
    assert (drift.record_id, drift.field, drift.theirs, drift.ours) == (
        bob,
        "town",
        "Bonn",
        golden[bob]["city"],
    )
    assert found.unknown == ["X-1"] and found.absent == 1 and found.missing == 0
    assert found.repaired == 0  # a report only

    repaired = reconcile(synced.engine, synced.project, "billing", repair=True)
    assert repaired.repaired == 1
    assert deliver(synced)["sent"] == 1
    assert _records(peer)[bob]["fields"]["town"] == golden[bob]["city"]
    again = reconcile(synced.engine, synced.project, "billing")
    assert (again.drifted, again.in_step) == (0, 1)
    with synced.engine.connect() as conn:
        assert sync_store.conflicts(conn, "billing") == []  # a repair is no conflict


def test_the_sync_commands(
    synced: Workspace, peer: PeerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.cli import output  # noqa: PLC0415
    from accord.cli import sync as sync_cli  # noqa: PLC0415
    from accord.cli.main import app  # noqa: PLC0415

    monkeypatch.setattr(output.console, "width", 200)
    monkeypatch.setattr(sync_cli, "open_workspace", lambda _root: synced)
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    root = str(synced.root)
    runner = CliRunner()

    ran = runner.invoke(app, ["sync", "run", root, "--until-idle", "--max-seconds", "60"])
    assert ran.exit_code == 0, ran.output
    assert "billing" in ran.output and "Sync out" in ran.output
    shown = runner.invoke(app, ["sync", "status", root, "--json"])
    assert shown.exit_code == 0, shown.output
    [state] = json.loads(shown.output)
    assert (state["target"], state["waiting"], state["sent"], state["alarm"]) == (
        "billing",
        0,
        len(golden_data(synced)),
        None,
    )
    wrong = runner.invoke(app, ["sync", "replay", root, "--target", "crm"])
    assert wrong.exit_code != 0
    assert "'crm' is not a delivery target; the targets are: billing" in " ".join(
        wrong.output.split()
    )
    checked = runner.invoke(app, ["reconcile", root, "--system", "billing", "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["in_step"] == len(golden_data(synced))
    assert runner.invoke(app, ["sync", "dead", root]).exit_code == 0
    assert runner.invoke(app, ["sync", "conflicts", root]).exit_code == 0


def test_a_conflict_left_to_a_steward_waits_and_is_settled_either_way(
    engine: Engine,
    demo_project_dir: Path,
    peer: PeerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    synced = _workspace(engine, demo_project_dir, peer, monkeypatch)
    config = demo_project_dir / "accord.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "conflicts: {city: newest}", "conflicts: {city: steward, phone: steward}"
        ),
        encoding="utf-8",
    )
    synced = Workspace(demo_project_dir, engine, Settings())
    rows = anna_chain_and_bob()
    load(synced, tmp_path, rows, "a.csv")
    deliver(synced)
    [bob] = [gid for gid, data in golden_data(synced).items() if data.get("given_name") == "Bob"]
    with _client(peer) as client:
        current = client.get(f"/accounts/{bob}").json()["fields"]
        edited = {**current, "phone": "+4989000000", "town": "Bonn"}
        client.put(f"/accounts/{bob}", json={"fields": edited}).raise_for_status()
    load(synced, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777", city="Aachen")], "b.csv")
    deliver(synced)
    fields = _records(peer)[bob]["fields"]
    assert (fields["phone"], fields["town"]) == ("+4989000000", "Bonn")  # theirs, meanwhile
    with synced.engine.connect() as conn:
        waiting = {c["field"]: c for c in sync_store.conflicts(conn, "billing", waiting=True)}
    assert set(waiting) == {"phone", "town"}

    steward = Actor("user", "stewie", Role.STEWARD)
    decide(synced.engine, steward, waiting["town"]["id"], "ours", "the CRM is right")
    decide(synced.engine, steward, waiting["phone"]["id"], "theirs")
    with pytest.raises(Conflict, match="is not waiting"):
        decide(synced.engine, steward, waiting["phone"]["id"], "ours")
    with pytest.raises(NotAllowed):
        decide(synced.engine, Actor("user", "vic", Role.VIEWER), waiting["town"]["id"], "ours")
    assert deliver(synced)["sent"] == 1
    fields = _records(peer)[bob]["fields"]
    assert (fields["phone"], fields["town"]) == ("+4989000000", "Aachen")
    with synced.engine.connect() as conn:
        assert sync_store.conflicts(conn, "billing", waiting=True) == []
        audited = (
            conn.execute(
                select(audit_log.c.details).where(audit_log.c.action == "sync.conflict_decided")
            )
            .scalars()
            .all()
        )
    assert sorted(a["keep"] for a in audited) == ["ours", "theirs"]
