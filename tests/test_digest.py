"""Content hashes (`digest.py`) are the standard library's canonical JSON, byte for byte,
whatever the value: hashes stored by earlier versions (audit chain, fingerprints,
content hashes) must keep verifying, and orjson, which writes most documents, must
never change one."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.digest import canonical_json, digest


def standard(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats()  # NaN, infinities, exponent forms, -0.0
    | st.text()  # control characters, quotes, line separators, any plane
    | st.text(st.characters(categories=["Cs"]), max_size=2)  # lone surrogates
    | st.sampled_from(["1e5", "null", "NaN", "\u2028", "\x7f", '"\\', "e"])
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=3)
    ),  # keys that are not text
    max_leaves=12,
)


@settings(max_examples=500)
@given(documents)
def test_canonical_json_is_the_standard_librarys(value: Any) -> None:
    try:
        expected = standard(value)
    except TypeError:  # mixed key types cannot be sorted: both refuse
        with pytest.raises(TypeError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected
    try:
        expected_digest = hashlib.sha256(expected.encode()).hexdigest()
    except UnicodeEncodeError:  # a lone surrogate: both refuse
        with pytest.raises(UnicodeEncodeError):
            digest(value)
        return
    assert digest(value) == expected_digest


# floats of every size, as orjson's and the standard library's formats part at 1e-4
# and 1e16: mantissa times a power of ten
floats_of_any_size = st.builds(
    lambda mantissa, power: mantissa * 10.0**power,
    st.floats(min_value=-10, max_value=10, allow_nan=False),
    st.integers(min_value=-320, max_value=300),
)


@settings(max_examples=2000)
@given(st.lists(floats_of_any_size | st.floats(), min_size=1, max_size=3))
def test_floats_of_any_size_hash_as_the_standard_library_writes_them(value: list[float]) -> None:
    assert canonical_json(value) == standard(value)
    assert canonical_json({"p": value[0]}) == standard({"p": value[0]})


@pytest.mark.parametrize(
    "value",
    [
        {"probability": 1e-07, "weight": 1e16, "m": 0.1},
        [1e-05, -5.5e-05, 0.0001, 0.00012, 1e15, 1e16, 123456789012345678.0, 5e-324],
        {"at": float("nan"), "worst": float("-inf")},
        {"big": 2**64, "small": -(2**63) - 1},
        {10: "a", 9: "b"},  # sorted as numbers by the standard library
        {"é": 1, "e": 2, "Z": 3, "\U0001f600": 4},
        ["\x00\x1f\u2028", "1e5 is text", None],
    ],
)
def test_values_orjson_would_write_differently_hash_as_before(value: Any) -> None:
    assert canonical_json(value) == standard(value)


def test_lone_surrogates_are_text_but_cannot_be_hashed() -> None:
    assert canonical_json(["\ud800"]) == standard(["\ud800"])
    with pytest.raises(UnicodeEncodeError):
        digest(["\ud800"])


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, tzinfo=UTC), {"tags": {"a"}}, object()])
def test_what_json_cannot_hold_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        digest(value)
