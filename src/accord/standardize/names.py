"""Person names: capitalization, splitting a full name, nickname roots."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from accord.standardize._nicknames import NICKNAMES
from accord.standardize.errors import InvalidValue, show
from accord.standardize.text import clean_text, name_key

# Particles that start a family name ("van Dijk", "von Trapp", "de Gaulle") ...
_PARTICLES = frozenset(
    {"van", "von", "de", "del", "della", "di", "da", "du", "des", "ten", "ter", "te", "zu"}
    | {"vom", "zum", "zur", "dos", "das", "do", "dei", "degli", "af", "av"}
)
# ... and those that only follow one ("van der", "de la", "van 't", "von und zu").
_FOLLOWING_PARTICLES = frozenset({"der", "den", "la", "le", "las", "los", "het", "'t", "und"})
_ALL_PARTICLES = _PARTICLES | _FOLLOWING_PARTICLES

# Titles before a name, compared lowercased with periods removed ("Dr." -> "dr").
_TITLES = frozenset(
    {"dr", "prof", "mr", "mrs", "ms", "miss", "mx", "sir", "dame", "herr", "frau", "mme"}
    | {"mlle", "dhr", "mevr", "ir", "drs", "ing", "dipl-ing", "dr-ing", "mag", "mag-a", "dres"}
)
# Titles recognized only with their period: "M" alone may be an initial, "Med" a name.
_DOTTED_TITLES = frozenset(
    {"m.", "hr.", "fr.", "med.", "rer.", "nat.", "phil.", "jur.", "dent.", "vet.", "h.c."}
)
# Suffixes after a name, compared like titles ("Ph.D." -> "phd").
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "mba", "msc", "bsc"})
_DOTTED_SUFFIXES = frozenset({"jun.", "sen."})

# A run of letters, with any combining accents ("i̇" from lowercasing "İ").
_LETTERS = re.compile(r"(?:[^\W\d_]|[\u0300-\u036f])+")


@dataclass(frozen=True)
class SplitName:
    """A full name split into its parts; either may be None."""

    given_name: str | None
    family_name: str | None


def person_name(raw: str) -> str:
    """Return the cleaned name, recapitalized only if typed all upper/lower; raises name.empty."""
    text = clean_text(raw)
    if not text:
        raise InvalidValue("name.empty", f"the name {show(raw)} is empty")
    if not (text.isupper() or text.islower()):
        return text  # mixed case was typed on purpose ("McDonald", "DeVries", "de Vries")
    words = text.lower().split(" ")
    last = len(words) - 1
    out: list[str] = []
    after_particle = False
    for i, word in enumerate(words):
        after_particle = i < last and (
            word in _PARTICLES or (after_particle and word in _FOLLOWING_PARTICLES)
        )
        out.append(word if after_particle else _LETTERS.sub(_capitalize_run, word))
    result = " ".join(out)
    return result if result.isascii() else unicodedata.normalize("NFC", result)


def _capitalize_run(match: re.Match[str]) -> str:
    run = match.group()
    if run.startswith("mc") and len(run) > 3:  # mcdonald -> McDonald
        return "Mc" + run[2:].capitalize()
    return run.capitalize()


def split_full_name(raw: str) -> SplitName:
    """Return the given and family name of "Given Family" or "Family, Given"; raises name.empty."""
    chunks = (chunk.split() for chunk in clean_text(raw).split(","))
    parts = [tokens for tokens in chunks if tokens and not _affixes(tokens)]
    if not parts:
        raise InvalidValue("name.empty", f"the name {show(raw)} has no name besides titles")
    # Every part has a token that is no title or suffix, so neither list below is empty.
    if len(parts) >= 2:  # "Family, Given" (a comma before "Jr." or "PhD" alone does not count)
        family = _strip_affixes(parts[0])
        given = _strip_affixes([token for part in parts[1:] for token in part])
        while len(given) > 1 and given[-1].lower() in _ALL_PARTICLES:  # "Berg, Jan van der"
            family.insert(0, given.pop())
    else:
        tokens = _strip_affixes(parts[0])
        start = len(tokens) - 1
        while start > 0 and tokens[start - 1].lower() in _ALL_PARTICLES:
            start -= 1  # "Jan van der Berg"; with no given name left: "van Dijk"
        given, family = tokens[:start], tokens[start:]
    return SplitName(
        given_name=person_name(" ".join(given)) if given else None,
        family_name=person_name(" ".join(family)),
    )


def _is_title(token: str) -> bool:
    lower = token.lower()
    return lower in _DOTTED_TITLES or lower.replace(".", "") in _TITLES


def _is_suffix(token: str) -> bool:
    lower = token.lower()
    return lower in _DOTTED_SUFFIXES or lower.replace(".", "") in _SUFFIXES


def _affixes(tokens: list[str]) -> bool:
    return all(_is_title(t) or _is_suffix(t) for t in tokens)


def _strip_affixes(tokens: list[str]) -> list[str]:
    start, end = 0, len(tokens)
    while start < end and _is_title(tokens[start]):
        start += 1
    while end > start and _is_suffix(tokens[end - 1]):
        end -= 1
    return tokens[start:end]


def given_name_root(raw: str) -> str:
    """Return the name key with each nickname replaced by its root ("Bill" -> "william")."""
    key = name_key(raw)
    root = NICKNAMES.get(key)
    if root is not None:
        return root
    if " " not in key:
        return key
    return " ".join(NICKNAMES.get(token, token) for token in key.split(" "))
