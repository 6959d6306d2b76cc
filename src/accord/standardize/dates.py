"""Dates and timestamps."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from accord.standardize.errors import InvalidValue, show

_MIN_YEAR = 1850
_MAX_YEAR = 2100
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


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
        if fmt == "%Y-%m-%d" and _ISO_DATE.match(text):  # fast path, same result as strptime
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                continue
        try:
            # A date has no time zone: the naive datetime is only a vehicle for .date().
            return dt.datetime.strptime(text, fmt).date()  # noqa: DTZ007
        except ValueError:
            continue
    return None


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
