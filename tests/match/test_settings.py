"""Match settings: validation of the config models, column checks with hints, and the
settings file of `accord match run` with file:line problems."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from accord.config.loader import load_match_settings
from accord.config.matching import (
    Comparison,
    Level,
    MatchConfig,
    ModelConfig,
    StandaloneSettings,
    Thresholds,
)
from accord.errors import ProjectInvalid
from accord.match.settings_check import column_problems

MODEL: dict[str, Any] = {
    "blocking": [["email"]],
    "comparisons": [
        {"name": "email", "column": "email", "levels": ["exact"]},
        {"name": "given_name", "column": "given_name", "levels": ["exact", "nickname"]},
    ],
}


def _model(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(MODEL), **changes}


def _error(model: type[Any], data: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return str(caught.value)


# ---- levels


@pytest.mark.parametrize(
    ("level", "kind", "param", "column", "label"),
    [
        ("exact", "exact", True, None, "exact"),
        (
            {"exact": True, "column": "email~local"},
            "exact",
            True,
            "email~local",
            "exact on email~local",
        ),
        ({"jaro_winkler": 0.9}, "jaro_winkler", 0.9, None, "jaro_winkler 0.9"),
        ({"jaro_winkler": 1}, "jaro_winkler", 1, None, "jaro_winkler 1"),
        ({"levenshtein": 0}, "levenshtein", 0, None, "levenshtein 0"),
        ({"within_km": 2.5}, "within_km", 2.5, None, "within_km 2.5"),
        ({"phonetic": "soundex"}, "phonetic", "soundex", None, "phonetic soundex"),
        (
            {"swapped_with": "family_name"},
            "swapped_with",
            "family_name",
            None,
            "swapped_with family_name",
        ),
        ({"kind": "initial", "param": True}, "initial", True, None, "initial"),
    ],
)
def test_level_shorthands(
    level: Any, kind: str, param: Any, column: str | None, label: str
) -> None:
    parsed = Level.model_validate(level)
    assert (parsed.kind, parsed.param, parsed.column, parsed.label) == (kind, param, column, label)


def test_all_level_parses_its_parts() -> None:
    level = Level.model_validate({"all": ["exact", {"exact": True, "column": "postcode"}]})
    assert [part.kind for part in level.param] == ["exact", "exact"]
    assert level.param[1].column == "postcode"
    assert level.label == "exact and exact on postcode"


@pytest.mark.parametrize(
    ("level", "message"),
    [
        ("fuzzy", "unknown level 'fuzzy'"),
        ({"fuzzy": 0.9}, "unknown: fuzzy"),
        ({"exact": True, "jaro_winkler": 0.9}, "a level is one of"),
        ({"column": "x"}, "a level is one of"),
        ({"jaro_winkler": 0}, "jaro_winkler needs a threshold in (0, 1]"),
        ({"jaro_winkler": 1.5}, "jaro_winkler needs a threshold in (0, 1]"),
        ({"jaro_winkler": True}, "jaro_winkler needs a threshold"),
        ({"token_set": "high"}, "token_set needs a threshold"),
        ({"levenshtein": 1.5}, "levenshtein needs a whole number of at least 0"),
        ({"damerau_levenshtein": -1}, "damerau_levenshtein needs a whole number"),
        ({"within_days": True}, "within_days needs a whole number"),
        ({"within": -1}, "within needs a number of at least 0"),
        ({"within_km": "far"}, "within_km needs a number"),
        ({"phonetic": "caverphone"}, "phonetic needs one of soundex, metaphone, nysiis"),
        ({"all": ["exact"]}, "all needs a list of at least two tests"),
        ({"all": "exact"}, "all needs a list of at least two tests"),
        ({"all": ["exact", {"all": ["exact", "initial"]}]}, "all cannot contain another all"),
        ({"all": ["exact", "nonsense"]}, "unknown level 'nonsense'"),
        ({"swapped_with": ""}, "swapped_with needs the name of the other column"),
        ({"swapped_with": 3}, "swapped_with needs the name"),
        ({"exact": 1}, "exact takes no value; write it as `- exact`"),
        ({"nickname": "yes"}, "nickname takes no value"),
    ],
)
def test_bad_levels(level: Any, message: str) -> None:
    assert message in _error(Level, level)


# ---- comparisons, thresholds, models


def test_comparison_names_and_levels() -> None:
    assert "String should match pattern" in _error(
        Comparison, {"name": "Email", "column": "email", "levels": ["exact"]}
    )
    assert "at least 1 item" in _error(
        Comparison, {"name": "email", "column": "email", "levels": []}
    )
    assert "at most 12 items" in _error(
        Comparison, {"name": "email", "column": "email", "levels": ["exact"] * 13}
    )
    assert "Extra inputs are not permitted" in _error(
        Comparison, {"name": "email", "column": "email", "levels": ["exact"], "tf": True}
    )


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"link": 1.0}, "less than 1"),
        ({"link": 0}, "greater than 0"),
        ({"review": -0.1}, "greater than 0"),
        ({"link": "high"}, "valid number"),
        ({"link": 0.8, "review": 0.9}, "review (0.9) must not be above link (0.8)"),
    ],
)
def test_bad_thresholds(thresholds: dict[str, Any], message: str) -> None:
    assert message in _error(Thresholds, thresholds)


def test_equal_thresholds_are_allowed() -> None:
    assert Thresholds(link=0.9, review=0.9).review == 0.9
    assert Thresholds().link == 0.95 and Thresholds().review == 0.5


def test_duplicate_comparison_names() -> None:
    comparisons = [*MODEL["comparisons"], {"name": "email", "column": "x", "levels": ["exact"]}]
    assert "comparison 'email' appears twice" in _error(
        ModelConfig, _model(comparisons=comparisons)
    )


def test_correlated_group_must_name_comparisons() -> None:
    assert "correlated group names 'phone', which is no comparison" in _error(
        ModelConfig, _model(correlated=[["email", "phone"]])
    )
    assert ModelConfig.model_validate(_model(correlated=[["email", "given_name"]])).correlated


def test_blocking_rules() -> None:
    assert "blocking rule 2 names no columns" in _error(
        ModelConfig, _model(blocking=[["email"], []])
    )
    assert "at least 1 item" in _error(ModelConfig, _model(blocking=[]))
    assert "at least 1 item" in _error(ModelConfig, _model(comparisons=[]))


def test_link_type_and_training_bounds() -> None:
    assert "link_only" in _error(ModelConfig, _model(link_type="link"))
    assert "greater than or equal to 1000" in _error(
        ModelConfig, _model(training={"u_sample_pairs": 10})
    )
    assert "less than or equal to 0.1" in _error(ModelConfig, _model(training={"tolerance": 1}))


def test_engine_needs_what_it_uses() -> None:
    assert "the learned engine needs a `model` section" in _error(
        MatchConfig, {"engine": "learned"}
    )
    assert "the rules engine needs at least one rule" in _error(MatchConfig, {"engine": "rules"})
    assert "greater than or equal to 2" in _error(
        MatchConfig, {"engine": "learned", "model": MODEL, "max_block_size": 1}
    )
    assert "threshold for person_name must be in (0, 1]" in _error(
        MatchConfig,
        {"rules": [{"name": "r", "equal": ["email"], "similar": {"person_name": 1.5}}]},
    )


def test_standalone_defaults() -> None:
    settings = StandaloneSettings.model_validate({"engine": "learned", "model": MODEL})
    assert settings.id_column == "id"
    assert settings.conflicts == []  # not the project default
    assert settings.columns == {}
    assert MatchConfig.model_validate({"engine": "learned", "model": MODEL}).conflicts == [
        "birth_date",
        "tax_id",
    ]
    prep = StandaloneSettings.model_validate(
        {"engine": "learned", "model": MODEL, "columns": {"email": {"from": "E-Mail"}}}
    ).columns["email"]
    assert (prep.source, prep.standardize) == ("E-Mail", "text")
    assert "Input should be 'text'" in _error(
        StandaloneSettings,
        {"engine": "learned", "model": MODEL, "columns": {"x": {"from": "x", "standardize": "?"}}},
    )


# ---- column checks


def _settings(**changes: Any) -> MatchConfig:
    return MatchConfig.model_validate({"engine": "learned", "model": MODEL, **changes})


def test_no_problems_when_every_column_exists() -> None:
    config = _settings(
        conflicts=["given_name"],
        rules=[{"name": "r", "equal": ["email~local"], "similar": {"given_name": 0.9}}],
    )
    assert column_problems(config, {"email", "given_name"}) == []


def test_column_problems_locate_each_reference_and_hint() -> None:
    model = _model(
        blocking=[["emial"], ["email", "given_name~soundx"]],
        comparisons=[
            {
                "name": "email",
                "column": "email",
                "levels": ["exact", {"exact": True, "column": "mail~local"}],
            },
            {
                "name": "given",
                "column": "given_name",
                "levels": [
                    {"swapped_with": "family"},
                    {"all": ["exact", {"exact": True, "column": "zip"}]},
                ],
            },
            {"name": "phone", "column": "phone", "levels": ["exact"]},
        ],
    )
    config = MatchConfig.model_validate(
        {
            "engine": "learned",
            "model": model,
            "conflicts": ["birthdate"],
            "rules": [{"name": "r", "equal": ["e_mail"], "similar": {"qqq": 0.9}}],
        }
    )
    problems = column_problems(config, {"email", "given_name", "family_name", "birth_date"})
    found = {(p.loc, p.message, p.hint) for p in problems}
    derivations = next(p.hint for p in problems if p.loc == ("model", "blocking", 1, 1))
    assert found == {
        (("rules", 0, "equal", 0), "no column 'e_mail'", "did you mean 'email'?"),
        (
            ("rules", 0, "similar", "qqq"),
            "no column 'qqq'",
            "columns: birth_date, email, family_name, given_name",
        ),
        (("conflicts", 0), "no column 'birthdate'", "did you mean 'birth_date'?"),
        (("model", "blocking", 0, 0), "no column 'emial'", "did you mean 'email'?"),
        (
            ("model", "blocking", 1, 1),
            "'given_name~soundx': no derivation 'soundx'",
            derivations,
        ),
        (("model", "comparisons", 0, "levels", 1), "no column 'mail'", "did you mean 'email'?"),
        (
            ("model", "comparisons", 1, "levels", 0),
            "no column 'family'",
            "did you mean 'family_name'?",
        ),
        (
            ("model", "comparisons", 1, "levels", 1),
            "no column 'zip'",
            "columns: birth_date, email, family_name, given_name",
        ),
        (
            ("model", "comparisons", 2, "column"),
            "no column 'phone'",
            "columns: birth_date, email, family_name, given_name",
        ),
    }
    assert derivations is not None
    assert "soundex" in derivations and "prefix1..prefix9" in derivations


def test_chained_derivations_are_checked_link_by_link() -> None:
    config = _settings(conflicts=["given_name~first_word~root", "given_name~first_word~soundx"])
    problems = column_problems(config, {"email", "given_name"})
    assert [(p.loc, p.message) for p in problems] == [
        (("conflicts", 1), "'given_name~first_word~soundx': no derivation 'soundx'")
    ]


# ---- the settings file


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ProjectInvalid) as caught:
        load_match_settings(path)
    return [str(p) for p in caught.value.problems]


GOOD = """\
id_column: id
engine: learned
columns:
  email: {from: Email, standardize: email}
model:
  blocking:
    - [email]
  comparisons:
    - name: email
      column: email
      levels: [exact, {damerau_levenshtein: 1}]
  thresholds: {link: 0.9, review: 0.6}
"""


def test_load_a_good_settings_file(tmp_path: Path) -> None:
    settings = load_match_settings(_write(tmp_path, GOOD))
    assert settings.engine == "learned" and settings.model is not None
    assert settings.model.comparisons[0].levels[1].param == 1
    assert settings.model.thresholds.review == 0.6
    assert settings.columns["email"].standardize == "email"


def test_settings_problems_name_file_and_line(tmp_path: Path) -> None:
    text = (
        GOOD.replace("levels: [exact, {damerau_levenshtein: 1}]", "levels: [exact, fuzzy]")
        .replace("thresholds: {link: 0.9, review: 0.6}", "thresholds: {link: 0.6, review: 0.9}")
        .replace("id_column: id", "id_column: id\nid_colum: x")
    )
    path = _write(tmp_path, text)
    problems = _problems(path)
    assert len(problems) == 3, problems
    unknown_key, level, thresholds = sorted(problems, key=lambda p: int(p.split(":")[1]))
    assert unknown_key.startswith(f"{path}:2: unknown key 'id_colum'")
    assert "did you mean 'id_column'?" in unknown_key
    assert level.startswith(f"{path}:12: ")
    assert "unknown level 'fuzzy'" in level
    assert thresholds.startswith(f"{path}:13: ")
    assert "review (0.9) must not be above link (0.6)" in thresholds


def test_settings_file_missing_empty_or_not_yaml(tmp_path: Path) -> None:
    assert _problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such settings file"]
    assert _problems(_write(tmp_path, "")) == [f"{tmp_path / 'settings.yaml'}: file is empty"]
    bad = _problems(_write(tmp_path, "model: [\n  x: 1\n"))
    assert len(bad) == 1 and bad[0].startswith(f"{tmp_path / 'settings.yaml'}:3: not valid YAML")
    assert "expected a mapping" in _problems(_write(tmp_path, "- a\n- b\n"))[0]
    (tmp_path / "latin1.yaml").write_bytes("engine: \xe9\n".encode("latin-1"))
    assert "not UTF-8" in _problems(tmp_path / "latin1.yaml")[0]


def test_settings_file_without_a_model(tmp_path: Path) -> None:
    expected = (
        f"{tmp_path / 'settings.yaml'}:1: (top): Value error, "
        "the learned engine needs a `model` section"
    )
    assert _problems(_write(tmp_path, "engine: learned\n")) == [expected]


def test_an_unknown_default_region_is_reported(tmp_path: Path) -> None:
    """Regression: an unknown default_region silently made every local phone invalid."""
    path = _write(tmp_path, GOOD + "default_region: XX\n")
    line = len(GOOD.splitlines()) + 1
    expected = (
        f"{path}:{line}: default_region: Value error, 'XX' is not a region phone numbers "
        "know; use an ISO 3166 alpha-2 code such as DE, GB or US"
    )
    assert _problems(path) == [expected]
    assert load_match_settings(_write(tmp_path, GOOD + "default_region: GB\n")).default_region
