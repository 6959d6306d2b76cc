"""`accord broker`: pull a system's changes from its NATS JetStream stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from accord.cli.output import (
    ProjectDir,
    console,
    count_progress,
    open_workspace,
    print_error,
    reports_errors,
    table,
)
from accord.errors import Overloaded
from accord.govern.permissions import cli_actor

if TYPE_CHECKING:
    from accord.intake.backpressure import Pause
    from accord.intake.broker import BrokerReport

broker_app = typer.Typer(
    help="The broker channel: changes a system publishes to NATS JetStream.",
    no_args_is_help=True,
)


@broker_app.command("consume")
@reports_errors
def consume(
    directory: ProjectDir,
    system: Annotated[str, typer.Option("--system", "-s", help="the system whose stream")],
    once: Annotated[
        bool, typer.Option(help="one batch only; by default, until nothing is waiting")
    ] = False,
) -> None:
    """Store what waits on the system's stream, a batch per transaction, acknowledged
    after each commit; unreadable messages go to quarantine. Refused while a worker
    consumes the stream; stops when ACCORD_MAX_BACKLOG records wait to be matched, or
    when its lease on the stream is lost (a worker took it over)."""
    from accord.intake.backpressure import WHAT_TO_DO  # noqa: PLC0415
    from accord.intake.broker import Consumer, settings  # noqa: PLC0415
    from accord.runtime.one_shot import LeaseLost, holding  # noqa: PLC0415

    workspace = open_workspace(directory)
    actor = cli_actor().label
    settings(workspace.project, system)  # a system without a broker block: before the lease
    reports: list[BrokerReport] = []
    paused: Pause | None = None
    waiting = 0
    lost: LeaseLost | None = None
    try:
        with (
            holding(
                workspace.engine,
                workspace.project,
                system,
                "broker",
                command="accord broker consume",
                actor=actor,
            ) as hold,
            Consumer(
                workspace.engine,
                workspace.project,
                system,
                actor=actor,
                max_backlog=workspace.settings.max_backlog,
            ) as consumer,
            count_progress() as progress,
        ):
            task = progress.add_task(f"{system} ← broker", total=None)
            while not hold.lost.is_set():
                report = consumer.fetch()
                if report.status == "paused":
                    paused, waiting = consumer.pause, consumer.waiting()
                    break
                if report.status == "idle":
                    break
                reports.append(report)
                done = sum(r.messages for r in reports)
                progress.update(task, completed=done, total=done + report.pending)
                if once or report.pending == 0:
                    break
    except LeaseLost as exc:  # what was stored before is shown, then the loss
        lost = exc
    if reports:
        _print_reports(reports)
    if paused is not None:
        overloaded = Overloaded(
            f"{f'stopped after {len(reports)} batch(es)' if reports else 'fetched nothing'}: "
            f"{paused.explained()}. {waiting:,} message(s) wait in the stream, "
            "unacknowledged: nothing is lost",
            retry_after=30,
            hint=f"{WHAT_TO_DO}; then run this again",
        )
        if lost is None:
            raise overloaded
        print_error(overloaded)
    if lost is not None:
        raise lost
    if not reports:
        console.print("nothing waiting on the stream")


def _print_reports(reports: list[BrokerReport]) -> None:
    columns = ["source", "messages", "new", "changed", "unchanged", "quarantined", "acked again"]
    rows = [
        [
            r.source_name,
            r.messages,
            r.new,
            r.changed,
            r.unchanged + r.repeated_in_file,
            r.quarantined,
            r.already_stored,
        ]
        for r in reports
    ]
    console.print(table("Consumed", columns, rows))
    if any(r.quarantined for r in reports):
        console.print(
            "[yellow]some records or messages were quarantined[/]: each entry names its "
            "stream sequence and reason"
        )
