"""`accord sync`: golden changes delivered to every target system (docs/sync.md)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.markup import escape

from accord.cli.output import (
    ProjectDir,
    console,
    count_progress,
    open_workspace,
    print_json,
    reports_errors,
    table,
)
from accord.errors import InputRejected

sync_app = typer.Typer(
    help="Sync out: deliver golden changes to the systems with a `deliver` block, with "
    "retries, circuit breakers and dead letters.",
    no_args_is_help=True,
)

TargetOption = Annotated[
    list[str] | None, typer.Option("--target", "-t", help="only this target (repeatable)")
]


def _targets(project: Any, chosen: list[str] | None) -> list[str]:
    from accord.sync.dispatch import targets  # noqa: PLC0415

    known = targets(project)
    if not known:
        raise InputRejected(
            "no system has a `deliver` block, so there is nothing to sync out",
            hint="add `deliver:` under a system in accord.yaml (docs/sync.md)",
        )
    for name in chosen or []:
        if name not in known:
            raise InputRejected(
                f"{name!r} is not a delivery target; the targets are: {', '.join(known)}",
                hint="a target is a system with a `deliver` block in accord.yaml",
            )
    return list(chosen) if chosen else known


@sync_app.command("run")
@reports_errors
def run(
    directory: ProjectDir,
    target: TargetOption = None,
    until_idle: Annotated[
        bool,
        typer.Option(
            "--until-idle",
            help="stop once nothing is waiting (waits out back-offs); otherwise run until stopped",
        ),
    ] = False,
    max_seconds: Annotated[
        float | None, typer.Option(min=1.0, help="with --until-idle: stop after this long anyway")
    ] = None,
) -> None:
    """Deliver golden changes to each target, one thread per target, until stopped
    (Ctrl-C or SIGTERM) or, with --until-idle, until nothing is waiting."""
    from datetime import timedelta  # noqa: PLC0415

    from accord.runtime.worker import relay_thread  # noqa: PLC0415
    from accord.store.types import utcnow  # noqa: PLC0415
    from accord.sync.dispatch import RoundReport  # noqa: PLC0415
    from accord.sync.dispatch import run as deliver  # noqa: PLC0415

    workspace = open_workspace(directory)
    names = _targets(workspace.project, target)
    stop = threading.Event()

    def on_signal(number: int, _: Any) -> None:
        stop.set()
        signal.signal(number, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    deadline = utcnow() + timedelta(seconds=max_seconds) if max_seconds else None
    relay = None if until_idle else relay_thread(workspace.engine, workspace.project, stop)
    if relay is not None:  # the scale-out mode: this process may relay the outbox too
        relay.start()
    with count_progress() as progress:
        tasks = {name: progress.add_task(f"{name}: delivering", total=None) for name in names}
        done = dict.fromkeys(names, 0)

        def on_round(name: str, report: RoundReport) -> None:
            done[name] += report.sent + report.dead
            note = " (circuit open, waiting)" if report.breaker_open else ""
            if report.retrying and not note:
                note = f" ({report.retrying} to retry)"
            progress.update(
                tasks[name], completed=done[name], description=f"{name}: delivered{note}"
            )

        totals = deliver(
            workspace.engine,
            workspace.project,
            names,
            stop=stop,
            until_idle=until_idle,
            on_round=on_round,
            deadline=deadline,
        )
    if relay is not None:
        relay.join()
    rows = [
        [name, r.planned, r.sent, r.dead, r.retrying, r.conflicts, r.writes]
        for name, r in totals.items()
    ]
    console.print(
        table(
            "Sync out",
            ["target", "planned", "sent", "dead", "retries", "conflicts", "writes"],
            rows,
        )
    )
    if any(r.dead for r in totals.values()):
        console.print(
            f"some changes were given up: see `accord sync dead {directory}`, fix the cause, "
            f"then `accord sync replay {directory} --target NAME`"
        )


@sync_app.command("status")
@reports_errors
def status(
    directory: ProjectDir,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Each target's backlog, deliveries, dead letters, waiting conflicts and alarm."""
    from accord.sync.dispatch import status as target_status  # noqa: PLC0415

    workspace = open_workspace(directory)
    _targets(workspace.project, None)
    found = target_status(workspace.engine, workspace.project)
    if as_json:
        print_json([s.as_dict() for s in found])
        return
    console.print(
        table(
            "Sync out (times in UTC)",
            ["target", "waiting", "sent", "dead", "oldest waiting", "conflicts", "alarm"],
            [
                [
                    s.target,
                    s.waiting,
                    s.sent,
                    s.dead,
                    s.oldest_waiting.strftime("%Y-%m-%d %H:%M:%S") if s.oldest_waiting else "",
                    s.conflicts_waiting,
                    s.alarm or "",
                ]
                for s in found
            ],
        )
    )
    for s in found:
        if s.last_error:
            console.print(f"[red]{s.target}: last error: {escape(s.last_error)}[/]")


@sync_app.command("dead")
@reports_errors
def dead(
    directory: ProjectDir,
    target: TargetOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Dead letters: changes given up, with the target's last answer."""
    from accord.store import sync as sync_store  # noqa: PLC0415

    workspace = open_workspace(directory)
    names = _targets(workspace.project, target)
    with workspace.engine.connect() as conn:
        rows = sync_store.dead_letters(conn, names, limit=limit)
    if as_json:
        print_json(rows)
        return
    console.print(
        table(
            "Dead letters",
            ["target", "change", "customer", "attempts", "status", "error"],
            [
                [
                    r["target"],
                    r["change_id"],
                    r["golden_id"],
                    r["attempts"],
                    r["last_status"],
                    r["last_error"],
                ]
                for r in rows
            ],
        )
    )
    if rows:
        console.print(
            f"after fixing the cause: `accord sync replay {directory} --target NAME` "
            "(all of a target's) or with --change ID"
        )


@sync_app.command("replay")
@reports_errors
def replay(
    directory: ProjectDir,
    target: Annotated[str, typer.Option("--target", "-t", help="the target")],
    change: Annotated[
        list[int] | None, typer.Option("--change", help="only this change id (repeatable)")
    ] = None,
) -> None:
    """Make dead letters pending again; `accord sync run` (or a worker) delivers them."""
    from accord.store import sync as sync_store  # noqa: PLC0415
    from accord.store.engine import writing  # noqa: PLC0415

    workspace = open_workspace(directory)
    _targets(workspace.project, [target])
    with writing(workspace.engine) as conn:
        count = sync_store.replay(conn, target, change)
    console.print(f"{count} dead letter(s) of {target} pending again")


@sync_app.command("conflicts")
@reports_errors
def conflicts(
    directory: ProjectDir,
    target: TargetOption = None,
    waiting: Annotated[
        bool, typer.Option("--waiting", help="only those left to a steward")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Fields both Accord and a target changed, and which value each policy kept."""
    from accord.store import sync as sync_store  # noqa: PLC0415

    workspace = open_workspace(directory)
    names = _targets(workspace.project, target)
    with workspace.engine.connect() as conn:
        rows = sync_store.conflicts(conn, names, waiting=waiting, limit=limit)
    if as_json:
        print_json(rows)
        return
    console.print(
        table(
            "Conflicts",
            ["target", "record", "customer", "field", "ours", "theirs", "policy", "kept"],
            [
                [
                    r["target"],
                    r["record_id"],
                    r["golden_id"],
                    r["field"],
                    r["ours"],
                    r["theirs"],
                    r["policy"],
                    r["kept"],
                ]
                for r in rows
            ],
        )
    )


@reports_errors
def reconcile_command(
    directory: ProjectDir,
    system: Annotated[str, typer.Option("--system", "-s", help="the target system")],
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="deliver the golden values again where they drifted or are missing"
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="drift rows shown")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Compare what a target system holds with the golden records, field by field; with
    --repair, queue the golden values for delivery where they differ (through the
    normal path: `accord sync run` or a worker delivers them)."""
    from accord.sync.reconcile import reconcile  # noqa: PLC0415

    workspace = open_workspace(directory)
    _targets(workspace.project, [system])
    if as_json:  # nothing but the JSON on stdout
        found = reconcile(workspace.engine, workspace.project, system, repair=repair)
        print_json(found.as_dict())
        return
    with count_progress() as progress:
        task = progress.add_task(f"reading {system}'s records", total=None)
        found = reconcile(
            workspace.engine,
            workspace.project,
            system,
            repair=repair,
            progress=lambda n: progress.advance(task, n),
        )
    console.print(
        table(
            f"Reconciliation of {system}",
            ["", "value"],
            [
                ["records read", found.records],
                ["in step", found.in_step],
                ["drifted", found.drifted],
                ["customers missing there", found.missing],
                ["members no longer there", found.absent],
                ["records of no known customer", len(found.unknown)],
                ["repairs queued", found.repaired],
            ],
        )
    )
    if found.drift_by_field:
        console.print(
            table(
                "Drift by field",
                ["field", "records"],
                [[f, n] for f, n in sorted(found.drift_by_field.items())],
            )
        )
        console.print(
            table(
                f"Drift (first {min(limit, len(found.drift))})",
                ["record", "customer", "field", f"in {system}", "golden"],
                [
                    [d.record_id, d.golden_id, d.field, d.theirs, d.ours]
                    for d in found.drift[:limit]
                ],
            )
        )
    if (found.drifted or found.missing) and not repair:
        console.print(
            f"to put the golden values back: `accord reconcile {directory} --system {system} "
            "--repair`, then `accord sync run` (or let a worker deliver them)"
        )


@sync_app.command("decide")
@reports_errors
def decide(
    directory: ProjectDir,
    conflict: Annotated[int, typer.Argument(help="the conflict's id (`accord sync conflicts`)")],
    keep: Annotated[str, typer.Option("--keep", help="ours (the golden value) or theirs")],
    note: Annotated[str, typer.Option(help="why, for the audit log")] = "",
) -> None:
    """Settle a conflict left to a steward: keep the target's value, or deliver ours."""
    from accord.govern.permissions import cli_actor  # noqa: PLC0415
    from accord.sync.conflicts import decide as settle  # noqa: PLC0415

    workspace = open_workspace(directory)
    decided = settle(workspace.engine, cli_actor(), conflict, keep, note)
    then = " (delivered by the next `accord sync run` or a worker)" if keep == "ours" else ""
    console.print(
        f"conflict {conflict}: {decided['target']} {decided['record_id']} "
        f"{decided['field']}: kept {keep}{then}"
    )


@sync_app.command("prune")
@reports_errors
def prune(
    directory: ProjectDir,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="keep what is younger than this: 30d, 12h, ... (sent deliveries and "
            "outbox changes every target has planned)",
        ),
    ] = "30d",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Remove the sent deliveries and the outbox changes no target needs any more, older
    than --older-than; a target configured later starts from a snapshot (docs/sync.md)."""
    from accord.config.intake import duration  # noqa: PLC0415
    from accord.sync.retention import prune as prune_sync  # noqa: PLC0415

    try:
        keep = duration(older_than)
    except ValueError as exc:
        raise InputRejected(f"--older-than: {exc}", hint="for example --older-than 30d") from exc
    workspace = open_workspace(directory)
    if as_json:
        report = prune_sync(workspace.engine, workspace.project, keep)
    else:
        with count_progress() as progress:
            task = progress.add_task("pruning the outbox", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = prune_sync(workspace.engine, workspace.project, keep, progress=advance)
    if as_json:
        print_json(
            {
                "before": report.before.isoformat(),
                "deliveries_removed": report.deliveries,
                "changes_removed": report.changes,
                "kept_from_change": report.kept_from,
                "held_back_by": report.held_back_by,
                "never_ran": report.never_ran,
            }
        )
        return
    console.print(
        f"Removed {report.deliveries:,} sent deliveries and {report.changes:,} outbox "
        f"changes from before {report.before:%Y-%m-%d %H:%M} UTC."
    )
    if report.held_back_by is not None:
        console.print(
            f"The outbox is kept from change {report.kept_from:,} on: "
            f"{escape(report.held_back_by)} has not planned further."
        )
    if report.never_ran:
        console.print(
            f"{', '.join(report.never_ran)} never delivered: each will start from a "
            "snapshot of the customers as they are then."
        )
