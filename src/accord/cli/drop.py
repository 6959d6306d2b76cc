"""`accord drop`: the watched folders (file drops) of a project, scanned by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from accord.cli.output import (
    ProjectDir,
    bytes_progress,
    console,
    errors,
    open_workspace,
    print_error,
    reports_errors,
    table,
)
from accord.errors import Conflict, NotFound
from accord.govern.permissions import cli_actor

if TYPE_CHECKING:
    from rich.progress import TaskID

    from accord.intake.drop import DropResult

drop_app = typer.Typer(
    help="Watched folders: load the files other systems drop there.", no_args_is_help=True
)


@drop_app.command("scan")
@reports_errors
def scan(
    directory: ProjectDir,
    system: Annotated[
        str | None,
        typer.Option("--system", "-s", help="scan this system's folder only (default: all)"),
    ] = None,
) -> None:
    """Load every file waiting in the drop folders, one load per file, and move each to
    done/ or failed/ with a .report.json beside it. A folder a worker is scanning is
    left to it (and said so: exit code 1), as is the rest of one whose lease is lost."""
    from accord.intake.drop import drop_settings, drop_systems, scan_once  # noqa: PLC0415
    from accord.runtime.one_shot import LeaseLost, holding  # noqa: PLC0415

    workspace = open_workspace(directory)
    project = workspace.project
    if system is not None:
        drop_settings(project, system)  # a system without a drop folder: before the lease
    systems = [system] if system is not None else drop_systems(project)
    if not systems:
        raise NotFound(
            "no system has a drop folder",
            hint="add `intake: {drop: {folder: drops/SYSTEM}}` to a system in accord.yaml "
            "(see docs/intake-drop.md)",
        )
    actor = cli_actor().label
    results: list[DropResult] = []
    busy: list[Conflict] = []
    lost: list[LeaseLost] = []
    scanned: list[str] = []
    with bytes_progress() as progress:
        tasks: dict[tuple[str, str], TaskID] = {}
        for name in systems:

            def on_progress(file: str, done: int, total: int, name: str = name) -> None:
                key = (name, file)
                if key not in tasks:
                    tasks[key] = progress.add_task(f"{name} ← {escape(file)}", total=total)
                progress.update(tasks[key], completed=done, total=total)

            found: list[DropResult] = []
            try:
                with holding(
                    workspace.engine,
                    project,
                    name,
                    "drop",
                    command="accord drop scan",
                    actor=actor,
                ) as hold:
                    found = scan_once(
                        workspace.engine,
                        project,
                        name,
                        actor=actor,
                        progress=on_progress,
                        should_stop=hold.lost.is_set,
                    )
            except LeaseLost as exc:  # what was scanned before is shown, then the loss
                lost.append(exc)
            except Conflict as exc:  # a worker scans it: the other folders go on
                if system is not None:
                    raise
                busy.append(exc)
                continue
            scanned.append(name)
            for result in found:  # a file refused before it was read has no bar yet
                key = (name, result.name)
                if key in tasks:
                    progress.update(tasks[key], completed=result.size)
            results.extend(found)
    if results:
        console.print(_summary(results))
        _explain(results)
    elif scanned:
        console.print(f"nothing waiting in the drop folders of {', '.join(scanned)}")
    for refusal in [*busy, *lost]:
        print_error(refusal)
    if busy or lost or any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _summary(results: list[DropResult]) -> Any:
    return table(
        "Dropped files",
        ["file", "system", "outcome", "read", "new", "changed", "unchanged", "quarantined"],
        [
            [
                r.name,
                r.system,
                r.status + (" (resumed)" if r.resumed else ""),
                *(
                    [None] * 4
                    if r.load is None
                    else [
                        r.load.read,
                        r.load.new,
                        r.load.changed,
                        r.load.unchanged + r.load.repeated_in_file,
                    ]
                ),
                None if r.load is None else r.load.quarantined,
            ]
            for r in results
        ],
    )


def _explain(results: list[DropResult]) -> None:
    """Each failure with what to do next; each done file with something to say."""
    for r in results:
        if r.status == "failed":
            errors.print(
                f"[bold red]failed:[/] {escape(r.system)}/{escape(r.name)}: "
                f"{escape(r.error or '')}",
                highlight=False,
                soft_wrap=True,
            )
            errors.print(
                f"  next: {escape(r.next_step or '')}\n  report: {escape(str(r.report_path))}",
                style="dim",
                highlight=False,
                soft_wrap=True,
            )
        elif r.next_step:
            console.print(
                f"[yellow]note:[/] {escape(r.system)}/{escape(r.name)}: {escape(r.next_step)}",
                highlight=False,
                soft_wrap=True,
            )


@drop_app.command("quarantined")
@reports_errors
def quarantined(
    directory: ProjectDir,
    load_id: Annotated[int, typer.Argument(help="the load_id in the file's .report.json")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List the records a load put in quarantine: where each was, and why."""
    from accord.intake import drop  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        found, entries = drop.quarantined(conn, cli_actor(), load_id, limit=limit)
    counts = found["counts"] or {}
    console.print(
        f"load {load_id}: {found['system']} ← {escape(found['source_name'])} "
        f"({found['channel']}, {found['status']}): {counts.get('quarantined', 0):,} "
        f"quarantined, {counts.get('already_quarantined', 0):,} of them already there "
        "from an earlier load"
    )
    console.print(
        table(
            "Quarantined",
            ["where", "source id", "reasons", "raw (start)"],
            [
                [
                    e["location"],
                    e["source_id"],
                    "; ".join(f"{r['code']}: {r['message']}" for r in e["reasons"]),
                    e["raw"][:80],
                ]
                for e in entries
            ],
        )
    )
