"""Golden records' lineage in the store, on SQLite and PostgreSQL: written packed (each
member record named once), read back whole, and migration 0020, which packs what a
store already holds without making the next resolve rewrite a single customer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Engine, func, select

from accord.config import load_project
from accord.demo.generator import generate
from accord.demo.run import inputs
from accord.digest import digest
from accord.golden import customers, overrides
from accord.golden.resolve import resolve
from accord.golden.survivorship import STEWARD
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.store.engine import writing
from accord.store.migrate import alembic_config
from accord.store.tables import crosswalk, golden_change, golden_record
from tests.migrated import store_at

STEWARD_ACTOR = Actor("user", "stewie", Role.STEWARD)


def _rows(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(golden_record).order_by(golden_record.c.golden_id))
        return {row.golden_id: dict(row._mapping) for row in rows}


def _members(engine: Engine) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for golden_id, system, source_id in conn.execute(
            select(crosswalk.c.golden_id, crosswalk.c.system, crosswalk.c.source_id)
        ):
            found.setdefault(golden_id, []).append(f"{system}/{source_id}")
    return {golden_id: sorted(keys) for golden_id, keys in found.items()}


def _changes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(golden_change)).scalar_one())


def test_lineage_is_stored_packed_and_read_whole_and_0020_packs_a_store_as_it_was(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    generate(tmp_path / "data", seed=11, customers=120)
    with store_at("0020", engine.dialect.name, tmp_path) as store:
        for system, path in inputs(tmp_path / "data"):
            load_file(store, project, system, path, actor="t")
        first = resolve(store, project, actor="t")
        pinned = sorted(_members(store))[0]
        with writing(store) as conn:
            overrides.override(
                conn, STEWARD_ACTOR, project, pinned, "city", value="Wasserburg", reason="moved"
            )
        packed = _rows(store)
        with store.connect() as conn:
            whole = {g: customers.get(conn, STEWARD_ACTOR, g)["lineage"] for g in packed}
        assert first.golden_records == len(packed) > 50

        # stored packed: each record once, values in `data`; read whole
        several = [g for g in packed if len(packed[g]["lineage"]["members"]) > 1]
        assert several
        for golden_id, row in packed.items():
            stored = row["lineage"]
            assert set(stored) == {"members", "fields"}
            assert all("value" not in entry for entry in stored["fields"].values())
            assert set(whole[golden_id]) == set(stored["fields"])
            for field, entry in whole[golden_id].items():
                assert entry["value"] == row["data"][field]
                assert {"system", "source_id", "rule", "candidates", "alternatives"} <= set(entry)
        assert whole[pinned]["city"]["system"] == STEWARD
        assert whole[pinned]["city"]["value"] == "Wasserburg"

        # down to 0019: the lineage as code before 0020 stored it, fingerprints over that
        keys = _members(store)
        command.downgrade(alembic_config(store), "0019")
        unpacked = _rows(store)
        for golden_id, row in unpacked.items():
            assert row["lineage"] == whole[golden_id]
            assert row["fingerprint"] == digest([row["data"], row["lineage"], keys[golden_id]])
            assert row["fingerprint"] != packed[golden_id]["fingerprint"]

        # and up again: packed as a resolve packs it, so a resolve changes nothing
        command.upgrade(alembic_config(store), "0020")
        assert _rows(store) == packed
        changes = _changes(store)
        again = resolve(store, project, actor="t")
        assert (again.created, again.updated, again.unchanged) == (0, 0, len(packed))
        assert _changes(store) == changes


def test_0020_leaves_a_record_out_of_step_to_the_next_resolve(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    """A golden record whose fingerprint was not what its content and members give
    (written by a resolve since undone in part) gets none a resolve could give either:
    the next resolve rewrites it, as it would have without the upgrade."""
    project = load_project(demo_project_dir)
    generate(tmp_path / "data", seed=5, customers=40)
    with store_at("0020", engine.dialect.name, tmp_path) as store:
        for system, path in inputs(tmp_path / "data"):
            load_file(store, project, system, path, actor="t")
        resolve(store, project, actor="t")
        command.downgrade(alembic_config(store), "0019")
        stale = sorted(_rows(store))[0]
        with writing(store) as conn:
            conn.execute(
                golden_record.update()
                .where(golden_record.c.golden_id == stale)
                .values(fingerprint="0" * 64)
            )
        command.upgrade(alembic_config(store), "0020")
        assert _rows(store)[stale]["fingerprint"] == "0" * 64
        again = resolve(store, project, actor="t")
        assert (again.created, again.updated) == (0, 1)
