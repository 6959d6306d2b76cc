"""Customer search (`store/search.py` behind `golden.customers.search`), the same on
SQLite (FTS5, trigram tokenizer) and PostgreSQL (pg_trgm): exact and substring hits,
one typo, filters, ranking, the count cap, the index kept in step with golden records
and built by migration 0017 over records already stored, and any text, however odd,
searched as plain text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text

from accord.errors import InputRejected
from accord.golden import customers
from accord.golden.content import display_name, search_text
from accord.govern.permissions import Actor, Role
from accord.store import golden as golden_store
from accord.store import search as search_store
from accord.store.engine import writing
from accord.store.migrate import upgrade
from tests.migrated import store_at

VIEWER = Actor("user", "viewer", Role.VIEWER)
_numbers = iter(range(1, 10**6))


def person(
    given: str,
    family: str,
    *,
    country: str = "DE",
    systems: tuple[str, ...] = ("crm",),
    **more: str,
) -> dict[str, Any]:
    """A golden customer's content as a resolve writes it, with member records from
    `systems`."""
    data: dict[str, Any] = {"kind": "person", "given_name": given, "family_name": family}
    data |= {"country": country, **more}
    return {"data": data, "systems": systems}


def store(
    conn: Connection, *customers_: dict[str, Any], backlog: golden_store.SearchBacklog | None = None
) -> list[str]:
    """Write these customers as golden records with their crosswalk rows; their ids.
    Their search entries are written now, or left to `backlog`."""
    ids = [golden_store.golden_id_text(next(_numbers)) for _ in customers_]
    rows, links = [], []
    for golden_id, customer in zip(ids, customers_, strict=True):
        keys = [f"{system}/{golden_id.lower()}-{system}" for system in customer["systems"]]
        name = display_name(customer["data"])
        rows.append(
            {
                "golden_id": golden_id,
                "entity_type": "customer",
                "display_name": name,
                "search_text": search_text(name, customer["data"], keys),
                "data": customer["data"],
                "lineage": {},
                "member_count": len(keys),
                "fingerprint": golden_id,
            }
        )
        links += [
            {
                "system": key.split("/")[0],
                "source_id": key.split("/")[1],
                "golden_id": golden_id,
                "rule": "test",
                "score": None,
                "evidence": {},
            }
            for key in keys
        ]
    golden_store.insert_golden(conn, rows, backlog)
    golden_store.link(conn, links, decided_by="test")
    return ids


def names(page: customers.CustomerPage) -> list[str]:
    return [item["display_name"] for item in page.items]


def found(engine: Engine, query: str, **filters: Any) -> list[str]:
    """The exact hits' names, in order."""
    with engine.connect() as conn:
        page = customers.search(conn, VIEWER, query, **filters)
    return [item["display_name"] for item in page.items if not item["near"]]


def near(engine: Engine, query: str, **filters: Any) -> list[str]:
    """The near matches' names, in order (after every exact hit)."""
    with engine.connect() as conn:
        page = customers.search(conn, VIEWER, query, **filters)
    flags = [item["near"] for item in page.items]
    assert flags == sorted(flags)  # exact hits first
    return [item["display_name"] for item in page.items if item["near"]]


@pytest.fixture
def company(engine: Engine) -> dict[str, str]:
    """A handful of customers, by name to golden id."""
    with writing(engine) as conn:
        ids = store(
            conn,
            person("Anna", "Schmidt", email="anna.schmidt@example.de", phone="+4930123456"),
            person("Hans", "Schmdit", city="Köln"),
            person("John", "Smith", country="GB", systems=("erp",), email="john.smith@mail.co.uk"),
            person("Zoë", "O'Brien_%", country="IE", systems=("billing",)),
            person("Taro", "山田", country="JP", systems=("crm", "erp")),
            person("Karl", "Schmidt", country="AT", systems=("erp",)),
        )
    return dict(
        zip(
            ["Anna Schmidt", "Hans Schmdit", "John Smith", "Zoë O'Brien_%", "Taro 山田", "Karl"],
            ids,
            strict=True,
        )
    )


def test_exact_and_substring_hits_in_name_order(engine: Engine, company: dict[str, str]) -> None:
    assert found(engine, "schmidt") == ["Anna Schmidt", "Karl Schmidt"]
    assert found(engine, "SCHMIDT") == ["Anna Schmidt", "Karl Schmidt"]
    assert found(engine, "chmid") == ["Anna Schmidt", "Karl Schmidt"]
    assert found(engine, "anna.schmidt@example") == ["Anna Schmidt"]
    assert found(engine, "+4930123") == ["Anna Schmidt"]
    assert found(engine, "köln") == ["Hans Schmdit"]
    assert found(engine, company["John Smith"]) == ["John Smith"]
    assert found(engine, company["John Smith"].lower()) == ["John Smith"]
    assert found(engine, company["John Smith"], country="DE") == []
    assert found(engine, "C9999999") == []
    assert found(engine, company["John Smith"].lower() + "-erp") == ["John Smith"]
    assert found(engine, "") == sorted(found(engine, ""))
    assert len(found(engine, "")) == 6


def test_short_queries_are_substrings_too(engine: Engine, company: dict[str, str]) -> None:
    assert found(engine, "zo") == ["Zoë O'Brien_%"]
    assert found(engine, "山田") == ["Taro 山田"]
    assert found(engine, "q") == []


def test_one_typo_finds_the_customer_after_the_exact_hits(
    engine: Engine, company: dict[str, str]
) -> None:
    # "Hans Schmdit" holds the text as typed: it comes first, the Schmidts after it
    assert found(engine, "schmdit") == ["Hans Schmdit"]
    assert set(near(engine, "schmdit")) == {"Anna Schmidt", "Karl Schmidt"}
    assert near(engine, "schmidt") == ["Hans Schmdit"]
    assert found(engine, "jon.smith@") == []
    assert near(engine, "jon.smith@") == ["John Smith"]
    assert near(engine, "Smiht")[:1] == ["John Smith"]
    assert near(engine, "Schmidt", country="AT") == []  # filters hold for near matches


def test_no_near_matches_for_what_nothing_resembles(
    engine: Engine, company: dict[str, str]
) -> None:
    assert near(engine, "xylophone") == []
    assert near(engine, "qqqq") == []
    assert near(engine, "smi") == []  # too short to guess at


def test_filters_by_system_country_and_status(engine: Engine, company: dict[str, str]) -> None:
    assert found(engine, "schmidt", system="erp") == ["Karl Schmidt"]
    assert found(engine, "", system="erp") == ["John Smith", "Karl Schmidt", "Taro 山田"]
    assert found(engine, "schmidt", country="AT") == ["Karl Schmidt"]
    assert found(engine, "", country="gb") == ["John Smith"]
    assert found(engine, "", system="erp", country="JP") == ["Taro 山田"]
    assert found(engine, "", system="nowhere") == []
    with writing(engine) as conn:
        golden_store.retire(
            conn, {company["Karl"]: company["Anna Schmidt"]}, [company["Zoë O'Brien_%"]]
        )
    assert found(engine, "schmidt") == ["Anna Schmidt"]
    assert found(engine, "schmidt", status="merged") == ["Karl Schmidt"]
    assert found(engine, "", status="retired") == ["Zoë O'Brien_%"]
    with engine.connect() as conn, pytest.raises(InputRejected, match="status must be one of"):
        customers.search(conn, VIEWER, "", status="deleted")


def test_the_count_stops_at_its_cap(
    engine: Engine, company: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_store, "COUNT_CAP", 3)
    with engine.connect() as conn:
        page = customers.search(conn, VIEWER, "", limit=2)
        assert (page.total, page.more, len(page.items)) == (3, True, 2)
        exact = customers.search(conn, VIEWER, "schmidt", limit=2)
        assert (exact.total, exact.more) == (3, False)  # two exact hits, one near
        deep = customers.search(conn, VIEWER, "", limit=2, offset=4)
        assert (deep.total, deep.more, len(deep.items)) == (6, False, 2)


def test_pages_run_on_from_exact_hits_into_near_matches(
    engine: Engine, company: dict[str, str]
) -> None:
    with engine.connect() as conn:
        everything = names(customers.search(conn, VIEWER, "schmdit"))
        paged = [
            name
            for offset in range(len(everything) + 1)
            for name in names(customers.search(conn, VIEWER, "schmdit", limit=1, offset=offset))
        ]
        total = customers.search(conn, VIEWER, "schmdit", limit=1).total
    assert paged == everything
    assert total == len(everything)


@pytest.mark.parametrize(
    "query",
    [
        "%",
        "_",
        "a%b",
        "\\",
        "'",
        "''",
        '"',
        '""',
        '"schmidt"',
        "schmidt*",
        "*",
        "NEAR(anna schmidt)",
        "anna AND schmidt",
        "anna OR schmidt",
        "NOT anna",
        "-anna",
        "anna -schmidt",
        "(anna)",
        "search_text:anna",
        "^anna",
        "{search_text}: anna",
        "'; DROP TABLE golden_record; --",
        '" OR 1=1 --',
        "anna' OR '1'='1",
        "1; SELECT * FROM users",
        "\x00",
        "a\x00b",
    ],
)
def test_query_syntax_is_plain_text(engine: Engine, company: dict[str, str], query: str) -> None:
    with engine.connect() as conn:
        page = customers.search(conn, VIEWER, query)
    exact = [item["display_name"] for item in page.items if not item["near"]]
    # only what holds the characters literally: Zoë's name has ', _ and %; a lone NUL is
    # stripped, leaving the empty search (everyone); no operator of FTS5, LIKE or SQL works
    expected = {"%": ["Zoë O'Brien_%"], "_": ["Zoë O'Brien_%"], "'": ["Zoë O'Brien_%"]}
    if query == "\x00":
        assert exact == found(engine, "")
    else:
        assert exact == expected.get(query, []), query
    assert found(engine, "schmidt") == ["Anna Schmidt", "Karl Schmidt"]  # nothing dropped


def test_syntax_characters_are_found_where_they_are(engine: Engine) -> None:
    with writing(engine) as conn:
        store(
            conn,
            person("AC/DC", '"Rock" (Band) - NEAR*'),
            person("Fish", "AND Chips"),
            person("Plain", "Other"),
        )
    assert found(engine, '"rock" (band)') == ['AC/DC "Rock" (Band) - NEAR*']
    assert found(engine, "- near*") == ['AC/DC "Rock" (Band) - NEAR*']
    assert found(engine, "and chips") == ["Fish AND Chips"]
    assert found(engine, "a%b") == []
    assert found(engine, "_") == []


def test_unicode_accents_and_cjk(engine: Engine, company: dict[str, str]) -> None:
    assert found(engine, "ZOË") == ["Zoë O'Brien_%"]
    assert found(engine, "o'brien_%") == ["Zoë O'Brien_%"]
    assert found(engine, "山田") == ["Taro 山田"]
    assert found(engine, "taro 山田") == ["Taro 山田"]


def test_a_long_query_is_searched_and_a_longer_one_refused(
    engine: Engine, company: dict[str, str]
) -> None:
    assert found(engine, "x" * 200) == []
    assert found(engine, "anna schmidt " + "y" * 187) == []
    with engine.connect() as conn, pytest.raises(InputRejected, match="at most 200"):
        customers.search(conn, VIEWER, "x" * 201)


def test_the_index_follows_rewritten_golden_records(
    engine: Engine, company: dict[str, str]
) -> None:
    with writing(engine) as conn:
        row = golden_store.get(conn, company["John Smith"])
        assert row is not None
        data = row["data"] | {"family_name": "Smythe", "email": "js@new.example"}
        name = display_name(data)
        golden_store.update_golden(
            conn,
            [
                {
                    "golden_id": row["golden_id"],
                    "display_name": name,
                    "search_text": search_text(name, data, []),
                    "data": data,
                    "lineage": {},
                    "member_count": 1,
                    "fingerprint": "changed",
                }
            ],
        )
    assert found(engine, "smythe") == ["John Smythe"]
    assert found(engine, "john.smith@mail") == []


def test_a_write_of_many_batches_indexes_its_customers_at_its_end(
    engine: Engine, company: dict[str, str]
) -> None:
    """A resolve's batches leave their search entries to a backlog, written once at
    the end of the write, in its transaction: then new and rewritten customers are
    found as if each batch had indexed its own."""
    backlog = golden_store.SearchBacklog()
    with writing(engine) as conn:
        (ada,) = store(conn, person("Ada", "Lovelace"), backlog=backlog)
        (grace,) = store(conn, person("Grace", "Hopper"), backlog=backlog)
        row = golden_store.get(conn, company["John Smith"])
        assert row is not None
        data = row["data"] | {"family_name": "Smythe"}
        name = display_name(data)
        rewritten = {"display_name": name, "search_text": search_text(name, data, [])}
        rewritten |= {"data": data, "lineage": {}, "member_count": 1, "fingerprint": "new"}
        golden_store.update_golden(conn, [rewritten | {"golden_id": row["golden_id"]}], backlog)
        if conn.dialect.name == "sqlite":  # PostgreSQL's index is on the column itself
            waiting = conn.execute(
                text("SELECT count(*) FROM golden_search WHERE rowid IN (:a, :g)"),
                {"a": int(ada[1:]), "g": int(grace[1:])},
            )
            assert waiting.scalar_one() == 0
        assert backlog.new == [ada, grace] and list(backlog.rewritten) == [row["golden_id"]]
        backlog.index(conn)
        assert backlog.new == [] and backlog.rewritten == {}
    assert found(engine, "lovelace") == ["Ada Lovelace"]
    assert found(engine, "hopper") == ["Grace Hopper"]
    assert found(engine, "smythe") == ["John Smythe"]
    assert found(engine, "john smith") == []


def test_the_index_is_rebuilt_from_the_golden_records(
    engine: Engine, company: dict[str, str]
) -> None:
    """After golden records were put back by other means (a copy restored), `rebuild`
    makes the index theirs again, and new customers can be indexed beside them."""
    before = found(engine, "smith")
    with writing(engine) as conn:
        if conn.dialect.name == "sqlite":  # the index as a restore leaves it: stale
            conn.execute(text("DELETE FROM golden_search"))
            conn.execute(text("INSERT INTO golden_search (rowid, search_text) VALUES (9, 'x')"))
        search_store.rebuild(conn)
    assert found(engine, "smith") == before
    with writing(engine) as conn:
        store(conn, person("Ada", "Lovelace"))
    assert found(engine, "lovelace") == ["Ada Lovelace"]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=st.text(max_size=200))
def test_any_text_is_searched_without_error(engine: Engine, query: str) -> None:
    with engine.connect() as conn:
        page = customers.search(conn, VIEWER, query, country=query[:2] or None, system=query[:5])
    assert page.total >= len(page.items)


# ---------------------------------------------------------------- migration 0017


def test_migration_0017_indexes_the_customers_already_stored(engine: Engine, tmp_path: Any) -> None:
    with store_at("0016", engine.dialect.name, tmp_path) as old:
        with writing(old) as conn, _without_index_upkeep():
            store(conn, person("Anna", "Schmidt"), person("John", "Smith", country="GB"))
        upgrade(old)
        assert found(old, "schmidt") == ["Anna Schmidt"]
        assert near(old, "smiht") == ["John Smith"]
        with writing(old) as conn:
            store(conn, person("Karl", "Schmidt"))
        assert found(old, "schmidt") == ["Anna Schmidt", "Karl Schmidt"]


@contextmanager
def _without_index_upkeep() -> Iterator[None]:
    """Golden records written as code before migration 0017 wrote them."""
    kept = search_store.index_new
    search_store.index_new = lambda conn, golden_ids: None  # type: ignore[assignment]
    try:
        yield
    finally:
        search_store.index_new = kept
