"""Typed models of the project files. Unknown keys are errors, never ignored."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
SystemName = Annotated[str, Field(pattern=NAME_PATTERN)]

# The features a match rule can compare; see accord.match.features.
MatchField = Literal[
    "email",
    "phone",
    "tax_id",
    "birth_date",
    "postcode",
    "city",
    "street",
    "given_name",
    "family_name",
    "person_name",
    "organization_name",
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SystemConfig(StrictModel):
    kind: Literal[
        "crm",
        "erp",
        "billing",
        "service_desk",
        "logistics",
        "marketing",
        "partner_portal",
        "other",
    ]
    owner: str = Field(min_length=1, description="the team answerable for this system")
    description: str = ""
    trust: float = Field(0.5, ge=0.0, le=1.0)
    sync: Literal["realtime", "batch"] = "batch"
    schedule: str | None = Field(None, description="cron expression for batch sync")
    authority: list[str] = Field(
        default_factory=list, description="canonical fields this system is the authority for"
    )
    default_region: str | None = Field(
        None, description="ISO 3166 alpha-2 region for phone numbers written without +CC"
    )


class MatchRule(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["person", "organization"] | None = None
    equal: list[MatchField] = Field(min_length=1)
    similar: dict[MatchField, float] = Field(default_factory=dict)

    @field_validator("similar")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for field, threshold in value.items():
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"threshold for {field} must be in (0, 1], got {threshold}")
        return value


def _default_conflicts() -> list[MatchField]:
    return ["birth_date", "tax_id"]


class MatchConfig(StrictModel):
    engine: Literal["rules"] = "rules"
    rules: list[MatchRule] = Field(min_length=1)
    conflicts: list[MatchField] = Field(default_factory=_default_conflicts)
    max_block_size: int = Field(200, ge=2, le=100_000)


class FieldSurvivorship(StrictModel):
    priority: list[str] = Field(min_length=1)


class SurvivorshipConfig(StrictModel):
    default_priority: list[str] = Field(min_length=1)
    tie_break: Literal["most_recent"] = "most_recent"
    fields: dict[str, FieldSurvivorship] = Field(default_factory=dict)


class ProjectConfig(StrictModel):
    project: str = Field(min_length=1)
    entity: Literal["customer"] = "customer"
    systems: dict[SystemName, SystemConfig] = Field(min_length=1)
    match: MatchConfig
    survivorship: SurvivorshipConfig


class FileFormat(StrictModel):
    type: Literal["csv", "jsonl"] | None = Field(
        None, description="csv or jsonl; by default taken from the file name"
    )
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: Literal["utf-8", "utf-8-sig", "latin-1", "cp1252"] = "utf-8"
    max_field_bytes: int = Field(1_048_576, ge=1, le=64 * 1_048_576)


class FieldMapping(StrictModel):
    source: str | None = Field(None, alias="from", description="column or dotted JSON path")
    value: str | None = Field(None, description="a constant")
    translate: dict[str, str] | None = None
    default: str | None = None
    formats: list[str] | None = Field(None, min_length=1)
    on_invalid: Literal["quarantine", "flag"] | None = None
    only_for: Literal["person", "organization"] | None = Field(
        None, description="map this field only for records of this kind"
    )

    @model_validator(mode="after")
    def _one_origin(self) -> FieldMapping:
        if (self.source is None) == (self.value is None):
            raise ValueError("give exactly one of `from` (a source field) or `value`")
        return self

    @field_validator("formats")
    @classmethod
    def _formats_are_strptime(cls, value: list[str] | None) -> list[str] | None:
        for fmt in value or []:
            if not re.search(r"%[a-zA-Z]", fmt):
                raise ValueError(f"{fmt!r} is not a strptime format such as %Y-%m-%d")
        return value


class MappingConfig(StrictModel):
    system: SystemName
    entity: Literal["customer"] = "customer"
    source_id: str = Field(min_length=1, description="the source field holding the record id")
    format: FileFormat = Field(default_factory=FileFormat)
    fields: dict[str, FieldMapping] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        # `email: Email` is short for `email: {from: Email}`.
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            data = dict(data)
            data["fields"] = {
                name: {"from": spec} if isinstance(spec, str) else spec
                for name, spec in data["fields"].items()
            }
        return data
