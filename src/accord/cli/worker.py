"""`accord worker`: the matching worker and its queue, from the command line."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from accord.cli.output import (
    ProjectDir,
    console,
    count_progress,
    open_workspace,
    reports_errors,
    table,
)

if TYPE_CHECKING:
    from accord.runtime.scheduler import ChannelStatus

worker_app = typer.Typer(
    help="The worker: matches records queued by every intake channel, and runs the drop, "
    "poll and broker channels on their schedule.",
    no_args_is_help=True,
)


@worker_app.command("run")
@reports_errors
def run(
    directory: ProjectDir,
    drain: Annotated[
        bool, typer.Option("--drain", help="stop when the queue is empty instead of waiting")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="records per batch")] = 200,
    lease: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="seconds a batch may take before another worker may take it over",
        ),
    ] = 300.0,
    intake: Annotated[
        bool,
        typer.Option(
            "--intake/--no-intake",
            help="also run the drop, poll and broker channels when they are due "
            "(--no-intake: match only)",
        ),
    ] = True,
    sync: Annotated[
        bool,
        typer.Option(
            "--sync/--no-sync",
            help="also deliver golden changes to the systems with a `deliver` block (docs/sync.md)",
        ),
    ] = True,
    match: Annotated[
        bool,
        typer.Option(
            "--match/--no-match",
            help="match queued records (--no-match: a worker for intake or delivery only, "
            "as in the scale-out mode, docs/scale-out.md)",
        ),
    ] = True,
) -> None:
    """Match queued records, run the intake channels on their schedule and deliver golden
    changes to the target systems, until stopped (Ctrl-C or SIGTERM); or with --drain
    match until no record is left. Several workers may run at once, on one machine or
    several: each channel and each target is worked by one of them at a time. With
    ACCORD_BUS_URL set, golden changes travel to delivery through NATS JetStream."""
    from accord.runtime.scheduler import IntakeScheduler  # noqa: PLC0415
    from accord.runtime.worker import MatchWorker, delivery_thread, relay_thread  # noqa: PLC0415
    from accord.sync.dispatch import targets  # noqa: PLC0415

    if not (match or intake or sync):
        raise typer.BadParameter(
            "--no-match, --no-intake and --no-sync leave the worker nothing to do; "
            "keep at least one"
        )

    workspace = open_workspace(directory)
    worker = MatchWorker(
        workspace.engine,
        workspace.project,
        batch_size=batch_size,
        lease=timedelta(seconds=lease),
    )
    if drain:
        with count_progress() as progress:
            task = progress.add_task("matching queued records", total=None)
            report = worker.drain(
                lambda done, total: progress.update(task, completed=done, total=total)
            )
        console.print(_report_table(report.as_dict()))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def on_signal(number: int, _: Any) -> None:
        stop.set()
        signal.signal(number, signal.SIG_DFL)  # a second one stops at once

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    scheduler = IntakeScheduler(workspace.engine, workspace.project, name=worker.name)
    intake_thread = None
    if intake and scheduler.channels:
        intake_thread = threading.Thread(
            target=scheduler.run, args=(stop,), name="accord-intake", daemon=True
        )
        intake_thread.start()
    channels = ", ".join(f"{c.name} ({c.timing})" for c in scheduler.channels) if intake else ""
    delivering = targets(workspace.project) if sync else []
    sync_thread = (
        delivery_thread(workspace.engine, workspace.project, stop, owner=worker.name)
        if sync
        else None
    )
    if sync_thread is not None:
        sync_thread.start()
    relay = relay_thread(workspace.engine, workspace.project, stop, owner=worker.name)
    if relay is not None:
        relay.start()
    doing = [
        *(["matching"] if match else []),
        *([f"intake: {channels}"] if channels else []),
        *([f"delivering to {', '.join(delivering)}"] if delivering else []),
        *(["relaying golden changes to the bus"] if relay is not None else []),
    ]
    if doing == ["matching"]:
        doing = ["matching only"]
    console.print(
        f"worker {worker.name} running; "
        + ("; ".join(doing) or "nothing to do here (no channel, no target)")
        + ". Ctrl-C stops it after the current batch, file, page or fetch "
        "(twice: at once; what was in hand is taken again)"
    )
    if match:
        worker.run(stop)
    else:
        while not stop.wait(1.0):
            pass
    for thread in (intake_thread, sync_thread, relay):
        if thread is not None:
            thread.join()
    if match:
        console.print(_report_table(worker.report.as_dict()))


def _report_table(counts: dict[str, Any]) -> Any:
    return table("Worker", ["", "value"], [[k.replace("_", " "), v] for k, v in counts.items()])


@worker_app.command("status")
@reports_errors
def status(directory: ProjectDir) -> None:
    """Each intake channel (timing, last run and outcome, next due), how many records wait
    to be matched, how many are being matched, and the errors of those that failed."""
    from accord.runtime.scheduler import status as intake_status  # noqa: PLC0415
    from accord.store import queue  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        stats = queue.stats(conn)
        failures = queue.failures(conn)
    channels = intake_status(workspace.engine, workspace.project)
    if channels:
        _print_intake(channels)
    console.print(
        table("Work queue", ["", "records"], [[k, v] for k, v in stats.as_dict().items()])
    )
    if failures:
        console.print(
            table(
                "Failures (most recent errors)",
                ["system", "source id", "attempts", "error"],
                [[f["system"], f["source_id"], f["attempts"], f["last_error"]] for f in failures],
            )
        )
    if stats.failed:
        console.print(
            f"{stats.failed} record(s) were given up on; fix the cause shown above, then run "
            f"`accord worker retry {directory}`"
        )
    failing = [c for c in channels if c.outcome == "failed"]
    if failing:
        console.print(
            f"{len(failing)} intake channel(s) failed their last run; fix the cause shown "
            "above: each is tried again when next due"
        )


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _print_intake(channels: list[ChannelStatus]) -> None:
    """A table of the channels, then each one's last message (what it did, or why it
    failed and what to do)."""
    from accord.intake.backpressure import WHAT_TO_DO  # noqa: PLC0415

    rows = []
    for c in channels:
        if c.held_by is not None:
            last = f"running since {_when(c.last_started_at)}"
        else:
            last = _when(c.last_finished_at) or "never"
        outcome = c.outcome or ""
        if c.outcome == "failed" and c.failures > 1:
            outcome += f" ({c.failures} in a row)"
        if c.pause is not None:
            outcome = f"paused: {c.pause}"
        next_due = "while running" if c.next_due is None else _when(c.next_due)
        rows.append([c.system, c.channel, c.timing, last, outcome, next_due])
    console.print(
        table(
            "Intake channels (times in UTC)",
            ["system", "channel", "timing", "last run", "outcome", "next due"],
            rows,
        )
    )
    for c in channels:
        if c.held_by is not None:
            console.print(f"{c.system} {c.channel}: running on {escape(c.held_by)}")
        if c.pause is not None:
            console.print(
                f"[yellow]{c.system} {c.channel}: paused, fetching nothing: "
                f"{c.pause.explained()}; the messages wait in the stream, and fetching "
                f"resumes below 90% of the bound. To catch up sooner, {escape(WHAT_TO_DO)}[/]",
                highlight=False,
                soft_wrap=True,
            )
        if c.message:
            style = "red" if c.outcome == "failed" else "default"
            load = f" (load {c.load_id})" if c.load_id else ""
            console.print(f"[{style}]{c.system} {c.channel}{load}: {escape(c.message)}[/]")


@worker_app.command("retry")
@reports_errors
def retry(directory: ProjectDir) -> None:
    """Queue the records given up on after repeated failures again."""
    from accord.store import queue  # noqa: PLC0415
    from accord.store.engine import writing  # noqa: PLC0415

    workspace = open_workspace(directory)
    with writing(workspace.engine) as conn:
        count = queue.retry_failed(conn)
    console.print(f"{count} record(s) queued again")
