"""How a system's records come in, besides files loaded by hand and the push API: one
optional block per channel under `systems.<name>.intake` in accord.yaml.

Secrets (database URLs with passwords, webhook keys) are never written here: a block
names the environment variable that holds them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from accord.config.matching import StrictModel

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(value: Any) -> timedelta:
    """`500ms`, `30s`, `5m`, `2h`, `1d`, or a plain number of seconds, as a timedelta.
    Anything else (negative, another unit) is refused with the forms that work."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 2h, 1d")  # noqa: TRY004  (pydantic reports ValueErrors)
    found = _DURATION.match(str(value))
    if found is None:
        raise ValueError(f"{value!r} is not a duration: write it like 500ms, 30s, 5m, 2h or 1d")
    amount, unit = found.groups()
    return timedelta(seconds=float(amount) * _UNIT_SECONDS[unit or "s"])


_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_FORM = (
    'five fields, minute hour day-of-month month day-of-week, as in "0 2 * * *" '
    '(at 02:00 UTC every day) or "*/15 * * * *" (every 15 minutes); or @hourly, @daily, '
    "@weekly, @monthly, @yearly"
)


def cron_expression(value: str) -> str:
    """`value` as the five-field cron expression it stands for (`@daily` spelled out,
    spaces tidied). Raises ValueError saying what is wrong and the form that works."""
    text = " ".join(value.split())
    text = _CRON_ALIASES.get(text.lower(), text)
    if len(text.split(" ")) != 5:
        raise ValueError(f"{value!r} is not a cron expression: write {CRON_FORM}")
    try:
        next(CronSim(text, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise ValueError(f"{value!r} is not a cron expression ({exc}): write {CRON_FORM}") from None
    except StopIteration:  # cronsim gives up after 50 years without a time
        raise ValueError(f"{value!r} never comes round: write {CRON_FORM}") from None
    return text


Duration = Annotated[timedelta, BeforeValidator(duration)]


def _at_least_a_second(value: timedelta) -> timedelta:
    if value < timedelta(seconds=1):
        raise ValueError("run at most once a second: give 1s or more")
    return value


# how often a worker runs a channel
Interval = Annotated[timedelta, BeforeValidator(duration), AfterValidator(_at_least_a_second)]
# the same, as a number of seconds, for settings handed to libraries that want floats
Seconds = Annotated[float, BeforeValidator(lambda value: duration(value).total_seconds())]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]
ColumnName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$", max_length=128)]
TableName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$",
        max_length=257,
        description="a table, optionally schema.table",
    ),
]


class DropConfig(StrictModel):
    """A watched folder: files another system writes there are loaded, one load per file,
    then moved to `done/` or `failed/` beside a report (docs/intake-drop.md)."""

    folder: str = Field(
        min_length=1, description="the folder to watch, relative to the project folder or absolute"
    )
    pattern: str | list[str] | None = Field(
        None,
        description="file names to take (glob, case-insensitive); by default those of the "
        "mapping's format, plain or .gz: *.csv, *.csv.gz or *.jsonl, *.ndjson, ...",
    )
    every: Interval = Field(
        timedelta(minutes=1), description="how often a worker scans the folder: 30s, 1m, 2h"
    )
    settle: Duration = Field(
        timedelta(seconds=2),
        description="a file changed more recently than this is still being written and is "
        "left for the next scan (0s to take files at once)",
    )

    @field_validator("pattern")
    @classmethod
    def _patterns_are_names(cls, value: str | list[str] | None) -> str | list[str] | None:
        for pattern in [value] if isinstance(value, str) else value or []:
            if not pattern or "/" in pattern or "\\" in pattern:
                raise ValueError(f"{pattern!r}: a pattern matches file names, not paths")
        return value


class PollConfig(StrictModel):
    """Delta sync from the system's own database (`accord poll`, docs/intake-poll.md):
    rows changed since the last run, found by a watermark column and a tiebreak key."""

    url_env: EnvName = Field(
        description="the environment variable holding the SQLAlchemy URL of the source"
    )
    table: TableName | None = Field(None, description="the table to read (or `query`)")
    query: str | None = Field(
        None, min_length=1, description="a SELECT to read instead of a table (or `table`)"
    )
    watermark: ColumnName = Field(
        description="a column that grows with every change: a timestamp or a sequence"
    )
    key: ColumnName | None = Field(
        None,
        description="the tiebreak among rows sharing a watermark value; unique per row "
        "(by default the mapping's source id column)",
    )
    every: Duration = Field(timedelta(minutes=5), description="how often a worker polls")
    lag: Duration = Field(
        timedelta(0),
        description="re-read rows this far behind the last watermark seen, for rows "
        "committed late; for a numeric watermark, a plain number of sequence values",
    )
    batch_size: int = Field(1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_source(self) -> PollConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` and `query`")
        if self.every <= timedelta(0):
            raise ValueError("`every` must be longer than 0s")
        return self


class BrokerIntake(StrictModel):
    """A NATS JetStream stream the system publishes its changes to; Accord pulls them
    through a durable consumer (`accord.intake.broker`). The server's URL, which may
    carry credentials, is read from the environment variable `url_env`; when it is not
    set, the local server `nats://127.0.0.1:4222` is used."""

    url_env: EnvName = Field("NATS_URL")
    stream: str = Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")
    subject: str = Field(min_length=1, max_length=255, pattern=r"^[^\s]+$")
    durable: str = Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")
    batch_size: int = Field(500, ge=1, le=10_000, description="messages per transaction")
    max_wait: Seconds = Field(2.0, gt=0, le=300, description="how long a fetch waits")
    max_deliver: int = Field(
        5, ge=1, le=1000, description="deliveries after which a message goes to quarantine"
    )
    ack_wait: Seconds = Field(
        30.0, ge=1, le=3600, description="unacknowledged this long, a message is redelivered"
    )
    every: Interval = Field(
        timedelta(minutes=1),
        description="how often a worker drains the stream when the system's sync is batch "
        "without a schedule (a realtime system's stream is consumed continuously)",
    )


class WebhookIntake(StrictModel):
    """Single changes the system POSTs to `/api/v1/systems/<name>/webhook`, signed with
    HMAC-SHA256 (`accord.intake.webhooks`). The secret is read from the environment
    variable `secret_env`; during a rotation, `previous_secret_env` names the old one,
    and a delivery signed with either is accepted."""

    secret_env: EnvName
    previous_secret_env: EnvName | None = None
    tolerance: Seconds = Field(
        300.0, ge=1, le=86_400, description="how old a delivery's timestamp may be"
    )


class IntakeConfig(StrictModel):
    """The channels a system sends records through. Each block is optional; a system
    with none is loaded by `accord load` and the push API only."""

    drop: DropConfig | None = Field(None, description="a watched folder (file drop)")
    poll: PollConfig | None = Field(
        None, description="read changed rows from the system's database on a schedule"
    )
    broker: BrokerIntake | None = Field(None, description="a NATS JetStream subscription")
    webhook: WebhookIntake | None = Field(None, description="signed single-change callbacks")
