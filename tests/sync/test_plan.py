"""The pure part of sync out: what a change asks of a target, conflicts, back-off."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from accord.config.sync import DeliveryConfig, RetryPolicy
from accord.store.outbox import Heading
from accord.sync import plan

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _config(**extra: Any) -> DeliveryConfig:
    return DeliveryConfig.model_validate(
        {
            "http": {"url": "http://127.0.0.1:9"},
            "fields": {"Email": "email", "Phone": "phone", "Name": "family_name"},
        }
        | extra
    )


def _change(change: str = "updated", fields: list[str] | None = None) -> Heading:
    return Heading(1, "C0000001", change, fields, None)


def test_a_change_concerns_a_target_when_it_touches_a_delivered_field_or_members() -> None:
    config = _config()
    assert plan.relevant(_change("created"), config, "billing")
    assert plan.relevant(_change("merged"), config, "billing")
    assert plan.relevant(_change("retired"), config, "billing")
    assert plan.relevant(_change(fields=["email"]), config, "billing")
    assert plan.relevant(_change(fields=[]), config, "billing")  # members changed only
    assert not plan.relevant(_change(fields=["birth_date", "city"]), config, "billing")
    repair = Heading(2, "C0000001", "repair", ["email"], "billing")
    assert plan.relevant(repair, config, "billing")
    assert not plan.relevant(repair, config, "service")  # a repair is for its target only


def test_desired_leaves_out_the_targets_own_fields_and_missing_values() -> None:
    data = {"email": "a@b.example", "phone": "", "family_name": "Lee"}
    assert plan.desired(data, _config(), frozenset()) == {"Email": "a@b.example", "Name": "Lee"}
    assert plan.desired(data, _config(), frozenset({"email"})) == {"Name": "Lee"}


def _settle(
    wanted: dict[str, Any],
    base: dict[str, Any] | None,
    theirs: dict[str, Any],
    config: DeliveryConfig | None = None,
    *,
    source: str = "crm",
    ranks: dict[str, int] | None = None,
    their_time: datetime | None = None,
) -> tuple[dict[str, Any], list[plan.Conflict]]:
    order = ranks or {"billing": 0, "crm": 1}
    return plan.settle(
        wanted,
        base,
        theirs,
        config=config or _config(),
        target="billing",
        sources={"email": source, "phone": source, "family_name": source},
        rank=lambda _field, system: order.get(system, 99),
        their_time=their_time,
        our_time=T0,
    )


def test_a_field_the_target_did_not_touch_takes_ours_without_conflict() -> None:
    to_write, found = _settle(
        {"Email": "new@x.example"}, {"Email": "old@x.example"}, {"Email": "old@x.example"}
    )
    assert to_write == {"Email": "new@x.example"}
    assert found == []


def test_without_a_base_nothing_conflicts() -> None:
    to_write, found = _settle({"Email": "new@x.example"}, None, {"Email": "theirs@x.example"})
    assert to_write == {"Email": "new@x.example"}
    assert found == []


def test_source_priority_keeps_the_value_of_the_system_ranked_higher() -> None:
    base = {"Email": "old@x.example"}
    theirs = {"Email": "theirs@x.example"}
    # billing (the target) ranks above crm, where the golden value came from
    to_write, [conflict] = _settle({"Email": "ours@x.example"}, base, theirs)
    assert to_write == {}
    assert (conflict.kept, conflict.theirs, conflict.ours) == (
        "theirs",
        "theirs@x.example",
        "ours@x.example",
    )
    # the other way round
    to_write, [conflict] = _settle(
        {"Email": "ours@x.example"}, base, theirs, ranks={"crm": 0, "billing": 1}
    )
    assert to_write == {"Email": "ours@x.example"}
    assert conflict.kept == "ours"


def test_newest_keeps_the_later_change() -> None:
    config = _config(conflicts={"email": "newest"})
    base, theirs = {"Email": "old@x.example"}, {"Email": "theirs@x.example"}
    later = _settle(
        {"Email": "ours@x.example"}, base, theirs, config, their_time=T0 + timedelta(seconds=1)
    )
    earlier = _settle(
        {"Email": "ours@x.example"}, base, theirs, config, their_time=T0 - timedelta(seconds=1)
    )
    assert later[0] == {} and later[1][0].kept == "theirs"
    assert earlier[0] == {"Email": "ours@x.example"} and earlier[1][0].kept == "ours"


def test_steward_keeps_theirs_and_leaves_the_conflict_waiting() -> None:
    config = _config(default_conflict="steward")
    to_write, [conflict] = _settle(
        {"Email": "ours@x.example", "Name": "Lee"},
        {"Email": "old@x.example", "Name": "Li"},
        {"Email": "theirs@x.example", "Name": "Li"},
        config,
    )
    assert to_write == {"Name": "Lee"}  # untouched there: ours, no conflict
    assert (conflict.field, conflict.kept, conflict.policy) == ("Email", "waiting", "steward")


def test_a_value_both_sides_agree_on_is_no_conflict() -> None:
    to_write, found = _settle(
        {"Email": "same@x.example"}, {"Email": "old@x.example"}, {"Email": "same@x.example"}
    )
    assert (to_write, found) == ({}, [])


@given(
    attempts=st.integers(min_value=1, max_value=200),
    retry_after=st.none() | st.floats(min_value=0, max_value=10_000),
    seed=st.integers(),
)
def test_backoff_grows_is_capped_and_honours_retry_after(
    attempts: int, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy(backoff=timedelta(seconds=1), max_backoff=timedelta(minutes=10))
    wait = plan.backoff(attempts, policy, retry_after, random.Random(seed)).total_seconds()
    ceiling = min(600.0, 2.0 ** (attempts - 1))
    assert wait <= 600.0
    assert wait >= ceiling / 2 or (retry_after is not None and wait >= min(retry_after, 600))
    if retry_after is not None:
        assert wait >= min(retry_after, 600.0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"fields": {"X": "nonsense"}}, "is not a canonical field"),
        ({"fields": {"X": "full_name"}}, "is not a canonical field"),  # an input-only field
        ({"conflicts": {"city": "newest"}}, "is not delivered"),
        ({"http": {"url": "ftp://x"}}, "is not an http"),
        ({"http": {"url": "http://x", "resource": "../etc"}}, "is not a collection path"),
        ({"retry": {"max_attempts": 0}}, "greater than or equal to 1"),
    ],
)
def test_bad_delivery_settings_say_what_is_wrong(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(**extra)


def test_the_same_conflict_met_again_is_settled_as_before_and_not_recorded_twice() -> None:
    config = _config(default_conflict="steward")
    base, theirs = {"Email": "old@x.example"}, {"Email": "theirs@x.example"}
    wanted = {"Email": "ours@x.example"}

    def again(kept: str) -> tuple[dict[str, Any], list[plan.Conflict]]:
        return plan.settle(
            wanted,
            base,
            theirs,
            config=config,
            target="billing",
            sources={"email": "crm"},
            rank=lambda _f, _s: 0,
            their_time=None,
            our_time=T0,
            earlier={"Email": ("ours@x.example", "theirs@x.example", kept)},
        )

    assert again("waiting") == ({}, [])  # still waiting: not recorded again
    assert again("theirs") == ({}, [])  # a steward kept theirs
    assert again("ours") == (wanted, [])  # a steward kept ours
    # a new value on either side is a new conflict
    _, [fresh] = plan.settle(
        {"Email": "newer@x.example"},
        base,
        theirs,
        config=config,
        target="billing",
        sources={},
        rank=lambda _f, _s: 0,
        their_time=None,
        our_time=T0,
        earlier={"Email": ("ours@x.example", "theirs@x.example", "theirs")},
    )
    assert fresh.kept == "waiting"
