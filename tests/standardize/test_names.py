import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.standardize import (
    InvalidValue,
    SplitName,
    given_name_root,
    name_key,
    person_name,
    split_full_name,
)
from accord.standardize._nicknames import NICKNAMES, ROOTS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MÜLLER", "Müller"),
        ("müller", "Müller"),
        ("  SCHMIDT ", "Schmidt"),
        ("o'neil", "O'Neil"),
        ("O'NEIL", "O'Neil"),
        ("van der berg", "van der Berg"),
        ("VAN DER BERG", "van der Berg"),
        ("von und zu guttenberg", "von und zu Guttenberg"),
        ("DE LA CRUZ", "de la Cruz"),
        ("JEAN-PIERRE", "Jean-Pierre"),
        ("mcdonald", "McDonald"),
        ("ÉLODIE", "Élodie"),
        ("ØSTERGAARD", "Østergaard"),
        ("İPEK", "İpek"),
        ("VAN", "Van"),  # a particle alone is a name
        # mixed case is kept as typed
        ("McDonald", "McDonald"),
        ("DeVries", "DeVries"),
        ("de Vries", "de Vries"),
        ("Van Dyke", "Van Dyke"),
        ("MacLeod", "MacLeod"),
        ("Hans  Peter", "Hans Peter"),
    ],
)
def test_person_name(raw: str, expected: str) -> None:
    assert person_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "\u00a0\t"])
def test_person_name_empty(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        person_name(raw)
    assert error.value.code == "name.empty"


@pytest.mark.parametrize(
    ("raw", "given", "family"),
    [
        ("Hans Müller", "Hans", "Müller"),
        ("Müller, Hans", "Hans", "Müller"),
        ("MÜLLER, HANS-PETER", "Hans-Peter", "Müller"),
        ("Dr. Hans Peter Müller Jr.", "Hans Peter", "Müller"),
        ("Prof. Dr. med. Anna SCHMIDT", "Anna", "Schmidt"),
        ("Dipl.-Ing. Klaus Weber", "Klaus", "Weber"),
        ("Herr Thomas Becker", "Thomas", "Becker"),
        ("Frau Sabine Wagner-Hoffmann", "Sabine", "Wagner-Hoffmann"),
        ("Müller, Dr. Hans", "Hans", "Müller"),
        ("Mr John Smith", "John", "Smith"),
        ("Mrs. Jane SMITH", "Jane", "Smith"),
        ("Ms Emma Watson", "Emma", "Watson"),
        ("John Smith, Jr.", "John", "Smith"),
        ("Smith, John, PhD", "John", "Smith"),
        ("Smith Jr., John", "John", "Smith"),
        ("Dr. Martin Luther King Jr.", "Martin Luther", "King"),
        ("Henry Ford III", "Henry", "Ford"),
        ("M. Jean Dupont", "Jean", "Dupont"),
        ("Mme Marie de la Tour", "Marie", "de la Tour"),
        ("Charles de Gaulle", "Charles", "de Gaulle"),
        ("Dhr. Piet de Vries", "Piet", "de Vries"),
        ("Mevr. A. van Dijk", "A.", "van Dijk"),
        ("Jan van der Berg", "Jan", "van der Berg"),
        ("JAN VAN DER BERG", "Jan", "van der Berg"),
        ("Berg, Jan van der", "Jan", "van der Berg"),
        ("van der Berg, Jan", "Jan", "van der Berg"),
        ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),
        ("Karl-Theodor zu Guttenberg", "Karl-Theodor", "zu Guttenberg"),
        ("M Jansen", "M", "Jansen"),  # "M" without a period is an initial
    ],
)
def test_split_full_name(raw: str, given: str | None, family: str) -> None:
    assert split_full_name(raw) == SplitName(given_name=given, family_name=family)


@pytest.mark.parametrize(
    ("raw", "family"),
    [("Madonna", "Madonna"), ("Dr. Schneider", "Schneider"), ("van Dijk", "van Dijk")],
)
def test_split_full_name_without_given_name(raw: str, family: str) -> None:
    assert split_full_name(raw) == SplitName(given_name=None, family_name=family)


@pytest.mark.parametrize("raw", ["", " , ", "Herr", "Dr. Prof.", "Jr."])
def test_split_full_name_empty(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        split_full_name(raw)
    assert error.value.code == "name.empty"


@settings(max_examples=200)
@given(st.text())
def test_split_full_name_only_raises_invalid_value(raw: str) -> None:
    try:
        result = split_full_name(raw)
    except InvalidValue:
        return
    assert result.family_name


@pytest.mark.parametrize(
    ("raw", "root"),
    [
        ("Bill", "william"),
        ("BILLY", "william"),
        ("Will", "william"),
        ("William", "william"),
        ("Bob", "robert"),
        ("Liz", "elizabeth"),
        ("Peggy", "margaret"),
        ("Hannes", "johannes"),
        ("Hans", "johannes"),
        ("Kathi", "katharina"),
        ("Sepp", "josef"),
        ("Fritz", "friedrich"),
        ("Heinz", "heinrich"),
        ("Manu", "emmanuel"),
        ("Pierrot", "pierre"),
        ("Kees", "cornelis"),
        ("Henk", "hendrik"),
        ("Wim", "willem"),
        ("Hans-Peter", "johannes peter"),
        ("Zoë", "zoe"),  # unknown: its name key
        ("Chris", "chris"),  # ambiguous nicknames stay themselves
        ("", ""),
    ],
)
def test_given_name_root(raw: str, root: str) -> None:
    assert given_name_root(raw) == root


def test_nickname_table() -> None:
    nicknames = [nick for nicks in ROOTS.values() for nick in nicks]
    assert len(nicknames) == len(set(nicknames)), "a nickname has two roots"
    assert len(NICKNAMES) >= 60
    assert not set(NICKNAMES) & set(ROOTS), "a root is also a nickname"
    for nickname, root in NICKNAMES.items():
        assert name_key(nickname) == nickname
        assert name_key(root) == root


@settings(max_examples=200)
@given(st.text())
def test_given_name_root_is_idempotent(raw: str) -> None:
    root = given_name_root(raw)
    assert given_name_root(root) == root
