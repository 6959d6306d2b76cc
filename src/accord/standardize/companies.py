"""Company names: the legal form split off and normalized, plus a matching key."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from accord.standardize._legal_forms import AMBIGUOUS, LEADING, LEGAL_FORMS
from accord.standardize.errors import InvalidValue, show
from accord.standardize.text import clean_text, name_key

# Trailing words dropped from the key only: "Müller & Co" and "Müller" are one company.
# "Holding", "Group", "International" stay: they tell a parent from its subsidiary.
_KEY_NOISE = frozenset({"co", "cie", "company"})
_CONNECTORS = frozenset({"and", "und", "u", "et"})
_NAME_EDGES = " ,;:-–—/"  # noqa: RUF001 - dashes of every width


@dataclass(frozen=True)
class CompanyName:
    """A company name without its legal form, the normalized legal form, and a matching key."""

    name: str
    legal_form: str | None
    key: str


@functools.lru_cache(maxsize=65_536)  # tokens repeat: "GmbH", "&", "Co.", "Ltd", "Müller"
def _form_key(text: str) -> str:
    # Case, accents, periods, spaces and "&" do not matter; the slash does ("A/S" is not "AS").
    return "/".join(name_key(part).replace(" ", "") for part in text.split("/"))


def _build() -> tuple[dict[str, str], int]:
    forms: dict[str, str] = {}
    longest = 1
    for canonical, spellings in LEGAL_FORMS.items():
        for spelling in (canonical, *spellings):
            key = _form_key(spelling)
            if forms.setdefault(key, canonical) != canonical:
                raise ValueError(f"legal form spelling {spelling!r} is ambiguous")
            longest = max(longest, len(spelling.split()))
    return forms, longest


_FORMS, _MAX_TOKENS = _build()
_AMBIGUOUS_KEYS = frozenset(_form_key(form) for form in AMBIGUOUS)


def _match(tokens: list[str], keys: list[str]) -> str | None:
    key = "".join(keys)
    form = _FORMS.get(key)
    if form is None:
        return None
    if key in _AMBIGUOUS_KEYS:
        typed = "".join(tokens)
        if "." not in typed and typed != form:
            return None
    return form


def company_name(raw: str) -> CompanyName:
    """Return the name, its normalized legal form and a key; raises company.empty if no name."""
    tokens = clean_text(raw).split()
    keys = [_form_key(token) for token in tokens]
    if _match(tokens, keys) is not None:  # "GmbH", "GmbH & Co. KG"
        raise InvalidValue("company.empty", f"the company name {show(raw)} is only a legal form")
    legal_form = None
    while (trailing := _trailing(tokens, keys)) is not None:  # "Foo GmbH", also "Foo GmbH AG"
        legal_form = legal_form or trailing
    while (leading := _leading(tokens, keys)) is not None:  # "SARL Dupont", "NV Bekaert SA"
        legal_form = legal_form or leading
    name = " ".join(tokens).strip(_NAME_EDGES)
    key = _company_key(name)
    if not key or _match(tokens, keys) is not None:  # "", "- Ltd", "GmbH Ltd"
        raise InvalidValue("company.empty", f"the company name {show(raw)} has no name")
    return CompanyName(name=name, legal_form=legal_form, key=key)


def _trailing(tokens: list[str], keys: list[str]) -> str | None:
    """Remove the longest legal form that ends `tokens` and leaves a token; return it."""
    count = len(tokens)
    for size in range(min(_MAX_TOKENS, count - 1), 0, -1):  # longest first: "GmbH & Co. KG"
        form = _match(tokens[count - size :], keys[count - size :])
        if form is not None:
            del tokens[count - size :], keys[count - size :]
            return form
    return None


def _leading(tokens: list[str], keys: list[str]) -> str | None:
    """Remove the longest leading-capable legal form starting `tokens`; return it."""
    for size in range(min(_MAX_TOKENS, len(tokens) - 1), 0, -1):
        form = _match(tokens[:size], keys[:size])
        if form in LEADING:
            del tokens[:size], keys[:size]
            return form
    return None


def _company_key(name: str) -> str:
    words = name_key(name).split()
    while len(words) > 1 and words[-1] in _KEY_NOISE:
        words.pop()
        if len(words) > 1 and words[-1] in _CONNECTORS:
            words.pop()
    return " ".join(words)
