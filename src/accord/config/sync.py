"""How golden changes go out to a system: the optional `deliver` block under
`systems.<name>` in accord.yaml (docs/sync.md).

The block says where the system's records live (an HTTP API with conditional writes,
or a table in the system's own database), or where its changes go (events on a NATS
JetStream subject, or export files in a folder), which of its fields each canonical
field fills (the reverse of its intake mapping), how a field both sides changed is
settled, and how hard to try before giving a change up. Secrets are never written here:
`token_env` and `url_env` name the environment variables that hold the bearer token and
the database URL.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from accord.config.intake import ColumnName, Duration, EnvName
from accord.config.matching import StrictModel
from accord.model.customer import FIELDS_BY_NAME

ConflictPolicy = Literal["source_priority", "newest", "steward"]
_RESOURCE = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")


class HttpTarget(StrictModel):
    """A REST API holding one resource per customer record: `GET/PUT/DELETE
    {url}/{resource}/{id}` with ETags, and optionally `POST {url}/{resource}:batch`."""

    url: str = Field(description="the API's base URL, http:// or https://")
    resource: str = Field("customers", description="the collection's path under `url`")
    token_env: EnvName | None = Field(
        None, description="the environment variable holding the bearer token, if any"
    )
    batch: int = Field(
        100,
        ge=0,
        le=1000,
        description="operations per `:batch` request; 0 when the API has no batch endpoint",
    )
    timeout: Duration = Field(timedelta(seconds=10), description="for one request")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("resource")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.strip("/")
        if not _RESOURCE.match(value):
            raise ValueError(
                f"{value!r} is not a collection path: letters, digits, - and _, "
                "parts separated by /"
            )
        return value


class NatsTarget(StrictModel):
    """A NATS JetStream subject Accord publishes each golden change to, as a CloudEvent
    (structured JSON), for subscribers. A stream must capture the subject; its duplicate
    window drops a change published twice (the message id is the change's). The
    server's URL is read from the environment variable `url_env` (the local server when
    it is not set)."""

    url_env: EnvName = Field("NATS_URL")
    subject: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$",
        description="where the events go, e.g. accord.customers; no wildcards",
    )
    timeout: Duration = Field(timedelta(seconds=10), description="for one publish")


class SqlTarget(StrictModel):
    """A table in the system's own database, one row per customer record: Accord updates
    a row only at the version it last saw (`version`, an integer the system bumps on
    every write of the row, and Accord on each of its own), inserts rows for customers
    the system lacks, and deletes (or marks deleted) the rows it created for customers
    merged away. The database's SQLAlchemy URL is read from the environment variable
    `url_env`, never written here."""

    url_env: EnvName = Field(
        description="the environment variable holding the SQLAlchemy URL of the database"
    )
    table: ColumnName = Field(description="the table holding the records")
    schema_: ColumnName | None = Field(
        None, alias="schema", description="the table's schema, when not the default one"
    )
    key: ColumnName = Field(
        "id", description="the record id column: text, unique (the primary key, usually)"
    )
    version: ColumnName = Field(
        "version",
        description="an integer column bumped on every write of the row: Accord writes a "
        "row only at the version it last saw",
    )
    deleted: ColumnName | None = Field(
        None,
        description="a boolean column marking a row deleted (a soft delete); without it, "
        "Accord's rows of customers merged away are deleted",
    )
    updated_at: ColumnName | None = Field(
        None,
        description="a column the system sets to when it last changed the row (read for "
        "the `newest` conflict policy; Accord does not write it)",
    )
    batch: int = Field(500, ge=1, le=10_000, description="writes per transaction of the database")

    def columns(self) -> list[str]:
        """The columns Accord reads besides the delivered fields."""
        named = [self.key, self.version, self.deleted, self.updated_at]
        return [c for c in named if c is not None]


class FileTarget(StrictModel):
    """A folder Accord writes export files of golden changes to, for a system that takes
    files: one file per round of delivery, written under a temporary name and renamed
    when complete (docs/sync.md)."""

    folder: str = Field(
        min_length=1,
        description="where the files go, relative to the project folder or absolute",
    )
    format: Literal["csv", "jsonl"] = Field(
        description="csv (a header, then one row per change) or jsonl (one JSON object per line)"
    )


# The columns of every row of a CSV export, before the delivered fields.
FILE_COLUMNS = ("change_id", "golden_id", "change", "tombstone", "merged_into", "changed_at")


class RetryPolicy(StrictModel):
    max_attempts: int = Field(
        12, ge=1, le=1000, description="attempts before a change is given up (dead letter)"
    )
    backoff: Duration = Field(timedelta(seconds=1), description="wait after the first failure")
    max_backoff: Duration = Field(timedelta(minutes=10), description="the longest wait")


class BreakerPolicy(StrictModel):
    failures: int = Field(5, ge=1, le=1000, description="failed requests in a row that open it")
    reset: Duration = Field(
        timedelta(seconds=30), description="how long it stays open before one trial request"
    )


class DeliveryConfig(StrictModel):
    http: HttpTarget | None = Field(None, description="a REST API holding the records")
    nats: NatsTarget | None = Field(None, description="a JetStream subject for the events")
    sql: SqlTarget | None = Field(None, description="a table in the system's own database")
    file: FileTarget | None = Field(None, description="a folder for export files")
    fields: dict[str, str] = Field(
        min_length=1,
        description="the system's field -> the canonical field whose golden value it holds",
    )
    conflicts: dict[str, ConflictPolicy] = Field(
        default_factory=dict,
        description="canonical field -> how a value both sides changed is settled",
    )
    default_conflict: ConflictPolicy = "source_priority"
    create: bool = Field(
        True, description="create a record in the system for a customer it does not hold"
    )
    deletes: Literal["tombstone", "keep"] = Field(
        "tombstone",
        description="tombstone: delete the records Accord created for a customer merged "
        "away or retired; keep: leave them",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    batch_size: int = Field(
        500, ge=1, le=10_000, description="changes taken from the outbox in one round"
    )
    backlog_alarm: int = Field(
        10_000, ge=1, description="changes waiting beyond which `accord sync status` alarms"
    )
    lease: Duration = Field(
        timedelta(seconds=30),
        description="how long a worker's hold on the target lasts unless renewed (every "
        "round renews it): after a worker dies, another takes the target over once it ends",
    )

    @field_validator("lease")
    @classmethod
    def _sensible_lease(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("a lease lasts from 1s to 1h")
        return value

    @field_validator("fields")
    @classmethod
    def _canonical(cls, value: dict[str, str]) -> dict[str, str]:
        for target_field, canonical in value.items():
            if not target_field or len(target_field) > 200:
                raise ValueError(f"{target_field!r}: a field name has 1 to 200 characters")
            known = FIELDS_BY_NAME.get(canonical)
            if known is None or known.input_only:
                raise ValueError(
                    f"{target_field}: {canonical!r} is not a canonical field a golden record "
                    "holds (see docs/canonical-model.md)"
                )
        return value

    @model_validator(mode="after")
    def _one_channel(self) -> DeliveryConfig:
        given = [c for c in ("http", "nats", "sql", "file") if getattr(self, c) is not None]
        if len(given) != 1:
            found = f" (found {', '.join(given)})" if given else ""
            raise ValueError(
                f"give exactly one channel{found}: `http` (a REST API holding the records), "
                "`nats` (a JetStream subject for the events), `sql` (a table in the "
                "system's database) or `file` (a folder for export files)"
            )
        return self

    @model_validator(mode="after")
    def _fields_apart_from_the_channel_s_own(self) -> DeliveryConfig:
        if self.sql is not None:
            own = set(self.sql.columns())
            taken = [f for f in self.fields if f in own]
            if taken:
                raise ValueError(
                    f"fields: {', '.join(taken)} is a column the sql channel keeps itself "
                    f"(key, version, deleted, updated_at): deliver to other columns"
                )
        if self.file is not None and self.file.format == "csv":
            taken = [f for f in self.fields if f in FILE_COLUMNS]
            if taken:
                raise ValueError(
                    f"fields: {', '.join(taken)} would repeat a column every export row has "
                    f"({', '.join(FILE_COLUMNS)}): name the field otherwise"
                )
        return self

    @model_validator(mode="after")
    def _policies_for_delivered_fields(self) -> DeliveryConfig:
        delivered = set(self.fields.values())
        for canonical in self.conflicts:
            if canonical not in delivered:
                raise ValueError(
                    f"conflicts: {canonical!r} is not delivered: name a canonical field "
                    "listed under `fields`"
                )
        return self

    def policy(self, canonical: str) -> ConflictPolicy:
        return self.conflicts.get(canonical, self.default_conflict)
