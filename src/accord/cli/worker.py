"""`accord worker`: the matching worker and its queue, from the command line."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from typing import Annotated, Any

import typer

from accord.cli.output import (
    ProjectDir,
    console,
    count_progress,
    open_workspace,
    reports_errors,
    table,
)

worker_app = typer.Typer(
    help="The matching worker: matches records queued by every intake channel.",
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
) -> None:
    """Match queued records until stopped (Ctrl-C or SIGTERM), or with --drain until none
    is left. Several workers may run at once, on one machine or several."""
    from accord.runtime.worker import MatchWorker  # noqa: PLC0415

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
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"worker {worker.name} running; Ctrl-C stops it after the current batch")
        report = worker.run(stop)
    console.print(_report_table(report.as_dict()))


def _report_table(counts: dict[str, Any]) -> Any:
    return table("Worker", ["", "value"], [[k.replace("_", " "), v] for k, v in counts.items()])


@worker_app.command("status")
@reports_errors
def status(directory: ProjectDir) -> None:
    """How many records wait to be matched, how many are being matched, and the errors of
    those that failed."""
    from accord.store import queue  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        stats = queue.stats(conn)
        failures = queue.failures(conn)
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
