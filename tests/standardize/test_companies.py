import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from accord.standardize import CompanyName, InvalidValue, company_name
from accord.standardize._legal_forms import LEGAL_FORMS
from accord.standardize.companies import _form_key


@pytest.mark.parametrize(
    ("raw", "name", "legal_form", "key"),
    [
        ("Müller GmbH", "Müller", "GmbH", "muller"),
        ("MÜLLER G.m.b.H.", "MÜLLER", "GmbH", "muller"),
        ("Müller Gesellschaft mit beschränkter Haftung", "Müller", "GmbH", "muller"),
        ("Alpenland GesmbH", "Alpenland", "GmbH", "alpenland"),
        ("Siemens AG", "Siemens", "AG", "siemens"),
        ("Siemens Aktiengesellschaft", "Siemens", "AG", "siemens"),
        ("Müller GmbH & Co. KG", "Müller", "GmbH & Co. KG", "muller"),
        ("Müller GmbH&Co.KG", "Müller", "GmbH & Co. KG", "muller"),
        ("Müller GmbH u. Co. KG", "Müller", "GmbH & Co. KG", "muller"),
        ("Schulz UG (haftungsbeschränkt)", "Schulz", "UG (haftungsbeschränkt)", "schulz"),
        ("Schulz UG", "Schulz", "UG (haftungsbeschränkt)", "schulz"),
        ("Müller & Co. KG", "Müller & Co.", "KG", "muller"),
        ("Blumen Meier e.K.", "Blumen Meier", "e.K.", "blumen meier"),
        ("Sportverein Grün-Weiß e.V.", "Sportverein Grün-Weiß", "e.V.", "sportverein grun weiss"),
        ("Allianz SE", "Allianz", "SE", "allianz"),
        ("Tesco PLC", "Tesco", "plc", "tesco"),
        ("Acme Widgets Ltd.", "Acme Widgets", "Ltd", "acme widgets"),
        ("ACME WIDGETS LIMITED", "ACME WIDGETS", "Ltd", "acme widgets"),
        ("Acme, Inc.", "Acme", "Inc", "acme"),
        ("Acme Incorporated", "Acme", "Inc", "acme"),
        ("Acme Corporation", "Acme", "Corp", "acme"),
        ("Acme Holdings, LLC", "Acme Holdings", "LLC", "acme holdings"),
        ("Smith & Jones LLP", "Smith & Jones", "LLP", "smith jones"),
        ("Philips N.V.", "Philips", "NV", "philips"),
        ("ASML Holding N.V.", "ASML Holding", "NV", "asml holding"),
        ("Bakkerij Jansen B.V.", "Bakkerij Jansen", "BV", "bakkerij jansen"),
        ("Dupont S.A.R.L.", "Dupont", "SARL", "dupont"),
        ("Dupont S.à r.l.", "Dupont", "SARL", "dupont"),
        ("SARL Boulangerie Martin", "Boulangerie Martin", "SARL", "boulangerie martin"),
        ("Renault S.A.", "Renault", "SA", "renault"),
        ("Renault SAS", "Renault", "SAS", "renault"),
        ("NV Bekaert SA", "Bekaert", "SA", "bekaert"),
        ("Fiat S.p.A.", "Fiat", "SpA", "fiat"),
        ("Maersk A/S", "Maersk", "A/S", "maersk"),
        ("Equinor ASA", "Equinor", "ASA", "equinor"),
        ("Grupo Bimbo S.A. de C.V.", "Grupo Bimbo", "SA de CV", "grupo bimbo"),
        # not legal forms
        ("Hotel & Spa", "Hotel & Spa", None, "hotel spa"),
        ("Acme EV", "Acme EV", None, "acme ev"),
        ("Müller & Söhne", "Müller & Söhne", None, "muller sohne"),
        ("Smith and Company", "Smith and Company", None, "smith"),
        ("Dupont & Cie", "Dupont & Cie", None, "dupont"),
        ("Holding", "Holding", None, "holding"),
        # a legal form twice: both go, the last one is the legal form
        ("Müller GmbH GmbH", "Müller", "GmbH", "muller"),
        ("Acme Corp Ltd", "Acme", "Ltd", "acme"),
    ],
)
def test_company_name(raw: str, name: str, legal_form: str | None, key: str) -> None:
    assert company_name(raw) == CompanyName(name=name, legal_form=legal_form, key=key)


def test_holding_is_not_noise() -> None:
    assert company_name("Müller Holding GmbH").key != company_name("Müller GmbH").key


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "GmbH", "G.m.b.H.", "GmbH & Co. KG", "Ltd.", "- Inc.", "GmbH Ltd"],
)
def test_company_name_empty(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        company_name(raw)
    assert error.value.code == "company.empty"


def test_every_spelling_gives_its_canonical_form() -> None:
    for canonical, spellings in LEGAL_FORMS.items():
        for spelling in (canonical, *spellings):
            assert company_name(f"Beispiel {spelling}").legal_form == canonical, spelling


_FORM_KEYS = {_form_key(f) for forms in LEGAL_FORMS.values() for f in forms}
_NAMES = st.text(
    alphabet=st.characters(categories=("Lu", "Ll"), max_codepoint=0x17F), min_size=1
).filter(lambda s: s.upper().lower() == s.lower())


@settings(max_examples=200)
@given(_NAMES, st.sampled_from(list(LEGAL_FORMS)))
def test_key_is_stable_under_case_and_legal_form_spelling(name: str, canonical: str) -> None:
    # Names that are legal forms ("Ltd") or end like one begins ("Pty" + "Ltd", "G" + "GmbH")
    # are another story.
    assume(_form_key(name) not in _FORM_KEYS)
    assume(_form_key(f"{name}{canonical}") not in _FORM_KEYS)
    keys = {
        company_name(f"{variant_name} {spelling}").key
        for variant_name in (name, name.upper(), name.lower())
        for spelling in (canonical, *LEGAL_FORMS[canonical])
    }
    assert keys == {company_name(name).key}


@settings(max_examples=200)
@given(st.text())
def test_company_name_only_raises_invalid_value(raw: str) -> None:
    try:
        result = company_name(raw)
    except InvalidValue as error:
        codes = {error.code}
    else:
        codes = set()
        assert result.name
        assert result.key
    assert codes <= {"company.empty"}


_TOKENS = st.sampled_from(
    [
        *("Müller", "Acme", "Hotel", "Holding", "G", "Pty", "&", "Co.", "-", "und", "Spa"),
        *("GmbH", "Ltd", "KG", "SA", "NV", "SARL", "AG", "e.V.", "Inc.", "UG"),
        "(haftungsbeschränkt)",
    ]
)


@settings(max_examples=300)
@given(st.one_of(st.lists(_TOKENS, min_size=1, max_size=7).map(" ".join), st.text()))
def test_company_name_is_idempotent(raw: str) -> None:
    try:
        once = company_name(raw)
    except InvalidValue:
        return
    again = company_name(once.name)  # the matcher keys the stored name again
    assert (again.name, again.key) == (once.name, once.key)
