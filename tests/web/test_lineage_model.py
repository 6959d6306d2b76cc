"""The API's lineage model takes every kind of lineage survivorship writes, a steward's
pinned value included (it has no source record)."""

from __future__ import annotations

from datetime import UTC, datetime

from accord.config.models import SurvivorshipConfig, SystemConfig
from accord.golden.survivorship import Member, Pin, Survivorship
from accord.web.api import FieldLineage


def test_pinned_and_clocked_lineage_validate() -> None:
    systems = {"crm": SystemConfig(kind="crm", owner="x")}
    rules = Survivorship(
        SurvivorshipConfig(default_priority=["crm"], default_strategy="most_recent"), systems
    )
    at = datetime(2026, 1, 1, tzinfo=UTC)
    member = Member("crm", "1", 1, 1, "crm@v1", {"email": "a@x.org"}, at, "1.000000")
    _, lineage = rules.build(
        [member, Member("crm", "2", 2, 2, "crm@v1", {"city": "Bonn"}, at, "2.000000")],
        {"email": Pin("b@x.org", "checked", "user:stewie", at)},
    )
    pinned = FieldLineage.model_validate(lineage["email"])
    assert (pinned.rule, pinned.by, pinned.source_record_id) == (
        "steward_override",
        "user:stewie",
        None,
    )
    assert FieldLineage.model_validate(lineage["city"]).hlc == "2.000000"
