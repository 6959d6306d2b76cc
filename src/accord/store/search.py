"""Customer search over golden records: exact substring hits of the search text first,
then, when those are few, near matches (a typo or so away), best first.

The index is the store's own (migration 0017): on SQLite an FTS5 table with the trigram
tokenizer (`golden_search`, kept in step with golden_record by triggers), on PostgreSQL
a GIN index of pg_trgm trigrams on `golden_record.search_text`. Counts stop at a cap,
so no search costs a pass over every customer."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Text,
    cast,
    column,
    exists,
    func,
    literal,
    literal_column,
    not_,
    select,
    table,
    text,
)

from accord.store.tables import crosswalk, golden_record

STATUSES = ("active", "merged", "retired")
COUNT_CAP = 1000  # hits counted at most; past it a search says "1,000 or more"
FEW_EXACT = 10  # fewer exact hits than this, and near matches follow them
NEAR_LIMIT = 50  # near matches at most
NEAR_FROM = 4  # characters a query needs before near matches are looked for
NEAR_THRESHOLD = 0.5  # pg_trgm's word similarity a near match needs (PostgreSQL)
NEAR_RATIO = 75  # rapidfuzz's partial ratio a near match needs (SQLite)
RARE_GRAMS = 5  # a query's rarest trigrams that find near candidates (SQLite)
NEAR_CANDIDATES = 5000  # candidates scored at most (SQLite)
TRIGRAM_SCHEMA = "public"  # where migration 0017 installs pg_trgm if it is missing
# What migration 0017 makes outside `tables.metadata`: the FTS5 table, its shadow
# tables and vocabulary and an index for name order on SQLite, the trigram index on
# PostgreSQL.
INDEX_OBJECTS = ("golden_search", "ix_golden_search_trigram", "ix_golden_search_order")


def index_new(conn: Connection, golden_ids: Sequence[str]) -> None:
    """Add the search text of these golden records, just inserted, to the index: one
    statement per thousand (a trigger, one FTS5 write a row, cost ten times as much).
    PostgreSQL's index on the column keeps itself."""
    if conn.dialect.name != "sqlite":
        return
    for start in range(0, len(golden_ids), _CHUNK):
        chunk = golden_ids[start : start + _CHUNK]
        conn.execute(
            _FTS.insert().from_select(
                ["rowid", "search_text"],
                select(_GOLDEN_NUMBER, golden_record.c.search_text).where(
                    golden_record.c.golden_id.in_(chunk)
                ),
            )
        )


def reindex(conn: Connection, golden_ids: Sequence[str]) -> None:
    """Replace the indexed search text of these golden records, just rewritten."""
    if conn.dialect.name != "sqlite":
        return
    for start in range(0, len(golden_ids), _CHUNK):
        chunk = golden_ids[start : start + _CHUNK]
        conn.execute(_FTS.delete().where(_FTS.c.rowid.in_([_number(g) for g in chunk])))
    index_new(conn, golden_ids)


def _number(golden_id: str) -> int:
    return int(golden_id[1:])


def in_metadata(name: str | None, _type: str, _parents: Mapping[str, str | None]) -> bool:
    """Whether a schema object is described by `tables.metadata`: not the search index's
    (Alembic's `include_name` hook, for autogenerate and the schema test)."""
    return name is None or not name.startswith(INDEX_OBJECTS)


@dataclass(frozen=True)
class Filters:
    """What a search is narrowed to: customers with a record from `system`, whose golden
    country is `country`, with this `status`."""

    system: str | None = None
    country: str | None = None
    status: str = "active"


@dataclass(frozen=True)
class Hits:
    """One page of a search: `items` (each golden record's columns, and `near`: a near
    match, not an exact hit), and `total` hits in all, or at least `total` when `more`
    (the count stopped at its cap)."""

    items: list[dict[str, Any]]
    total: int
    more: bool


_GOLDEN_ID = re.compile(r"c[0-9]{7,}")
_COLUMNS = (
    golden_record.c.golden_id,
    golden_record.c.status,
    golden_record.c.merged_into,
    golden_record.c.display_name,
    golden_record.c.data,
    golden_record.c.member_count,
    golden_record.c.updated_at,
)
_ORDER = (golden_record.c.display_name, golden_record.c.golden_id)


def search(conn: Connection, text: str, filters: Filters, limit: int, offset: int) -> Hits:
    """Golden records whose search text contains `text` (casefolded; empty: all), those
    `filters` allow, in name order; then near matches, best first, when exact hits are
    fewer than FEW_EXACT. The count stops past max(COUNT_CAP, offset + limit)."""
    query = text.casefold()
    if _GOLDEN_ID.fullmatch(query):
        found = _by_golden_id(conn, query.upper(), filters)
        if found:
            return Hits(found[offset : offset + limit], 1, more=False)
    cap = max(COUNT_CAP, offset + limit)
    exact = _Exact(conn, query, filters)
    counted = exact.count(cap + 1)
    if counted > cap:
        return Hits(exact.rows(limit, offset, many=True), cap, more=True)
    near: list[str] = []
    if counted < FEW_EXACT and len(query) >= NEAR_FROM:
        near = _near_ids(conn, query, filters)
    items: list[dict[str, Any]] = []
    if offset < counted:
        items = exact.rows(limit, offset, many=False)
    wanted = near[max(0, offset - counted) : max(0, offset + limit - counted)]
    items += [row | {"near": True} for row in _rows_in_order(conn, wanted)]
    return Hits(items, counted + len(near), more=False)


class _Exact:
    """The exact hits of a query: golden records whose search text contains it."""

    def __init__(self, conn: Connection, query: str, filters: Filters) -> None:
        self.conn = conn
        self.query = query
        self.allowed = _allowed(filters)
        self.indexed = len(query) >= 3  # shorter than a trigram: no index helps
        self.sqlite = conn.dialect.name == "sqlite"

    def count(self, upto: int) -> int:
        """The number of hits, counted up to `upto`."""
        inner = select(literal(1)).select_from(self._source(by_index=True)).where(*self.allowed)
        inner = inner.where(*self._contains(by_index=True)).limit(upto)
        return int(
            self.conn.execute(select(func.count()).select_from(inner.subquery())).scalar_one()
        )

    def rows(self, limit: int, offset: int, *, many: bool) -> list[dict[str, Any]]:
        """A page of hits in name order. With `many` hits (past the cap) the records
        are read in name order and tested one by one, which soon fills a page; with
        few, the index finds them all and they are sorted."""
        by_index = not many
        query = (
            select(*_COLUMNS)
            .select_from(self._source(by_index=by_index))
            .where(*self.allowed, *self._contains(by_index=by_index))
            .order_by(*_ORDER)
            .limit(limit)
            .offset(offset)
        )
        return [dict(r._mapping) | {"near": False} for r in self.conn.execute(query)]

    def _source(self, *, by_index: bool) -> Any:
        if self.sqlite and self.indexed and by_index:
            return _FTS.join(golden_record, golden_record.c.golden_id == _FTS_GOLDEN_ID)
        return golden_record

    def _contains(self, *, by_index: bool) -> list[ColumnElement[bool]]:
        if not self.query:
            return []
        if self.sqlite and self.indexed and by_index:
            return [_fts_match(_phrase(self.query))]
        pattern = "%" + _escape_like(self.query) + "%"
        return [golden_record.c.search_text.like(pattern, escape="\\")]


def _by_golden_id(conn: Connection, golden_id: str, filters: Filters) -> list[dict[str, Any]]:
    """The customer whose golden id the query is (golden ids are not in the search
    text), if the filters allow it."""
    rows = conn.execute(
        select(*_COLUMNS).where(golden_record.c.golden_id == golden_id, *_allowed(filters))
    )
    return [dict(r._mapping) | {"near": False} for r in rows]


def _allowed(filters: Filters) -> list[ColumnElement[bool]]:
    conditions = [golden_record.c.status == filters.status]
    if filters.country:
        conditions.append(golden_record.c.data["country"].as_string() == filters.country)
    if filters.system:
        conditions.append(
            exists().where(
                crosswalk.c.golden_id == golden_record.c.golden_id,
                crosswalk.c.system == filters.system,
            )
        )
    return conditions


def _rows_in_order(conn: Connection, golden_ids: Sequence[str]) -> list[dict[str, Any]]:
    if not golden_ids:
        return []
    rows = conn.execute(select(*_COLUMNS).where(golden_record.c.golden_id.in_(golden_ids)))
    found = {r.golden_id: dict(r._mapping) for r in rows}
    return [found[g] for g in golden_ids if g in found]


# ---------------------------------------------------------------- near matches


def _near_ids(conn: Connection, query: str, filters: Filters) -> list[str]:
    """Golden ids of records close to `query` but not containing it, best first."""
    if conn.dialect.name == "sqlite":
        return _near_sqlite(conn, query, filters)
    return _near_postgresql(conn, query, filters)


def _near_postgresql(conn: Connection, query: str, filters: Filters) -> list[str]:
    schema = trigram_schema(conn)
    # the share of the query's trigrams a near match holds, in some run of its words
    conn.execute(
        text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
        {"t": str(NEAR_THRESHOLD)},
    )
    typed = literal(query, Text)
    similar = typed.op(f'OPERATOR("{schema}".<%)', is_comparison=True)(golden_record.c.search_text)
    closeness = getattr(getattr(func, schema), "word_similarity")(
        typed, golden_record.c.search_text
    )
    pattern = "%" + _escape_like(query) + "%"
    rows = conn.execute(
        select(golden_record.c.golden_id)
        .where(
            similar,
            not_(golden_record.c.search_text.like(pattern, escape="\\")),
            *_allowed(filters),
        )
        .order_by(closeness.desc(), *_ORDER)
        .limit(NEAR_LIMIT)
    )
    return [r.golden_id for r in rows]


def _near_sqlite(conn: Connection, query: str, filters: Filters) -> list[str]:
    """Records sharing enough of the query's trigrams, scored by how well the query
    aligns with some stretch of their search text (rapidfuzz's partial ratio). One typo
    spoils at most four of a query's trigrams, so a record it was meant for holds one
    of any five: the five rarest (by the FTS5 vocabulary) find the candidates."""
    grams = _trigrams(query)
    rarest = _rarest(conn, grams, RARE_GRAMS)
    if not rarest:
        return []
    rows = conn.execute(
        select(golden_record.c.golden_id, golden_record.c.display_name, _FTS.c.search_text)
        .select_from(_FTS.join(golden_record, golden_record.c.golden_id == _FTS_GOLDEN_ID))
        .where(_fts_match(" OR ".join(_phrase(g) for g in rarest)), *_allowed(filters))
        .limit(NEAR_CANDIDATES)
    ).all()
    scored = []
    for row in rows:
        if query in row.search_text:
            continue  # an exact hit, listed before
        score = fuzz.partial_ratio(query, row.search_text, score_cutoff=NEAR_RATIO)
        if score:
            scored.append((-score, row.display_name, row.golden_id))
    scored.sort()
    return [golden_id for _, _, golden_id in scored[:NEAR_LIMIT]]


def _rarest(conn: Connection, grams: Sequence[str], count: int) -> list[str]:
    """The `count` trigrams of `grams` in the fewest records; those in none are left
    out (a typo's)."""
    rows = conn.execute(
        select(_VOCAB.c.term, _VOCAB.c.doc).where(_VOCAB.c.term.in_(grams))
    ).all()
    return [r.term for r in sorted(rows, key=lambda r: (r.doc, r.term))[:count]]


def _trigrams(query: str) -> list[str]:
    return sorted({query[i : i + 3] for i in range(len(query) - 2)})


# ---------------------------------------------------------------- the dialects' parts

# The FTS5 table (SQLite): a row's rowid is its golden id's number (migration 0017).
_FTS = table("golden_search", column("rowid", Integer), column("search_text", Text))
_FTS_GOLDEN_ID = func.printf("C%07d", _FTS.c.rowid)
_GOLDEN_NUMBER = cast(func.substr(golden_record.c.golden_id, 2), Integer)
_CHUNK = 1000
# its vocabulary: each trigram and the number of records holding it
_VOCAB = table("golden_search_vocab", column("term", Text), column("doc", Integer))


def _fts_match(expression: str) -> ColumnElement[bool]:
    return literal_column("golden_search").op("MATCH", is_comparison=True)(expression)


def _phrase(text_: str) -> str:
    """`text_` as one FTS5 phrase: the string quoted, its quotes doubled, so no
    character in it is query syntax."""
    return '"' + text_.replace('"', '""') + '"'


def _escape_like(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def trigram_schema(conn: Connection) -> str:
    """The schema pg_trgm is installed in, whose operators and functions a query names."""
    return str(
        conn.execute(
            text(
                "SELECT n.nspname FROM pg_extension e "
                "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
            )
        ).scalar_one()
    )
