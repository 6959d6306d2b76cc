"""Postal codes and street matching keys."""

from __future__ import annotations

import re
from collections.abc import Callable

from accord.standardize.countries import country as country_code
from accord.standardize.errors import InvalidValue, show
from accord.standardize.text import clean_text, name_key

# Countries whose codes are a fixed number of digits, sometimes typed with the old
# vehicle-plate prefix ("D-10115", "A-1010", "F-75008", "CH-8001").
_DIGITS: dict[str, int] = {
    "DE": 5,
    "FR": 5,
    "IT": 5,
    "ES": 5,
    "AT": 4,
    "CH": 4,
    "BE": 4,
    "LU": 4,
    "DK": 4,
    "NO": 4,
}
_PREFIXES: dict[str, str] = {
    "DE": "D|DE",
    "FR": "F|FR",
    "IT": "I|IT",
    "ES": "E|ES",
    "AT": "A|AT",
    "CH": "CH",
    "BE": "B|BE",
    "LU": "L|LU",
    "DK": "DK",
    "NO": "N|NO",
    "NL": "NL",
}
_PREFIX_RES = {code: re.compile(rf"^(?:{alts})[- ]?(?=[0-9])") for code, alts in _PREFIXES.items()}

_GB = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?)(\d[A-Z]{2})$", re.ASCII)
_NL = re.compile(r"^([1-9]\d{3})([A-Z]{2})$", re.ASCII)
_CA = re.compile(r"^([ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z])(\d[ABCEGHJ-NPRSTV-Z]\d)$", re.ASCII)
_US = re.compile(r"^(\d{5})(?:-?(\d{4}))?$", re.ASCII)
_PL = re.compile(r"^(\d{2})-?(\d{3})$", re.ASCII)
_SE = re.compile(r"^(\d{3})(\d{2})$", re.ASCII)


def postcode(raw: str, country: str | None = None) -> str:
    """Return the postcode uppercased, formatted for GB/NL/CA/US/PL/SE; raises postcode.invalid."""
    text = " ".join(clean_text(raw).upper().split())
    if not text:
        raise InvalidValue("postcode.empty", "the postcode is empty")
    code = _country(country)
    if code is None:
        return text
    prefix = _PREFIX_RES.get(code)
    compact = (prefix.sub("", text) if prefix else text).replace(" ", "")
    digits = _DIGITS.get(code)
    if digits is not None:
        if len(compact) == digits and compact.isdigit() and compact.isascii():
            return compact
        raise _invalid(raw, code, f"{digits} digits")
    rule = _FORMATS.get(code)
    return rule(compact, raw) if rule else text


def _country(country: str | None) -> str | None:
    if country is None:
        return None
    try:
        return country_code(country)
    except InvalidValue:
        return None  # a country we do not know has no postcode rules either


def _invalid(raw: str, code: str, expected: str) -> InvalidValue:
    return InvalidValue("postcode.invalid", f"{show(raw)} is not a {code} postcode ({expected})")


def _gb(compact: str, raw: str) -> str:
    if compact == "GIR0AA":  # the one code outside the pattern (Girobank)
        return "GIR 0AA"
    match = _GB.match(compact)
    if match is None:
        raise _invalid(raw, "GB", "like SW1A 1AA")
    return f"{match[1]} {match[2]}"


def _nl(compact: str, raw: str) -> str:
    match = _NL.match(compact)
    if match is None:
        raise _invalid(raw, "NL", "4 digits and 2 letters, like 1234 AB")
    return f"{match[1]} {match[2]}"


def _ca(compact: str, raw: str) -> str:
    match = _CA.match(compact.replace("-", ""))
    if match is None:
        raise _invalid(raw, "CA", "like K1A 0B1")
    return f"{match[1]} {match[2]}"


def _us(compact: str, raw: str) -> str:
    match = _US.match(compact)
    if match is None:
        raise _invalid(raw, "US", "5 digits or ZIP+4, like 12345-6789")
    return f"{match[1]}-{match[2]}" if match[2] else match[1]


def _pl(compact: str, raw: str) -> str:
    match = _PL.match(compact)
    if match is None:
        raise _invalid(raw, "PL", "like 00-950")
    return f"{match[1]}-{match[2]}"


def _se(compact: str, raw: str) -> str:
    match = _SE.match(compact)
    if match is None:
        raise _invalid(raw, "SE", "5 digits, like 114 55")
    return f"{match[1]} {match[2]}"


_FORMATS: dict[str, Callable[[str, str], str]] = {
    "GB": _gb,
    "NL": _nl,
    "CA": _ca,
    "US": _us,
    "PL": _pl,
    "SE": _se,
}

# Street words written out, compared as name keys (periods already gone).
_STREET_WORDS: dict[str, str] = {
    "str": "strasse",
    "rd": "road",
    "ave": "avenue",
    "av": "avenue",
    "bd": "boulevard",
    "blvd": "boulevard",
    "boul": "boulevard",
    "pl": "place",
    "ln": "lane",
    "sq": "square",
    "ct": "court",
    "hwy": "highway",
    "pkwy": "parkway",
    "rte": "route",
    "chem": "chemin",
    "imp": "impasse",
}
# First word of a street these mean something else: "St. John's Rd" (Saint), "Dr.-Kurt-
# Schumacher-Str." (Doctor). Anywhere else they are Street and Drive.
_NOT_FIRST: dict[str, str] = {"st": "street", "dr": "drive"}

# German and Dutch street words written as one word with the name or apart: "Hauptstraße",
# "Haupt-Straße" and "Berliner Straße" (correct) all occur. Keys always join them.
_COMPOUND_ENDS = frozenset({"strasse", "weg", "platz", "gasse", "allee", "straat", "laan"})


def street_key(raw: str) -> str:
    """Return a matching key for a street and number ("Hauptstr. 5a" -> "hauptstrasse 5a")."""
    words = name_key(raw.replace(".", " ")).split()
    out: list[str] = []
    for i, word in enumerate(words):
        if out and len(word) == 1 and word.isalpha() and out[-1].isdecimal():
            out[-1] += word  # "12 a" -> "12a"
            continue
        full = _street_word(word, first=i == 0)
        if out and full in _COMPOUND_ENDS and not out[-1].isdecimal():
            out[-1] += full  # "Haupt-Straße", "Haupt Str." -> "hauptstrasse"
            continue
        out.append(full)
    return " ".join(out)


def _street_word(word: str, *, first: bool) -> str:
    full = _STREET_WORDS.get(word) or (None if first else _NOT_FIRST.get(word))
    if full is not None:
        return full
    if len(word) > 3 and word.endswith("str"):  # "hauptstr" -> "hauptstrasse"
        return word + "asse"
    return word
