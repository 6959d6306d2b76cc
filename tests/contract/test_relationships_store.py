"""Parents by tax id in the store, the same on SQLite and PostgreSQL: a full resolve
relates a subsidiary to the customer holding its parent's tax id in another system; the
lookups an incremental resolve makes (`store.relationships.organizations_holding`,
`organizations_naming_parents`) find current organization records in customers, by
migration 0019's indexes; and a refresh after an organization changed works out again
the subsidiaries naming its tax id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from accord.golden.relationships import refresh
from accord.golden.resolve import resolve
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.settings import Settings
from accord.steward import service
from accord.store import records as record_store
from accord.store import relationships as store
from accord.store.engine import writing
from accord.store.migrate import upgrade
from accord.store.relationships import INDEX_OBJECTS
from accord.store.tables import crosswalk, relationship
from accord.store.types import utcnow
from accord.workspace import Workspace
from tests.factories import crm_row, erp_row, write_csv
from tests.migrated import store_at
from tests.plans import query_plans

STEWARD = Actor("user", "stewie", Role.STEWARD)
PARENT_VAT = "DE811112222"
ACCOUNT = {"RecordType": "Account", "FirstName": "", "LastName": "", "BirthDate": ""}


def _parent(vat: str = "DE 811 112 222") -> dict[str, str]:
    return crm_row("A1", AccountName="Quellwerk Holding GmbH", VatNumber=vat, **ACCOUNT)


def _load(workspace: Workspace, folder: Path, crm: list[dict[str, str]], erp: list[Any]) -> None:
    name = f"{len(list(folder.iterdir()))}"
    if crm:
        path = write_csv(folder / f"crm-{name}.csv", crm)
        load_file(workspace.engine, workspace.project, "crm", path, actor="test")
    if erp:
        path = write_csv(folder / f"erp-{name}.csv", erp, delimiter=";")
        load_file(workspace.engine, workspace.project, "erp", path, actor="test")


def _golden_of(engine: Engine, system: str, source_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(crosswalk.c.golden_id).where(
                    crosswalk.c.system == system, crosswalk.c.source_id == source_id
                )
            ).scalar_one()
        )


def _group(workspace: Workspace, tmp_path: Path) -> None:
    """The CRM's parent company, the ERP's subsidiary naming its VAT id (spelled its own
    way), and an ERP person who happens to hold the same VAT id."""
    _load(
        workspace,
        tmp_path,
        [_parent()],
        [
            erp_row(
                KUNNR="0000000007",
                KTOKD="FIRM",
                NAME1="Quellwerk Logistik GmbH",
                GEBDAT="",
                STCEG="DE899990000",
                ZZ_PARENT_STCEG="de 811.112.222",
            ),
            erp_row(KUNNR="0000000008", STCEG=PARENT_VAT),  # a person: not a parent
        ],
    )
    resolve(workspace.engine, workspace.project, actor="test")


def test_a_full_resolve_relates_a_subsidiary_to_the_holder_of_its_parents_tax_id(
    workspace: Workspace, tmp_path: Path
) -> None:
    _group(workspace, tmp_path)
    parent = _golden_of(workspace.engine, "crm", "A1")
    subsidiary = _golden_of(workspace.engine, "erp", "0000000007")
    with workspace.engine.connect() as conn:
        stored = {
            (r.from_golden_id, r.to_golden_id, r.type): r.evidence
            for r in conn.execute(select(relationship))
        }
    assert stored == {
        (subsidiary, parent, "subsidiary_of"): [
            {
                "system": "erp",
                "source_id": "0000000007",
                "field": "parent_tax_id",
                "tax_id": PARENT_VAT,
                "matched_system": "crm",
                "matched_source_id": "A1",
            }
        ]
    }


def test_organizations_are_found_by_their_tax_id_and_by_their_parents(
    workspace: Workspace, tmp_path: Path
) -> None:
    _group(workspace, tmp_path)
    engine = workspace.engine
    parent = _golden_of(engine, "crm", "A1")
    subsidiary = _golden_of(engine, "erp", "0000000007")
    with engine.connect() as conn:
        assert store.organizations_holding(conn, [PARENT_VAT, "DE000000000"]) == [
            (("crm", "A1"), PARENT_VAT, parent)  # the ERP person holding it is no parent
        ]
        assert store.organizations_holding(conn, ["DE899990000"]) == [
            (("erp", "0000000007"), "DE899990000", subsidiary)
        ]
        assert store.organizations_naming_parents(conn, [PARENT_VAT]) == [
            (("erp", "0000000007"), PARENT_VAT, subsidiary)
        ]
        assert store.organizations_naming_parents(conn, ["DE899990000"]) == []
        assert store.organizations_holding(conn, []) == []

    # a new version of the parent holds another VAT id: the old version is not current
    _load(workspace, tmp_path, [_parent("DE811113333")], [])
    # and an organization not in a customer yet (loaded, not resolved) is not found
    _load(
        workspace,
        tmp_path,
        [],
        [erp_row(KUNNR="0000000009", KTOKD="FIRM", NAME1="Neu GmbH", STCEG="DE811113333")],
    )
    with engine.connect() as conn:
        assert store.organizations_holding(conn, [PARENT_VAT]) == []
        assert store.organizations_holding(conn, ["DE811113333"]) == [
            (("crm", "A1"), "DE811113333", parent)
        ]


def _stored(engine: Engine) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        return {
            (r.from_golden_id, r.to_golden_id, r.type) for r in conn.execute(select(relationship))
        }


def test_a_refresh_works_out_again_the_subsidiaries_naming_a_changed_tax_id(
    workspace: Workspace, tmp_path: Path
) -> None:
    """An organization that comes to hold a parent's tax id makes it ambiguous: the
    subsidiary naming it loses its relationship, though neither it nor its parent's
    customer changed (only the store's index finds it)."""
    _group(workspace, tmp_path)
    engine = workspace.engine
    other = crm_row("A2", AccountName="Anderswo AG", VatNumber="DE822223333", **ACCOUNT)
    _load(workspace, tmp_path, [other], [])
    with writing(engine) as conn:  # never the parent's customer, whatever it holds
        service.decide_pair(conn, STEWARD, ("crm", "A1"), ("crm", "A2"), decision="different")
    resolve(workspace.engine, workspace.project, actor="test")
    parent = _golden_of(engine, "crm", "A1")
    subsidiary = _golden_of(engine, "erp", "0000000007")
    elsewhere = _golden_of(engine, "crm", "A2")
    assert elsewhere != parent
    assert _stored(engine) == {(subsidiary, parent, "subsidiary_of")}

    # A2 now holds the parent's VAT id too; only its customer is refreshed
    _load(workspace, tmp_path, [other | {"VatNumber": PARENT_VAT}], [])
    with writing(engine) as conn:
        [current] = record_store.current_of(conn, [("crm", "A2")])
        assert current.data["tax_id"] == PARENT_VAT
        refresh(
            conn, [elsewhere], {("crm", "A2"): current.data}, {("crm", "A2"): elsewhere}, utcnow()
        )
    assert _stored(engine) == set()
    # as a full resolve finds
    report = resolve(workspace.engine, workspace.project, actor="test")
    assert _stored(engine) == set()
    assert report.ambiguous_parent_tax_ids == 1


def test_the_lookups_search_by_the_tax_id_indexes(workspace: Workspace, tmp_path: Path) -> None:
    """A scan of canonical_record (every version of every record) is invisible on a
    test's rows and takes seconds at a million: each lookup goes through its index."""
    _group(workspace, tmp_path)
    lookups = {
        "ix_canonical_record_tax_id": store.organizations_holding,
        "ix_canonical_record_parent_tax_id": store.organizations_naming_parents,
    }
    assert set(lookups) == set(INDEX_OBJECTS)
    for index, lookup in lookups.items():
        plans = query_plans(workspace.engine, lambda conn, f=lookup: f(conn, [PARENT_VAT]))
        assert any(index in step for step in plans), (index, plans)
        scanned = [s for s in plans if s.startswith("SCAN") or "Seq Scan" in s]
        assert not [s for s in scanned if "canonical_record" in s], (index, plans)


def test_migration_0019_indexes_the_records_already_stored(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    with store_at("0018", engine.dialect.name, tmp_path) as old:
        workspace = Workspace(demo_project_dir, old, Settings())
        folder = tmp_path / "files"
        folder.mkdir()
        _group(workspace, folder)
        upgrade(old)
        parent = _golden_of(old, "crm", "A1")
        plans = query_plans(old, lambda conn: store.organizations_holding(conn, [PARENT_VAT]))
        assert any("ix_canonical_record_tax_id" in step for step in plans), plans
        with old.connect() as conn:
            assert store.organizations_holding(conn, [PARENT_VAT]) == [
                (("crm", "A1"), PARENT_VAT, parent)
            ]
