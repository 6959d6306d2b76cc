"""Customer search over golden records: exact substring hits of the search text first,
then, when those are few, near matches (a typo or so away), best first.

The index is the store's own (migration 0017): on SQLite an FTS5 table with the trigram
tokenizer (`golden_search`, kept in step by the code that writes golden records:
`index_new`, `reindex`), on PostgreSQL a GIN index of pg_trgm trigrams on
`golden_record.search_text`. Counts stop at a cap, so no search costs a pass over every
customer."""

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
    or_,
    select,
    table,
)

from accord.store.tables import crosswalk, golden_record

STATUSES = ("active", "merged", "retired")
COUNT_CAP = 1000  # hits counted at most; past it a search says "1,000 or more"
FEW_EXACT = 10  # fewer exact hits of a name than this, and near matches follow them
NEAR_LIMIT = 50  # near matches at most
NEAR_FROM = 4  # characters a query needs before near matches are looked for
NEAR_RATIO = 75  # rapidfuzz's partial ratio a near match needs
NEAR_CANDIDATES = 1000  # candidates read at most
NEAR_SCORED = 200  # of those, the ones sharing most trigrams, scored
CHECKED_GRAMS = 24  # a query's trigrams counted for their rarity
RARITY_CAP = 300  # records counted at most per trigram
# What migration 0017 makes outside `tables.metadata`: the FTS5 table (and its shadow
# tables) and an index for name order on SQLite, the trigram index on PostgreSQL.
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


def reindex(conn: Connection, texts: Mapping[str, str]) -> None:
    """Bring the index in step with these golden records, just rewritten (golden id ->
    its new search text): those whose search text changed. Most rewrites leave it as
    it was (lineage, members' versions), and replacing an FTS5 row costs a delete."""
    if conn.dialect.name != "sqlite":
        return
    changed: list[str] = []
    ids = list(texts)
    for start in range(0, len(ids), _CHUNK):
        numbers = {_number(g): g for g in ids[start : start + _CHUNK]}
        rows = conn.execute(
            select(_FTS.c.rowid, _FTS.c.search_text).where(_FTS.c.rowid.in_(list(numbers)))
        )
        indexed = {numbers[r.rowid]: r.search_text for r in rows}
        stale = [g for g in numbers.values() if indexed.get(g) != texts[g]]
        gone = [_number(g) for g in stale if g in indexed]
        if gone:
            conn.execute(_FTS.delete().where(_FTS.c.rowid.in_(gone)))
        changed += stale
    index_new(conn, changed)


def rebuild(conn: Connection) -> None:
    """Build the SQLite index anew from every golden record: after golden_record was
    written by other means than this module's callers (a restore from a copy, a repair
    by hand). PostgreSQL's index on the column needs nothing."""
    if conn.dialect.name != "sqlite":
        return
    conn.execute(_FTS.delete())
    conn.execute(
        _FTS.insert().from_select(
            ["rowid", "search_text"], select(_GOLDEN_NUMBER, golden_record.c.search_text)
        )
    )


def _number(golden_id: str) -> int:
    return int(golden_id[1:])


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
    fewer than FEW_EXACT (for a name) or none (for an identifier: an email, a phone, an id).
    The count stops past max(COUNT_CAP, offset + limit)."""
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
    if counted < _few_exact(query) and len(query) >= NEAR_FROM:
        near = _near_ids(conn, query, filters)
    items: list[dict[str, Any]] = []
    if offset < counted:
        items = exact.rows(limit, offset, many=False)
    wanted = near[max(0, offset - counted) : max(0, offset + limit - counted)]
    items += [row | {"near": True} for row in _rows_in_order(conn, wanted)]
    return Hits(items, counted + len(near), more=False)


def _few_exact(query: str) -> int:
    """How few exact hits let near matches follow. A name may be misspelt in some records
    and right in others, so near ones follow a few exact ones. An identifier (with a
    digit or an @) that hits exactly has found what was asked for: looking further cost
    60-100 ms on PostgreSQL at a million customers and found nothing better."""
    if any(char.isdigit() or char == "@" for char in query):
        return 1
    return FEW_EXACT


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
        select(*_COLUMNS).where(
            golden_record.c.golden_id == golden_id, *_allowed(filters, by_key=True)
        )
    )
    return [dict(r._mapping) | {"near": False} for r in rows]


def _allowed(filters: Filters, *, by_key: bool = False) -> list[ColumnElement[bool]]:
    """Conditions on golden_record for `filters`. `by_key`: for reading given golden
    ids, with the status compared so no index can serve it: SQLite would otherwise walk
    an index of status for every active customer rather than look up each id."""
    status = golden_record.c.status
    conditions = [(status.concat("") if by_key else status) == filters.status]
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
    """Golden ids of records close to `query` but not containing it, best first, then
    by golden id: of the records holding one of the query's rarest trigrams (a typo
    spoils at most four of them, `_rarest`), the NEAR_SCORED sharing most of its
    trigrams, scored by how well the query aligns with some stretch of their search
    text (rapidfuzz's partial ratio); of those, the ones `filters` allow."""
    grams = _searchable_grams(conn, query)
    rarest = _rarest(conn, grams)
    if not rarest:
        return []
    candidates = _holding_any(conn, rarest)
    overlap = sorted((-sum(g in t for g in grams), g_id, t) for g_id, t in candidates)
    scored = sorted(
        (-score, golden_id)
        for _, golden_id, text_ in overlap[:NEAR_SCORED]
        if query not in text_  # an exact hit, listed before
        and (score := fuzz.partial_ratio(query, text_, score_cutoff=NEAR_RATIO))
    )
    return _allowed_in_order(conn, [golden_id for _, golden_id in scored], filters)


def _searchable_grams(conn: Connection, query: str) -> list[str]:
    """The query's trigrams an index can find: on PostgreSQL those of letters and
    digits only (pg_trgm takes no trigram from punctuation, and a LIKE it cannot serve
    reads every record)."""
    grams = _trigrams(query)
    if conn.dialect.name != "sqlite":
        grams = [g for g in grams if g.isalnum()]
    return grams[:CHECKED_GRAMS]


def _rarest(conn: Connection, grams: Sequence[str]) -> list[str]:
    """The fewest of `grams` that a record a typo away from the query must hold one
    of, the rarest. A typo spoils at most four of a query's trigrams (a swap of two
    letters), so such a record holds all but four of those the index holds, and so one
    of any five (fewer when the typo's own trigrams are in no record)."""
    counted = sorted((n, g) for g in grams if (n := _records_holding(conn, g)))
    spoiled = min(4, len(counted) - (len(grams) - 4))  # at most this many missing
    return [g for _, g in counted[: spoiled + 1]]


def _records_holding(conn: Connection, gram: str) -> int:
    """How many records hold `gram`, counted up to RARITY_CAP: counting a common one
    through costs more than it tells."""
    if conn.dialect.name == "sqlite":
        held = select(_FTS.c.rowid).where(_fts_match(_phrase(gram)))
    else:
        held = select(golden_record.c.golden_id).where(_holds(gram))
    limited = held.limit(RARITY_CAP).subquery()
    return int(conn.execute(select(func.count()).select_from(limited)).scalar_one())


def _holding_any(conn: Connection, grams: Sequence[str]) -> list[tuple[str, str]]:
    """(golden id, search text) of records holding one of `grams`, NEAR_CANDIDATES at
    most."""
    if conn.dialect.name == "sqlite":
        any_gram = " OR ".join(_phrase(g) for g in grams)
        query = select(_FTS.c.rowid, _FTS.c.search_text).where(_fts_match(any_gram))
        rows = conn.execute(query.limit(NEAR_CANDIDATES))
        return [(f"C{r.rowid:07d}", r.search_text) for r in rows]
    query = select(golden_record.c.golden_id, golden_record.c.search_text).where(
        or_(*(_holds(g) for g in grams))
    )
    return [(r.golden_id, r.search_text) for r in conn.execute(query.limit(NEAR_CANDIDATES))]


def _holds(gram: str) -> ColumnElement[bool]:
    return golden_record.c.search_text.like("%" + _escape_like(gram) + "%", escape="\\")


def _allowed_in_order(conn: Connection, golden_ids: list[str], filters: Filters) -> list[str]:
    """The first NEAR_LIMIT of `golden_ids` (the scored near matches: NEAR_SCORED at
    most, one statement) that `filters` allow, in their order."""
    if not golden_ids:
        return []
    rows = conn.execute(
        select(golden_record.c.golden_id).where(
            golden_record.c.golden_id.in_(golden_ids), *_allowed(filters, by_key=True)
        )
    )
    allowed = {r.golden_id for r in rows}
    return [g for g in golden_ids if g in allowed][:NEAR_LIMIT]


def _trigrams(query: str) -> list[str]:
    return sorted({query[i : i + 3] for i in range(len(query) - 2)})


# ---------------------------------------------------------------- the dialects' parts

# The FTS5 table (SQLite): a row's rowid is its golden id's number (migration 0017).
_FTS = table("golden_search", column("rowid", Integer), column("search_text", Text))
_FTS_GOLDEN_ID = func.printf("C%07d", _FTS.c.rowid)
_GOLDEN_NUMBER = cast(func.substr(golden_record.c.golden_id, 2), Integer)
_CHUNK = 1000


def _fts_match(expression: str) -> ColumnElement[bool]:
    return literal_column("golden_search").op("MATCH", is_comparison=True)(expression)


def _phrase(text_: str) -> str:
    """`text_` as one FTS5 phrase: the string quoted, its quotes doubled, so no
    character in it is query syntax."""
    return '"' + text_.replace('"', '""') + '"'


def _escape_like(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
