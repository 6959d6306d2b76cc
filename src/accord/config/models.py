"""Typed models of the project files. Unknown keys are errors, never ignored."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from accord.config.health import HealthConfig
from accord.config.intake import Duration, IntakeConfig, cron_expression
from accord.config.matching import NAME_PATTERN, MatchConfig, StrictModel
from accord.config.security import SecurityConfig
from accord.config.sync import DeliveryConfig

__all__ = ["MatchConfig", "StrictModel"]  # re-exported: the match block is part of a project

SystemName = Annotated[str, Field(pattern=NAME_PATTERN)]


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
    sync: Literal["realtime", "batch"] = Field(
        "batch",
        description="realtime: the broker is consumed continuously, the other pull channels "
        "run by their `every`; batch: the pull channels run at the `schedule` times, or by "
        "their `every` without one",
    )
    schedule: str | None = Field(
        None, description="cron expression (UTC) at which a batch system's pull channels run"
    )
    authority: list[str] = Field(
        default_factory=list, description="canonical fields this system is the authority for"
    )
    proposes: list[str] | None = Field(
        None,
        description="canonical fields this system's values may become golden values of; "
        "by default all. Its other values are kept on its records and used in matching, "
        "but never survive. The fields it is the authority for are always proposed",
    )
    default_region: str | None = Field(
        None, description="ISO 3166 alpha-2 region for phone numbers written without +CC"
    )
    intake: IntakeConfig = Field(
        default_factory=IntakeConfig, description="channels the system's records come in by"
    )
    deliver: DeliveryConfig | None = Field(
        None, description="where golden changes go out to the system (docs/sync.md)"
    )
    health: HealthConfig = Field(
        default_factory=HealthConfig, description="alert thresholds (docs/health.md)"
    )

    @field_validator("schedule")
    @classmethod
    def _cron_for_batch(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("sync") == "realtime":
            raise ValueError(
                "a realtime system runs without a schedule: remove `schedule`, or set "
                "`sync: batch` to run its pull channels at these times"
            )
        cron_expression(value)
        return value


# How a field's golden value is chosen among its members' values (docs/survivorship.md).
Strategy = Literal["source_priority", "most_recent", "most_complete", "most_frequent"]


class FieldSurvivorship(StrictModel):
    strategy: Strategy | None = Field(
        None, description="how the value is chosen; by default `default_strategy`"
    )
    priority: list[str] | None = Field(
        None,
        min_length=1,
        description="systems in order of trust for this field; by default its authorities, "
        "then `default_priority`",
    )

    @model_validator(mode="after")
    def _says_something(self) -> FieldSurvivorship:
        if self.strategy is None and self.priority is None:
            raise ValueError("give a `strategy`, a `priority`, or both")
        return self


class SurvivorshipConfig(StrictModel):
    default_priority: list[str] = Field(min_length=1)
    default_strategy: Strategy = Field(
        "source_priority", description="the strategy of every field without one of its own"
    )
    tie_break: Literal["most_recent"] = "most_recent"
    max_clock_skew: Duration = Field(
        timedelta(minutes=5),
        description="how far ahead of Accord's clock a source's change time is believed "
        "(the hybrid logical clock clamps it there)",
    )
    fields: dict[str, FieldSurvivorship] = Field(default_factory=dict)

    @field_validator("max_clock_skew")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("a clock skew is not negative")
        return value

    def strategy_of(self, field: str) -> Strategy:
        explicit = self.fields.get(field)
        if explicit is not None and explicit.strategy is not None:
            return explicit.strategy
        return self.default_strategy


class ProjectConfig(StrictModel):
    project: str = Field(min_length=1)
    entity: Literal["customer"] = "customer"
    systems: dict[SystemName, SystemConfig] = Field(min_length=1)
    match: MatchConfig
    survivorship: SurvivorshipConfig
    rules: list[Rule] = Field(
        default_factory=list, description="business rules every canonical record must pass"
    )
    security: SecurityConfig = Field(
        default_factory=SecurityConfig, description="how people sign in (MFA by role)"
    )


def expand_shorthand(data: Any) -> Any:
    """A mapping's `fields` with the short form expanded: `email: Email` is short for
    `email: {from: Email}`."""
    if isinstance(data, dict) and isinstance(data.get("fields"), dict):
        data = dict(data)
        data["fields"] = {
            name: {"from": spec} if isinstance(spec, str) else spec
            for name, spec in data["fields"].items()
        }
    return data


class FileFormat(StrictModel):
    type: Literal["csv", "jsonl"] | None = Field(
        None, description="csv or jsonl; by default taken from the file name"
    )
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: Literal["utf-8", "utf-8-sig", "latin-1", "cp1252"] = "utf-8"
    max_field_bytes: int = Field(1_048_576, ge=1, le=64 * 1_048_576)


class Rule(StrictModel):
    """A business rule over the canonical record, in CEL (accord.expressions): when
    `when` holds (always, if absent), `check` must hold, or the record is quarantined
    with reason `rule.<name>` (or, with `action: flag`, loads with that issue)."""

    name: str = Field(pattern=NAME_PATTERN)
    when: str | None = Field(None, description="CEL: the rule applies only when this is true")
    check: str = Field(description="CEL over `record`: true when the record is acceptable")
    message: str = Field(min_length=1, max_length=500, description="what is wrong, for people")
    action: Literal["quarantine", "flag"] = "quarantine"


class FieldMapping(StrictModel):
    source: str | None = Field(None, alias="from", description="column or dotted JSON path")
    value: str | None = Field(None, description="a constant")
    compute: str | None = Field(
        None, description="CEL over `source` (or `row`) and the mapped fields so far (`record`)"
    )
    translate: dict[str, str] | None = None
    default: str | None = None
    formats: list[str] | None = Field(None, min_length=1)
    on_invalid: Literal["quarantine", "flag"] | None = None
    only_for: Literal["person", "organization"] | None = Field(
        None, description="map this field only for records of this kind"
    )

    @model_validator(mode="after")
    def _one_origin(self) -> FieldMapping:
        given = [self.source, self.value, self.compute]
        if sum(origin is not None for origin in given) != 1:
            raise ValueError(
                "give exactly one of `from` (a source field), `value` (a constant) "
                "or `compute` (a CEL expression)"
            )
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
    rules: list[Rule] = Field(
        default_factory=list, description="business rules for this system's records only"
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        return expand_shorthand(data)


# What a linked record is (docs/linked-records.md): orders, invoices and the like that
# belong to a customer without being one.
LinkedKind = Literal[
    "order", "invoice", "payment", "ticket", "contract", "subscription", "opportunity", "other"
]


class LinkedFields(StrictModel):
    """The few typed fields every linked record may have; all optional."""

    occurred_at: FieldMapping | None = Field(
        None, description="when it happened (ordered, issued, opened): a date or timestamp"
    )
    amount: FieldMapping | None = Field(None, description="a decimal amount, as 1234.50")
    currency: FieldMapping | None = Field(None, description="an ISO 4217 code, as EUR")
    status: FieldMapping | None = Field(None, description="the source's own status word")
    title: FieldMapping | None = Field(None, description="a subject or short description")


class LinkedMappingConfig(StrictModel):
    """How one system's records of one kind (its orders, its invoices) are read and
    attached to the customers they belong to."""

    system: SystemName
    kind: LinkedKind
    source_id: str = Field(min_length=1, description="the source field holding the record id")
    customer: str = Field(
        min_length=1,
        description="the source field holding the source id of the customer it belongs to",
    )
    customer_system: SystemName | None = Field(
        None,
        description="the system whose customer id `customer` holds; by default `system`",
    )
    format: FileFormat = Field(default_factory=FileFormat)
    fields: LinkedFields = Field(default_factory=LinkedFields)

    @property
    def customers_in(self) -> str:
        """The system whose customer records the references name."""
        return self.customer_system or self.system

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        return expand_shorthand(data)
