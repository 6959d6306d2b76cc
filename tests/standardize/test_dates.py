import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.standardize import InvalidValue, date, timestamp

_GERMAN = ("%d.%m.%Y",)
_MANY = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y%m%d")


@pytest.mark.parametrize(
    ("raw", "formats", "expected"),
    [
        ("1984-02-29", ("%Y-%m-%d",), dt.date(1984, 2, 29)),
        (" 1984-02-29 ", ("%Y-%m-%d",), dt.date(1984, 2, 29)),
        ("1984-2-9", ("%Y-%m-%d",), dt.date(1984, 2, 9)),
        ("29.02.1984", _GERMAN, dt.date(1984, 2, 29)),
        ("9.2.1984", _GERMAN, dt.date(1984, 2, 9)),
        ("02/29/1984", ("%m/%d/%Y",), dt.date(1984, 2, 29)),  # US
        ("29/02/1984", ("%d/%m/%Y",), dt.date(1984, 2, 29)),  # UK, FR
        ("29-02-1984", ("%d-%m-%Y",), dt.date(1984, 2, 29)),  # NL
        ("19840229", _MANY, dt.date(1984, 2, 29)),
        ("29.02.1984", _MANY, dt.date(1984, 2, 29)),
        ("1850-01-01", ("%Y-%m-%d",), dt.date(1850, 1, 1)),
        ("2100-12-31", ("%Y-%m-%d",), dt.date(2100, 12, 31)),
    ],
)
def test_date(raw: str, formats: tuple[str, ...], expected: dt.date) -> None:
    assert date(raw, formats) == expected


@pytest.mark.parametrize(
    ("raw", "formats"),
    [
        ("1985-02-29", ("%Y-%m-%d",)),  # not a leap year
        ("2024-13-01", ("%Y-%m-%d",)),
        ("29.02.1984", ("%Y-%m-%d",)),  # wrong format: not guessed
        ("1984-02-29", _GERMAN),
        ("02/29/1984", ("%d/%m/%Y",)),
        ("yesterday", _MANY),
        ("1984-02-29T10:00:00", ("%Y-%m-%d",)),
    ],
)
def test_date_invalid(raw: str, formats: tuple[str, ...]) -> None:
    with pytest.raises(InvalidValue) as error:
        date(raw, formats)
    assert error.value.code == "date.invalid"
    assert raw in error.value.message
    assert formats[0] in error.value.message


@pytest.mark.parametrize("raw", ["1849-12-31", "0001-01-01", "2101-01-01", "9999-12-31"])
def test_date_out_of_range(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        date(raw)
    assert error.value.code == "date.out_of_range"


def test_date_empty() -> None:
    with pytest.raises(InvalidValue) as error:
        date("  ")
    assert error.value.code == "date.empty"


@settings(max_examples=300)
@given(st.text(), st.sampled_from([("%Y-%m-%d",), _GERMAN, _MANY, ("%d %B %Y", "%j/%y")]))
def test_date_only_raises_invalid_value(raw: str, formats: tuple[str, ...]) -> None:
    try:
        value = date(raw, formats)
    except InvalidValue:
        return
    assert 1850 <= value.year <= 2100


@settings(max_examples=200)
@given(st.dates(min_value=dt.date(1850, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_date_round_trips(value: dt.date) -> None:
    assert date(value.isoformat()) == value
    assert date(value.strftime("%d.%m.%Y"), _GERMAN) == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-05T14:30:00Z", dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.UTC)),
        ("2024-03-05T14:30:00+01:00", dt.datetime(2024, 3, 5, 13, 30, tzinfo=dt.UTC)),
        ("2024-03-05T14:30:00.123456-05:00", dt.datetime(2024, 3, 5, 19, 30, 0, 123456, dt.UTC)),
        ("2024-03-05 14:30:00", dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.UTC)),  # naive: UTC
        ("2024-03-05", dt.datetime(2024, 3, 5, tzinfo=dt.UTC)),
        (" 2024-03-05T14:30Z ", dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.UTC)),
    ],
)
def test_timestamp(raw: str, expected: dt.datetime) -> None:
    result = timestamp(raw)
    assert result == expected
    assert result.tzinfo is dt.UTC


@pytest.mark.parametrize("raw", ["05.03.2024 14:30", "yesterday", "2024-03-05T25:00:00Z", "1"])
def test_timestamp_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        timestamp(raw)
    assert error.value.code == "timestamp.invalid"


def test_timestamp_out_of_range() -> None:
    with pytest.raises(InvalidValue) as error:
        timestamp("0001-01-01T00:00:00+01:00")
    assert error.value.code == "timestamp.out_of_range"


@settings(max_examples=300)
@given(st.one_of(st.text(), st.datetimes(timezones=st.timezones()).map(dt.datetime.isoformat)))
def test_timestamp_only_raises_invalid_value(raw: str) -> None:
    try:
        value = timestamp(raw)
    except InvalidValue:
        return
    assert value.tzinfo is dt.UTC


_NUMERIC_FORMATS = ["%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%Y%m%d", "%d%m%Y"]


def _strptime_date(raw: str, fmt: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(raw, fmt).date()  # noqa: DTZ007 - a date has no zone
    except ValueError:
        return None


@settings(max_examples=500)
@given(
    st.one_of(
        st.text(alphabet="0123456789-./ ", max_size=12),
        st.text(alphabet="0123 \u0661\u0662\u0663-.", max_size=10),  # Arabic-Indic digits too
        st.dates().map(lambda d: d.strftime("%Y%m%d")),
        st.dates().map(lambda d: f"{d.day}.{d.month}.{d.year:04d}"),
    ),
    st.sampled_from(_NUMERIC_FORMATS),
)
def test_numeric_fast_path_agrees_with_strptime(raw: str, fmt: str) -> None:
    expected = _strptime_date(raw.strip(), fmt)
    if expected is not None and not 1850 <= expected.year <= 2100:
        expected = None  # out of range: raised, tested elsewhere
    try:
        result: dt.date | None = date(raw, (fmt,))
    except InvalidValue:
        result = None
    assert result == expected
