"""`accord quarantine ...` and `accord loads ...`: inspect, correct, replay and discard
quarantined records; list loads and withdraw one. Each command parses, calls
`intake/quarantine.py` or `intake/loads.py`, and renders."""

from __future__ import annotations

import json
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
from accord.govern.permissions import cli_actor

quarantine_app = typer.Typer(
    help="Records intake could not store: inspect, correct, replay, discard.",
    no_args_is_help=True,
)
loads_app = typer.Typer(
    help="Loads (files, batches, polls, replays) as units.", no_args_is_help=True
)

EntryId = Annotated[int, typer.Argument(help="the id from `accord quarantine list`")]
LoadId = Annotated[int, typer.Argument(help="the id from `accord loads list`")]


def _codes(reasons: list[dict[str, Any]]) -> str:
    return ", ".join(r["code"] for r in reasons)


@quarantine_app.command("list")
@reports_errors
def quarantine_list(
    directory: ProjectDir,
    system: Annotated[str | None, typer.Option("--system", "-s")] = None,
    status: Annotated[str, typer.Option(help="open, replayed, discarded or all")] = "open",
    reason: Annotated[str | None, typer.Option(help="a reason code, e.g. email.invalid")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List entries, newest first."""
    from accord.intake import quarantine  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        page = quarantine.entries(
            conn,
            cli_actor(),
            system=system,
            status=None if status == "all" else status,
            reason=reason,
            limit=limit,
            offset=offset,
        )
    rows = [
        [e["id"], e["system"], e["source_id"], e["location"], _codes(e["reasons"]), e["status"]]
        for e in page.items
    ]
    console.print(
        table(
            f"Quarantine ({status}): {page.total:,}",
            ["id", "system", "source id", "where", "why", "status"],
            rows,
        )
    )
    if page.total > offset + len(page.items):
        console.print(f"more: --offset {offset + len(page.items)}")
    if page.items and status == "open":
        console.print(
            "next: [bold]accord quarantine show DIR ID[/], then correct, replay or discard it"
        )


@quarantine_app.command("show")
@reports_errors
def quarantine_show(
    directory: ProjectDir,
    entry_id: EntryId,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show one entry: raw text, where it came from, its load, reasons, any correction."""
    from accord.intake import quarantine  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        item = quarantine.entry(conn, cli_actor(), entry_id)
    if as_json:
        print_json(item)
        return
    console.print(
        f"[bold]entry {item['id']}[/] ({item['status']}): {escape(item['system'])} "
        f"{escape(str(item['source_id']))}, {escape(item['location'])}, load {item['load_id']}"
    )
    for reason in item["reasons"]:
        where = f" [{reason['field']}]" if reason.get("field") else ""
        console.print(f"  {reason['code']}{escape(where)}: {escape(reason['message'])}")
    console.print("raw:", escape(item["raw"][:2000]), highlight=False)
    if item["correction"] is not None:
        console.print(
            f"corrected by {escape(item['corrected_by'])} at {item['corrected_at']}:",
            escape(json.dumps(item["correction"], ensure_ascii=False)[:2000]),
            highlight=False,
        )
    if item["status"] != "open":
        console.print(
            f"{item['status']} by {escape(str(item['closed_by']))} at {item['closed_at']}"
            + (f" (load {item['replay_load_id']})" if item["replay_load_id"] else "")
            + (f": {escape(item['note'])}" if item["note"] else "")
        )


def _assignment(value: str) -> tuple[str, str]:
    name, sep, content = value.partition("=")
    if not sep or not name:
        raise typer.BadParameter(f"{value!r}: write FIELD=VALUE, as in LastName=Schmidt")
    return name, content


@quarantine_app.command("correct")
@reports_errors
def quarantine_correct(
    directory: ProjectDir,
    entry_id: EntryId,
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", help="FIELD=VALUE, on the fields as read (repeatable)"),
    ] = None,
    fields: Annotated[
        str | None, typer.Option("--fields", help="the whole record, a JSON object")
    ] = None,
    text: Annotated[
        str | None,
        typer.Option("--text", help="the corrected raw text: a JSON object or a CSV row"),
    ] = None,
) -> None:
    """Store a correction for an entry (the original stays as it was); replay it next."""
    from accord.intake import quarantine  # noqa: PLC0415

    whole: Any = None
    if fields is not None:
        try:
            whole = json.loads(fields)
        except ValueError as exc:
            raise InputRejected(f"--fields is not valid JSON: {exc}") from None
    changes = dict(_assignment(a) for a in assignments) if assignments else None
    workspace = open_workspace(directory)
    item = quarantine.correct(
        workspace.engine,
        workspace.project,
        entry_id,
        actor=cli_actor(),
        fields=whole,
        changes=changes,
        text=text,
    )
    console.print(f"[green]corrected[/] entry {entry_id} ({len(item['correction'])} fields)")
    console.print(f"next: [bold]accord quarantine replay {directory} {entry_id}[/]")


@quarantine_app.command("replay")
@reports_errors
def quarantine_replay(
    directory: ProjectDir,
    ids: Annotated[list[int] | None, typer.Argument(help="entry ids; none with --all")] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="every open entry (of --system, with --reason)")
    ] = False,
    system: Annotated[str | None, typer.Option("--system", "-s")] = None,
    reason: Annotated[str | None, typer.Option(help="a reason code")] = None,
) -> None:
    """Send entries through mapping and validation again, as a load of channel replay."""
    from accord.intake import quarantine  # noqa: PLC0415

    if bool(ids) == replay_all:
        raise InputRejected("name the entries to replay, or give --all (not both)")
    if ids and (system or reason):
        raise InputRejected("--system and --reason choose entries for --all only")
    workspace = open_workspace(directory)
    with count_progress() as progress:
        task = progress.add_task("replaying", total=len(ids) if ids else None)
        reports = quarantine.replay(
            workspace.engine,
            workspace.project,
            actor=cli_actor(),
            ids=ids or None,
            system=system,
            reason=reason,
            progress=lambda n: progress.advance(task, n),
        )
    if not reports:
        console.print("nothing open to replay")
        return
    console.print(
        table(
            "Replayed",
            ["system", "load", "entries", "stored", "still failing", "need a correction"],
            [
                [
                    r.system if r.kind is None else f"{r.system} ({r.kind}s)",
                    r.load_id,
                    r.entries,
                    r.replayed,
                    r.still_failing,
                    r.needs_correction,
                ]
                for r in reports
            ],
        )
    )
    for r in reports:
        for item in r.failing[:10]:
            console.print(f"  entry {item['id']}: {escape(_codes(item['reasons']))}")
    if any(r.still_failing or r.needs_correction for r in reports):
        console.print(
            "[yellow]some entries are still open[/]: `accord quarantine show DIR ID`, then "
            "correct them (or fix the mapping) and replay again"
        )


@quarantine_app.command("discard")
@reports_errors
def quarantine_discard(
    directory: ProjectDir,
    entry_id: EntryId,
    reason: Annotated[str, typer.Option("--reason", help="why it is not to be stored")],
) -> None:
    """Close an entry without storing it."""
    from accord.intake import quarantine  # noqa: PLC0415

    workspace = open_workspace(directory)
    quarantine.discard(workspace.engine, entry_id, reason, actor=cli_actor())
    console.print(f"[green]discarded[/] entry {entry_id}")


@loads_app.command("list")
@reports_errors
def loads_list(
    directory: ProjectDir,
    system: Annotated[str | None, typer.Option("--system", "-s")] = None,
    status: Annotated[str | None, typer.Option(help="done, failed, withdrawn, ...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List loads, newest first."""
    from accord.intake import loads  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        page = loads.loads(
            conn, cli_actor(), system=system, status=status, limit=limit, offset=offset
        )
    rows = [
        [
            item["id"],
            item["system"],
            item["channel"],
            item["source_name"],
            item["status"],
            item["counts"].get("new", ""),
            item["counts"].get("changed", ""),
            item["counts"].get("quarantined", ""),
            item["started_at"],
        ]
        for item in page.items
    ]
    console.print(
        table(
            f"Loads: {page.total:,}",
            ["id", "system", "channel", "source", "status", "new", "changed", "quarantined", "at"],
            rows,
        )
    )
    if page.total > offset + len(page.items):
        console.print(f"more: --offset {offset + len(page.items)}")


@loads_app.command("show")
@reports_errors
def loads_show(
    directory: ProjectDir,
    load_id: LoadId,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show one load: its counts, its quarantine entries, and any withdrawal."""
    from accord.intake import loads  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        item = loads.load(conn, cli_actor(), load_id)
    if as_json:
        print_json(item)
        return
    console.print(
        f"[bold]load {item['id']}[/] ({item['status']}): {escape(item['system'])} via "
        f"{item['channel']}, {escape(item['source_name'])}, by {escape(item['actor'])}, "
        f"{item['started_at']} to {item['finished_at']}"
    )
    counts = {k: v for k, v in item["counts"].items() if k != "withdrawal"}
    console.print(table("Counts", ["", "n"], [[k, v] for k, v in counts.items()]))
    console.print(f"quarantine entries: {item['quarantine'] or 'none'}")
    if "withdrawal" in item["counts"]:
        _print_withdrawal(item["counts"]["withdrawal"])


def _print_withdrawal(report: dict[str, Any]) -> None:
    console.print(
        table(
            "Withdrawn",
            ["versions", "reverted", "removed", "left (superseded)", "quarantine discarded"],
            [
                [
                    report["versions"],
                    report["reverted"],
                    report["removed"],
                    report["superseded"],
                    report["discarded"],
                ]
            ],
        )
    )
    for kind, keys in report["examples"].items():
        console.print(f"  {kind}: {escape(', '.join(keys))}")


@loads_app.command("withdraw")
@reports_errors
def loads_withdraw(
    directory: ProjectDir,
    load_id: LoadId,
    force: Annotated[
        bool, typer.Option(help="withdraw a load left running by a process that died")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Take back every record of one load: versions it made current stop being so."""
    from accord.intake import loads  # noqa: PLC0415

    workspace = open_workspace(directory)
    if not yes:
        typer.confirm(f"withdraw load {load_id}?", abort=True)
    report = loads.withdraw(workspace.engine, load_id, actor=cli_actor(), force=force)
    _print_withdrawal(report.as_dict())
    console.print(
        f"next: [bold]accord resolve {directory}[/] (or --incremental) so the golden records follow"
    )
