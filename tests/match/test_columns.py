"""Columns: values, codes, frequencies, derivations, numbers, dates and points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.match.columns import DERIVATIONS, Columns, derivation, root_column, split_ref


def _columns(**data: list[str | None]) -> Columns:
    sizes = {len(values) for values in data.values()}
    assert len(sizes) == 1
    return Columns(data, sizes.pop())


def test_values_keep_strings_and_turn_empty_into_none() -> None:
    columns = _columns(name=["anna", "", None, "bob"])
    assert len(columns) == 4
    assert columns.names == ["name"]
    assert columns.values("name").tolist() == ["anna", None, None, "bob"]
    assert columns.values("name").dtype == object


def test_codes_are_equal_for_equal_values_and_minus_one_for_none() -> None:
    columns = _columns(name=["anna", "bob", None, "anna", "", "carl", "bob"])
    codes = columns.codes("name").tolist()
    assert codes[0] == codes[3]
    assert codes[1] == codes[6]
    assert len({codes[0], codes[1], codes[5]}) == 3
    assert codes[2] == codes[4] == -1
    assert sorted(set(codes) - {-1}) == [0, 1, 2]  # dense


def test_frequency_is_the_share_of_records_with_a_value() -> None:
    columns = _columns(name=["anna", "anna", "anna", "bob", None, None])
    assert columns.frequency("name").tolist() == pytest.approx([0.75, 0.75, 0.75, 0.25, 0, 0])


def test_an_all_null_column_has_no_codes_no_frequency_and_nan_numbers() -> None:
    columns = _columns(empty=[None, "", None])
    assert columns.codes("empty").tolist() == [-1, -1, -1]
    assert columns.frequency("empty").tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(columns.numbers("empty")).all()
    assert np.isnan(columns.days("empty")).all()
    assert np.isnan(columns.points("empty")).all()
    assert columns.points("empty").shape == (3, 2)
    assert columns.values("empty~metaphone").tolist() == [None, None, None]
    assert columns.codes("empty~prefix2").tolist() == [-1, -1, -1]


def test_no_records_at_all() -> None:
    columns = Columns({"name": []}, 0)
    assert len(columns) == 0
    assert columns.codes("name").tolist() == []
    assert columns.frequency("name").tolist() == []
    assert columns.points("name").shape == (0, 2)
    assert columns.values("name~root").tolist() == []


@pytest.mark.parametrize(
    ("ref", "raw", "derived"),
    [
        ("email~local", "anna.schmidt@example.de", "anna.schmidt"),
        ("email~domain", "anna.schmidt@example.de", "example.de"),
        ("email~local", "not-an-email", None),
        ("email~local", "@example.de", None),
        ("email~domain", "anna@", None),
        ("email~local", "a@b@c.de", "a@b"),  # the last @ separates the domain
        ("birth_date~year", "1985-04-12", "1985"),
        ("birth_date~year", "85-04-12", None),
        ("birth_date~dmswap", "1985-04-12", "1985-12-04"),
        ("birth_date~dmswap", "1985-4-12", None),
        ("phone~digits", "+49 (30) 123-45", "493012345"),
        ("phone~digits", "n/a", None),
        ("given_name~root", "Bill", "william"),
        ("given_name~root", "bill", "william"),
        ("given_name~root", "Peggy", "margaret"),
        ("given_name~root", "Anna", "anna"),
        ("given_name~initial", "john", "j"),
        ("full_name~first_word", "john paul jones", "john"),
        ("full_name~last_word", "john paul jones", "jones"),
        ("full_name~first_word", "solo", "solo"),
        ("family_name~metaphone", "Smith", "SM0"),
        ("family_name~metaphone", "Schmidt", "SXMTT"),
        ("family_name~soundex", "Robert", "R163"),
        ("family_name~soundex", "Rupert", "R163"),
        ("family_name~nysiis", "Smith", "SNAT"),
        ("family_name~metaphone", "1234", None),  # no letters, no code
        ("family_name~soundex", "--", None),
        ("family_name~prefix1", "smith", "s"),
        ("family_name~prefix3", "smith", "smi"),
        ("family_name~prefix9", "smith", "smith"),
        ("family_name~last2", "smith", "th"),
        ("family_name~last9", "smith", "smith"),
        ("phone~last7", "+493012345678", "2345678"),
    ],
)
def test_each_derivation(ref: str, raw: str, derived: str | None) -> None:
    base, _ = split_ref(ref)
    columns = Columns({base: [raw, None]}, 2)
    assert columns.values(ref).tolist() == [derived, None]
    assert columns.has(ref)


def test_every_advertised_derivation_exists() -> None:
    for name in DERIVATIONS:
        if ".." in name:
            first, last = name.split("..")
            assert derivation(first) is not None and derivation(last) is not None
        else:
            assert derivation(name) is not None, name
    for missing in ("prefix0", "prefix10", "last0", "lastx", "metaphones", "", "PREFIX2"):
        assert derivation(missing) is None, missing


def test_derived_codes_group_values_that_derive_alike() -> None:
    columns = _columns(given=["Bill", "William", "Will", "Robert", "Bob", None])
    codes = columns.codes("given~root").tolist()
    assert codes[0] == codes[1] == codes[2]
    assert codes[3] == codes[4] != codes[0]
    assert codes[5] == -1
    # the plain column still tells them apart
    assert len(set(columns.codes("given").tolist()[:5])) == 5


def test_unknown_column_or_derivation_is_a_key_error() -> None:
    columns = _columns(name=["anna"])
    with pytest.raises(KeyError):
        columns.values("nope")
    with pytest.raises(KeyError):
        columns.values("name~nope")
    with pytest.raises(KeyError):
        columns.codes("name~prefix0")
    with pytest.raises(KeyError):
        columns.values("nope~metaphone")
    assert not columns.has("nope")
    assert not columns.has("name~nope")
    assert columns.has("name") and columns.has("name~metaphone")


def test_split_ref() -> None:
    assert split_ref("email") == ("email", None)
    assert split_ref("email~local") == ("email", "local")
    assert split_ref("email~") == ("email", None)
    assert split_ref("name~last_word~initial") == ("name~last_word", "initial")
    assert root_column("name~last_word~initial") == "name"
    assert root_column("name") == "name"


def test_derivations_chain() -> None:
    columns = _columns(name=["Bill Smith", "anna maria jones", None, "x"])
    assert columns.values("name~first_word~root").tolist() == ["william", "anna", None, "x"]
    assert columns.values("name~last_word~prefix2").tolist() == ["Sm", "jo", None, "x"]
    assert columns.values("name~last_word~metaphone~prefix1").tolist() == ["S", "J", None, "S"]
    assert columns.has("name~first_word~root")
    assert not columns.has("name~first_word~nope")
    assert not columns.has("nope~first_word")
    with pytest.raises(KeyError):
        columns.values("name~first_word~nope")
    with pytest.raises(KeyError):
        columns.values("nope~first_word~root")


def test_days_read_iso_dates_and_give_nan_for_anything_else() -> None:
    columns = _columns(
        d=["2020-01-05", "2020-01-06", "2020-02-30", "05.01.2020", "yesterday", None, "2020-13-01"]
    )
    days = columns.days("d")
    assert days[1] - days[0] == 1.0
    assert days[0] == float(np.datetime64("2020-01-05", "D").astype(int) + 719163)
    assert np.isnan(days[2:]).all()


def test_numbers_accept_a_decimal_comma_and_give_nan_for_junk() -> None:
    columns = _columns(n=["1.5", "1,5", " 42 ", "-3", "abc", "nan", "inf", "1e400", None, ""])
    numbers = columns.numbers("n")
    assert numbers[:4].tolist() == [1.5, 1.5, 42.0, -3.0]
    assert np.isnan(numbers[4:]).all()


def test_points_are_radians_and_nan_when_malformed_or_out_of_range() -> None:
    columns = _columns(
        p=["52.52,13.405", "52.52;13.405", "91,0", "0,181", "a,b", "1,2,3", "52.5", None]
    )
    points = columns.points("p")
    assert points.shape == (8, 2)
    assert np.degrees(points[0]).tolist() == pytest.approx([52.52, 13.405])
    assert np.degrees(points[1]).tolist() == pytest.approx([52.52, 13.405])
    assert np.isnan(points[2:]).all()


def test_results_are_cached_and_stable() -> None:
    columns = _columns(name=["b", "a", "b", None])
    first = columns.codes("name")
    assert columns.codes("name") is first
    assert columns.values("name~prefix1") is columns.values("name~prefix1")
    assert columns.frequency("name") is columns.frequency("name")


def test_phonetic_codes_ignore_what_is_not_a_letter() -> None:
    """Regression: the spaces around dropped non-letters were kept ('smith 2' -> 'SM0 ')."""
    metaphone = derivation("metaphone")
    assert metaphone is not None
    assert metaphone("smith 2") == metaphone("smith")
    assert metaphone("anne  marie") == metaphone("anne marie")


def test_phonetic_codes_treat_an_apostrophe_as_part_of_the_word() -> None:
    metaphone = derivation("metaphone")
    assert metaphone is not None
    assert metaphone("O'Neil") == metaphone("Oneil")
    assert metaphone("D'Angelo") == metaphone("Dangelo")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "b", "ab", "Ab", "b a"])), max_size=30)
)
def test_codes_and_frequency_agree_with_a_count(values: list[str | None]) -> None:
    columns = Columns({"v": values}, len(values))
    codes = columns.codes("v")
    present = [v for v in values if v]
    for i, a in enumerate(values):
        assert (codes[i] == -1) == (not a)
        for j, b in enumerate(values):
            if a and b:
                assert (codes[i] == codes[j]) == (a == b)
        expected = present.count(a) / len(present) if a else 0.0
        assert math.isclose(columns.frequency("v")[i], expected)
