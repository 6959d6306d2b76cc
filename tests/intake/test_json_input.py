"""JSON in (push, webhooks, broker): the fast paths give the standard library's answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import InputRejected
from accord.intake.push import parse_json, read_batch
from accord.intake.readers import record_of, unsafe_text

_TEXT = st.text(alphabet=st.characters(codec=None), max_size=12) | st.sampled_from(
    ["\x00", "a\\u0000b", "\\u0000", "\ud800", "x\udfffy", "ü", "\\"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _standard(document: bytes) -> Any:
    return json.loads(document.decode("utf-8"))


@settings(max_examples=400)
@given(_VALUES)
def test_parse_json_reads_what_the_standard_library_reads(value: Any) -> None:
    document = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        expected = _standard(document)
    except (UnicodeDecodeError, ValueError):
        with pytest.raises((UnicodeDecodeError, ValueError)):
            parse_json(document)
        return
    got = parse_json(document)
    assert got == expected
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)  # types too


def test_parse_json_keeps_integers_beyond_64_bits_exact() -> None:
    assert parse_json(b'{"n": 123456789012345678901234567890}') == {
        "n": 123456789012345678901234567890
    }
    with pytest.raises(ValueError, match="NaN"):
        parse_json(b'{"n": NaN}')


def test_a_body_with_nan_is_refused_with_the_reason() -> None:
    with pytest.raises(InputRejected, match="NaN"):
        read_batch(b'{"records": [{"Id": NaN}]}', None, max_field_bytes=1000)


def _precise(item: Any) -> str | None:
    """record_of's verdict on unsafe text, by walking every key and value."""
    return unsafe_text(item)


@settings(max_examples=400)
@given(st.dictionaries(_TEXT, _VALUES, max_size=5))
def test_record_of_finds_every_nul_and_lone_surrogate(item: dict[str, Any]) -> None:
    raw = record_of(item, "records[0]", max_field_bytes=1_000_000)
    unsafe = _precise(item)
    if unsafe is None:
        assert raw.fields == item
        assert raw.raw == json.dumps(item, ensure_ascii=False)
    else:
        assert raw.fields is None
        assert [r.code for r in raw.reasons] == ["encoding.invalid"]
