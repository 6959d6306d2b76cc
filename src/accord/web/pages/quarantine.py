"""The quarantine: open entries by system and reason, one entry's raw text and fields,
and correcting, replaying and discarding it (`accord.intake.quarantine` does the work)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from accord.errors import InputRejected
from accord.govern.permissions import Actor, Permission
from accord.intake import quarantine
from accord.web.auth import ConnDep, needs, workspace
from accord.web.pages.common import PAGE_SIZE, render
from accord.web.params import RowId
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)
Manager = Annotated[Actor, needs(Permission.QUARANTINE_MANAGE)]
WorkspaceDep = Annotated[Workspace, Depends(workspace)]
Status = Literal["open", "replayed", "discarded", "all"]
RAW_SHOWN = 20_000  # characters of a raw payload shown on the page; the rest is noted
# what the entry page says after a replay (`?outcome=`): a fixed set, never user text
OUTCOMES = {
    "stored": "Replayed: the record passed the checks and was stored.",
    "failing": "Replayed, and it still fails: the reasons below are the new ones. "
    "The entry stays open.",
    "needs_correction": "Nothing to replay: the row could not be read. Give a correction first.",
    "corrected": "Correction saved. Replay it to store the record.",
    "discarded": "Discarded.",
}


@router.get("/quarantine")
def entry_list(
    request: Request,
    actor: Manager,
    conn: ConnDep,
    ws: WorkspaceDep,
    system: Annotated[str, Query(max_length=64)] = "",
    reason: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[Status, Query()] = "open",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    result = quarantine.entries(
        conn,
        actor,
        system=system or None,
        status=None if status == "all" else status,
        reason=reason.strip() or None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    filters = {"system": system, "reason": reason, "status": status}
    context = {
        "actor": actor,
        "result": result,
        "filters": filters,
        "systems": sorted(ws.project.config.systems),
        "page": page,
        "page_size": PAGE_SIZE,
        "query": lambda **changes: urlencode(filters | changes),
    }
    return render(request, "quarantine.html", context)


@router.post("/quarantine/replay")
def replay_filtered(
    request: Request,
    actor: Manager,
    ws: WorkspaceDep,
    system: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=64)] = "",
) -> HTMLResponse:
    """Every open entry the list's filter shows, replayed: one load per system."""
    reports = quarantine.replay(
        ws.engine,
        ws.project,
        actor=actor,
        system=system or None,
        reason=reason.strip() or None,
    )
    context = {"actor": actor, "reports": reports, "system": system, "reason": reason}
    return render(request, "quarantine_replayed.html", context)


@router.get("/quarantine/{entry_id}")
def entry_page(
    request: Request,
    entry_id: RowId,
    actor: Manager,
    conn: ConnDep,
    ws: WorkspaceDep,
    outcome: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    found = quarantine.entry(conn, actor, entry_id)
    context = _entry_context(found, actor, conn, ws) | {"outcome": OUTCOMES.get(outcome)}
    return render(request, "quarantine_entry.html", context)


@router.post("/quarantine/{entry_id}/correct")
def correct(
    request: Request,
    entry_id: RowId,
    actor: Manager,
    conn: ConnDep,
    ws: WorkspaceDep,
    text: Annotated[str, Form(max_length=quarantine.MAX_CORRECTION_BYTES)],
    then: Annotated[Literal["save", "replay"], Form()] = "replay",
) -> Response:
    """Store the corrected record (a JSON object, or a CSV row); then, unless only
    saving, replay it."""
    try:
        quarantine.correct(ws.engine, ws.project, entry_id, actor=actor, text=text)
    except InputRejected as exc:  # TooLarge too: the form again, with what is wrong
        found = quarantine.entry(conn, actor, entry_id)
        context = _entry_context(found, actor, conn, ws) | {
            "error": exc.message,
            "correction_text": text,
        }
        return render(request, "quarantine_entry.html", context, status_code=422)
    if then == "save":
        return _back_to(entry_id, "corrected")
    return _replay_one(entry_id, actor, ws)


@router.post("/quarantine/{entry_id}/replay")
def replay(
    request: Request,
    entry_id: RowId,
    actor: Manager,
    ws: WorkspaceDep,
) -> RedirectResponse:
    """Replay as it stands: its correction, else its fields as read (after a mapping fix)."""
    return _replay_one(entry_id, actor, ws)


@router.post("/quarantine/{entry_id}/discard")
def discard(
    request: Request,
    entry_id: RowId,
    actor: Manager,
    conn: ConnDep,
    ws: WorkspaceDep,
    reason: Annotated[str, Form(max_length=quarantine.MAX_NOTE_CHARS)] = "",
) -> Response:
    try:
        quarantine.discard(ws.engine, entry_id, reason, actor=actor)
    except InputRejected as exc:
        found = quarantine.entry(conn, actor, entry_id)
        context = _entry_context(found, actor, conn, ws) | {"discard_error": exc.message}
        return render(request, "quarantine_entry.html", context, status_code=422)
    return _back_to(entry_id, "discarded")


def _replay_one(entry_id: int, actor: Actor, ws: Workspace) -> RedirectResponse:
    (report,) = quarantine.replay(ws.engine, ws.project, actor=actor, ids=[entry_id])
    if report.replayed:
        return _back_to(entry_id, "stored")
    return _back_to(entry_id, "needs_correction" if report.needs_correction else "failing")


def _back_to(entry_id: int, outcome: str) -> RedirectResponse:
    """After a change, the entry's page (post, redirect, get: a reload repeats nothing)."""
    return RedirectResponse(f"/quarantine/{entry_id}?outcome={outcome}", status_code=303)


def _entry_context(
    found: dict[str, Any], actor: Actor, conn: Connection, ws: Workspace
) -> dict[str, Any]:
    raw: str = found["raw"]
    return {
        "actor": actor,
        "entry": found,
        "raw_shown": raw[:RAW_SHOWN],
        "raw_hidden": max(len(raw) - RAW_SHOWN, 0),
        "fields_text": _pretty(found["fields"]),
        "correction_text": _editable(found),
        "destination": quarantine.destination(conn, ws.project, actor, found),
        "error": None,
        "discard_error": None,
        "outcome": None,
    }


def _editable(found: dict[str, Any]) -> str:
    """What the correction box starts with: the record a replay would send, as JSON
    (its correction, else its fields as read), else the raw text to fix by hand."""
    fields = quarantine.replayable(found)
    return _pretty(fields) if fields is not None else str(found["raw"])


def _pretty(value: Any) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)
