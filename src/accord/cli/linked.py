"""`accord linked ...`: a golden customer's orders, invoices and tickets, the orphans no
customer holds, and a summary per system and kind. Each command parses, calls
`linked/service.py`, and renders."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape

from accord.cli.output import ProjectDir, console, open_workspace, print_json, reports_errors, table
from accord.govern.permissions import cli_actor

linked_app = typer.Typer(
    help="Linked records (orders, invoices, tickets, contracts): by customer, and orphans.",
    no_args_is_help=True,
)

Kind = Annotated[str | None, typer.Option("--kind", "-k", help="only this kind, e.g. order")]
Limit = Annotated[int, typer.Option(min=1, max=200)]
Offset = Annotated[int, typer.Option(min=0)]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]


@linked_app.command("show")
@reports_errors
def linked_show(
    directory: ProjectDir,
    golden_id: Annotated[str, typer.Argument(help="a golden id such as C0000042")],
    kind: Kind = None,
    limit: Limit = 20,
    offset: Offset = 0,
    as_json: AsJson = False,
) -> None:
    """A golden customer's linked records, newest first, from every member record."""
    from accord.linked import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        found = service.of_customer(
            conn, cli_actor(), golden_id, kind=kind, limit=limit, offset=offset
        )
    page = found["page"]
    if as_json:
        print_json({k: v for k, v in found.items() if k != "page"} | asdict(page))
        return
    if found["status"] != "active":
        target = found["merged_into"]
        console.print(
            f"{golden_id} is {found['status']}" + (f": see [bold]{target}[/]" if target else "")
        )
        return
    kinds = ", ".join(f"{n:,} {k}" for k, n in found["kinds"].items()) or "none"
    console.print(f"[bold]{escape(found['display_name'])}[/]  {golden_id}  ({kinds})")
    console.print(
        table(
            f"{page.total:,} linked records" + (f" of kind {kind}" if kind else ""),
            ["kind", "record", "when", "amount", "status", "title", "customer record"],
            [
                [
                    i["kind"],
                    f"{i['system']}:{i['source_id']}",
                    (i["occurred_at"] or "-")[:19],
                    _amount(i),
                    i["status"] or "",
                    _short(i["title"]),
                    f"{i['customer_system']}:{i['customer_source_id']}",
                ]
                for i in page.items
            ],
        )
    )
    _more(page.total, offset, len(page.items))


@linked_app.command("orphans")
@reports_errors
def linked_orphans(
    directory: ProjectDir,
    system: Annotated[str | None, typer.Option("--system", "-s")] = None,
    kind: Kind = None,
    limit: Limit = 20,
    offset: Offset = 0,
    as_json: AsJson = False,
) -> None:
    """Linked records no golden customer holds the customer record of, and why."""
    from accord.linked import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    if system is not None:
        workspace.project.mapping(system)  # an unknown system is an error, not "none"
    with workspace.engine.connect() as conn:
        page = service.orphans(
            conn, cli_actor(), system=system, kind=kind, limit=limit, offset=offset
        )
    if as_json:
        print_json(asdict(page))
        return
    console.print(
        table(
            f"{page.total:,} orphans",
            ["kind", "record", "customer record", "reason", "what to do"],
            [
                [
                    i["kind"],
                    f"{i['system']}:{i['source_id']}",
                    f"{i['customer_system']}:{i['customer_source_id']}",
                    i["reason"],
                    i["hint"],
                ]
                for i in page.items
            ],
        )
    )
    _more(page.total, offset, len(page.items))


@linked_app.command("summary")
@reports_errors
def linked_summary(directory: ProjectDir, as_json: AsJson = False) -> None:
    """Per system and kind: linked records stored, attached to a customer, orphans."""
    from accord.linked import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        rows = service.summary(conn, cli_actor())
    if as_json:
        print_json(rows)
        return
    console.print(summary_table(rows))


def summary_table(
    rows: list[dict[str, Any]], quarantined: dict[tuple[str, str], int] | None = None
) -> Any:
    """Linked records per system and kind: stored, attached, orphans; with
    `quarantined`, what a load of each just quarantined."""
    columns = ["system", "kind", "records", "attached to a customer", "orphans"]
    shown = [[r["system"], r["kind"], r["records"], r["attached"], r["orphans"]] for r in rows]
    if quarantined is not None:
        columns.insert(3, "quarantined")
        for row in shown:
            row.insert(3, quarantined.get((row[0], row[1]), 0))
    return table("Linked records", columns, shown)


def _amount(item: dict[str, Any]) -> str:
    if item["amount"] is None:
        return ""
    return f"{item['amount']} {item['currency'] or ''}".strip()


def _short(text: str | None, limit: int = 40) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _more(total: int, offset: int, shown: int) -> None:
    if offset + shown < total:
        console.print(f"[dim]{total - offset - shown:,} more: --offset {offset + shown}[/]")
