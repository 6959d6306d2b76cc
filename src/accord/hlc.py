"""A hybrid logical clock: the stamp each source record gets at intake, by which
`most_recent` survivorship orders records (docs/survivorship.md).

A stamp is (physical milliseconds since the epoch, logical counter). Receiving a record
moves the clock to the latest of: Accord's wall clock, the last stamp given, and the
source's own change time, that last one believed only up to `max_skew` ahead of the wall
clock (a source whose clock runs far ahead would otherwise win every comparison for as
long as it stays ahead). When the physical part does not move, the logical counter
does. So stamps only grow, are never behind a source's plausible change time, and no two
are equal. Pure: the store keeps the clock's last stamp (`store/clock.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

LOGICAL_LIMIT = 1_000_000  # logical values per millisecond; past it, the next millisecond
_PHYSICAL_DIGITS = 15
_LOGICAL_DIGITS = 6
TEXT_LENGTH = _PHYSICAL_DIGITS + 1 + _LOGICAL_DIGITS


@dataclass(frozen=True, order=True)
class Stamp:
    physical: int  # milliseconds since 1970-01-01 UTC
    logical: int = 0

    def text(self) -> str:
        """Fixed-width text that sorts as the stamps do: `000001719312345678.000012`."""
        return _text(self.physical, self.logical)

    @classmethod
    def parse(cls, text: str) -> Stamp:
        physical, _, logical = text.partition(".")
        return cls(int(physical), int(logical or 0))

    def packed(self) -> int:
        """One 64-bit integer that orders as the stamps do (until the year 2262)."""
        return self.physical * LOGICAL_LIMIT + self.logical

    @classmethod
    def unpack(cls, value: int) -> Stamp:
        return cls(*divmod(value, LOGICAL_LIMIT))


ZERO = Stamp(0, 0)


@dataclass(frozen=True)
class Received:
    stamp: Stamp
    clamped: bool  # the source's change time was further ahead than the skew allows


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def millis(moment: datetime) -> int:
    """An aware datetime in milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


class Clock:
    """The clock from its last stamp; `receive` gives the next one."""

    def __init__(self, last: Stamp, *, max_skew_ms: int, wall: Callable[[], int] = wall_ms) -> None:
        self.last = last
        self.max_skew_ms = max_skew_ms
        self.wall = wall

    def receive(self, source_ms: int | None = None) -> Received:
        """The stamp of a record the source changed at `source_ms` (None: unknown)."""
        now = self.wall()
        moment = _moment(now, source_ms, self.max_skew_ms)
        clamped = source_ms is not None and moment < source_ms  # held back to the skew
        self.last = Stamp(*_advance(self.last.physical, self.last.logical, moment))
        return Received(self.last, clamped)

    def texts(self, source_times: Iterable[int | None]) -> list[str]:
        """`receive` for each of `source_times` in turn, as the stamps' text: the same
        stamps, without two objects each (a load stamps every record it stores)."""
        physical, logical = self.last.physical, self.last.logical
        skew, wall = self.max_skew_ms, self.wall
        texts = []
        for source_ms in source_times:
            physical, logical = _advance(physical, logical, _moment(wall(), source_ms, skew))
            texts.append(_text(physical, logical))
        self.last = Stamp(physical, logical)
        return texts


def _moment(now: int, source_ms: int | None, max_skew_ms: int) -> int:
    """The time a record is stamped at: now, or the source's change time if later, but
    never more than the skew allowed ahead of now."""
    return now if source_ms is None else max(now, min(source_ms, now + max_skew_ms))


def _advance(physical: int, logical: int, moment: int) -> tuple[int, int]:
    """The stamp after (physical, logical) for a record stamped at `moment`."""
    if moment > physical:
        return moment, 0
    if logical + 1 < LOGICAL_LIMIT:
        return physical, logical + 1
    return physical + 1, 0  # a million stamps in one millisecond: borrow the next one


def _text(physical: int, logical: int) -> str:
    return f"{physical:0{_PHYSICAL_DIGITS}d}.{logical:0{_LOGICAL_DIGITS}d}"


def was_clamped(stamp: Stamp, source_ms: int | None) -> bool:
    """Whether a record with this stamp and source change time had its time clamped:
    an unclamped stamp is never behind the source's change time, a clamped one is."""
    return source_ms is not None and source_ms > stamp.physical
