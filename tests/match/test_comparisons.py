"""Comparison levels: each kind on hand-picked pairs, the null and else levels, level
order, `all`, column overrides; and every kind against a scalar reference."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from typing import Any

import jellyfish
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, Jaro, JaroWinkler, Levenshtein

from accord.config.matching import Comparison, Level
from accord.match.columns import Columns
from accord.match.comparisons import CompiledComparison, level_columns
from accord.standardize import given_name_root


def _compare(levels: list[Any], pairs: list[tuple[Any, Any]], **other: list[Any]) -> list[int]:
    """The level of each (left value, right value) pair of column `v`; `other` columns
    hold (left, right) values per pair too."""
    size = 2 * len(pairs)
    data = {"v": [value for pair in pairs for value in pair]}
    for name, values in other.items():
        data[name] = [value for pair in values for value in pair]
    columns = Columns(data, size)
    comparison = CompiledComparison(Comparison(name="v", column="v", levels=levels), columns)
    left = np.arange(0, size, 2, dtype=np.int64)
    return [int(level) for level in comparison.levels(left, left + 1)]


@pytest.mark.parametrize(
    ("level", "passing", "failing"),
    [
        ("exact", ("anna", "anna"), ("anna", "Anna")),
        ({"jaro_winkler": 0.9}, ("martha", "marhta"), ("anna", "peter")),
        ({"jaro": 0.9}, ("martha", "marhta"), ("dixon", "dicksonx")),
        ({"levenshtein": 1}, ("smith", "smyth"), ("smith", "smiht")),
        ({"damerau_levenshtein": 1}, ("smith", "smiht"), ("smith", "simth x")),
        ({"levenshtein": 0}, ("x", "x"), ("x", "y")),
        ({"token_sort": 0.9}, ("anna maria", "maria anna"), ("anna maria", "maria")),
        ({"token_set": 0.9}, ("anna maria schmidt", "schmidt anna"), ("anna", "peter")),
        ({"jaccard": 0.5}, ("a b c", "c b d"), ("a b c", "a d e")),
        ({"phonetic": "metaphone"}, ("smith", "smyth"), ("smith", "jones")),
        ({"phonetic": "soundex"}, ("robert", "rupert"), ("robert", "smith")),
        ({"phonetic": "nysiis"}, ("stevens", "stephens"), ("smith", "schmidt")),
        ("nickname", ("bill", "william"), ("bill", "robert")),
        ("nickname", ("Peggy", "margaret"), ("peggy", "maggy")),
        ("initial", ("j", "john"), ("j", "kate")),
        ("initial", ("john", "j"), ("jo", "john")),
        ("swapped_day_month", ("1985-04-12", "1985-12-04"), ("1985-04-12", "1985-04-21")),
        ({"within_days": 365}, ("2020-01-01", "2020-12-31"), ("2020-01-01", "2021-01-02")),
        ({"within_days": 0}, ("2020-01-01", "2020-01-01"), ("2020-01-01", "2020-01-02")),
        ({"within": 1.5}, ("10", "11.5"), ("10", "11.6")),
        ({"within": 1.5}, ("-1", "0,5"), ("10", "abc")),
        ({"within_percent": 10}, ("100", "110"), ("100", "112")),
        ({"within_percent": 10}, ("0", "0"), ("0", "0.001")),
        (
            {"within_km": 10},
            ("52.5163,13.3777", "52.5219,13.4132"),
            ("52.5163,13.3777", "52.3906,13.0645"),
        ),
        ({"within_km": 1}, ("0,179.999", "0,-179.999"), ("90,0", "89,0")),
    ],
)
def test_each_kind(level: Any, passing: tuple[str, str], failing: tuple[str, str]) -> None:
    assert _compare([level], [passing, failing]) == [1, 2]


def test_swapped_with_needs_both_columns_swapped() -> None:
    levels = ["exact", {"swapped_with": "family"}]
    pairs = [("smith", "john"), ("smith", "john"), ("smith", "john"), ("smith", "smith")]
    family = [("john", "smith"), ("john", "smyth"), ("john", None), ("john", "john")]
    # the last pair is exact on the compared column: level 1 comes first
    assert _compare(levels, pairs, family=family) == [2, 3, 3, 1]


def test_null_level_when_either_side_is_missing() -> None:
    pairs = [(None, "anna"), ("anna", None), (None, None), ("", "anna")]
    assert _compare(["exact", {"jaro_winkler": 0.8}], pairs) == [0, 0, 0, 0]


def test_null_level_follows_the_comparisons_column_not_a_levels_override() -> None:
    email = [("anna@x", "anna@y"), ("anna@x", "anna@y")]
    assert _compare(
        [{"exact": True, "column": "email~local"}], [(None, "v"), ("v", "w")], email=email
    ) == [0, 1]


def test_else_level_when_no_level_passes() -> None:
    levels = ["exact", {"jaro_winkler": 0.95}, "initial"]
    assert _compare(levels, [("anna", "zoe")]) == [4]


def test_the_first_level_that_passes_wins() -> None:
    # a weak level listed first claims the pairs a stronger one would also pass
    assert _compare([{"jaro_winkler": 0.7}, "exact"], [("anna", "anna"), ("anna", "anne")]) == [
        1,
        1,
    ]
    assert _compare(["exact", {"jaro_winkler": 0.7}], [("anna", "anna"), ("anna", "anne")]) == [
        1,
        2,
    ]


def test_all_levels_need_every_part() -> None:
    levels = [{"all": ["exact", {"exact": True, "column": "postcode"}]}, "exact"]
    pairs = [("main st 1", "main st 1")] * 3 + [("main st 1", "main st 2")]
    postcode = [("10115", "10115"), ("10115", "10117"), ("10115", None), ("10115", "10115")]
    assert _compare(levels, pairs, postcode=postcode) == [1, 2, 2, 3]


def test_a_level_with_a_column_override_reads_that_column() -> None:
    levels = ["exact", {"exact": True, "column": "v~local"}, {"damerau_levenshtein": 2}]
    pairs = [
        ("anna@x.de", "anna@x.de"),
        ("anna@x.de", "anna@y.com"),
        ("anna@x.de", "anan@x.de"),
        ("anna@x.de", "bob@y.com"),
    ]
    assert _compare(levels, pairs) == [1, 2, 3, 4]

    levels[1] = {"exact": True, "column": "email~local"}
    columns = Columns({"email": ["a@x"]}, 1)
    comparison = CompiledComparison(Comparison(name="e", column="email", levels=levels), columns)
    assert comparison.labels == [
        "null",
        "exact",
        "exact on email~local",
        "damerau_levenshtein 2",
        "else",
    ]
    assert comparison.else_level == 4
    assert comparison.exact_level == 1
    assert comparison.base_columns == {"email"}


def test_exact_level_only_when_the_first_level_is_exact_on_the_column() -> None:
    columns = Columns({"a": ["x"], "b": ["y"]}, 1)

    def exact_level(levels: list[Any]) -> int | None:
        return CompiledComparison(
            Comparison(name="c", column="a", levels=levels), columns
        ).exact_level

    assert exact_level(["exact", "initial"]) == 1
    assert exact_level([{"exact": True, "column": "a"}]) == 1
    assert exact_level([{"exact": True, "column": "b"}]) is None
    assert exact_level([{"jaro_winkler": 0.9}, "exact"]) is None


def test_level_columns_name_every_column_a_level_reads() -> None:
    comparison = Comparison(
        name="given",
        column="given",
        levels=[
            "exact",
            "nickname",
            {"swapped_with": "family"},
            {"phonetic": "soundex"},
            "initial",
            "swapped_day_month",
            {"all": ["exact", {"exact": True, "column": "postcode~prefix2"}]},
        ],
    )
    found = [level_columns(level, comparison) for level in comparison.levels]
    assert found == [
        ["given"],
        ["given", "given~root"],
        ["given", "family"],
        ["given", "given~soundex"],
        ["given", "given~initial"],
        ["given", "given~dmswap"],
        ["given", "postcode~prefix2"],
    ]


def test_no_pairs() -> None:
    columns = Columns({"v": ["a"]}, 1)
    comparison = CompiledComparison(
        Comparison(name="v", column="v", levels=["exact", {"jaro_winkler": 0.9}]), columns
    )
    empty = np.zeros(0, dtype=np.int64)
    assert comparison.levels(empty, empty).tolist() == []


# ---- floating point at the threshold


def test_jaro_winkler_at_exactly_the_threshold_passes() -> None:
    """Regression: cpdist's float32 scores (0.95 read as 0.94999999) failed a level whose
    threshold they meet exactly."""
    assert JaroWinkler.normalized_similarity("peter", "pieter") >= 0.95
    assert JaroWinkler.normalized_similarity("dwayne", "duane") >= 0.84
    assert _compare([{"jaro_winkler": 0.95}], [("peter", "pieter")]) == [1]
    assert _compare([{"jaro_winkler": 0.84}], [("dwayne", "duane")]) == [1]


def test_token_sort_at_exactly_the_threshold_passes() -> None:
    """Regression: a float32 score of 55.0 was compared with 0.55 * 100 =
    55.00000000000001 and failed."""
    a, b = "abcdefghijklmnopqrst", "abcdefghijkUVWXYZQRS"
    assert fuzz.token_sort_ratio(a, b) / 100 >= 0.55
    assert _compare([{"token_sort": 0.55}], [(a, b)]) == [1]
    assert _compare([{"token_set": 0.55}], [(a, b)]) == [1]


# ---- against a scalar reference


def _metaphone_like(encode: Any) -> Any:
    def code(value: str) -> str | None:
        letters = "".join(ch for ch in value if ch.isalpha() or ch == " ")
        return (encode(letters) or None) if letters.strip() else None

    return code


PHONETIC = {
    "metaphone": _metaphone_like(jellyfish.metaphone),
    "soundex": _metaphone_like(jellyfish.soundex),
    "nysiis": _metaphone_like(jellyfish.nysiis),
}


def _day(value: str) -> float:
    try:
        return float(date.fromisoformat(value[:10]).toordinal())
    except ValueError:
        return math.nan


def _number(value: str) -> float:
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def _km(a: str, b: str) -> float:
    def point(value: str) -> tuple[float, float] | None:
        parts = value.replace(";", ",").split(",")
        if len(parts) != 2:
            return None
        lat, lon = _number(parts[0]), _number(parts[1])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return None
        return math.radians(lat), math.radians(lon)

    p, q = point(a), point(b)
    if p is None or q is None:
        return math.nan
    h = (
        math.sin((q[0] - p[0]) / 2) ** 2
        + math.cos(p[0]) * math.cos(q[0]) * math.sin((q[1] - p[1]) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(min(h, 1.0)))


def _swap(value: str) -> str | None:
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        return f"{value[:4]}-{value[8:10]}-{value[5:7]}"
    return None


SCORES: dict[str, Callable[[str, str], float]] = {
    "jaro_winkler": JaroWinkler.normalized_similarity,
    "jaro": Jaro.normalized_similarity,
    "token_sort": lambda a, b: fuzz.token_sort_ratio(a, b) / 100,
    "token_set": lambda a, b: fuzz.token_set_ratio(a, b) / 100,
    "jaccard": lambda a, b: (
        len(set(a.split()) & set(b.split())) / len(set(a.split()) | set(b.split()))
    ),
}


def _passes(level: Level, a: dict[str, str | None], b: dict[str, str | None]) -> bool:
    """The scalar reference of one level test on two records."""
    if level.kind == "all":
        return all(_passes(part, a, b) for part in level.param)
    column = level.column or "v"
    x, y = a[column], b[column]
    if level.kind == "swapped_with":
        ox, oy = a[level.param], b[level.param]
        return None not in (x, y, ox, oy) and x == oy and ox == y
    if x is None or y is None:
        return False
    kind, param = level.kind, level.param
    if kind == "exact":
        return x == y
    if kind in SCORES:
        score = SCORES[kind](x, y)
        assume(abs(score - param) > 1e-6)  # exactly at the threshold: tested above
        return bool(score >= param)
    if kind == "levenshtein":
        return bool(Levenshtein.distance(x, y) <= param)
    if kind == "damerau_levenshtein":
        return bool(OSA.distance(x, y) <= param)
    if kind == "phonetic":
        code = PHONETIC[param](x)
        return code is not None and code == PHONETIC[param](y)
    if kind == "nickname":
        root = given_name_root(x)
        return bool(root) and root == given_name_root(y)
    if kind == "initial":
        return x[0] == y[0] and (len(x) == 1 or len(y) == 1)
    if kind == "swapped_day_month":
        swapped = _swap(x)
        return swapped is not None and swapped == y and swapped != x
    if kind == "within_days":
        return bool(abs(_day(x) - _day(y)) <= param)
    if kind == "within":
        return bool(abs(_number(x) - _number(y)) <= param)
    if kind == "within_percent":
        p, q = _number(x), _number(y)
        return p == q or bool(abs(p - q) <= max(abs(p), abs(q)) * param / 100)
    if kind == "within_km":
        return bool(_km(x, y) <= param)
    raise AssertionError(kind)


def _reference_level(comparison: Comparison, a: dict[str, Any], b: dict[str, Any]) -> int:
    if a["v"] is None or b["v"] is None:
        return 0
    for number, level in enumerate(comparison.levels, start=1):
        if _passes(level, a, b):
            return number
    return len(comparison.levels) + 1


NAMES = [
    "anna",
    "anne",
    "ann",
    "hanna",
    "a",
    "j",
    "john",
    "jon",
    "johnny",
    "bill",
    "william",
    "will",
    "smith",
    "smyth",
    "schmidt",
    "peter",
    "pieter",
    "martha",
    "marhta",
    "dwayne",
    "duane",
    "smith jones",
    "jones smith",
    "maria anna",
    "anna maria",
]
DATES = [
    "1985-04-12",
    "1985-12-04",
    "1985-04-13",
    "1986-04-12",
    "2000-01-01",
    "2000-02-29",
    "1999-12-31",
    "1985-4-12",
    "2000-13-01",
    "not a date",
]
NUMBERS = ["0", "1", "1.5", "10", "-10", "100", "105", "110,5", "1e3", "abc", "1000"]
POINTS = ["52.52,13.405", "52.53,13.41", "48.8566,2.3522", "0,0", "0,0.05", "91,0", "x", "1;2"]

TEXT_LEVELS = st.one_of(
    st.just("exact"),
    st.just("nickname"),
    st.just("initial"),
    st.builds(lambda t: {"jaro_winkler": t}, st.sampled_from([0.7, 0.8, 0.88, 0.92, 0.95])),
    st.builds(lambda t: {"jaro": t}, st.sampled_from([0.7, 0.85, 0.9])),
    st.builds(lambda t: {"token_sort": t}, st.sampled_from([0.5, 0.8, 0.9])),
    st.builds(lambda t: {"token_set": t}, st.sampled_from([0.5, 0.8, 0.9])),
    st.builds(lambda t: {"jaccard": t}, st.sampled_from([0.3, 0.5, 1.0])),
    st.builds(lambda t: {"levenshtein": t}, st.integers(0, 3)),
    st.builds(lambda t: {"damerau_levenshtein": t}, st.integers(0, 3)),
    st.builds(lambda t: {"phonetic": t}, st.sampled_from(["metaphone", "soundex", "nysiis"])),
    st.just({"swapped_with": "w"}),
    st.just({"exact": True, "column": "w"}),
    st.just({"jaro_winkler": 0.8, "column": "w"}),
    st.just({"all": ["initial", {"exact": True, "column": "w"}]}),
)
KINDS: dict[str, tuple[list[str], Any]] = {
    "text": (NAMES, TEXT_LEVELS),
    "date": (
        DATES,
        st.one_of(
            st.just("exact"),
            st.just("swapped_day_month"),
            st.builds(lambda t: {"within_days": t}, st.sampled_from([0, 1, 31, 365, 400])),
            st.builds(lambda t: {"damerau_levenshtein": t}, st.integers(0, 2)),
        ),
    ),
    "number": (
        NUMBERS,
        st.one_of(
            st.just("exact"),
            st.builds(lambda t: {"within": t}, st.sampled_from([0, 0.5, 1, 5, 1000])),
            st.builds(lambda t: {"within_percent": t}, st.sampled_from([0, 1, 5, 10, 50])),
        ),
    ),
    "point": (
        POINTS,
        st.one_of(
            st.just("exact"),
            st.builds(lambda t: {"within_km": t}, st.sampled_from([0, 1, 6, 100, 1000])),
        ),
    ),
}


@settings(max_examples=400, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(KINDS)))
def test_levels_agree_with_a_scalar_reference(data: st.DataObject, kind: str) -> None:
    values, level_strategy = KINDS[kind]
    levels = data.draw(st.lists(level_strategy, min_size=1, max_size=4), label="levels")
    comparison = Comparison(name="v", column="v", levels=levels)
    value = st.one_of(st.none(), st.sampled_from(values))
    records = data.draw(
        st.lists(st.fixed_dictionaries({"v": value, "w": value}), min_size=2, max_size=12),
        label="records",
    )
    columns = Columns({name: [r[name] for r in records] for name in ("v", "w")}, len(records))
    compiled = CompiledComparison(comparison, columns)
    left, right = np.triu_indices(len(records), 1)
    got = compiled.levels(left.astype(np.int64), right.astype(np.int64)).tolist()
    expected = [
        _reference_level(comparison, records[i], records[j])
        for i, j in zip(left.tolist(), right.tolist(), strict=True)
    ]
    assert got == expected


def test_levels_on_a_derived_column_use_the_derived_values() -> None:
    """Regression: initial, nickname and phonetic levels read the base column of a derived
    reference (`name~last_word`), ignoring its derivation."""
    columns = Columns(
        {
            "name": [
                "anna x",
                "anna smith",
                "anna s",
                "bob smith",
                "bill smith",
                "william jones",
                "smith anna",
                "smyth bob",
            ]
        },
        8,
    )

    def levels(column: str, level: Any, pairs: list[tuple[int, int]]) -> list[int]:
        comparison = Comparison(name="n", column=column, levels=[level])
        left = np.array([p[0] for p in pairs], dtype=np.int64)
        right = np.array([p[1] for p in pairs], dtype=np.int64)
        return [int(x) for x in CompiledComparison(comparison, columns).levels(left, right)]

    # last words: x / smith (no), s / smith (yes)
    assert levels("name~last_word", "initial", [(0, 1), (2, 3)]) == [2, 1]
    # first words: bill / william
    assert levels("name~first_word", "nickname", [(4, 5)]) == [1]
    # first words: smith / smyth; whole names differ in soundex
    assert levels("name~first_word", {"phonetic": "soundex"}, [(6, 7)]) == [1]
    assert levels("name", {"phonetic": "soundex"}, [(6, 7)]) == [2]
    # a level's own column may be derived too
    assert levels("name", {"initial": True, "column": "name~last_word"}, [(2, 3)]) == [1]


def test_damerau_levenshtein_is_optimal_string_alignment() -> None:
    """As documented: a transposition counts as one edit, but no substring is edited
    twice, so "ca" -> "abc" takes three edits (true Damerau-Levenshtein: two)."""
    assert OSA.distance("ca", "abc") == 3
    assert _compare([{"damerau_levenshtein": 2}], [("ca", "abc"), ("smith", "smtih")]) == [2, 1]
    assert _compare([{"damerau_levenshtein": 3}], [("ca", "abc")]) == [1]
