"""Countries: any common spelling -> ISO 3166-1 alpha-2."""

from __future__ import annotations

import functools

import pycountry

from accord.standardize._country_aliases import COUNTRY_ALIASES
from accord.standardize.errors import InvalidValue, show
from accord.standardize.text import name_key


@functools.cache
def _index() -> dict[str, str]:
    """Every known spelling, as typed and as a name key, -> alpha-2 (built on first use)."""
    index: dict[str, str] = {}
    names: list[tuple[str, str]] = []
    for entry in pycountry.countries:
        code: str = entry.alpha_2
        names.append((code, code))
        names.append((entry.alpha_3, code))
        names.extend(
            (spelling, code)
            for attribute in ("name", "official_name", "common_name")
            if (spelling := getattr(entry, attribute, None))
        )
    names.extend((alias, code) for alias, code in COUNTRY_ALIASES.items())
    for spelling, code in names:  # first one wins: codes before names before aliases
        index.setdefault(spelling, code)
        index.setdefault(name_key(spelling), code)
    return index


# Spellings seen in the data -> code. A source repeats a handful of spellings a million times;
# remembering them skips the name key. Bounded so odd input cannot grow it without end.
_SEEN: dict[str, str] = {}
_SEEN_MAX = 10_000


def country(raw: str) -> str:
    """Return the ISO 3166-1 alpha-2 code for a code or name; raises country.unknown/.empty."""
    code = _SEEN.get(raw) or _index().get(raw)
    if code is not None:
        return code
    code = _index().get(name_key(raw))
    if code is not None:
        if len(_SEEN) < _SEEN_MAX:
            _SEEN[raw] = code
        return code
    if not raw.strip():
        raise InvalidValue("country.empty", "the country is empty")
    raise InvalidValue("country.unknown", f"{show(raw)} is not a country we know")
