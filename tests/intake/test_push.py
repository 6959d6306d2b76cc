"""The push channel's core (`intake.push`), below HTTP: any body is read as a batch or
refused with InputRejected, never another error; every record of a batch is answered
for; requests racing with one Idempotency-Key store one batch."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from accord.errors import InputRejected
from accord.govern.permissions import Actor, Role
from accord.intake.push import Batch, PushAnswer, push, read_batch
from accord.store.tables import load, source_record
from accord.workspace import Workspace
from tests.factories import crm_row

CRM = Actor("system", "crm", Role.SYSTEM)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300)
@given(st.binary(max_size=300), st.sampled_from([None, "gzip", "identity", "GZIP ", "br"]))
def test_any_body_is_a_batch_or_refused_as_input(body: bytes, encoding: str | None) -> None:
    try:
        batch = read_batch(body, encoding, max_field_bytes=100)
    except InputRejected:
        return
    assert batch.records


@settings(max_examples=300)
@given(st.lists(json_values, min_size=1, max_size=8), st.booleans())
def test_every_record_of_a_batch_is_read_or_has_its_reasons(
    records: list[Any], gzipped: bool
) -> None:
    body = json.dumps({"records": records}).encode()
    batch = read_batch(
        gzip.compress(body) if gzipped else body, "gzip" if gzipped else None, max_field_bytes=64
    )
    assert len(batch.records) == len(records)
    for position, (raw, sent) in enumerate(zip(batch.records, records, strict=True)):
        assert raw.location == f"records[{position}]"
        if raw.fields is None:
            assert raw.reasons and "\x00" not in raw.raw
        else:
            assert raw.fields == sent and isinstance(sent, dict) and not raw.reasons


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    body = f'{{"records": [{{"a": {constant}}}]}}'.encode()
    with pytest.raises(InputRejected, match=f"{constant} is not a JSON number"):
        read_batch(body, None, max_field_bytes=9)


def test_the_hash_is_of_the_document_so_a_gzipped_retry_is_the_same_request() -> None:
    body = json.dumps({"records": [crm_row("C1")]}).encode()
    plain: Batch = read_batch(body, None, max_field_bytes=100)
    packed = read_batch(gzip.compress(body, compresslevel=1), "gzip", max_field_bytes=100)
    assert plain.request_hash == packed.request_hash


def test_requests_racing_with_one_idempotency_key_store_one_batch(workspace: Workspace) -> None:
    body = json.dumps({"records": [crm_row(f"C{i}") for i in range(200)]}).encode()
    answers: list[PushAnswer] = []
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        answers.append(
            push(
                workspace.engine,
                workspace.project,
                "crm",
                body,
                content_encoding=None,
                idempotency_key="race",
                actor=CRM,
            )
        )

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4
    assert sorted(a.replayed for a in answers) == [False, True, True, True]
    assert len({json.dumps(a.as_dict(), sort_keys=True) for a in answers}) == 1
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(load)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(source_record)).scalar_one() == 200
