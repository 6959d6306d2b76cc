"""Text cleaning and matching keys shared by the other standardizers."""

from __future__ import annotations

import functools
import re
import unicodedata

from accord.standardize._translit import LATIN_FOLD

# Control characters that are not whitespace, and invisible format characters: soft hyphen,
# zero-width space, bidi marks and embeddings (pasted from web pages), word joiner, BOM.
# Whitespace controls (tab, newline, \x1c-\x1f, NEL) are left to str.split(): one space.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u200b\u200e\u200f\u202a-\u202e\u2060"
    "\u2066-\u2069\ufeff]"
)

# Apostrophes, periods and middle dots vanish from keys ("O'Neil" -> "oneil",
# "G.m.b.H." -> "gmbh", "Col·lecció" -> "collecció"); all other punctuation separates words.
_GLUE = "'’‘ʼʻʹʾʿ`´.·"  # noqa: RUF001 - the look-alike apostrophes are the point
# For ASCII text, bytes.translate does it all in one fast pass: letters and digits stay,
# the glue goes, everything else becomes a space.
_ASCII_KEY_TABLE = bytes(i if chr(i).isalnum() and i < 128 else 0x20 for i in range(256))
_ASCII_GLUE = "".join(c for c in _GLUE if c.isascii()).encode("ascii")
_GLUE_DELETE: dict[int, None] = {ord(c): None for c in _GLUE}
_FOLD_TABLE: dict[int, str] = {ord(k): v for k, v in LATIN_FOLD.items()}
# Combining diacritical marks (the accents of Latin, Greek and Cyrillic letters). Marks of
# other scripts (Devanagari vowel signs...) carry meaning and are kept.
_DIACRITICS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def clean_text(raw: str) -> str:
    """Return `raw` in NFC, trimmed, with control characters dropped and whitespace collapsed."""
    if raw.isascii() and raw.isprintable():
        return " ".join(raw.split())
    text = _INVISIBLE.sub("", raw)
    text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def name_key(raw: str) -> str:
    """Return a matching key: casefolded, without diacritics or punctuation (never raises).

    "Müller-Lüdenscheidt" -> "muller ludenscheidt", "O'Neil" -> "oneil", "Straße" -> "strasse",
    "Øre" -> "ore". Letters of other scripts are kept (casefolded, NFKD).
    """
    if raw.isascii():
        return _ascii_key(raw.lower())
    return _unicode_key(raw)


@functools.lru_cache(maxsize=32_768)  # names repeat: "Müller" comes a thousand times
def _unicode_key(raw: str) -> str:
    text = unicodedata.normalize("NFKD", raw).casefold()
    text = _DIACRITICS.sub("", unicodedata.normalize("NFKD", text))
    if text.isascii():  # the usual case: Latin letters with accents
        return _ascii_key(text)
    text = text.translate(_FOLD_TABLE)  # ø, æ, ł, ð...: ASCII only, no new diacritics
    if text.isascii():
        return _ascii_key(text)
    text = text.translate(_GLUE_DELETE)
    return " ".join("".join(ch if _is_word_char(ch) else " " for ch in text).split())


def _ascii_key(lowered: str) -> str:
    key = lowered.encode("ascii").translate(_ASCII_KEY_TABLE, _ASCII_GLUE).decode("ascii")
    return " ".join(key.split())


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch)[0] == "M"
