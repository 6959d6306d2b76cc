"""When a system's integration is unhealthy: the optional `health` block under
`systems.<name>` in accord.yaml (docs/health.md).

Each threshold applies to each direction where it means something: records coming in
from the system (`in`) and golden changes going out to it (`out`, a system with a
`deliver` block). The `in:` and `out:` blocks set a threshold for one direction only,
over the one given for both. A threshold not given is not checked (but an outbound
backlog is checked against `deliver.backlog_alarm` when no `max_backlog` is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from pydantic import Field

from accord.config.intake import Duration
from accord.config.matching import StrictModel

T = TypeVar("T")
_ERROR_RATE = "a share between 0 and 1 (0.05: one in twenty)"


class _Thresholds(StrictModel):
    max_error_rate: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="in: the share of the last hour's records quarantined; out: the share "
        "of the last hour's deliveries that needed a retry or died. " + _ERROR_RATE,
    )
    max_backlog: int | None = Field(
        None,
        ge=0,
        description="in: records waiting to be matched; out: changes waiting to be delivered",
    )
    max_latency: Duration | None = Field(
        None,
        description="in: how long the oldest record has waited to be matched; out: the 99th "
        "percentile of the last hour's deliveries, or the oldest waiting change if longer",
    )


class IntakeThresholds(_Thresholds):
    """Thresholds for the records coming in from the system."""

    max_channel_failures: int | None = Field(
        None, ge=1, description="failed runs in a row of a pull channel (drop, poll, broker)"
    )
    max_golden_latency: Duration | None = Field(
        None,
        description="the 99th percentile of the last hour's records matched, from received "
        "(stored and queued) to golden (matched and written): 500ms, 30s, 5m",
    )


class DeliveryThresholds(_Thresholds):
    """Thresholds for the golden changes going out to the system."""

    min_completeness: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="the share of active customers the system holds a record of",
    )


class HealthConfig(IntakeThresholds, DeliveryThresholds):
    intake: IntakeThresholds | None = Field(
        None, alias="in", description="thresholds for records coming in only"
    )
    delivery: DeliveryThresholds | None = Field(
        None, alias="out", description="thresholds for golden changes going out only"
    )

    def for_intake(self) -> Limits:
        """The thresholds in force for records coming in."""
        return self._limits(self.intake or IntakeThresholds())

    def for_delivery(self) -> Limits:
        """The thresholds in force for changes going out."""
        return self._limits(self.delivery or DeliveryThresholds())

    def _limits(self, own: IntakeThresholds | DeliveryThresholds) -> Limits:
        """Each threshold the direction has: its own value, else the system's."""
        return Limits(
            **{
                name: _first(getattr(own, name), getattr(self, name))
                for name in type(own).model_fields
            }
        )


@dataclass(frozen=True)
class Limits:
    """The thresholds in force for one direction; None: not checked."""

    max_error_rate: float | None = None
    max_backlog: int | None = None
    max_latency: timedelta | None = None
    max_channel_failures: int | None = None
    min_completeness: float | None = None
    max_golden_latency: timedelta | None = None


def _first(*values: T | None) -> T | None:
    return next((v for v in values if v is not None), None)
