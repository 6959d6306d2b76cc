"""`accord status`: the integration health of every system, in and out, with the
alerts the thresholds in accord.yaml give (docs/health.md). Exits 3 when an alert
fires, so a cron job or a monitoring agent can act on it."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli.output import (
    ProjectDir,
    console,
    new_table,
    open_workspace,
    print_json,
    reports_errors,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from accord.runtime.health import DeliveryHealth, HealthReport, IntakeHealth, Latency

ALERT_EXIT = 3  # 0: no alert fires; 1: an error (the project, the store); 2: bad usage


@reports_errors
def status_command(
    directory: ProjectDir,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Each system's health, in (records received, quarantined, waiting to be matched,
    latency from received to golden, linked records attached to no customer) and out
    (changes waiting, delivered, latency, completeness), and the alerts; exits 3 when an
    alert fires."""
    from accord.govern.permissions import cli_actor  # noqa: PLC0415
    from accord.runtime.health import health_report  # noqa: PLC0415

    workspace = open_workspace(directory)
    report = health_report(workspace.engine, workspace.project, actor=cli_actor())
    if as_json:
        print_json(report.as_dict())
    else:
        _print(report)
    if report.alerts:
        raise typer.Exit(ALERT_EXIT)


def _print(report: HealthReport) -> None:
    firing: set[tuple[str, str, str]] = {(a.system, a.direction, a.check) for a in report.alerts}
    console.print(_intake_table(report.intake, firing))
    if report.delivery:
        console.print(_delivery_table(report.delivery, firing))
    for alert in report.alerts:
        console.print(f"[bold red]alert:[/] [red]{escape(alert.message)}[/]", highlight=False)
    if not report.alerts:
        console.print(f"[green]no alert fires[/] ({len(report.checks)} thresholds checked)")


def _intake_table(rows: tuple[IntakeHealth, ...], firing: set[tuple[str, str, str]]) -> Table:
    out = new_table(
        "In: records from each system",
        [
            "system",
            "received 1h / 1d",
            "error rate 1h / 1d",
            "backlog",
            "waited",
            "to golden p50/95/99",
            "failed",
            "orphans",
            "channels",
        ],
    )
    for h in rows:
        red = _marker(firing, h.system, "in")
        out.add_row(
            escape(h.system),
            f"{h.received_hour:,} / {h.received_day:,}",
            red("error_rate", f"{_share(h.error_rate_hour)} / {_share(h.error_rate_day)}"),
            red("backlog", f"{h.backlog:,}"),
            red("latency", _age(h.oldest_waiting)),
            red("golden_latency", _percentiles(h.golden_latency)),
            f"{h.failed:,}",
            f"{h.orphans:,}",
            red("channel_failures", _channels(h)),
        )
    return out


def _delivery_table(rows: tuple[DeliveryHealth, ...], firing: set[tuple[str, str, str]]) -> Table:
    out = new_table(
        "Out: golden changes to each target (sent, dead, errors, latency: last hour)",
        ["target", "waiting", "waited", "sent / dead", "errors", "latency p50/95/99", "complete"],
    )
    for h in rows:
        red = _marker(firing, h.target, "out")
        out.add_row(
            escape(h.target),
            red("backlog", f"{h.waiting:,}"),
            red("latency", _age(h.oldest_waiting)),
            f"{h.sent_hour:,} / {h.dead_hour:,}",
            red("error_rate", _share(h.error_rate)),
            red("latency", _percentiles(h.latency)),
            red("completeness", _share(h.completeness)),
        )
    return out


def _marker(
    firing: set[tuple[str, str, str]], system: str, direction: str
) -> Callable[[str, str], str]:
    """A function that shows a figure in red when its check fires."""

    def red(check: str, text: str) -> str:
        return f"[red]{text}[/]" if (system, direction, check) in firing else text

    return red


def _channels(health: IntakeHealth) -> str:
    """Each pull channel's last outcome: `drop ok`, `poll failed 3x`, `broker -` (none
    ended yet)."""
    shown = []
    for run in health.channels:
        outcome = f"failed {run.failures}x" if run.failures else run.outcome or "-"
        shown.append(f"{run.channel} {outcome}")
    return escape(", ".join(shown)) or "-"


def _percentiles(latency: Latency | None) -> str:
    """p50 / p95 / p99 as people read them; '-' for none."""
    if latency is None:
        return "-"
    values = (latency.p50, latency.p95, latency.p99)
    return " / ".join(_age(timedelta(seconds=s), fine=True) for s in values)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _age(span: timedelta | None, *, fine: bool = False) -> str:
    """A wait as people read it: 45s, 12m 03s, 3h 12m, 2d 4h (`fine`: 0.42s under a
    minute); '-' for none."""
    if span is None:
        return "-"
    if fine and span < timedelta(minutes=1):
        return f"{span.total_seconds():.2f}s"
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"
