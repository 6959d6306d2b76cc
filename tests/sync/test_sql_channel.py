"""Sync out to a table in the system's own database (the `sql` channel): conditional
writes by version, conflicts settled by the field policies, tombstones, refusals,
outages and reconciliation, against a real SQLite file and the real PostgreSQL
(127.0.0.1:5432, a schema of the test's own), each with the store on the same backend."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    select,
    text,
    update,
)

from accord.steward.service import decide_pair
from accord.store import sync as sync_store
from accord.store.engine import writing
from accord.store.sync import DEAD
from accord.sync.channel import Operation, Result, TargetMisconfigured, Unavailable
from accord.sync.dispatch import TargetDispatcher
from accord.sync.reconcile import reconcile
from accord.sync.sql import SqlChannel
from accord.workspace import Workspace
from tests.conftest import POSTGRES_URL, _empty
from tests.factories import anna_chain_and_bob, bob_row
from tests.services import require_database
from tests.sync.helpers import (
    BILLING_FIELDS,
    deliver,
    expected_fields,
    golden_data,
    load,
    with_billing_delivery,
)

URL_ENV = "ACCORD_TEST_SQL_TARGET_URL"


class Accounts:
    """Billing's `accounts` table in a database of its own."""

    def __init__(self, url: str, schema: str | None, *, deleted: bool = True) -> None:
        self.url = url
        self.schema = schema
        self.engine = create_engine(url)
        columns = [
            Column("id", Text, primary_key=True),
            Column("version", Integer, nullable=False),
            Column("updated_at", DateTime(timezone=True)),
            Column("note", Text),  # the system's own column: never written by Accord
            *(Column(name, Text) for name in BILLING_FIELDS if name not in ("country", "town")),
            Column("country", Text, CheckConstraint("length(country) <= 40")),
            Column("town", Text, CheckConstraint("town <> 'Nowhere'")),  # a rule of billing's
        ]
        if deleted:
            columns.append(Column("deleted", Boolean, nullable=False, server_default="0"))
        self.table = Table("accounts", MetaData(), *columns, schema=schema)

    def create(self) -> None:
        self.table.create(self.engine)

    def rows(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.id: dict(r._mapping) for r in conn.execute(select(self.table))}

    def fields(self) -> dict[str, dict[str, Any]]:
        """record id -> the delivered fields it holds, of the rows not marked deleted."""
        return {
            record_id: {f: row[f] for f in BILLING_FIELDS if row[f] is not None}
            for record_id, row in self.rows().items()
            if not row.get("deleted")
        }

    def edit(self, record_id: str, at: datetime | None = None, **values: Any) -> None:
        """Someone in billing changes a row: the version goes up, as the system does."""
        with self.engine.begin() as conn:
            conn.execute(
                update(self.table)
                .where(self.table.c.id == record_id)
                .values(
                    version=self.table.c.version + 1,
                    updated_at=at or datetime.now(UTC),
                    **values,
                )
            )

    def insert(self, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.insert().values(values))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> Engine:
    """Accord's store, on the backend of the target's database."""
    if backend == "sqlite":
        engine: Engine = request.getfixturevalue("sqlite_engine")
        return engine
    engine = request.getfixturevalue("postgres_engine")
    _empty(engine)
    return engine


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """The target's database: (URL, schema)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.sqlite3'}", None
        return
    require_database("PostgreSQL", POSTGRES_URL)
    schema = f"sync_sql_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield POSTGRES_URL, schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def accounts(
    database: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Accounts]:
    url, schema = database
    monkeypatch.setenv(URL_ENV, url)
    made = Accounts(url, schema)
    made.create()
    yield made
    made.engine.dispose()


def _block(schema: str | None, *, deleted: bool = True, policies: str = "{city: newest}") -> str:
    sql = {"url_env": URL_ENV, "table": "accounts", "updated_at": "updated_at", "batch": 3}
    if schema:
        sql["schema"] = schema
    if deleted:
        sql["deleted"] = "deleted"
    inline = ", ".join(f"{k}: {v}" for k, v in sql.items())
    fields = ", ".join(f"{k}: {v}" for k, v in BILLING_FIELDS.items())
    return (
        "    deliver:\n"
        f"      sql: {{{inline}}}\n"
        f"      fields: {{{fields}}}\n"
        f"      conflicts: {policies}\n"
        "      retry: {max_attempts: 50, backoff: 20ms, max_backoff: 100ms}\n"
        "      breaker: {failures: 3, reset: 300ms}\n"
    )


@pytest.fixture
def synced(store: Engine, demo_project_dir: Path, accounts: Accounts) -> Workspace:
    return with_billing_delivery(store, demo_project_dir, _block(accounts.schema))


def _bob(workspace: Workspace) -> str:
    [bob] = [g for g, data in golden_data(workspace).items() if data.get("given_name") == "Bob"]
    return bob


def _round(workspace: Workspace, channel: SqlChannel | None = None) -> Any:
    dispatcher = TargetDispatcher(workspace.engine, workspace.project, "billing", channel=channel)
    try:
        return dispatcher.round()
    finally:
        dispatcher.close()


def test_customers_are_created_as_rows_then_updated_at_their_version(
    synced: Workspace, accounts: Accounts, tmp_path: Path
) -> None:
    rows = anna_chain_and_bob()
    load(synced, tmp_path, rows, "a.csv")
    golden = golden_data(synced)
    report = deliver(synced)
    assert (report["sent"], report["dead"]) == (len(golden), 0)
    assert accounts.fields() == {gid: expected_fields(data) for gid, data in golden.items()}
    assert {r["version"] for r in accounts.rows().values()} == {1}

    load(synced, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777")], "b.csv")
    assert deliver(synced)["sent"] == 1
    bob = _bob(synced)
    row = accounts.rows()[bob]
    assert (row["phone"], row["version"], row["deleted"]) == ("+49897777777", 2, False)
    assert deliver(synced)["taken"] == 0
    assert accounts.rows()[bob]["version"] == 2  # nothing written twice
    with synced.engine.connect() as conn:
        known = sync_store.known_by_id(conn, "billing", [bob])[bob]
    assert (known.etag, known.origin) == ("2", "accord")  # the version, as text


def test_an_edit_in_the_table_meanwhile_is_settled_by_the_field_policies(
    synced: Workspace, accounts: Accounts, tmp_path: Path
) -> None:
    rows = anna_chain_and_bob()
    load(synced, tmp_path, rows, "a.csv")
    deliver(synced)
    bob = _bob(synced)
    accounts.edit(bob, phone="+4989000000", note="called")  # billing edits phone
    load(synced, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777", city="Aachen")], "b.csv")
    report = deliver(synced)
    assert (report["sent"], report["conflicts"]) == (1, 1)
    row = accounts.rows()[bob]
    # survivorship ranks crm above billing for phone (source priority): ours
    assert (row["phone"], row["town"], row["note"]) == ("+49897777777", "Aachen", "called")
    assert row["version"] == 3  # billing's edit, then Accord's one write after the 412
    with synced.engine.connect() as conn:
        [conflict] = sync_store.conflicts(conn, "billing")
    assert (conflict["field"], conflict["theirs"], conflict["kept"]) == (
        "phone",
        "+4989000000",
        "ours",
    )


def test_a_newer_edit_in_the_table_keeps_its_value_under_newest(
    synced: Workspace, accounts: Accounts, tmp_path: Path
) -> None:
    rows = anna_chain_and_bob()
    load(synced, tmp_path, rows, "a.csv")
    deliver(synced)
    bob = _bob(synced)
    later = datetime.now(UTC) + timedelta(days=1)  # billing's change is the newer one
    accounts.edit(bob, at=later, town="Bonn")
    load(synced, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777", city="Aachen")], "b.csv")
    assert deliver(synced)["sent"] == 1
    row = accounts.rows()[bob]
    assert (row["town"], row["phone"]) == ("Bonn", "+49897777777")
    with synced.engine.connect() as conn:
        [conflict] = sync_store.conflicts(conn, "billing")
    assert (conflict["field"], conflict["policy"], conflict["kept"]) == ("town", "newest", "theirs")


class AnswerLost(SqlChannel):
    """Writes, commits, then loses the answer once (a connection dropped after COMMIT)."""

    lost = False

    def apply(self, operations: Sequence[Operation]) -> list[Result]:
        results = super().apply(operations)
        if not self.lost:
            self.lost = True
            raise Unavailable("the answer was lost")
        return results


def _lossy(workspace: Workspace) -> AnswerLost:
    config = workspace.project.config.systems["billing"].deliver
    assert config is not None and config.sql is not None
    return AnswerLost("billing", config.sql, list(config.fields))


def test_a_write_whose_answer_was_lost_is_found_done_and_not_repeated(
    synced: Workspace, accounts: Accounts, tmp_path: Path
) -> None:
    rows = anna_chain_and_bob()
    load(synced, tmp_path, rows, "a.csv")
    count = len(golden_data(synced))
    first = _round(synced, _lossy(synced))
    assert (first.sent, first.retrying) == (0, count)  # written, but Accord cannot know
    assert len(accounts.rows()) == count
    # tried again: each insert meets its own row (412, the values Accord wants): sent
    assert deliver(synced)["sent"] == count
    assert {r["version"] for r in accounts.rows().values()} == {1}

    load(synced, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777")], "b.csv")
    assert _round(synced, _lossy(synced)).retrying == 1
    assert deliver(synced)["sent"] == 1  # the update met its own version: sent
    bob = _bob(synced)
    assert accounts.rows()[bob]["version"] == 2  # applied once
    with synced.engine.connect() as conn:
        assert sync_store.conflicts(conn, "billing") == []
        known = sync_store.known_by_id(conn, "billing", [bob])[bob]
    assert known.etag == "2"
    assert known.fields is not None and known.fields["phone"] == "+49897777777"


def _merge_anna(workspace: Workspace) -> str:
    """A steward says two of the customers are one; returns the golden id merged away."""
    before = set(golden_data(workspace))
    with writing(workspace.engine) as conn:
        decide_pair(conn, _cli(), ("crm", "C4"), ("crm", "C1"), decision="same")
    from accord.golden.resolve import resolve  # noqa: PLC0415

    resolve(workspace.engine, workspace.project, actor="test")
    [gone] = before - set(golden_data(workspace))
    return gone


def _cli() -> Any:
    from accord.govern.permissions import cli_actor  # noqa: PLC0415

    return cli_actor()


def test_a_merge_marks_accord_s_row_deleted_with_a_deleted_column(
    synced: Workspace, accounts: Accounts, tmp_path: Path
) -> None:
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    deliver(synced)
    gone = _merge_anna(synced)
    assert deliver(synced)["dead"] == 0
    row = accounts.rows()[gone]
    assert (row["deleted"], row["version"]) == (True, 2)  # a tombstone, its version bumped
    assert set(accounts.fields()) == set(golden_data(synced))


def test_a_merge_deletes_accord_s_row_without_a_deleted_column(
    store: Engine,
    demo_project_dir: Path,
    database: tuple[str, str | None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, schema = database
    monkeypatch.setenv(URL_ENV, url)
    table = Accounts(url, schema, deleted=False)
    table.create()
    workspace = with_billing_delivery(store, demo_project_dir, _block(schema, deleted=False))
    load(workspace, tmp_path, anna_chain_and_bob(), "a.csv")
    deliver(workspace)
    gone = _merge_anna(workspace)
    assert deliver(workspace)["dead"] == 0
    assert set(table.rows()) == set(golden_data(workspace))
    assert gone not in table.rows()
    table.engine.dispose()


def test_a_table_that_cannot_take_the_deliveries_is_refused_with_its_columns(
    store: Engine,
    demo_project_dir: Path,
    database: tuple[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, schema = database
    engine = create_engine(url)
    broken = Table(
        "accounts",
        MetaData(),
        Column("id", Integer, primary_key=True),  # not text
        Column("version", Text),  # not an integer
        *(Column(n, Text) for n in BILLING_FIELDS if n != "town"),  # no town
        schema=schema,
    )
    broken.create(engine)
    workspace = with_billing_delivery(store, demo_project_dir, _block(schema))
    monkeypatch.delenv(URL_ENV, raising=False)
    with pytest.raises(TargetMisconfigured, match=f"{URL_ENV} holding the URL"):
        TargetDispatcher(store, workspace.project, "billing")
    monkeypatch.setenv(URL_ENV, url)
    with pytest.raises(TargetMisconfigured) as caught:
        TargetDispatcher(store, workspace.project, "billing")
    message = str(caught.value)
    for problem in (
        "no column 'deleted' (sql.deleted)",
        "no column 'updated_at' (sql.updated_at)",
        "no column for the delivered field(s) town",
        "the key 'id' is not a text column",
        "the version 'version' is not an integer column",
        "hint: its columns: id, version, first_name",
    ):
        assert problem in message
    broken.drop(engine)
    with pytest.raises(TargetMisconfigured, match=r"the table \S*accounts is not in the database"):
        TargetDispatcher(store, workspace.project, "billing")
    engine.dispose()


def test_hostile_values_are_stored_verbatim_and_a_refused_row_fails_alone(
    accounts: Accounts,
) -> None:
    fields = list(BILLING_FIELDS)
    channel = SqlChannel(
        "billing",
        _sql_target(accounts.schema),
        fields,
    )
    hostile = {
        "first_name": 'O\'Brien "Bob"; DROP TABLE accounts; --',
        "last_name": "Ünïcødé 日本語 🎉 \\ %s :name ?",
        "phone": "' OR '1'='1",
        "town": "x" * 100_000,
        "email_address": "$1 ${x} `rm -rf`",
    }
    try:
        results = channel.apply(
            [
                Operation("put", "H-1", hostile, None, "*", "k1"),
                Operation("put", "H-2", {"country": "y" * 41}, None, "*", "k2"),  # too long
                Operation("put", "H-3", {"country": "DE"}, None, "*", "k3"),
            ]
        )
        assert [r.status for r in results] == [201, 422, 201]
        assert "the table refused the row" in (results[1].error or "")
        assert results[0].etag == "1"
        held = channel.get("H-1")
        assert held is not None
        assert {k: v for k, v in held.fields.items() if v is not None} == hostile
        assert channel.get("H-2") is None
        again = channel.apply([Operation("put", "H-1", hostile, None, "*", "k1")])
        assert again[0].status == 412 and again[0].record is not None  # there already
        assert again[0].record.fields == held.fields
        stale = channel.apply([Operation("put", "H-1", {"phone": "1"}, "7", None, "k4")])
        assert (stale[0].status, stale[0].etag) == (412, "1")
        absent = channel.apply([Operation("put", "H-9", {"phone": "1"}, "1", None, "k5")])
        assert absent[0].status == 404
    finally:
        channel.close()
    assert set(accounts.rows()) == {"H-1", "H-3"}


def _sql_target(schema: str | None) -> Any:
    from accord.config.sync import SqlTarget  # noqa: PLC0415

    settings: dict[str, Any] = {"url_env": URL_ENV, "table": "accounts", "deleted": "deleted"}
    if schema:
        settings["schema"] = schema
    return SqlTarget.model_validate(settings)


class Gate:
    """A TCP relay to PostgreSQL that can be cut (connections dropped, new ones refused)
    and opened again on the same port: the network between Accord and the database."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        self.upstream = (host, port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._open: list[socket.socket] = []

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):  # wakes the thread waiting in accept()
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        for s in self._open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._open.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_a_database_out_of_reach_keeps_the_changes_waiting_until_it_is_back(
    synced: Workspace,
    accounts: Accounts,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = anna_chain_and_bob()
    load(synced, tmp_path, rows, "a.csv")
    count = len(golden_data(synced))
    if backend == "sqlite":
        # another writer holds the file; Accord's writes wait 0.2 s, then give up
        monkeypatch.setenv(URL_ENV, f"{accounts.url}?timeout=0.2")
        holder = accounts.engine.raw_connection()
        holder.execute("BEGIN EXCLUSIVE")  # type: ignore[attr-defined]
        try:
            report = _round(synced)
        finally:
            holder.rollback()
            holder.close()
        assert "database is locked" in (report.error or "")
    else:
        gate = Gate()
        gate.open()
        monkeypatch.setenv(URL_ENV, POSTGRES_URL.replace(":5432", f":{gate.port}"))
        dispatcher = TargetDispatcher(synced.engine, synced.project, "billing")
        try:
            assert dispatcher.round().sent == count  # through the gate
            load(synced, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777")], "b.csv")
            gate.cut()  # the pooled connection is dropped, new ones refused
            report = dispatcher.round()
            assert report.error is not None and "failed" in report.error
            gate.open()
            later = datetime.now(UTC) + timedelta(seconds=1)
            assert dispatcher.round(later).sent == 1  # a new connection, the same pool
        finally:
            dispatcher.close()
            gate.cut()
    assert (report.sent, report.retrying, report.dead) == (0, report.taken, 0)
    assert deliver(synced)["dead"] == 0
    assert accounts.fields() == {gid: expected_fields(d) for gid, d in golden_data(synced).items()}


def test_a_refused_row_makes_its_delivery_dead_and_the_others_go_through(
    synced: Workspace, accounts: Accounts, tmp_path: Path
) -> None:
    rows = anna_chain_and_bob()
    rows[-1] = bob_row(city="Nowhere")  # billing's table refuses this town
    load(synced, tmp_path, rows, "a.csv")
    golden = golden_data(synced)
    report = deliver(synced)
    assert (report["sent"], report["dead"]) == (len(golden) - 1, 1)
    with synced.engine.connect() as conn:
        [letter] = sync_store.dead_letters(conn, "billing")
    assert letter["state"] == DEAD and letter["last_status"] == 422
    assert "refused by billing (422): the table refused the row" in letter["last_error"]


def test_reconcile_pages_the_table_and_repairs_drift_through_delivery(
    synced: Workspace, accounts: Accounts, tmp_path: Path
) -> None:
    load(synced, tmp_path, anna_chain_and_bob(), "a.csv")
    deliver(synced)
    golden = golden_data(synced)
    bob = _bob(synced)
    [anna] = [g for g in golden if g != bob]
    accounts.edit(bob, town="Bonn")
    accounts.edit(anna, deleted=True)
    accounts.insert(id="X-1", version=1, last_name="Stranger")
    found = reconcile(synced.engine, synced.project, "billing")
    assert (found.records, found.in_step, found.drifted) == (2, 0, 1)
    [drift] = found.drift
    assert (drift.record_id, drift.field, drift.theirs, drift.ours) == (
        bob,
        "town",
        "Bonn",
        golden[bob]["city"],
    )
    assert found.unknown == ["X-1"] and found.absent == 1

    assert reconcile(synced.engine, synced.project, "billing", repair=True).repaired == 1
    assert deliver(synced)["sent"] == 1
    assert accounts.rows()[bob]["town"] == golden[bob]["city"]
    again = reconcile(synced.engine, synced.project, "billing")
    assert (again.drifted, again.in_step) == (0, 1)
