"""`/api/v1/quarantine` and `/api/v1/loads`: the quarantine and load withdrawal over
JSON, behind the same authentication as every route (`ActorDep`); the services check
the permissions (quarantine:manage, records:read, loads:withdraw)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from accord.errors import InputRejected
from accord.govern.permissions import Actor, Permission
from accord.intake import loads, quarantine
from accord.web.auth import ConnDep, needs, workspace
from accord.web.errors import ERROR_RESPONSES
from accord.web.params import RequestBody, RowId, RowIdValue, SmallRowId
from accord.workspace import Workspace

router = APIRouter(prefix="/api/v1", tags=["quarantine"], responses=ERROR_RESPONSES)
WorkspaceDep = Annotated[Workspace, Depends(workspace)]


class EntrySummary(BaseModel):
    id: int
    load_id: int
    system: str
    source_id: str | None
    location: str = Field(description="where the record was: file and line, or batch position")
    reasons: list[dict[str, Any]] = Field(description="code, message and field of each")
    status: str = Field(description="open, replayed or discarded")
    created_at: datetime
    corrected_at: datetime | None
    replay_load_id: int | None = Field(description="the load that stored it, when replayed")


class EntryPage(BaseModel):
    items: list[EntrySummary]
    total: int
    limit: int
    offset: int


class Entry(EntrySummary):
    raw: str = Field(description="the record's text as received (bounded)")
    fields: dict[str, Any] | None = Field(description="its fields as read, if it could be read")
    correction: dict[str, Any] | None
    corrected_by: str | None
    note: str | None = Field(description="why it was discarded")
    closed_by: str | None
    closed_at: datetime | None


class CorrectionIn(RequestBody):
    """Exactly one of: the whole record, fields to change, the corrected raw text."""

    fields: dict[str, Any] | None = None
    set: dict[str, Any] | None = Field(None, description="fields to change on those as read")
    text: str | None = Field(None, description="a JSON object, or a CSV row")


class ReplayIn(RequestBody):
    ids: list[RowIdValue] | None = Field(None, min_length=1, max_length=10_000)
    all: bool = Field(False, description="every open entry (of `system`, with `reason`)")
    system: str | None = Field(None, max_length=64)
    reason: str | None = Field(None, max_length=64)


class ReplayOut(BaseModel):
    system: str
    load_id: int
    entries: int
    replayed: int
    still_failing: int
    needs_correction: int
    load: dict[str, Any] | None
    failing: list[dict[str, Any]]


class DiscardIn(RequestBody):
    reason: str = Field(min_length=1, max_length=quarantine.MAX_NOTE_CHARS)


class Load(BaseModel):
    id: int
    system: str
    channel: str
    source_name: str
    mapping_version: str
    status: str = Field(description="running, done, failed or withdrawn")
    counts: dict[str, Any]
    actor: str
    started_at: datetime
    finished_at: datetime | None


class LoadPage(BaseModel):
    items: list[Load]
    total: int
    limit: int
    offset: int


class LoadDetail(Load):
    quarantine: dict[str, int] = Field(description="its quarantine entries by status")


class WithdrawOut(BaseModel):
    load_id: int
    system: str
    versions: int
    reverted: int
    removed: int
    superseded: int
    not_current: int
    discarded: int
    examples: dict[str, list[str]]


@router.get("/quarantine", response_model=EntryPage)
def list_entries(
    actor: Annotated[Actor, needs(Permission.QUARANTINE_MANAGE)],
    conn: ConnDep,
    system: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[Literal["open", "replayed", "discarded", "all"], Query()] = "open",
    reason: Annotated[str | None, Query(max_length=64, description="a reason code")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Quarantine entries, newest first."""
    page = quarantine.entries(
        conn,
        actor,
        system=system,
        status=None if status == "all" else status,
        reason=reason,
        limit=limit,
        offset=offset,
    )
    return asdict(page)


@router.get("/quarantine/{entry_id}", response_model=Entry)
def get_entry(
    entry_id: RowId, actor: Annotated[Actor, needs(Permission.QUARANTINE_MANAGE)], conn: ConnDep
) -> dict[str, Any]:
    """One entry: raw text, location, load, reasons, fields, any correction."""
    return quarantine.entry(conn, actor, entry_id)


@router.post("/quarantine/{entry_id}/correct", response_model=Entry)
def correct_entry(
    entry_id: RowId,
    body: CorrectionIn,
    actor: Annotated[Actor, needs(Permission.QUARANTINE_MANAGE)],
    ws: WorkspaceDep,
) -> dict[str, Any]:
    """Store a correction next to the original; replay the entry to store it."""
    return quarantine.correct(
        ws.engine,
        ws.project,
        entry_id,
        actor=actor,
        fields=body.fields,
        changes=body.set,
        text=body.text,
    )


@router.post("/quarantine/replay", response_model=list[ReplayOut])
def replay_entries(
    body: ReplayIn, actor: Annotated[Actor, needs(Permission.QUARANTINE_MANAGE)], ws: WorkspaceDep
) -> list[dict[str, Any]]:
    """Replay entries (`ids`, or `all` open ones) as a load of channel replay, per system."""
    if (body.ids is not None) == body.all:
        raise InputRejected('give "ids" or "all": true, not both')
    reports = quarantine.replay(
        ws.engine,
        ws.project,
        actor=actor,
        ids=body.ids,
        system=body.system,
        reason=body.reason,
    )
    return [r.as_dict() for r in reports]


@router.post("/quarantine/{entry_id}/discard", response_model=Entry)
def discard_entry(
    entry_id: RowId,
    body: DiscardIn,
    actor: Annotated[Actor, needs(Permission.QUARANTINE_MANAGE)],
    ws: WorkspaceDep,
) -> dict[str, Any]:
    """Close an entry without storing it, saying why."""
    return quarantine.discard(ws.engine, entry_id, body.reason, actor=actor)


@router.get("/loads", response_model=LoadPage, tags=["loads"])
def list_loads(
    actor: Annotated[Actor, needs(Permission.RECORDS_READ)],
    conn: ConnDep,
    system: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Loads, newest first."""
    return asdict(
        loads.loads(conn, actor, system=system, status=status, limit=limit, offset=offset)
    )


@router.get("/loads/{load_id}", response_model=LoadDetail, tags=["loads"])
def get_load(
    load_id: SmallRowId, actor: Annotated[Actor, needs(Permission.RECORDS_READ)], conn: ConnDep
) -> dict[str, Any]:
    """One load, its counts (and withdrawal), its quarantine entries by status."""
    return loads.load(conn, actor, load_id)


@router.post("/loads/{load_id}/withdraw", response_model=WithdrawOut, tags=["loads"])
def withdraw_load(
    load_id: SmallRowId,
    actor: Annotated[Actor, needs(Permission.LOADS_WITHDRAW)],
    ws: WorkspaceDep,
    force: Annotated[bool, Query(description="a load left running by a dead process")] = False,
) -> dict[str, Any]:
    """Withdraw a load as a unit: its current versions stop being current."""
    return loads.withdraw(ws.engine, load_id, actor=actor, force=force).as_dict()
