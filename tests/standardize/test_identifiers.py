import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.standardize import InvalidValue, tax_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("DE123456789", "DE123456789"),
        ("de 123 456 789", "DE123456789"),
        ("DE-123.456.789", "DE123456789"),
        ("GB 123 4567 89", "GB123456789"),
        ("FR 40 303265045", "FR40303265045"),
        ("NL123456789B01", "NL123456789B01"),
        ("nl.1234.56.789.b.01", "NL123456789B01"),
        ("ATU12345678", "ATU12345678"),
        ("12/345/67890", "1234567890"),  # German Steuernummer
        ("12-3456789", "123456789"),  # US EIN
        ("1234", "1234"),
    ],
)
def test_tax_id(raw: str, expected: str) -> None:
    assert tax_id(raw) == expected


@pytest.mark.parametrize(
    "raw", ["DE1", "123", "DE 123 456 789 012 345 678 9", "DE_123456789", "DE#123456789", "ÄÖÜ123"]
)
def test_tax_id_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        tax_id(raw)
    assert error.value.code == "tax_id.invalid"
    assert raw in error.value.message


@pytest.mark.parametrize("raw", ["", "  ", " - / . "])
def test_tax_id_empty(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        tax_id(raw)
    assert error.value.code == "tax_id.empty"


@settings(max_examples=200)
@given(st.text())
def test_tax_id_only_raises_invalid_value(raw: str) -> None:
    try:
        result = tax_id(raw)
    except InvalidValue:
        return
    assert result.isascii()
    assert result.isalnum()
    assert 4 <= len(result) <= 20
    assert tax_id(result) == result
