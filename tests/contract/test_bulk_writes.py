"""Bulk writes (`store.dialect.insert_rows`) and JSON columns' text
(`store.engine.json_text`, read back by `json_value`), the same on SQLite and PostgreSQL: a row
written through the driver's executemany reads back, and is stored, exactly as the same
row written through SQLAlchemy; with `replace_on`, a row whose key exists replaces the
stored values, but for the columns kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, text

from accord.store.dialect import insert_rows
from accord.store.engine import JSONText, json_text, json_value, writing
from accord.store.tables import crosswalk, golden_record

# Text as intake lets it through: no NUL (PostgreSQL cannot hold it; intake quarantines
# rows with one) and no lone surrogates (intake replaces them).
texts = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    # PostgreSQL's jsonb reads a float of 1e16 or more back as an integer, either way
    | st.floats(min_value=-1e15, max_value=1e15, allow_nan=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
NOW = datetime(2026, 11, 23, 7, 30, 1, 123456, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def _golden(golden_id: str, data: Any, at: datetime) -> dict[str, Any]:
    return {
        "golden_id": golden_id,
        "entity_type": "customer",
        "status": "active",
        "merged_into": None,
        "display_name": "Anna Schmidt",
        "search_text": "anna schmidt",
        "data": {"value": data},
        "lineage": {"given_name": {"value": data, "system": "crm"}},
        "member_count": 1,
        "fingerprint": "f" * 64,
        "created_at": at,
        "updated_at": at,
    }


def _read(engine: Engine, golden_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(golden_record).where(golden_record.c.golden_id == golden_id))
        return dict(row.one()._mapping)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=json_values, seconds=st.integers(min_value=0, max_value=10**9))
def test_a_bulk_row_reads_back_as_a_row_written_through_sqlalchemy(
    engine: Engine, data: Any, seconds: int
) -> None:
    at = NOW - timedelta(seconds=seconds, microseconds=seconds % 999_999)
    with writing(engine) as conn:
        conn.execute(delete(golden_record))
        conn.execute(golden_record.insert(), [_golden("C0000001", data, at)])
        insert_rows(conn, golden_record, [_golden("C0000002", data, at)])
    through_sqlalchemy, through_driver = _read(engine, "C0000001"), _read(engine, "C0000002")
    assert through_driver | {"golden_id": "C0000001"} == through_sqlalchemy
    assert through_driver["data"] == {"value": data}
    assert through_driver["created_at"] == at
    if engine.dialect.name == "sqlite":  # stored as the same text, so it sorts the same
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT created_at, data, lineage FROM golden_record ORDER BY golden_id")
            ).all()
        assert stored[0] == stored[1]


@pytest.mark.parametrize(
    "data", [{"a": [1, 2.5, None, "é"], "b": {"c": True}}, [1e-07, 2**70, "\u2028"], "text"]
)
def test_a_document_written_as_text_already_is_stored_as_that_document(
    engine: Engine, data: Any
) -> None:
    """`JSONText`: held as text (the explanations of a resolve's review pairs), stored as
    the same document as the value it was written from, through either path."""
    with writing(engine) as conn:
        conn.execute(delete(golden_record))
        insert_rows(conn, golden_record, [_golden("C0000001", data, NOW)])
        as_text = _golden("C0000002", data, NOW) | {"data": JSONText.of({"value": data})}
        insert_rows(conn, golden_record, [as_text])
        conn.execute(golden_record.insert(), [as_text | {"golden_id": "C0000003"}])
    for golden_id in ("C0000001", "C0000002", "C0000003"):
        assert _read(engine, golden_id)["data"] == {"value": data}


def test_replace_on_replaces_the_other_columns_of_an_existing_key_but_those_kept(
    engine: Engine,
) -> None:
    def link(
        source_id: str, golden_id: str, score: float | None, at: datetime = NOW
    ) -> dict[str, Any]:
        return {
            "system": "crm",
            "source_id": source_id,
            "golden_id": golden_id,
            "rule": "model",
            "score": score,
            "evidence": {"linked_to": ["erp", "7"]} if score else {},
            "previous_golden_id": None,
            "decided_by": "test",
            "decided_at": at,
        }

    with writing(engine) as conn:
        insert_rows(conn, golden_record, [_golden("C0000001", 1, NOW), _golden("C0000002", 2, NOW)])
        insert_rows(conn, crosswalk, [link("1", "C0000001", 0.9), link("2", "C0000001", None)])
        insert_rows(
            conn,
            crosswalk,
            [link("2", "C0000002", 0.97, LATER), link("3", "C0000002", None, LATER)],
            replace_on=["system", "source_id"],
            keep=["decided_at"],
        )
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                crosswalk.c.source_id,
                crosswalk.c.golden_id,
                crosswalk.c.score,
                crosswalk.c.evidence,
                crosswalk.c.decided_at,
            ).order_by(crosswalk.c.source_id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("1", "C0000001", 0.9, {"linked_to": ["erp", "7"]}, NOW),
        ("2", "C0000002", 0.97, {"linked_to": ["erp", "7"]}, NOW),  # replaced, but kept
        ("3", "C0000002", None, {}, LATER),
    ]


def test_no_rows_writes_nothing(engine: Engine) -> None:
    with writing(engine) as conn:
        insert_rows(conn, golden_record, [])
        assert conn.execute(select(golden_record)).first() is None


any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats()  # NaN and infinities too
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text() | st.integers(), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(any_json)
def test_json_columns_hold_what_the_standard_library_would(value: Any) -> None:
    """`json_text` (orjson where it gives the same document) reads back as the standard
    library's text of the same value, NaN, infinities and huge integers included."""
    ours, theirs = json.loads(json_text(value)), json.loads(json.dumps(value))
    assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)


def _typed(value: Any) -> Any:
    """`value` with each number's type beside it, NaN made comparable."""
    if isinstance(value, dict):
        return {repr(k): _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, repr(value))


# floats of every size and precision: mantissa times a power of ten
floats_of_any_size = st.builds(
    lambda mantissa, power: mantissa * 10.0**power,
    st.floats(min_value=-10, max_value=10, allow_nan=False),
    st.integers(min_value=-320, max_value=300),
)


@settings(max_examples=1000)
@given(any_json | st.lists(floats_of_any_size | st.integers(), max_size=4))
def test_json_columns_read_back_as_the_standard_library_reads_them(value: Any) -> None:
    """`json_value` (orjson where it reads the same values) gives what `json.loads` gives,
    type for type: floats of every size, integers beyond 64 bits, NaN, infinities."""
    for document in (json.dumps(value), json_text(value), json.dumps(value, indent=1)):
        assert _typed(json_value(document)) == _typed(json.loads(document))


@pytest.mark.parametrize(
    "document",
    [
        '{"id": 12345678901234567890123}',  # beyond 64 bits: orjson would make it a float
        "[-9223372036854775809, 18446744073709551616]",
        '{"amount": NaN, "limit": Infinity, "floor": -Infinity}',
        '["\\ud800 is a lone surrogate"]',
        '{"a": 1, "a": 2}',
        "[1e400, 1.0, -0.0, 5e-324, 1.7976931348623157e308]",
        '{"code": "12345678901234567890"}',  # long digits in text: read by either, the same
    ],
)
def test_documents_orjson_reads_otherwise_read_as_the_standard_library_reads_them(
    document: str,
) -> None:
    assert _typed(json_value(document)) == _typed(json.loads(document))


@pytest.mark.parametrize("document", ["", "{", "[1,]", "nul", '{"a": 1} x'])
def test_a_broken_document_is_refused_as_the_standard_library_refuses_it(document: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json_value(document)


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, tzinfo=UTC), {"tags": {"a"}}, object()])
def test_json_columns_refuse_what_the_standard_library_refuses(value: Any) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        json_text(value)


def test_a_write_transaction_can_have_a_larger_page_cache_for_its_length(
    sqlite_engine: Engine,
) -> None:
    with writing(sqlite_engine, cache_mib=64) as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -64 * 1024
        insert_rows(conn, golden_record, [_golden("C0000001", 1, NOW)])
    with sqlite_engine.connect() as conn:  # back to the default, and committed
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000
        assert _read(sqlite_engine, "C0000001")["data"] == {"value": 1}
