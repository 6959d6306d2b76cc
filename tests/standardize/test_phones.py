import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.standardize import InvalidValue, phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+49 30 12345678", None, "+493012345678"),
        ("+49 (0)30 12345678", None, "+493012345678"),
        ("+49 (0) 30 / 123 456 78", "DE", "+493012345678"),
        ("0049 30 12345678", None, "+493012345678"),
        ("0049-30-12345678", "FR", "+493012345678"),
        ("030 12345678", "DE", "+493012345678"),
        ("030/12345678", "de", "+493012345678"),
        ("0171 1234567", "DE", "+491711234567"),
        ("(212) 555-0187", "US", "+12125550187"),
        ("212.555.0187", "US", "+12125550187"),
        ("+1 (212) 555-0187", None, "+12125550187"),
        ("0049 30 12345678", "US", "+493012345678"),  # 00 is not the US prefix, still clear
        ("011 49 30 12345678", "US", "+493012345678"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 (0)20 7946 0958", None, "+442079460958"),
        ("07911 123456", "GB", "+447911123456"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("+33 1 42 68 53 00", None, "+33142685300"),
        ("020-1234567", "NL", "+31201234567"),
        ("06-12345678", "NL", "+31612345678"),
        ("0662 123456", "AT", "+43662123456"),
        ("0011 49 30 12345678", "AU", "+493012345678"),  # Australia's own prefix
    ],
)
def test_phone(raw: str, region: str | None, expected: str) -> None:
    assert phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "code"),
    [
        ("030 12345678", None, "phone.no_region"),  # never guessed
        ("(212) 555-0187", None, "phone.no_region"),
        ("030 12345678", "XX", "phone.no_region"),  # an unknown region is none
        ("hello", "DE", "phone.invalid"),
        ("+999 1234567", None, "phone.invalid"),
        ("+49 30 1", None, "phone.invalid"),
        ("+1 212 555 0187 ext. 12", None, "phone.extension"),
        ("+1 212 555 0187 x12", None, "phone.extension"),
        ("+1 555 555 5555", None, "phone.invalid"),  # possible, but not a real number
        ("1", "DE", "phone.invalid"),
        ("  ", "DE", "phone.empty"),
    ],
)
def test_phone_invalid(raw: str, region: str | None, code: str) -> None:
    with pytest.raises(InvalidValue) as error:
        phone(raw, region)
    assert error.value.code == code


@pytest.mark.parametrize(
    ("raw", "code"),
    [("+49 3", "phone.too_short"), ("+49 30 12345678901234567", "phone.too_long")],
)
def test_phone_length_codes(raw: str, code: str) -> None:
    with pytest.raises(InvalidValue) as error:
        phone(raw)
    assert error.value.code == code


def _assert_valid_e164(result: str) -> None:
    assert result.startswith("+")
    assert result[1:].isdigit()
    assert phonenumbers.is_valid_number(phonenumbers.parse(result))


@settings(max_examples=150)
@given(st.text(), st.sampled_from([None, "DE", "GB", "US", "FR", "NL", "AT", "CH"]))
def test_phone_only_raises_invalid_value(raw: str, region: str | None) -> None:
    try:
        result = phone(raw, region)
    except InvalidValue:
        return
    _assert_valid_e164(result)


_PHONE_CHARS = st.text(alphabet="+0123456789 ()-./", max_size=25)


@settings(max_examples=150)
@given(_PHONE_CHARS, st.sampled_from([None, "DE", "GB", "US", "FR", "NL"]))
def test_phone_on_phone_like_text(raw: str, region: str | None) -> None:
    try:
        result = phone(raw, region)
    except InvalidValue:
        return
    _assert_valid_e164(result)
    assert phone(result) == result


@settings(max_examples=100)
@given(st.sampled_from(["DE", "GB", "US", "FR", "NL", "AT", "CH", "BE", "IT", "ES"]))
def test_phone_accepts_example_numbers(region: str) -> None:
    example = phonenumbers.example_number(region)
    assert example is not None
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert phone(national, region) == e164
    assert phone(e164) == e164
