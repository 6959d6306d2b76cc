"""`accord poll`: one run of the SQL polling channel for one system or all that have a
poll block. The lead's worker calls the same `poll_once` on each system's schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from accord.cli.output import (
    ProjectDir,
    console,
    count_progress,
    loads_table,
    open_workspace,
    print_error,
    reports_errors,
)
from accord.errors import AccordError, Conflict
from accord.govern.permissions import cli_actor

if TYPE_CHECKING:
    from collections.abc import Callable

    from accord.intake.load import LoadReport
    from accord.workspace import Workspace


@reports_errors
def poll(
    directory: ProjectDir,
    system: Annotated[
        str | None,
        typer.Option("--system", "-s", help="poll this system only (default: every one)"),
    ] = None,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="forget where the last run stopped and read every row again "
            "(unchanged rows store nothing)",
        ),
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="rows per page (default: the poll block's)"),
    ] = None,
) -> None:
    """Read the rows changed in each system's database since the last run, and load them.
    A system a worker is polling is left to it (and said so: exit code 1), as is the
    rest of one whose lease is lost."""
    from accord.intake import poll as channel  # noqa: PLC0415
    from accord.runtime.one_shot import LeaseLost, holding  # noqa: PLC0415

    workspace = open_workspace(directory)
    project = workspace.project
    if system is not None:
        channel.poll_config(project, system)
        systems = [system]
    else:
        systems = channel.polled_systems(project)
        if not systems:
            raise AccordError(
                "no system in accord.yaml has a poll block",
                hint="add `intake: {poll: {...}}` to a system (docs/intake-poll.md)",
            )
    actor = cli_actor().label
    reports: list[LoadReport] = []
    busy: list[Conflict] = []
    lost: list[LeaseLost] = []
    for name in systems:
        try:
            with holding(
                workspace.engine, project, name, "poll", command="accord poll", actor=actor
            ) as hold:
                if reset:
                    channel.reset(workspace.engine, name, actor=actor)
                    console.print(f"{name}: the poll cursor was reset; this run reads every row")
                reports.append(_poll_one(workspace, name, batch_size, hold.lost.is_set))
        except LeaseLost as exc:  # its report is shown, then the loss
            lost.append(exc)
        except Conflict as exc:  # a worker polls it: the other systems go on
            if system is not None:
                raise
            busy.append(exc)
    if reports:
        console.print(loads_table("Polled", "system", reports, lambda r: r.system))
    if any(r.quarantined for r in reports):
        console.print(
            "[yellow]some rows were quarantined[/]: each entry names its row "
            "(poll:TABLE@wm=…,key=…) and reason"
        )
    for report in reports:
        if report.unplaced:
            console.print(
                f"[yellow]{report.system}: {channel.unplaced_text(report.unplaced)}[/]: "
                f"{channel.UNPLACED_HINT}"
            )
    for refusal in [*busy, *lost]:
        print_error(refusal)
    if busy or lost:
        raise typer.Exit(1)


def _poll_one(
    workspace: Workspace, system: str, batch_size: int | None, stopping: Callable[[], bool]
) -> LoadReport:
    from accord.intake.poll import poll_once  # noqa: PLC0415

    with count_progress() as progress:
        task = progress.add_task(f"{system} ← database", total=None)
        return poll_once(
            workspace.engine,
            workspace.project,
            system,
            actor=cli_actor().label,
            batch_size=batch_size,
            progress=lambda read: progress.update(task, completed=read),
            should_stop=stopping,
        )
