"""Integration health: per system and direction, the figures and alerts `accord status`
shows, and charts of throughput, errors, latency and backlog over the last hour or day
(`accord.runtime.health`). htmx reloads the figures every 30 seconds. The last hour is
the default: its reads cost a twenty-fourth of the day's (docs/web.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from accord.config.health import Limits
from accord.govern.permissions import Actor, Permission
from accord.runtime import health
from accord.web.auth import needs, workspace
from accord.web.charts import chart, shown
from accord.web.pages.common import render
from accord.workspace import Workspace

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, needs(Permission.HEALTH_READ)]
LABEL_EVERY = {"1h": 3, "24h": 6}  # which buckets' times label the time axis


@router.get("/status")
def status_page(
    request: Request,
    actor: Reader,
    ws: Annotated[Workspace, Depends(workspace)],
    window: Annotated[Literal["1h", "24h"], Query()] = "1h",
) -> HTMLResponse:
    report = health.health_report(ws.engine, ws.project, actor=actor)
    history = health.health_history(
        ws.engine, ws.project, actor=actor, window=window, now=report.at
    )
    limits = health.limits(ws.project)
    firing = {(a.system, a.direction, a.check) for a in report.alerts}
    flows = [_flow(f, history, limits, firing, window) for f in history.flows]
    context = {
        "actor": actor,
        "report": report,
        "window": window,
        "windows": list(health.WINDOWS),
        "history": history,
        "intake": [f for f in flows if f["direction"] == "in"],
        "delivery": [f for f in flows if f["direction"] == "out"],
        "now_in": {i.system: i for i in report.intake},
        "now_out": {d.target: d for d in report.delivery},
        "firing": firing,
        "shown": shown,
        "percent": _percent,
    }
    # htmx asks for the figures alone when it refreshes them
    name = "_health_body.html" if request.headers.get("hx-request") else "health.html"
    return render(request, name, context)


def _flow(
    flow: health.FlowHistory,
    history: health.HealthHistory,
    limits: dict[tuple[str, health.Direction], Limits],
    firing: set[tuple[str, health.Direction, str]],
    window: str,
) -> dict[str, Any]:
    starts = history.starts
    every = LABEL_EVERY[window]
    limit = limits.get((flow.system, flow.direction))
    backlog_limit = None if limit is None or limit.max_backlog is None else limit.max_backlog
    incoming = flow.direction == "in"
    return {
        "system": flow.system,
        "direction": flow.direction,
        "alerting": any(s == flow.system and d == flow.direction for s, d, _ in firing),
        "history": flow,
        "rows": list(
            zip(starts, flow.throughput, flow.errors, flow.latency, flow.backlog, strict=True)
        ),
        "charts": [
            (
                "Received" if incoming else "Delivered (sent or dead)",
                chart("bars", flow.throughput, starts, label_every=every),
            ),
            (
                "Quarantined" if incoming else "Retried or dead",
                chart("bars", flow.errors, starts, label_every=every),
            ),
            (
                f"Latency p{health.HISTORY_PERCENTILE} "
                + ("received to golden" if incoming else "change to delivery"),
                chart("line", flow.latency, starts, unit="seconds", label_every=every),
            ),
            (
                "Backlog" + ("" if incoming else " (planned deliveries)"),
                chart(
                    "line",
                    flow.backlog,
                    starts,
                    threshold=backlog_limit,
                    label_every=every,
                ),
            ),
        ],
    }


def _percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.1%}"
