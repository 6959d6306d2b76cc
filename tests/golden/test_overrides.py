"""Steward overrides end to end on both stores: two systems disagree on a customer's
city, the field's strategy changes the winner, a steward pins a value, every recompute
keeps it, the sync outbox carries each change, and merges take the pin along."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from accord.config import load_project
from accord.config.loader import Project
from accord.errors import InputRejected, NotAllowed, NotFound
from accord.golden import customers, overrides
from accord.golden.resolve import resolve
from accord.golden.survivorship import STEWARD
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.store.engine import writing
from accord.store.tables import audit_log, crosswalk, golden_change
from tests.factories import anna_chain_and_bob, billing_row, crm_row, write_csv, write_jsonl

STEWARD_ACTOR = Actor("user", "stewie", Role.STEWARD)
VIEWER = Actor("user", "vera", Role.VIEWER)


def _golden_of(engine: Engine, source_id: str, system: str = "crm") -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(crosswalk.c.golden_id).where(
                    crosswalk.c.system == system, crosswalk.c.source_id == source_id
                )
            ).scalar_one()
        )


def _customer(engine: Engine, golden_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return customers.get(conn, STEWARD_ACTOR, golden_id)


def _changes(engine: Engine, golden_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(golden_change)
            .where(golden_change.c.golden_id == golden_id)
            .order_by(golden_change.c.id)
        )
        return [dict(r._mapping) for r in rows]


def _with_strategy(folder: Path, field: str, strategy: str) -> Project:
    config = folder / "accord.yaml"
    text = re.sub(rf"\n    {field}: {{strategy: \w+}}", "", config.read_text(encoding="utf-8"))
    text = text.replace("  fields:\n", f"  fields:\n    {field}: {{strategy: {strategy}}}\n", 1)
    config.write_text(text, encoding="utf-8")
    return load_project(folder)


def _pin(
    engine: Engine, project: Project, golden_id: str, field: str, value: str, *, reason: str = "x"
) -> dict[str, Any]:
    with writing(engine) as conn:
        return overrides.override(
            conn, STEWARD_ACTOR, project, golden_id, field, value=value, reason=reason
        )


def test_strategy_then_override_then_recompute(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    # billing first, crm later: the same Anna (phone and name), in two cities
    billing = billing_row("B1", address={"line1": "Am Kanal 1", "city": "Potsdam", "country": "DE"})
    load_file(engine, project, "billing", write_jsonl(tmp_path / "b.jsonl", [billing]), actor="t")
    load_file(engine, project, "crm", write_csv(tmp_path / "c.csv", [crm_row("C1")]), actor="t")
    resolve(engine, project, actor="t")
    golden_id = _golden_of(engine, "C1")
    assert _golden_of(engine, "B1", "billing") == golden_id
    shown = _customer(engine, golden_id)
    # source priority (the default): billing outranks crm
    assert shown["data"]["city"] == "Potsdam"
    assert shown["lineage"]["city"]["rule"] == "source_priority"

    # most recent by the clock: crm's record came in later
    recent = _with_strategy(demo_project_dir, "city", "most_recent")
    resolve(engine, recent, actor="t")
    shown = _customer(engine, golden_id)
    assert shown["data"]["city"] == "Berlin"
    assert shown["lineage"]["city"]["rule"] == "most_recent"
    assert shown["lineage"]["city"]["hlc"]
    assert shown["lineage"]["city"]["alternatives"][0]["value"] == "Potsdam"
    before = len(_changes(engine, golden_id))

    pinned = _pin(
        engine, recent, golden_id, "city", "  Leipzig ", reason="moved, said on the phone"
    )
    assert (pinned["value"], pinned["before"]) == ("Leipzig", "Berlin")
    shown = _customer(engine, golden_id)
    assert shown["data"]["city"] == "Leipzig"
    entry = shown["lineage"]["city"]
    assert (entry["rule"], entry["by"], entry["reason"]) == (
        "steward_override",
        "user:stewie",
        "moved, said on the phone",
    )
    assert {a["value"] for a in entry["alternatives"]} == {"Berlin", "Potsdam"}
    change = _changes(engine, golden_id)[-1]
    assert len(_changes(engine, golden_id)) == before + 1
    assert (change["change"], change["fields"]) == ("updated", ["city"])
    assert change["data"]["city"] == "Leipzig"
    assert change["sources"]["city"] == STEWARD

    # a recompute keeps it, and changes nothing
    report = resolve(engine, recent, actor="t")
    assert (report.updated, report.created) == (0, 0)
    assert _customer(engine, golden_id)["data"]["city"] == "Leipzig"
    assert len(_changes(engine, golden_id)) == before + 1
    # so does another strategy
    frequent = _with_strategy(demo_project_dir, "city", "most_frequent")
    resolve(engine, frequent, actor="t")
    assert _customer(engine, golden_id)["data"]["city"] == "Leipzig"

    with writing(engine) as conn:
        cleared = overrides.clear(conn, STEWARD_ACTOR, frequent, golden_id, "city", reason="wrong")
    assert cleared["was"] == "Leipzig"
    assert _customer(engine, golden_id)["lineage"]["city"]["rule"] != "steward_override"
    assert _changes(engine, golden_id)[-1]["fields"] == ["city"]
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(audit_log.c.action))]
    assert "golden.overridden" in actions
    assert "golden.override_cleared" in actions


def test_an_override_is_standardized_checked_and_allowed_to_stewards_only(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    load_file(engine, project, "crm", write_csv(tmp_path / "c.csv", [crm_row("C1")]), actor="t")
    resolve(engine, project, actor="t")
    golden_id = _golden_of(engine, "C1")
    with pytest.raises(InputRejected, match="not a valid email"):
        _pin(engine, project, golden_id, "email", "anna(at)example")
    with pytest.raises(InputRejected, match="not a field of the golden record"):
        _pin(engine, project, golden_id, "full_name", "Anna Schmidt")
    with pytest.raises(InputRejected, match="reason"):
        _pin(engine, project, golden_id, "city", "Bonn", reason=" ")
    with pytest.raises(NotFound):
        _pin(engine, project, "C9999999", "city", "Bonn")
    with writing(engine) as conn, pytest.raises(NotAllowed, match="golden:override"):
        overrides.override(conn, VIEWER, project, golden_id, "city", value="Bonn", reason="x")
    assert _pin(engine, project, golden_id, "email", " Anna@Example.DE")["value"] == (
        "anna@example.de"
    )
    # a phone in the customer's country, as a mapped one would be
    assert _pin(engine, project, golden_id, "phone", "030 7654321")["value"] == "+49307654321"
    with writing(engine) as conn, pytest.raises(NotFound, match="no override"):
        overrides.clear(conn, STEWARD_ACTOR, project, golden_id, "city")


def test_overrides_follow_their_customer_into_a_merge(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    c1, c2, c3, _ = anna_chain_and_bob()
    load_file(engine, project, "crm", write_csv(tmp_path / "a.csv", [c1, c3]), actor="t")
    resolve(engine, project, actor="t")
    first, third = _golden_of(engine, "C1"), _golden_of(engine, "C3")
    assert first != third
    _pin(engine, project, first, "city", "Erfurt")
    _pin(engine, project, third, "city", "Weimar")
    _pin(engine, project, third, "street", "Goetheplatz 1")

    # C2 links them: one customer
    load_file(engine, project, "crm", write_csv(tmp_path / "b.csv", [c2]), actor="t")
    report = resolve(engine, project, actor="t")
    assert report.merged == 1
    kept = _golden_of(engine, "C2")
    assert _golden_of(engine, "C1") == _golden_of(engine, "C3") == kept
    gone = ({first, third} - {kept}).pop()
    data = _customer(engine, kept)["data"]
    # the surviving customer's own pin stays; the other's moves over when it has none
    assert data["city"] == ("Erfurt" if kept == first else "Weimar")
    assert data["street"] == "Goetheplatz 1"
    with engine.connect() as conn:
        listed = overrides.listed(conn, STEWARD_ACTOR)
        actions = [r.action for r in conn.execute(select(audit_log.c.action))]
    assert {(o["golden_id"], o["field"], o["in_effect"]) for o in listed} == {
        (kept, "city", True),
        (kept, "street", True),
        (gone, "city", False),  # set aside, for a steward
    }
    assert "golden.override_set_aside" in actions
    # and a recompute changes nothing
    assert resolve(engine, project, actor="t").updated == 0
