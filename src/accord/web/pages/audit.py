"""The audit log: entries newest first, filtered by actor, action, subject and time, a
page at a time by sequence number; and a check of the whole hash chain."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from accord.errors import InputRejected
from accord.govern import audit
from accord.govern.permissions import Actor, Permission
from accord.web.auth import ConnDep, needs
from accord.web.pages.common import PAGE_SIZE, render
from accord.web.params import RowIdQuery

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, needs(Permission.AUDIT_READ)]
Text = Annotated[str, Query(max_length=256)]
_FILTERS = ("who", "action", "subject_type", "subject_id", "since", "until")


@router.get("/audit")
def audit_log(
    request: Request,
    actor: Reader,
    conn: ConnDep,
    who: Text = "",
    action: Text = "",
    subject_type: Text = "",
    subject_id: Text = "",
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    before: RowIdQuery | None = None,
) -> HTMLResponse:
    filters = {
        "who": who.strip(),
        "action": action.strip(),
        "subject_type": subject_type.strip(),
        "subject_id": subject_id.strip(),
        "since": since,
        "until": until,
    }
    return _page(request, actor, conn, filters, before)


@router.post("/audit/verify")
def verify(
    request: Request,
    actor: Reader,
    conn: ConnDep,
) -> HTMLResponse:
    """Walk the whole chain and say whether it holds, or where it breaks."""
    started = time.perf_counter()
    result = audit.check_chain(conn, actor)
    checked = {"result": result, "seconds": time.perf_counter() - started}
    return _page(request, actor, conn, dict.fromkeys(_FILTERS, ""), None, checked)


def _page(
    request: Request,
    actor: Actor,
    conn: Connection,
    filters: dict[str, str],
    before: int | None,
    checked: dict[str, Any] | None = None,
) -> HTMLResponse:
    where = audit.LogFilter(
        actor=filters["who"] or None,
        action=filters["action"] or None,
        subject_type=filters["subject_type"] or None,
        subject_id=filters["subject_id"] or None,
        since=_moment(filters["since"], "From"),
        until=_moment(filters["until"], "Until"),
    )
    found = audit.entries(conn, actor, where, before=before, limit=PAGE_SIZE)
    shown = {k: v for k, v in filters.items() if v}
    context = {
        "actor": actor,
        "log": found,
        "filters": filters,
        "filtered": bool(shown),
        "before": before,
        "older_query": urlencode(shown | {"before": found.older}) if found.older else None,
        "newest_query": urlencode(shown),
        "actions": [str(a) for a in audit.AuditAction],
        "written": audit.count(conn),
        "checked": checked,
        "pretty": _pretty,
    }
    return render(request, "audit.html", context)


def _moment(value: str, label: str) -> datetime | None:
    """A time from the form (`2025-03-01T14:30`, as a datetime-local input sends it),
    read as UTC."""
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputRejected(
            f"{label}: {value!r} is not a date and time", hint="write it as 2025-03-01T14:30"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pretty(details: Any) -> str:
    return json.dumps(details, indent=2, ensure_ascii=False, sort_keys=True)
