"""Survivorship strategies per field, steward overrides, and the lineage that says which
criterion decided: pure functions, with a property over member order."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.config.models import FieldSurvivorship, SurvivorshipConfig, SystemConfig
from accord.golden.survivorship import STEWARD, Member, Pin, Survivorship, normal_form
from accord.hlc import Stamp
from accord.model import lineage as lineage_form

SYSTEMS = {name: SystemConfig(kind="crm", owner="x") for name in ("crm", "erp", "billing")}
RECEIVED = datetime(2025, 1, 1, tzinfo=UTC)
STRATEGIES = ("source_priority", "most_recent", "most_complete", "most_frequent")


def _member(system: str, source_id: str, hlc: tuple[int, int] | None = None, **data: Any) -> Member:
    return Member(
        system,
        source_id,
        1,
        1,
        f"{system}@v1",
        {"kind": "person"} | data,
        RECEIVED,
        Stamp(*hlc).text() if hlc is not None else None,
    )


def _rules(strategy: str, **fields: FieldSurvivorship) -> Survivorship:
    config = SurvivorshipConfig.model_validate(
        {"default_priority": ["erp", "crm", "billing"], "default_strategy": strategy}
    )
    config.fields.update(fields)
    return Survivorship(config, SYSTEMS)


def test_source_priority_stays_the_default_with_its_lineage_unchanged() -> None:
    members = [
        _member("crm", "1", (5, 0), email="new@x.org"),
        _member("erp", "9", (1, 0), email="old@x.org"),
    ]
    data, lineage = _rules("source_priority").build(members)
    assert data["email"] == "old@x.org"
    assert lineage["email"]["rule"] == "source_priority"
    assert "hlc" not in lineage["email"]  # byte for byte what it was before the clock


def test_most_recent_follows_the_clock_not_the_sources_wall_clocks() -> None:
    # erp's own clock says it changed later, but crm's record was received later
    members = [
        _member("erp", "9", (1_000, 0), email="erp@x.org", source_updated_at="2030-01-01"),
        _member("crm", "1", (2_000, 3), email="crm@x.org", source_updated_at="2024-01-01"),
    ]
    data, lineage = _rules("most_recent").build(members)
    assert data["email"] == "crm@x.org"
    assert lineage["email"]["rule"] == "most_recent"
    assert lineage["email"]["hlc"] == Stamp(2_000, 3).text()
    assert lineage["email"]["alternatives"] == [
        {"value": "erp@x.org", "system": "erp", "source_id": "9"}
    ]


def test_most_recent_notes_a_clamped_source_clock() -> None:
    future = "2999-01-01T00:00:00+00:00"
    members = [_member("crm", "1", (2_000, 0), email="a@x.org", source_updated_at=future)]
    _, lineage = _rules("most_recent").build([*members, _member("erp", "2", (1, 0))])
    assert lineage["email"]["clock_clamped"] is True


def test_records_without_a_stamp_fall_back_to_their_observed_time() -> None:
    stamped = _member("crm", "1", (int(RECEIVED.timestamp() * 1000) + 1, 0), city="New")
    old = _member("erp", "9", None, city="Old", source_updated_at="2024-06-01T00:00:00+00:00")
    newer = _member(
        "billing", "3", None, city="Later", source_updated_at="2026-01-01T00:00:00+00:00"
    )
    data, _ = _rules("most_recent").build([old, stamped])
    assert data["city"] == "New"  # received (stamped) after 2024-06-01
    data, _ = _rules("most_recent").build([old, stamped, newer])
    assert data["city"] == "Later"


def test_most_recent_ties_go_to_priority_then_system_and_id() -> None:
    members = [
        _member("crm", "1", None, city="A"),
        _member("erp", "2", None, city="B"),
    ]
    data, lineage = _rules("most_recent").build(members)
    assert (data["city"], lineage["city"]["rule"]) == ("B", "source_priority")
    same_system = [_member("crm", "2", None, city="Z"), _member("crm", "1", None, city="Y")]
    data, lineage = _rules("most_recent").build(same_system)
    assert (data["city"], lineage["city"]["rule"]) == ("Y", "stable_order")


def test_most_complete_takes_the_fullest_record() -> None:
    members = [
        _member("erp", "9", (9, 0), phone="+4930111"),
        _member("billing", "5", (1, 0), phone="+4930222", email="a@x.org", city="Berlin"),
    ]
    data, lineage = _rules("most_complete").build(members)
    assert data["phone"] == "+4930222"
    assert lineage["phone"]["rule"] == "most_complete"
    # equally complete: priority decides
    members[0] = _member("erp", "9", (9, 0), phone="+4930111", email="b@x.org", city="Bonn")
    data, lineage = _rules("most_complete").build(members)
    assert (data["phone"], lineage["phone"]["rule"]) == ("+4930111", "source_priority")


def test_most_frequent_counts_values_in_their_normal_form() -> None:
    members = [
        _member("erp", "9", (9, 0), city="Munich"),
        _member("crm", "1", (1, 0), city="München"),
        _member("billing", "5", (2, 0), city="MUNCHEN"),
        _member("billing", "6", (3, 0), city="Muenchen"),
    ]
    data, lineage = _rules("most_frequent").build(members)
    assert normal_form("city", "München") == normal_form("city", "MUNCHEN")
    # two of four hold München in some form; the first of them by priority is crm's
    assert (data["city"], lineage["city"]["rule"]) == ("München", "most_frequent")
    assert [a["value"] for a in lineage["city"]["alternatives"]] == [
        "MUNCHEN",
        "Munich",
        "Muenchen",
    ]


def test_most_frequent_agreement_in_normal_form_is_agreed() -> None:
    members = [_member("erp", "9", (1, 0), city="Köln"), _member("crm", "1", (2, 0), city="KOLN")]
    data, lineage = _rules("most_frequent").build(members)
    assert (data["city"], lineage["city"]["rule"]) == ("Köln", "agreed")


def test_a_fields_own_strategy_overrides_the_default() -> None:
    rules = _rules("source_priority", email=FieldSurvivorship(strategy="most_recent"))
    members = [
        _member("erp", "9", (1, 0), email="erp@x.org", city="Erp City"),
        _member("crm", "1", (2, 0), email="crm@x.org", city="Crm City"),
    ]
    data, lineage = rules.build(members)
    assert (data["email"], lineage["email"]["rule"]) == ("crm@x.org", "most_recent")
    assert (data["city"], lineage["city"]["rule"]) == ("Erp City", "source_priority")


def test_a_pin_wins_over_every_strategy_and_keeps_the_losers() -> None:
    at = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    pin = Pin("pinned@x.org", "confirmed on the phone", "user:stewie", at)
    members = [
        _member("erp", "9", (1, 0), email="erp@x.org"),
        _member("crm", "1", (2, 0), email="crm@x.org"),
    ]
    for strategy in STRATEGIES:
        data, lineage = _rules(strategy).build(members, {"email": pin, "tax_id": pin})
        assert data["email"] == "pinned@x.org"
        entry = lineage["email"]
        assert entry["rule"] == "steward_override"
        assert (entry["system"], entry["by"], entry["reason"]) == (
            STEWARD,
            "user:stewie",
            "confirmed on the phone",
        )
        assert entry["at"] == at.isoformat()
        assert {a["value"] for a in entry["alternatives"]} == {"erp@x.org", "crm@x.org"}
        assert lineage["tax_id"]["candidates"] == 0  # a pin may fill a field no member has
    # a target's edit never beats a pin under the source_priority conflict policy
    assert _rules("most_recent").rank("email", STEWARD) < _rules("most_recent").rank("email", "erp")


def test_a_field_needs_a_strategy_or_a_priority() -> None:
    with pytest.raises(ValueError, match="strategy"):
        FieldSurvivorship()
    with pytest.raises(ValueError, match="most_recent"):
        FieldSurvivorship.model_validate({"strategy": "newest"})


_VALUES = st.sampled_from(["", "Berlin", "berlin", "Bonn", "Köln", "KOLN"])


@st.composite
def _members(draw: st.DrawFn) -> list[Member]:
    count = draw(st.integers(1, 7))
    out = []
    for i in range(count):
        hlc = draw(st.none() | st.tuples(st.integers(0, 5), st.integers(0, 2)))
        data = {
            name: value
            for name in ("city", "email", "phone")
            if (value := draw(_VALUES if name == "city" else st.sampled_from(["", "a", "b"])))
        }
        when = draw(st.sampled_from([None, "2024-01-01T00:00:00+00:00", "2025-06-01"]))
        if when:
            data["source_updated_at"] = when
        system = draw(st.sampled_from(sorted(SYSTEMS)))
        out.append(_member(system, f"{i}", hlc, **data))
    return out


@given(members=_members(), strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 10_000))
def test_the_outcome_never_depends_on_member_order(
    members: list[Member], strategy: str, seed: int
) -> None:
    rules = _rules(strategy)
    shuffled = members[:]
    random.Random(seed).shuffle(shuffled)
    # fresh members: nothing cached from the first build may help the second
    again = [
        Member(m.system, m.source_id, 1, 1, m.mapping_version, m.data, m.received_at, m.hlc)
        for m in shuffled
    ]
    assert rules.build(again) == rules.build(members)


@given(
    members=_members(),
    strategy=st.sampled_from(STRATEGIES),
    pinned=st.sets(st.sampled_from(["city", "email", "tax_id"])),
    seed=st.integers(0, 10_000),
)
def test_the_stored_lineage_packs_and_unpacks_to_the_lineage(
    members: list[Member], strategy: str, pinned: set[str], seed: int
) -> None:
    """What a resolve stores (`build_packed`) is what `model.lineage.pack` makes of the
    lineage, read in any order of its fields (PostgreSQL's JSONB keeps an order of its
    own), and `unpack` gives the lineage back, steward overrides and all."""
    at = datetime(2026, 1, 2, tzinfo=UTC)
    pins = {field: Pin(f"pinned {field}", "why", "stewie", at) for field in pinned}
    rules = _rules(strategy)
    data, lineage = rules.build(members, pins)
    same_data, packed = rules.build_packed(members, pins)
    assert same_data == data
    assert lineage_form.unpack(data, packed) == lineage
    fields = list(lineage)
    random.Random(seed).shuffle(fields)
    assert lineage_form.pack({field: lineage[field] for field in fields}) == packed
    listed = [(m["system"], m["source_id"]) for m in packed["members"]]
    assert len(listed) == len(set(listed))  # each record once


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_system_that_may_not_propose_a_field_never_supplies_its_value(strategy: str) -> None:
    systems = {
        "crm": SystemConfig(kind="crm", owner="x"),
        # erp ranks first, but may propose only its authority (tax_id) and the name
        "erp": SystemConfig(kind="erp", owner="x", authority=["tax_id"], proposes=["family_name"]),
        "billing": SystemConfig(kind="billing", owner="x"),
    }
    config = SurvivorshipConfig.model_validate(
        {"default_priority": ["erp", "crm", "billing"], "default_strategy": strategy}
    )
    members = [
        _member("erp", "9", (3, 0), email="erp@x.org", family_name="Erp", tax_id="DE1"),
        _member("erp", "8", (3, 1), email="erp@x.org", family_name="Erp"),
        _member("crm", "1", (1, 0), email="crm@x.org", family_name="Crm"),
    ]
    data, lineage = Survivorship(config, systems).build(members)
    assert data["email"] == "crm@x.org"  # erp's value, newest and most frequent, is silent
    assert lineage["email"]["system"] == "crm"
    assert lineage["email"]["rule"] == "only_value"  # erp's was never a candidate
    assert lineage["email"]["alternatives"] == []
    assert data["tax_id"] == "DE1"  # its authority: always proposed
    assert data["family_name"] in {"Erp", "Crm"}  # proposed: a candidate as ever
    assert lineage["family_name"]["candidates"] == 3


def test_proposes_names_canonical_fields_a_golden_record_keeps(tmp_path: Any) -> None:
    from accord.config.loader import load_project  # noqa: PLC0415
    from accord.demo.run import write_project  # noqa: PLC0415
    from accord.errors import ProjectInvalid  # noqa: PLC0415

    write_project(tmp_path)
    config = tmp_path / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    anchor = "    authority: [tax_id]\n"
    assert anchor in text
    config.write_text(
        text.replace(anchor, anchor + "    proposes: [emial, source_updated_at]\n", 1),
        encoding="utf-8",
    )
    with pytest.raises(ProjectInvalid) as caught:
        load_project(tmp_path)
    shown = str(caught.value) + " ".join(str(p) for p in getattr(caught.value, "problems", []))
    assert "'emial' is not a canonical field" in shown and "did you mean 'email'" in shown
    assert "'source_updated_at' is read from records but not kept" in shown
