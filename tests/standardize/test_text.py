import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.standardize import clean_text, name_key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Müller  ", "Müller"),
        ("Hans\u00a0Peter\tMüller", "Hans Peter Müller"),
        ("Jean-\nPierre", "Jean- Pierre"),
        ("Acme\x00 Corp\x07", "Acme Corp"),
        ("Mu\u0308ller", "Müller"),  # decomposed ü (macOS exports) -> NFC
        ("\ufeffBOM at the start", "BOM at the start"),
        ("zero\u200bwidth", "zerowidth"),
        ("line\r\nbreaks\u2028too", "line breaks too"),
        ("", ""),
        ("   \t ", ""),
    ],
)
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Müller", "muller"),
        ("MÜLLER", "muller"),
        ("Mu\u0308ller", "muller"),
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("Søren Kierkegaard", "soren kierkegaard"),
        ("Ærø", "aero"),
        ("Œuvre", "oeuvre"),
        ("Łódź", "lodz"),
        ("Dvořák", "dvorak"),
        ("François", "francois"),
        ("O'Neil", "oneil"),
        ("O’Neil", "oneil"),  # noqa: RUF001 - the typographic apostrophe is the point
        ("Jean-Pierre", "jean pierre"),
        ("J.R.R. Tolkien", "jrr tolkien"),
        ("  van   der  Berg ", "van der berg"),
        ("Smith & Sons, Ltd.", "smith sons ltd"),
        ("İstanbul", "istanbul"),
        ("ﬁnn", "finn"),
        ("Путин", "путин"),
        ("", ""),
        ("!!!", ""),
    ],
)
def test_name_key(raw: str, expected: str) -> None:
    assert name_key(raw) == expected


@settings(max_examples=300)
@given(st.text())
def test_clean_text_is_idempotent(raw: str) -> None:
    once = clean_text(raw)
    assert clean_text(once) == once
    assert once == once.strip()
    assert "  " not in once
    assert unicodedata.is_normalized("NFC", once)


@settings(max_examples=300)
@given(st.text())
def test_name_key_is_idempotent(raw: str) -> None:
    once = name_key(raw)
    assert name_key(once) == once
    assert once == once.strip()
    assert "  " not in once


# Latin text: letters of the Latin script from Basic Latin to Latin Extended-B and Latin
# Extended Additional, with the digits, punctuation and symbols of those blocks.
def _is_latin(ch: str) -> bool:
    if not unicodedata.category(ch).startswith("L"):
        return True
    return ch.isascii() or unicodedata.name(ch, "").startswith("LATIN")


_LATIN = [chr(c) for c in (*range(0x20, 0x250), *range(0x1E00, 0x1F00)) if _is_latin(chr(c))]


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(_LATIN)))
def test_name_key_is_ascii_for_latin_text(raw: str) -> None:
    assert name_key(raw).isascii()


def test_every_latin_letter_has_an_ascii_key() -> None:
    assert [ch for ch in _LATIN if not name_key(ch).isascii()] == []
