"""Records as columns, the shape the learned matcher works in.

Every column is a numpy object array of strings, with None where a record has no value.
From it the matcher asks for integer codes (equal values, equal codes; -1 for none),
value frequencies, numbers, dates and points, each computed once and kept.

A column reference may carry a derivation after a tilde, `family_name~metaphone` or
`email~domain`; a derivation is a pure function of one value, computed once per distinct
value, so a million records with forty thousand surnames cost forty thousand calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date

import jellyfish
import numpy as np
import numpy.typing as npt

from accord import standardize as std

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.int32]  # codes of values: 32 bits hold any column's distinct values
FloatArray = npt.NDArray[np.float64]


def _email_local(value: str) -> str | None:
    local, at, _ = value.rpartition("@")
    return local if at and local else None


def _email_domain(value: str) -> str | None:
    _, at, domain = value.rpartition("@")
    return domain if at and domain else None


def _swap_day_month(value: str) -> str | None:
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        return f"{value[:4]}-{value[8:10]}-{value[5:7]}"
    return None


def _digits(value: str) -> str | None:
    return "".join(ch for ch in value if ch.isdigit()) or None


def _number_part(value: str) -> str:
    # "-" for a value without digits, so that two such values agree
    return "".join(ch for ch in value if ch.isdigit()) or "-"


def _root(value: str) -> str | None:
    return std.given_name_root(value) or None


def _phonetic(encode: Callable[[str], str]) -> Callable[[str], str | None]:
    def derive(value: str) -> str | None:
        # apostrophes join (O'Neil = Oneil); anything else that is not a letter separates
        words = "".join(
            "" if ch in "'\u2019" else ch if ch.isalpha() else " " for ch in value
        ).split()
        return encode(" ".join(words)) or None if words else None

    return derive


_FIXED: dict[str, Callable[[str], str | None]] = {
    "local": _email_local,
    "domain": _email_domain,
    "year": lambda v: v[:4] if len(v) >= 4 and v[:4].isdigit() else None,
    "dmswap": _swap_day_month,
    "digits": _digits,
    "number_part": _number_part,
    "root": _root,
    "initial": lambda v: v[:1] or None,
    "first_word": lambda v: v.split()[0] if v.split() else None,
    "last_word": lambda v: v.split()[-1] if v.split() else None,
    "metaphone": _phonetic(jellyfish.metaphone),
    "soundex": _phonetic(jellyfish.soundex),
    "nysiis": _phonetic(jellyfish.nysiis),
}
_NUMBERED = re.compile(r"^(prefix|last)([1-9])$")

DERIVATIONS: tuple[str, ...] = (*sorted(_FIXED), "prefix1..prefix9", "last1..last9")


def derivation(name: str) -> Callable[[str], str | None] | None:
    """The function behind `column~name`, or None if there is no such derivation."""
    if name in _FIXED:
        return _FIXED[name]
    numbered = _NUMBERED.match(name)
    if numbered is None:
        return None
    size = int(numbered.group(2))
    if numbered.group(1) == "prefix":
        return lambda v: v[:size] or None
    return lambda v: v[-size:] or None


def split_ref(ref: str) -> tuple[str, str | None]:
    """`a~b~c` -> (`a~b`, `c`): the reference it derives from, and its last derivation."""
    base, tilde, derived = ref.rpartition("~")
    return (base, derived or None) if tilde else (ref, None)


def root_column(ref: str) -> str:
    """The plain column a reference starts from: `name~last_word~initial` -> `name`."""
    return ref.partition("~")[0]


class Columns:
    """The records' columns; `len(columns)` is the number of records."""

    def __init__(self, data: Mapping[str, Iterable[str | None]], size: int) -> None:
        self.size = size
        self._raw: dict[str, ObjectArray] = {}
        for name, values in data.items():
            array = np.empty(size, dtype=object)
            array[:] = [v if v else None for v in values]
            self._raw[name] = array
        self._values: dict[str, ObjectArray] = {}
        self._codes: dict[str, CodeArray] = {}
        self._distinct: dict[str, list[str]] = {}
        self._frequency: dict[str, FloatArray] = {}
        self._present: dict[str, int] = {}
        self._numbers: dict[str, FloatArray] = {}
        self._points: dict[str, FloatArray] = {}

    def __len__(self) -> int:
        return self.size

    @property
    def names(self) -> list[str]:
        return list(self._raw)

    def has(self, ref: str) -> bool:
        base, derived = split_ref(ref)
        if derived is None:
            return base in self._raw
        return derivation(derived) is not None and self.has(base)

    def values(self, ref: str) -> ObjectArray:
        """The column's values (None where absent)."""
        if ref in self._values:
            return self._values[ref]
        base, derived = split_ref(ref)
        if derived is None:
            if base not in self._raw:
                raise KeyError(ref)
            return self._raw[base]
        codes, distinct = self._factorize(ref)
        mapped = np.empty(len(distinct) + 1, dtype=object)
        mapped[:-1] = distinct
        mapped[-1] = None
        out: ObjectArray = mapped[codes]  # code -1 picks the trailing None
        self._values[ref] = out
        return out

    def codes(self, ref: str) -> CodeArray:
        """Equal values, equal codes; -1 where there is no value."""
        return self._factorize(ref)[0]

    def _factorize(self, ref: str) -> tuple[CodeArray, list[str]]:
        """Codes per record and the distinct values they stand for. A plain column is
        read once; a derived one is worked out on its base's distinct values only."""
        if ref in self._distinct:
            return self._codes[ref], self._distinct[ref]
        base, derived = split_ref(ref)
        seen: dict[str, int] = {}
        if derived is None:
            values = self.values(ref)
            codes = np.fromiter(
                (-1 if v is None else seen.setdefault(v, len(seen)) for v in values),
                dtype=np.int32,
                count=len(values),
            )
        else:
            derive = derivation(derived)
            if derive is None:
                raise KeyError(ref)
            base_codes, base_distinct = self._factorize(base)
            table = np.empty(len(base_distinct) + 1, dtype=np.int32)
            for position, value in enumerate(base_distinct):
                result = derive(value)
                table[position] = -1 if result is None else seen.setdefault(result, len(seen))
            table[-1] = -1  # no base value, no derived value
            codes = table[base_codes]
        self._codes[ref], self._distinct[ref] = codes, list(seen)
        return codes, self._distinct[ref]

    def frequency(self, ref: str) -> FloatArray:
        """Per record, the share of records with a value that have this value (0 if none)."""
        if ref not in self._frequency:
            codes = self.codes(ref)
            present = codes >= 0
            counts = np.bincount(codes[present]) if present.any() else np.zeros(0)
            total = max(int(present.sum()), 1)
            out = np.zeros(self.size)
            out[present] = counts[codes[present]] / total
            self._frequency[ref] = out
            self._present.setdefault(ref, int(present.sum()))
        return self._frequency[ref]

    def present(self, ref: str) -> int:
        """How many records have a value in the column (the base of `frequency`)."""
        if ref not in self._present:
            self._present[ref] = int((self.codes(ref) >= 0).sum())
        return self._present[ref]

    def use_frequencies(self, ref: str, counts: Mapping[str, int], present: int) -> None:
        """Take value frequencies from elsewhere (the match index, when these columns are a
        few records matched against many): `counts` per value, over `present` records."""
        total = max(present, 1)
        self._frequency[ref] = np.array(
            [0.0 if v is None else counts.get(str(v), 0) / total for v in self.values(ref)]
        )
        self._present[ref] = present

    def numbers(self, ref: str) -> FloatArray:
        """The column read as numbers; NaN where absent or not a number."""
        if ref not in self._numbers:
            self._numbers[ref] = self._per_distinct(ref, _number)
        return self._numbers[ref]

    def days(self, ref: str) -> FloatArray:
        """ISO dates (YYYY-MM-DD) as day numbers; NaN where absent or not a date."""
        key = f"{ref}#days"
        if key not in self._numbers:
            self._numbers[key] = self._per_distinct(ref, _day_number)
        return self._numbers[key]

    def points(self, ref: str) -> FloatArray:
        """'lat,lon' values as radians, shape (n, 2); NaN where absent or malformed."""
        if ref not in self._points:
            lat = self._per_distinct(ref, lambda v: _point(v)[0])
            lon = self._per_distinct(ref, lambda v: _point(v)[1])
            self._points[ref] = np.radians(np.column_stack([lat, lon]))
        return self._points[ref]

    def _per_distinct(self, ref: str, convert: Callable[[str], float]) -> FloatArray:
        codes, distinct = self._factorize(ref)
        table = np.empty(len(distinct) + 1)
        table[:-1] = [convert(v) for v in distinct]
        table[-1] = math.nan
        out: FloatArray = table[codes]
        return out


def _number(value: str) -> float:
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def _day_number(value: str) -> float:
    try:
        return float(date.fromisoformat(value[:10]).toordinal())
    except ValueError:
        return math.nan


def _point(value: str) -> tuple[float, float]:
    parts = value.replace(";", ",").split(",")
    if len(parts) != 2:
        return math.nan, math.nan
    lat, lon = _number(parts[0]), _number(parts[1])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return math.nan, math.nan
    return lat, lon
