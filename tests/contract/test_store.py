"""The store contract: the same behaviour on SQLite and PostgreSQL (the `engine` fixture
runs every test here once per backend)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select, text, update

from accord.config import load_project
from accord.golden import customers
from accord.golden.resolve import resolve
from accord.govern import audit, identity
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.store import records, schema
from accord.store.engine import writing
from accord.store.tables import (
    audit_log,
    canonical_record,
    counter,
    crosswalk,
    golden_record,
    metadata,
    quarantine,
    source_record,
)
from tests.factories import billing_row, crm_row, write_csv, write_jsonl

ADMIN = Actor("user", "tester", Role.ADMIN)


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


# SQLAlchemy does not reflect SQLite's expression indexes (migration 0019's), and says so
@pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index ix_canonical_record_"
)
def test_migrations_create_exactly_the_tables_the_code_uses(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": schema.in_metadata})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_load_stores_versions_idempotently(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    rows = [
        crm_row("C1"),
        crm_row("C2", FirstName="Bob", LastName="Jones", Email="bob@x.org", BirthDate="1970-01-01"),
    ]
    path = write_csv(tmp_path / "crm.csv", rows)

    first = load_file(engine, project, "crm", path, actor="test")
    again = load_file(engine, project, "crm", path, actor="test")
    rows[0]["City"] = "Potsdam"
    changed = load_file(
        engine, project, "crm", write_csv(tmp_path / "crm2.csv", rows), actor="test"
    )

    assert (first.new, first.unchanged) == (2, 0)
    assert (again.new, again.changed, again.unchanged) == (0, 0, 2)
    assert (changed.new, changed.changed, changed.unchanged) == (0, 1, 1)
    assert _count(engine, source_record) == 3
    with engine.connect() as conn:
        versions = records.source_record_versions(conn, "crm", "C1")
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["data"]["city"] == "Potsdam"
    assert versions[1]["data"]["city"] == "Berlin"
    assert versions[0]["payload"]["City"] == "Potsdam"  # verbatim source kept


def test_a_new_mapping_version_remaps_without_a_new_source_version(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "crm.csv", [crm_row("C1")])
    load_file(engine, load_project(demo_project_dir), "crm", path, actor="test")
    mapping = demo_project_dir / "mappings" / "crm.yaml"
    mapping.write_text(mapping.read_text().replace("  city: City\n", ""))

    report = load_file(engine, load_project(demo_project_dir), "crm", path, actor="test")

    assert report.remapped == 1
    assert _count(engine, source_record) == 1
    assert _count(engine, canonical_record) == 2
    with engine.connect() as conn:
        current = list(records.current_records(conn, "customer"))
    assert "city" not in current[0].data
    assert current[0].mapping_version.startswith("crm@")


def test_bad_rows_go_to_quarantine_and_the_rest_loads(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    rows = [
        crm_row("C1"),
        crm_row("", FirstName="Nobody"),
        crm_row("C3", BirthDate="1985-13-45"),
        crm_row("C4", RecordType="Alien"),
        crm_row("C5", Email="not an email"),
        crm_row("C1", City="Elsewhere"),
    ]
    path = write_csv(tmp_path / "crm.csv", rows)

    report = load_file(engine, load_project(demo_project_dir), "crm", path, actor="test")

    assert (report.read, report.new, report.quarantined, report.flagged) == (6, 2, 4, 1)
    assert report.quarantine_reasons == {
        "source_id.missing": 1,
        "date.invalid": 1,
        "vocabulary.unknown": 1,
        "source_id.repeated": 1,
    }
    with engine.connect() as conn:
        entries = conn.execute(select(quarantine).order_by(quarantine.c.id)).all()
        flagged = conn.execute(
            select(canonical_record.c.issues).where(canonical_record.c.source_id == "C5")
        ).scalar_one()
    assert [e.location for e in entries] == [
        "crm.csv line 3",
        "crm.csv line 4",
        "crm.csv line 5",
        "crm.csv line 7",
    ]
    assert entries[1].reasons[0]["field"] == "birth_date"
    assert "1985-13-45" in entries[1].raw
    assert flagged[0]["code"] == "email.invalid"


def test_resolve_links_keeps_golden_ids_and_explains_values(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    crm = write_csv(
        tmp_path / "crm.csv",
        [
            crm_row(
                "C1",
                FirstName="Bill",
                LastName="Turner",
                Email="b.turner@example.com",
                Phone="+44 20 7946 0958",
                Country="United Kingdom",
                PostalCode="SW1A 1AA",
                BirthDate="",
            ),
            crm_row(
                "C2",
                FirstName="Margaret",
                LastName="Turner",
                Email="m.turner@example.com",
                Phone="+44 20 7946 0958",
                Country="United Kingdom",
                PostalCode="SW1A 1AA",
                BirthDate="",
            ),
        ],
    )
    billing = write_jsonl(
        tmp_path / "billing.jsonl",
        [
            billing_row(
                "B1",
                first_name="William",
                last_name="Turner",
                email="B.Turner@Example.com",
                phone="020 7946 0958",
                address={
                    "line1": "1 Mall Rd",
                    "postal_code": "SW1A1AA",
                    "city": "London",
                    "country": "GB",
                },
            )
        ],
    )
    load_file(engine, project, "crm", crm, actor="test")
    load_file(engine, project, "billing", billing, actor="test")

    first = resolve(engine, project, actor="test")
    again = resolve(engine, project, actor="test")

    assert (first.records, first.golden_records, first.created) == (3, 2, 2)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert first.assignment == again.assignment
    bill = first.assignment[("crm", "C1")]
    assert first.assignment[("billing", "B1")] == bill  # Bill is William, same email
    assert first.assignment[("crm", "C2")] != bill  # his wife shares the landline only
    with engine.connect() as conn:
        golden = customers.get(conn, ADMIN, bill)
    assert golden["data"]["email"] == "b.turner@example.com"
    assert golden["lineage"]["city"]["system"] == "billing"
    assert golden["lineage"]["given_name"]["value"] == "William"  # billing outranks crm
    assert golden["lineage"]["given_name"]["rule"] == "source_priority"
    assert golden["lineage"]["given_name"]["alternatives"] == [
        {"value": "Bill", "system": "crm", "source_id": "C1"}
    ]
    assert {(m["system"], m["rule"]) for m in golden["members"]} == {
        ("crm", "email_and_name"),
        ("billing", "email_and_name"),
    }


def test_golden_ids_survive_a_merge(engine: Engine, demo_project_dir: Path, tmp_path: Path) -> None:
    project = load_project(demo_project_dir)
    rows = [
        crm_row("C1", Email="a@x.org", Phone=""),
        crm_row(
            "C2",
            Email="b@x.org",
            Phone="",
            BirthDate="",
            PostalCode="80331",
            Street="Marienplatz 1",
            City="München",
        ),
    ]
    load_file(engine, project, "crm", write_csv(tmp_path / "a.csv", rows), actor="test")
    before = resolve(engine, project, actor="test").assignment
    assert before[("crm", "C1")] != before[("crm", "C2")]

    rows[1]["Email"] = "a@x.org"  # now they share an email: one customer
    load_file(engine, project, "crm", write_csv(tmp_path / "b.csv", rows), actor="test")
    after = resolve(engine, project, actor="test")

    survivor = before[("crm", "C1")]
    assert after.assignment == {("crm", "C1"): survivor, ("crm", "C2"): survivor}
    assert after.merged == 1
    with engine.connect() as conn:
        merged = customers.get(conn, ADMIN, before[("crm", "C2")])
    assert (merged["status"], merged["merged_into"]) == ("merged", survivor)


def test_search_finds_by_name_email_and_member_id(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    rows = [
        crm_row("C1"),
        crm_row(
            "C2", FirstName="Zoë", LastName="O'Brien_%", Email="zoe@x.org", Phone="", BirthDate=""
        ),
    ]
    load_file(engine, project, "crm", write_csv(tmp_path / "a.csv", rows), actor="test")
    resolve(engine, project, actor="test")

    def exact(text: str) -> int:  # near matches (a typo away) follow exact hits
        return sum(not i["near"] for i in customers.search(conn, ADMIN, text).items)

    with engine.connect() as conn:
        assert exact("schmidt") == 1
        assert exact("ZOË") == 1
        assert exact("_%") == 1  # wildcards are literal
        assert exact("a%b") == 0  # not "a, anything, b"
        assert exact("crm/c2") == 1
        assert customers.search(conn, ADMIN, "").total == 2


def test_audit_chain_verifies_and_catches_tampering(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    load_file(engine, project, "crm", write_csv(tmp_path / "a.csv", [crm_row("C1")]), actor="test")
    resolve(engine, project, actor="test")
    with engine.connect() as conn:
        result = audit.verify(conn)
    assert result.ok and result.entries >= 4

    with writing(engine) as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(actor="someone-else"))
    with engine.connect() as conn:
        tampered = audit.verify(conn)
    assert (tampered.ok, tampered.broken_at, tampered.entries) == (False, 2, 1)


def test_audit_catches_a_deleted_last_entry(engine: Engine) -> None:
    with writing(engine) as conn:
        audit.record(
            conn,
            "test",
            [audit.AuditEvent(audit.AuditAction.USER_CREATED, "user", str(i)) for i in range(3)],
        )
        conn.execute(audit_log.delete().where(audit_log.c.seq == 3))
    with engine.connect() as conn:
        result = audit.verify(conn)
    assert (result.ok, result.broken_at) == (False, 3)


def test_users_sessions_and_api_keys(engine: Engine) -> None:
    with writing(engine) as conn:
        identity.create_user(
            conn, "stewie", "correct horse battery", Role.STEWARD, created_by="test"
        )
        key = identity.create_api_key(conn, "crm", created_by="test")
    actor, session = identity.sign_in(engine, "stewie", "correct horse battery")
    with writing(engine) as conn:
        assert identity.actor_for_session(conn, session.token) == actor
        assert identity.actor_for_api_key(conn, key).name == "crm"
        stored = conn.execute(text("SELECT password_hash FROM app_user")).scalar_one()
    assert stored.startswith("$argon2id$")
    assert key not in str(_all_rows(engine))
    with pytest.raises(identity.NotAuthenticated):
        identity.sign_in(engine, "stewie", "wrong password!!")


def _all_rows(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return [conn.execute(select(t)).all() for t in metadata.sorted_tables]


def test_golden_ids_come_from_a_counter_that_only_grows(engine: Engine) -> None:
    from accord.store import golden  # noqa: PLC0415

    with writing(engine) as conn:
        first = golden.allocate_ids(conn, 2)
        second = golden.allocate_ids(conn, 1)
        value = conn.execute(select(counter.c.value).where(counter.c.name == "golden_id"))
    assert first == ["C0000001", "C0000002"]
    assert second == ["C0000003"]
    assert value.scalar_one() == 3
    assert _count(engine, golden_record) == 0
    assert _count(engine, crosswalk) == 0


def test_paged_reads_see_every_row_once(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    rows = [crm_row(f"C{i}", Email=f"p{i}@x.org") for i in range(7)]
    load_file(engine, project, "crm", write_csv(tmp_path / "a.csv", rows), actor="test")
    with engine.connect() as conn:
        paged = [r.source_id for r in records.current_records(conn, "customer", batch_size=2)]
        pages: list[int] = []
        result = audit.verify(conn, pages.append, batch_size=2)
    assert paged == sorted(f"C{i}" for i in range(7))
    assert result.ok
    assert sum(pages) == result.entries
    with engine.connect() as conn:
        assert audit.count(conn) == result.entries


def test_audit_paged_verify_still_finds_the_break(engine: Engine) -> None:
    with writing(engine) as conn:
        events = [
            audit.AuditEvent(audit.AuditAction.USER_CREATED, "user", str(i)) for i in range(9)
        ]
        audit.record(conn, "test", events)
        conn.execute(update(audit_log).where(audit_log.c.seq == 6).values(subject_id="x"))
    with engine.connect() as conn:
        result = audit.verify(conn, batch_size=4)
    assert (result.ok, result.broken_at) == (False, 6)


def test_reloading_a_file_does_not_file_its_bad_rows_twice(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    path = write_csv(
        tmp_path / "crm.csv",
        [crm_row("C1"), crm_row("", FirstName="x"), crm_row("C3", BirthDate="1985-13-45")],
    )
    first = load_file(engine, project, "crm", path, actor="test")
    again = load_file(engine, project, "crm", path, actor="test")
    assert (first.quarantined, first.already_quarantined) == (2, 0)
    assert (again.quarantined, again.already_quarantined) == (2, 2)
    assert _count(engine, quarantine) == 2


def test_a_project_version_is_recorded_once(engine: Engine, demo_project_dir: Path) -> None:
    from accord.config import versions  # noqa: PLC0415

    project = load_project(demo_project_dir)
    with writing(engine) as conn:
        assert versions.apply(conn, project, "test") is True
        assert versions.apply(conn, project, "test") is False
    with engine.connect() as conn:
        assert audit.count(conn) == 1


def test_sessions_slide_at_most_once_a_minute_and_end_when_idle(engine: Engine) -> None:
    from datetime import timedelta  # noqa: PLC0415

    from accord.store.tables import user_session  # noqa: PLC0415
    from accord.store.types import utcnow  # noqa: PLC0415

    with writing(engine) as conn:
        identity.create_user(conn, "sam", "correct horse battery", Role.VIEWER, created_by="t")
    _, session = identity.sign_in(engine, "sam", "correct horse battery")

    def age(minutes: int) -> None:
        with writing(engine) as conn:
            conn.execute(
                update(user_session).values(last_seen_at=utcnow() - timedelta(minutes=minutes))
            )

    with engine.connect() as conn:
        assert identity.check_session(conn, session.token).needs_touch is False
    age(5)
    with writing(engine) as conn:
        assert identity.check_session(conn, session.token).needs_touch is True
        identity.actor_for_session(conn, session.token)
        assert identity.check_session(conn, session.token).needs_touch is False
    age(31)
    with pytest.raises(identity.NotAuthenticated), engine.connect() as conn:
        identity.check_session(conn, session.token)
