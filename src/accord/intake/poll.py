"""The SQL polling channel: read the rows of a system's own database that changed since
the last run, and load them like a file's rows.

Changes are found by a watermark column that grows with every change (an `updated_at`
timestamp, naive or aware, or a sequence number) and a key that tells apart rows sharing
a watermark value. Rows are read in (watermark, key) order, a page at a time, with the
keyset condition `(wm > :w) OR (wm = :w AND key > :k)`: a page boundary falling among
many rows of one watermark value skips none of them, which `wm > :w` alone would.

Each page is stored through the load path (`Batcher.write`) in one transaction with the
cursor that covers it (`poll_cursor`): a run that dies keeps every page it stored and
its cursor, and the next run starts after the last stored row. Nothing is skipped or
stored twice, however often a run is stopped.

What a watermark cannot see: a row committed late with a watermark below the cursor
(a long transaction on the source stamped it when it began). `lag` re-reads that far
behind the cursor on each run; rows read again with the same content are counted as
unchanged and store nothing. The window costs a re-read of its rows on every run; a row
committed later than the window is still missed until it changes again.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    column,
    create_engine,
    func,
    inspect,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from accord.config.intake import PollConfig
from accord.config.loader import Project
from accord.errors import AccordError
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.intake.load import Batcher, LoadReport, recorded_load
from accord.intake.mapping import RecordMapper
from accord.intake.readers import RawRecord, keep, record_of
from accord.store import poll_cursor
from accord.store.engine import first_line, shown_url, writing
from accord.store.types import utcnow

log = logging.getLogger(__name__)

PollProgress = Callable[[int], None]  # rows read so far in this run


@dataclass(frozen=True)
class Position:
    """Where a run stands: the last row read, by its watermark and key values."""

    watermark: Any
    key: Any


# --- the cursor's values as text, and back --------------------------------------------


def encode(value: Any) -> tuple[str, str]:
    """A watermark or key value as (text, type), to be read back exactly by `decode`.
    Raises AccordError for a type that cannot be ordered and compared reliably."""
    if isinstance(value, bool):
        raise AccordError(f"a boolean ({value}) cannot be a watermark or key")
    if isinstance(value, int):
        return str(value), "int"
    if isinstance(value, Decimal):
        return str(value), "decimal"
    if isinstance(value, float):
        return repr(value), "float"
    if isinstance(value, datetime):
        kind = "timestamp" if value.tzinfo is None else "timestamptz"
        return value.isoformat(), kind
    if isinstance(value, date):
        return value.isoformat(), "date"
    if isinstance(value, str):
        return value, "text"
    if isinstance(value, uuid.UUID):
        return str(value), "uuid"
    raise AccordError(
        f"a {type(value).__name__} value cannot be a watermark or key",
        hint="use a timestamp, date, number or text column",
    )


_DECODERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "decimal": Decimal,
    "float": float,
    "timestamp": datetime.fromisoformat,
    "timestamptz": datetime.fromisoformat,
    "date": date.fromisoformat,
    "text": str,
    "uuid": uuid.UUID,
}


def decode(value: str, kind: str) -> Any:
    return _DECODERS[kind](value)


def lag_floor(watermark: Any, lag: timedelta) -> Any:
    """The watermark `lag` behind `watermark`: for timestamps and dates a time span, for
    numbers that many sequence values (`lag: 500`), for ISO timestamps kept as text (as
    SQLite keeps them) a time span written back in the same style."""
    if isinstance(watermark, datetime | date):
        return watermark - lag
    seconds = int(lag.total_seconds())
    if isinstance(watermark, int | float):
        return watermark - seconds
    if isinstance(watermark, Decimal):
        return watermark - Decimal(seconds)
    if isinstance(watermark, str):
        try:
            moment = datetime.fromisoformat(watermark)
        except ValueError:
            pass
        else:
            separator = watermark[10] if len(watermark) > 10 else "T"
            fraction = len(watermark) > 19 and watermark[19] == "."
            return (moment - lag).isoformat(separator, "microseconds" if fraction else "auto")
    raise AccordError(
        f"`lag` needs a timestamp or numeric watermark; this one holds {watermark!r}",
        hint="remove `lag` from the poll block, or use a timestamp or sequence column",
    )


# --- reading the source ------------------------------------------------------------------


def page_statement(
    config: PollConfig,
    key: str,
    *,
    after: Position | None,
    floor: Any = None,
    limit: int,
) -> Select[Any]:
    """The SELECT for the next page: rows after `after` in (watermark, key) order, or,
    for a run's first page under `lag`, every row from `floor` on. Rows with no
    watermark or key are never read (they have no place in the order)."""
    source = _source_of(config, key)
    wm, k = source.c[config.watermark], source.c[key]
    condition: ColumnElement[bool]
    if after is not None:
        condition = or_(wm > after.watermark, and_(wm == after.watermark, k > after.key))
    elif floor is not None:
        condition = wm >= floor
    else:
        condition = wm.is_not(None)
    return (
        select(literal_column("*"))
        .select_from(source)
        .where(condition, k.is_not(None))
        .order_by(wm, k)
        .limit(limit)
    )


def unplaced_statement(config: PollConfig, key: str) -> Select[Any]:
    """How many rows have no place in the (watermark, key) order: a NULL watermark or
    key. They are never read; a run counts them so that they are not missed unseen."""
    source = _source_of(config, key)
    wm, k = source.c[config.watermark], source.c[key]
    return select(func.count()).select_from(source).where(or_(wm.is_(None), k.is_(None)))


def _source_of(config: PollConfig, key: str) -> Any:
    """The table, or the user's query as a subquery, with the watermark and key columns."""
    if config.table is not None:
        schema, _, name = config.table.rpartition(".")
        return table(name, column(config.watermark), column(key), schema=schema or None)
    # the user's query, as a subquery; its colons are SQL, not bind parameters
    query = (config.query or "").strip().rstrip(";").strip()
    statement = text(query.replace(":", "\\:"))
    return statement.columns(column(config.watermark), column(key)).subquery("src")


class Source:
    """The system's database, read a page at a time; each page in a short transaction of
    its own, so a run holds no snapshot or lock on the source between pages."""

    def __init__(self, system: str, config: PollConfig, key: str) -> None:
        self.system = system
        self.config = config
        self.key = key
        url = os.environ.get(config.url_env)
        if not url:
            raise AccordError(
                f"the environment variable {config.url_env} is not set: it holds the "
                f"database URL that systems.{system}.intake.poll reads",
                hint=f"export {config.url_env}=postgresql+psycopg://user:password@host/db "
                "(any SQLAlchemy URL) in the environment that runs accord",
            )
        self.shown_url = shown_url(url)
        try:
            self.engine = create_engine(url, poolclass=NullPool)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise AccordError(
                f"{config.url_env} does not hold a database URL accord can use "
                f"({self.shown_url}): {exc}",
                hint="set it to a SQLAlchemy URL such as postgresql+psycopg://…, "
                "mysql+pymysql://… or sqlite:///path",
            ) from None
        self.name = config.table or "query"

    def page(self, after: Position | None, floor: Any, limit: int) -> list[dict[str, Any]]:
        statement = page_statement(self.config, self.key, after=after, floor=floor, limit=limit)
        rows = [dict(row._mapping) for row in self._read(statement)]
        for row in rows:
            for name in (self.config.watermark, self.key):
                if name not in row:
                    raise AccordError(
                        f"{self._what()} of {self.system} returns no column {name!r}",
                        hint=self._columns_hint(sorted(row)),
                    )
        return rows

    def unplaced(self) -> int:
        """How many rows the poll cannot read: their watermark or key is NULL."""
        return int(self._read(unplaced_statement(self.config, self.key))[0][0])

    def _read(self, statement: Select[Any]) -> list[Any]:
        """The statement's rows, in a short transaction of its own."""
        try:
            connection = self.engine.connect()
        except DBAPIError as exc:
            raise AccordError(
                f"cannot reach {self.system}'s database at {self.shown_url}: {first_line(exc)}",
                hint=f"check that it is up and that {self.config.url_env} is right, then run "
                "again: nothing was skipped, the next run starts where the last one stopped",
            ) from None
        try:
            with connection:
                rows = list(connection.execute(statement))
                connection.rollback()
        except SQLAlchemyError as exc:
            raise AccordError(
                f"reading {self._what()} of {self.system} failed: {first_line(exc)}",
                hint=self._columns_hint(),
            ) from None
        return rows

    def close(self) -> None:
        self.engine.dispose()

    def _what(self) -> str:
        return f"the table {self.config.table}" if self.config.table else "the query"

    def _columns_hint(self, columns: Sequence[str] | None = None) -> str:
        where = f"systems.{self.system}.intake.poll"
        if columns is None and self.config.table is not None:
            try:
                schema, _, name = self.config.table.rpartition(".")
                found = inspect(self.engine).get_columns(name, schema=schema or None)
                columns = [c["name"] for c in found]
            except SQLAlchemyError:
                return f"check that the table {self.config.table} exists ({where}.table)"
        known = f"; its columns: {', '.join(columns)}" if columns else ""
        return f"check `watermark: {self.config.watermark}` and `key: {self.key}` in {where}{known}"


# --- rows as records -----------------------------------------------------------------------


def json_ready(value: Any) -> Any:
    """A column's value as JSON can hold it, the same every time it is read (so an
    unchanged row hashes the same): times in ISO 8601, exact decimals as text, bytes as
    UTF-8 text or base64."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(data).decode("ascii")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value, default=str))
    return str(value)


def raw_record(row: dict[str, Any], location: str, max_field_bytes: int) -> RawRecord:
    """One source row as the load path takes it: its columns made JSON-ready, checked as
    any record that arrives as JSON is (`readers.record_of`)."""
    return record_of(
        {str(name): json_ready(value) for name, value in row.items()}, location, max_field_bytes
    )


def _shown(value: Any) -> str:
    return keep(str(json_ready(value)), 80)


# --- a run ---------------------------------------------------------------------------------


def poll_config(project: Project, system: str) -> PollConfig:
    """`system`'s poll block; AccordError naming the block when there is none."""
    systems = project.config.systems
    if system not in systems:
        raise AccordError(
            f"no system {system!r} in accord.yaml",
            hint=f"the systems are: {', '.join(sorted(systems))}",
        )
    config = systems[system].intake.poll
    if config is None:
        raise AccordError(
            f"{system} has no poll block (systems.{system}.intake.poll in accord.yaml)",
            hint="add one with url_env, table or query, and watermark (docs/intake-poll.md)",
        )
    return config


def polled_systems(project: Project) -> list[str]:
    """The systems with a poll block, in accord.yaml's order."""
    return [name for name, s in project.config.systems.items() if s.intake.poll is not None]


def poll_once(
    engine: Engine,
    project: Project,
    system: str,
    *,
    actor: str,
    progress: PollProgress | None = None,
    batch_size: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LoadReport:
    """Read what changed in `system`'s database since the last run and load it; see the
    module's text. One run is one load (channel `poll`), audited like a file's. When
    `should_stop()` turns true, the run ends after the page in hand, with the cursor
    after it: the next run goes on from there. Raises AccordError, with the cursor
    unmoved, when the source cannot be read."""
    config = poll_config(project, system)
    mapping = project.mapping(system)
    mapper = RecordMapper(mapping, project.config.systems[system])
    key = config.key or mapping.config.source_id
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", key):
        raise AccordError(
            f"the mapping's source id {key!r} is not a column name the poll can order by",
            hint=f"set `key:` in systems.{system}.intake.poll to the source's unique column",
        )
    limit = batch_size or config.batch_size
    max_field_bytes = mapping.config.format.max_field_bytes
    started_at = utcnow()
    with engine.connect() as conn:
        stored = poll_cursor.read(conn, system)
    cursor = _position(stored)
    try:
        # the source and its first page before anything is written: an unset variable,
        # a source that is down or a misnamed column is refused without a load (the
        # attempt's time is noted in the cursor)
        source = Source(system, config, key)
    except AccordError:
        _mark_run(engine, system, started_at)
        raise
    try:
        floor = None
        after = cursor
        if cursor is not None and config.lag > timedelta(0):
            floor, after = lag_floor(cursor.watermark, config.lag), None
        try:
            rows = source.page(after, floor, limit)
        except AccordError:
            _mark_run(engine, system, started_at)
            raise
        return _run(
            engine,
            project,
            system,
            source,
            rows,
            cursor=cursor,
            stored=stored,
            mapper=mapper,
            limit=limit,
            max_field_bytes=max_field_bytes,
            actor=actor,
            started_at=started_at,
            progress=progress,
            should_stop=should_stop,
        )
    finally:
        source.close()


def _run(
    engine: Engine,
    project: Project,
    system: str,
    source: Source,
    rows: list[dict[str, Any]],
    *,
    cursor: Position | None,
    stored: poll_cursor.StoredCursor | None,
    mapper: RecordMapper,
    limit: int,
    max_field_bytes: int,
    actor: str,
    started_at: datetime,
    progress: PollProgress | None,
    should_stop: Callable[[], bool] | None,
) -> LoadReport:
    config = source.config
    source_name = f"poll:{source.name}"
    with recorded_load(
        engine,
        project,
        system,
        channel="poll",
        source_name=source_name,
        actor=actor,
        on_end=lambda conn: poll_cursor.mark_run(conn, system, started_at),
    ) as report:
        types = (stored.watermark_type, stored.key_type) if stored and stored.watermark else None
        while rows:
            last = rows[-1]
            position = Position(last[config.watermark], last[source.key])
            encoded = (encode(position.watermark), encode(position.key))
            _check_types(system, types, (encoded[0][1], encoded[1][1]))
            page = [
                raw_record(
                    row,
                    f"{source_name}@wm={_shown(row[config.watermark])},"
                    f"key={_shown(row[source.key])}",
                    max_field_bytes,
                )
                for row in rows
            ]
            ahead = cursor is None or _order(position) > _order(cursor)
            with writing(engine) as conn:
                # a page is an input of its own: a row read again in a later page
                # changed in between, and is a new version, not a repeated source id
                Batcher(
                    engine,
                    mapper,
                    report,
                    project.config.entity,
                    max_skew=project.config.survivorship.max_clock_skew,
                ).write(conn, page)
                if ahead:  # under `lag` the first pages re-read what the cursor covers
                    poll_cursor.move(
                        conn,
                        system,
                        watermark=encoded[0][0],
                        watermark_type=encoded[0][1],
                        last_key=encoded[1][0],
                        key_type=encoded[1][1],
                    )
            if ahead:
                cursor = position
            if progress is not None:
                progress(report.read)
            if len(rows) < limit or (should_stop is not None and should_stop()):
                break
            rows = source.page(position, None, limit)
        if not rows or len(rows) < limit:  # read to the end: what could not be read?
            report.unplaced = _unplaced(source)
    return report


def _unplaced(source: Source) -> int:
    """The source's rows with a NULL watermark or key, which no run reads (0, with a
    warning in the log, if they cannot be counted: the run's pages are stored either way)."""
    try:
        found = source.unplaced()
    except AccordError as exc:
        log.warning("%s: cannot count the rows without a watermark or key: %s", source.system, exc)
        return 0
    if found:
        said = unplaced_text(found, source.config.watermark, source.key)
        log.warning("%s: %s (%s); %s", source.system, said, source.name, UNPLACED_HINT)
    return found


def unplaced_text(count: int, watermark: str = "watermark", key: str = "key") -> str:
    """What is said of the rows a poll cannot read, in the log, by `accord poll` and in
    the worker's message: `2 rows have a NULL updated_at or Id and are never read`."""
    rows, verb = ("1 row has", "is") if count == 1 else (f"{count:,} rows have", "are")
    return f"{rows} a NULL {watermark} or {key} and {verb} never read"


UNPLACED_HINT = (
    "make the columns NOT NULL, or poll a query that gives them a value "
    "(coalesce(updated_at, created_at) AS changed): docs/intake-poll.md"
)


def _mark_run(engine: Engine, system: str, started_at: datetime) -> None:
    with writing(engine) as conn:
        poll_cursor.mark_run(conn, system, started_at)


def _position(stored: poll_cursor.StoredCursor | None) -> Position | None:
    if stored is None or stored.watermark is None or stored.last_key is None:
        return None
    return Position(
        decode(stored.watermark, stored.watermark_type or "text"),
        decode(stored.last_key, stored.key_type or "text"),
    )


def _order(position: Position) -> tuple[Any, Any]:
    return (position.watermark, position.key)


def _check_types(system: str, stored: tuple[Any, Any] | None, read: tuple[str, str]) -> None:
    """Refuse to compare a cursor with values of another type: the watermark or key
    column was changed in the project or in the source."""
    if stored is None or stored == read:
        return
    raise AccordError(
        f"{system}'s poll cursor holds a watermark of type {stored[0]} and a key of type "
        f"{stored[1]}, but the source now returns {read[0]} and {read[1]}",
        hint=f"if the columns were changed on purpose, run `accord poll DIR --system {system} "
        "--reset` to read every row again (unchanged rows store nothing)",
    )


def reset(engine: Engine, system: str, *, actor: str) -> bool:
    """Forget where `system`'s poll stopped: the next run reads every row again (those
    unchanged store nothing). True if there was a cursor."""
    with writing(engine) as conn:
        existed = poll_cursor.reset(conn, system)
        event = AuditEvent(AuditAction.POLL_RESET, "poll_cursor", system, {"existed": existed})
        record(conn, actor, [event])
    return existed
