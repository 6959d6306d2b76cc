"""Typed match settings: deterministic rules, and the learned (Fellegi-Sunter) model.

The same block is the `match:` section of a project's accord.yaml and, with an id column
and column preparation added, the settings file of `accord match run`. Column names are
plain strings here; which columns exist depends on where the settings are used, so they
are checked against the data by `accord.match.settings_check`.
"""

from __future__ import annotations

from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

# A column reference: a column, or a column with a derivation, as in `family_name~metaphone`.
ColumnRef = str

LEVEL_KINDS: dict[str, str] = {
    "exact": "the values are equal",
    "jaro_winkler": "Jaro-Winkler similarity at least the threshold (0..1)",
    "jaro": "Jaro similarity at least the threshold (0..1)",
    "levenshtein": "at most this many insertions, deletions or substitutions",
    "damerau_levenshtein": "at most this many edits, counting a transposition as one",
    "token_sort": "similarity of the sorted words at least the threshold (0..1)",
    "token_set": "similarity of the shared and remaining words at least the threshold (0..1)",
    "jaccard": "share of words in common at least the threshold (0..1)",
    "phonetic": "the same phonetic code (soundex, metaphone or nysiis)",
    "nickname": "the same given name once nicknames are resolved (Bill = William)",
    "initial": "one side is only an initial, and the other starts with it (J. = John)",
    "swapped_with": "this column and the named one are swapped (given and family name)",
    "swapped_day_month": "an ISO date with day and month swapped",
    "within_days": "ISO dates at most this many days apart",
    "within": "numbers at most this far apart",
    "within_percent": "numbers at most this percentage apart",
    "within_km": "'lat,lon' points at most this many kilometres apart",
    "all": "every one of a list of tests passes (street and postcode both equal)",
}
PHONETIC = ("soundex", "metaphone", "nysiis")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Level(StrictModel):
    """One level of a comparison: a test on the pair of values. `exact` is short for
    `{exact: true}`; `{jaro_winkler: 0.9, column: email~local}` tests another column."""

    kind: str
    param: Any = None
    column: ColumnRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"kind": data, "param": True}
        if isinstance(data, dict) and "kind" not in data:
            data = dict(data)
            column = data.pop("column", None)
            kinds = [k for k in data if k in LEVEL_KINDS]
            unknown = [k for k in data if k not in LEVEL_KINDS]
            if unknown or len(kinds) != 1:
                raise ValueError(
                    "a level is one of "
                    + ", ".join(LEVEL_KINDS)
                    + ", optionally with `column`"
                    + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "")
                )
            return {"kind": kinds[0], "param": data[kinds[0]], "column": column}
        return data

    @model_validator(mode="after")
    def _param_fits(self) -> Level:
        kind, param = self.kind, self.param
        if kind not in LEVEL_KINDS:
            raise ValueError(f"unknown level {kind!r}; one of " + ", ".join(LEVEL_KINDS))
        if kind in {"jaro_winkler", "jaro", "token_sort", "token_set", "jaccard"}:
            if isinstance(param, bool) or not isinstance(param, int | float) or not 0 < param <= 1:
                raise ValueError(f"{kind} needs a threshold in (0, 1], got {param!r}")
        elif kind in {"levenshtein", "damerau_levenshtein", "within_days"}:
            if isinstance(param, bool) or not isinstance(param, int) or param < 0:
                raise ValueError(f"{kind} needs a whole number of at least 0, got {param!r}")
        elif kind in {"within", "within_percent", "within_km"}:
            if isinstance(param, bool) or not isinstance(param, int | float) or param < 0:
                raise ValueError(f"{kind} needs a number of at least 0, got {param!r}")
        elif kind == "phonetic":
            if param not in PHONETIC:
                raise ValueError(f"phonetic needs one of {', '.join(PHONETIC)}, got {param!r}")
        elif kind == "all":
            if not isinstance(param, list) or len(param) < 2:
                raise ValueError("all needs a list of at least two tests")
            parts = [Level.model_validate(part) for part in param]
            if any(part.kind == "all" for part in parts):
                raise ValueError("all cannot contain another all")
            object.__setattr__(self, "param", parts)
        elif kind == "swapped_with":
            if not isinstance(param, str) or not param:
                raise ValueError("swapped_with needs the name of the other column")
        elif param is not True:
            raise ValueError(f"{kind} takes no value; write it as `- {kind}`")
        return self

    @property
    def label(self) -> str:
        if self.kind == "all":
            return " and ".join(part.label for part in self.param)
        text = self.kind if self.param is True else f"{self.kind} {self.param}"
        return f"{text} on {self.column}" if self.column else text


class Comparison(StrictModel):
    """How one piece of evidence is compared: levels from strongest to weakest. A pair
    where either side lacks the column is at the null level (no evidence either way);
    a pair that passes no level is at the `else` level (evidence against)."""

    name: str = Field(pattern=NAME_PATTERN)
    column: ColumnRef
    levels: list[Level] = Field(min_length=1, max_length=12)
    term_frequency: bool = Field(
        False, description="weigh an exact agreement by how rare the value is"
    )


class Thresholds(StrictModel):
    link: float = Field(0.95, gt=0.0, lt=1.0, description="match probability to link at")
    review: float = Field(0.5, gt=0.0, lt=1.0, description="below link, at least this: review")

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.review > self.link:
            raise ValueError(f"review ({self.review}) must not be above link ({self.link})")
        return self


class Training(StrictModel):
    u_sample_pairs: int = Field(
        1_000_000, ge=1_000, le=100_000_000, description="random pairs that estimate u"
    )
    max_iterations: int = Field(40, ge=1, le=1_000)
    tolerance: float = Field(1e-5, gt=0.0, le=0.1)
    max_pairs_per_session: int = Field(
        1_000_000, ge=1_000, description="pairs an EM session samples from its block"
    )
    seed: int = 20261123


class ModelConfig(StrictModel):
    """The learned Fellegi-Sunter model: blocking, comparisons, thresholds."""

    blocking: list[list[ColumnRef]] = Field(
        min_length=1, description="each rule: columns that must be equal; rules are OR'd"
    )
    comparisons: list[Comparison] = Field(min_length=1)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    correlated: list[list[str]] = Field(
        default_factory=list,
        description="groups of comparisons that move together: only the strongest agreement "
        "in a group counts",
    )
    one_per_system: list[str] = Field(
        default_factory=list, description="systems (sources) that never hold one customer twice"
    )
    link_type: Literal["dedupe_and_link", "link_only", "dedupe_only"] = "dedupe_and_link"
    training: Training = Field(default_factory=Training)

    @field_validator("blocking")
    @classmethod
    def _rules_not_empty(cls, value: list[list[str]]) -> list[list[str]]:
        for i, rule in enumerate(value):
            if not rule:
                raise ValueError(f"blocking rule {i + 1} names no columns")
        return value

    @model_validator(mode="after")
    def _names(self) -> ModelConfig:
        names = [c.name for c in self.comparisons]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"comparison {name!r} appears twice")
        grouped: list[str] = []
        for group in self.correlated:
            for name in group:
                if name not in names:
                    raise ValueError(f"correlated group names {name!r}, which is no comparison")
                if name in grouped:
                    raise ValueError(f"comparison {name!r} is in more than one correlated place")
                grouped.append(name)
        return self


class MatchRule(StrictModel):
    """A deterministic rule: records equal on `equal` and similar enough on `similar` are
    the same customer, decided before (and regardless of) the model."""

    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["person", "organization"] | None = None
    equal: list[ColumnRef] = Field(min_length=1)
    similar: dict[ColumnRef, float] = Field(default_factory=dict)

    @field_validator("similar")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for field, threshold in value.items():
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"threshold for {field} must be in (0, 1], got {threshold}")
        return value


def _default_conflicts() -> list[ColumnRef]:
    return ["birth_date", "tax_id"]


class MatchConfig(StrictModel):
    engine: Literal["rules", "learned"] = "rules"
    rules: list[MatchRule] = Field(default_factory=list)
    conflicts: list[ColumnRef] = Field(
        default_factory=_default_conflicts,
        description="columns that must not disagree within one customer",
    )
    max_block_size: int = Field(200, ge=2, le=100_000)
    model: ModelConfig | None = None

    @model_validator(mode="after")
    def _engine_has_what_it_needs(self) -> MatchConfig:
        if self.engine == "rules" and not self.rules:
            raise ValueError("the rules engine needs at least one rule under `rules`")
        if self.engine == "learned" and self.model is None:
            raise ValueError("the learned engine needs a `model` section")
        return self


class ColumnPrep(StrictModel):
    source: str = Field(alias="from", min_length=1)
    standardize: Literal[
        "text", "name", "given_name", "email", "phone", "date", "digits", "postcode", "none"
    ] = "text"


class StandaloneSettings(MatchConfig):
    """Settings of `accord match run`: the `match:` block plus how to read the inputs."""

    id_column: str = Field("id", min_length=1)
    conflicts: list[ColumnRef] = Field(default_factory=list)
    columns: dict[str, ColumnPrep] = Field(
        default_factory=dict,
        description="columns to compare, made from input columns; by default every input "
        "column, as cleaned text",
    )
    default_region: str | None = Field(None, description="for phones written without +CC")

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is not None and value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"{value!r} is not a region phone numbers know; use an ISO 3166 alpha-2 "
                "code such as DE, GB or US"
            )
        return value
