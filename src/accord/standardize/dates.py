"""Dates and timestamps."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence

from accord.standardize.errors import InvalidValue, show

_MIN_YEAR = 1850
_MAX_YEAR = 2100
# Numeric formats ("%d.%m.%Y", "%Y-%m-%d", "%m/%d/%Y") are matched by our own regex, 10x
# faster than strptime; the parts are the patterns CPython's _strptime uses, so the results
# are the same. Every other format goes to strptime.
_PARTS = {
    "d": r"(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])",
    "m": r"(?P<m>1[0-2]|0[1-9]|[1-9])",
    "Y": r"(?P<Y>\d\d\d\d)",
}
_NUMERIC_FORMAT = re.compile(r"\A(?:%[dmY]|[-./])+\Z")
_FORMAT_PIECE = re.compile(r"%([dmY])|([-./])")
_DIRECTIVE = re.compile(r"%([dmY])")


def date(raw: str, formats: Sequence[str] = ("%Y-%m-%d",)) -> dt.date:
    """Return the date in the first format that fits; raises date.invalid/.out_of_range/.empty."""
    text = raw.strip()
    if not text:
        raise InvalidValue("date.empty", "the date is empty")
    value = _parse(text, formats)
    if value is None:
        shown = ", ".join(formats)
        raise InvalidValue("date.invalid", f"{show(raw)} is not a date in the format(s) {shown}")
    if not _MIN_YEAR <= value.year <= _MAX_YEAR:
        raise InvalidValue(
            "date.out_of_range", f"{show(raw)} is outside the years {_MIN_YEAR}-{_MAX_YEAR}"
        )
    return value


def _parse(text: str, formats: Sequence[str]) -> dt.date | None:
    for fmt in formats:
        pattern = _numeric_pattern(fmt)
        if pattern is not None:
            match = pattern.match(text)
            if match is None or match.end() != len(text):  # as strptime: no backtracking to fit
                continue
            try:
                return dt.date(int(match["Y"]), int(match["m"]), int(match["d"]))
            except ValueError:  # 30 February
                continue
        try:
            # A date has no time zone: the naive datetime is only a vehicle for .date().
            return dt.datetime.strptime(text, fmt).date()  # noqa: DTZ007
        except ValueError:
            continue
    return None


@functools.lru_cache(maxsize=256)
def _numeric_pattern(fmt: str) -> re.Pattern[str] | None:
    if not _NUMERIC_FORMAT.match(fmt) or sorted(_DIRECTIVE.findall(fmt)) != ["Y", "d", "m"]:
        return None  # each of day, month and year exactly once
    regex = _FORMAT_PIECE.sub(lambda m: _PARTS[m[1]] if m[1] else re.escape(m[2]), fmt)
    return re.compile(regex, re.IGNORECASE)


def timestamp(raw: str) -> dt.datetime:
    """Return an ISO 8601 timestamp as an aware UTC datetime; raises timestamp.invalid/.empty.

    A timestamp without an offset is taken as UTC: source systems that export local time
    without saying so must be mapped with an explicit offset, we do not guess their zone.
    A bare date is midnight UTC.
    """
    text = raw.strip()
    if not text:
        raise InvalidValue("timestamp.empty", "the timestamp is empty")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(
            "timestamp.invalid", f"{show(raw)} is not an ISO 8601 timestamp"
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # "0001-01-01T00:00+01:00" is before the first representable UTC
        raise InvalidValue(
            "timestamp.out_of_range", f"{show(raw)} is outside the representable range"
        ) from None
