"""What a channel out is to the dispatcher: the two shapes a target takes, and the values
they pass.

- A **record channel** holds one record per customer record and takes conditional
  writes (`RecordChannel`): a REST API (`http.HttpChannel`) or a table in the system's
  own database (`sql.SqlChannel`). A target's round reads, writes and settles conflicts
  through it the same way whatever it is (`dispatch._Round`), and reconciliation pages
  through its records.
- An **event channel** takes each golden change as it is, in order, and holds no records
  Accord reads back (`EventChannel`): a NATS JetStream subject (`nats.NatsChannel`) or a
  folder of export files (`files.FileChannel`).

A channel that cannot take a request now (no connection, a timeout, a busy server)
raises `Unavailable`: the change waits its back-off and the target's circuit breaker
counts the failure. A refusal that will not pass (a 4xx, a constraint of the table) is a
`Result` of its operation, and makes its delivery dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from accord.errors import AccordError
from accord.store.outbox import Change


class Unavailable(Exception):
    """The target could not take a request now: try again later."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TargetMisconfigured(AccordError):
    """The target's settings cannot work (a variable unset, a column missing)."""


@dataclass(frozen=True)
class Operation:
    op: str  # put or delete
    record_id: str
    fields: dict[str, Any] | None
    if_match: str | None
    if_none_match: str | None
    key: str

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "id": self.record_id, "key": self.key}
        if self.fields is not None:
            out["fields"] = self.fields
        if self.if_match is not None:
            out["if_match"] = self.if_match
        if self.if_none_match is not None:
            out["if_none_match"] = self.if_none_match
        return out


@dataclass(frozen=True)
class Remote:
    """A record as the target holds it."""

    record_id: str
    etag: str | None
    fields: dict[str, Any]
    deleted: bool
    updated_at: str | None


@dataclass(frozen=True)
class Result:
    """How the target answered one operation, in HTTP's terms whatever the channel: 2xx
    done, 404 absent, 410 deleted, 412 the condition failed (`record`: as it is now),
    a transient status (`plan.TRANSIENT_STATUSES`) to try again, any other 4xx refused."""

    status: int
    etag: str | None
    record: Remote | None  # after a write; on 412 the record as it is now
    error: str | None
    retry_after: float | None = None


@dataclass(frozen=True)
class Published:
    """One change an event channel has taken."""

    change_id: int
    sequence: int | None  # the stream sequence, when stored (NATS)
    duplicate: bool  # the channel had it already (a change published or written again)
    file: str | None = None  # the export file that holds it (a folder)

    def detail(self) -> dict[str, Any]:
        """What the delivery's outcome records of it."""
        if self.file is not None:
            return {"file": self.file, "duplicate": self.duplicate}
        return {"sequence": self.sequence, "duplicate": self.duplicate}


class RecordChannel(Protocol):
    """A target holding records Accord writes with conditions (see the module's text)."""

    target: str

    def get(self, record_id: str) -> Remote | None:
        """The record as the target holds it; None when it has none; a deleted one with
        `deleted` set. Raises Unavailable."""

    def page(self, after: str | None, limit: int = 1000) -> tuple[list[Remote], str | None]:
        """One page of the live records in id order after `after`, and the id to ask
        after next (None: the last page). Raises Unavailable."""

    def apply(self, operations: Sequence[Operation]) -> list[Result]:
        """Apply the operations in order; one result each. Raises Unavailable when the
        target could not be reached at all."""

    def close(self) -> None: ...


class EventChannel(Protocol):
    """A target taking each golden change as an event, in order."""

    def publish(self, items: Sequence[tuple[Change, dict[str, Any]]]) -> list[Published]:
        """Take the changes (each with the target's fields) in order; returns those taken,
        a prefix of `items`. Raises Unavailable when none could be."""

    @property
    def last_failure(self) -> str | None:
        """Why the last publish stopped short, if it did."""

    def close(self) -> None: ...
