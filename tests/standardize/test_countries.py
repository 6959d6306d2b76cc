import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.standardize import InvalidValue, country, name_key
from accord.standardize._country_aliases import COUNTRY_ALIASES


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("DE", "DE"),
        ("de", "DE"),
        (" deu ", "DE"),
        ("Germany", "DE"),
        ("GERMANY", "DE"),
        ("Deutschland", "DE"),
        ("Bundesrepublik Deutschland", "DE"),
        ("Österreich", "AT"),
        ("OESTERREICH", "AT"),
        ("Schweiz", "CH"),
        ("Suisse", "CH"),
        ("Nederland", "NL"),
        ("The Netherlands", "NL"),
        ("Holland", "NL"),
        ("France", "FR"),
        ("Frankreich", "FR"),
        ("España", "ES"),
        ("Espana", "ES"),
        ("Italia", "IT"),
        ("België", "BE"),
        ("UK", "GB"),
        ("U.K.", "GB"),
        ("Great Britain", "GB"),
        ("England", "GB"),
        ("United Kingdom", "GB"),
        ("GBR", "GB"),
        ("USA", "US"),
        ("U.S.A.", "US"),
        ("United States", "US"),
        ("United States of America", "US"),
        ("Vereinigte Staaten", "US"),
        ("États-Unis", "US"),
        ("Côte d'Ivoire", "CI"),
        ("Ivory Coast", "CI"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
        ("Turkey", "TR"),
        ("Türkiye", "TR"),
        ("Czechia", "CZ"),
        ("Czech Republic", "CZ"),
        ("  united\u00a0kingdom ", "GB"),
    ],
)
def test_country(raw: str, expected: str) -> None:
    assert country(raw) == expected
    assert country(raw) == expected  # a second time, from the memo


@pytest.mark.parametrize("raw", ["Atlantis", "XX", "ZZZ", "Germanyy", "Korea", "EU", "123"])
def test_country_unknown(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        country(raw)
    assert error.value.code == "country.unknown"
    assert raw in error.value.message


@pytest.mark.parametrize("raw", ["", "  "])
def test_country_empty(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        country(raw)
    assert error.value.code == "country.empty"


def test_country_accepts_every_iso_code() -> None:
    for entry in pycountry.countries:
        assert country(entry.alpha_2) == entry.alpha_2
        assert country(entry.alpha_3) == entry.alpha_2
        assert country(entry.alpha_2.lower()) == entry.alpha_2
        assert country(entry.alpha_3.lower()) == entry.alpha_2
        assert country(entry.name) == entry.alpha_2


def test_aliases_do_not_contradict_pycountry() -> None:
    for alias, code in COUNTRY_ALIASES.items():
        assert pycountry.countries.get(alpha_2=code) is not None, alias
        assert country(alias) == code, alias
        assert name_key(alias), alias


@settings(max_examples=300)
@given(st.text())
def test_country_only_raises_invalid_value(raw: str) -> None:
    try:
        code = country(raw)
    except InvalidValue:
        return
    assert pycountry.countries.get(alpha_2=code) is not None
