"""Text cleaning and matching keys shared by the other standardizers."""

from __future__ import annotations

import re
import unicodedata

from accord.standardize._translit import LATIN_FOLD

# Control and invisible format characters that are not whitespace. Whitespace controls
# (tab, newline, \x1c-\x1f, NEL...) are left to str.split(), which turns them into one space.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u200b\u2060\ufeff]")

# Apostrophes, periods and middle dots vanish from keys ("O'Neil" -> "oneil",
# "G.m.b.H." -> "gmbh", "Col·lecció" -> "collecció"); all other punctuation separates words.
_GLUE = "'’‘ʼʻʹʾʿ`´.·"  # noqa: RUF001 - the look-alike apostrophes are the point
_ASCII_KEY_TABLE: dict[int, int | None] = {
    **{i: 0x20 for i in range(128) if not chr(i).isalnum()},
    **{ord(c): None for c in _GLUE if c.isascii()},
}
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
        return " ".join(raw.lower().translate(_ASCII_KEY_TABLE).split())
    text = unicodedata.normalize("NFKD", raw).casefold()
    text = unicodedata.normalize("NFKD", text).translate(_FOLD_TABLE)
    text = _DIACRITICS.sub("", text)
    if text.isascii():  # the usual case: Latin letters with accents
        return " ".join(text.translate(_ASCII_KEY_TABLE).split())
    text = text.translate(_GLUE_DELETE)
    return " ".join("".join(ch if _is_word_char(ch) else " " for ch in text).split())


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch)[0] == "M"
