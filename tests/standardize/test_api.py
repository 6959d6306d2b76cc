import inspect
import pickle

import pytest

from accord import standardize
from accord.standardize import InvalidValue


def test_invalid_value() -> None:
    error = InvalidValue("email.invalid", "'x' is not an email address")
    assert isinstance(error, ValueError)
    assert error.code == "email.invalid"
    assert error.message == "'x' is not an email address"
    assert str(error) == error.message
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (copy.code, copy.message) == (error.code, error.message)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(InvalidValue) as error:
        standardize.email("x" * 10_000)
    assert len(error.value.message) < 300
    assert "10000 characters" in error.value.message


_SIGNATURES = {
    "email": "(raw: 'str') -> 'str'",
    "phone": "(raw: 'str', default_region: 'str | None' = None) -> 'str'",
    "clean_text": "(raw: 'str') -> 'str'",
    "person_name": "(raw: 'str') -> 'str'",
    "split_full_name": "(raw: 'str') -> 'SplitName'",
    "name_key": "(raw: 'str') -> 'str'",
    "given_name_root": "(raw: 'str') -> 'str'",
    "company_name": "(raw: 'str') -> 'CompanyName'",
    "country": "(raw: 'str') -> 'str'",
    "postcode": "(raw: 'str', country: 'str | None' = None) -> 'str'",
    "street_key": "(raw: 'str') -> 'str'",
    "date": "(raw: 'str', formats: 'Sequence[str]' = ('%Y-%m-%d',)) -> 'dt.date'",
    "timestamp": "(raw: 'str') -> 'dt.datetime'",
    "tax_id": "(raw: 'str') -> 'str'",
}


@pytest.mark.parametrize(("name", "signature"), sorted(_SIGNATURES.items()))
def test_public_api(name: str, signature: str) -> None:
    function = getattr(standardize, name)
    assert str(inspect.signature(function)) == signature
    assert function.__doc__
    assert name in standardize.__all__


def test_dataclasses_are_frozen() -> None:
    split = standardize.SplitName(given_name="Hans", family_name="Müller")
    with pytest.raises(AttributeError):
        split.given_name = "Fritz"  # type: ignore[misc]
    company = standardize.CompanyName(name="Müller", legal_form="GmbH", key="muller")
    with pytest.raises(AttributeError):
        company.key = "x"  # type: ignore[misc]
