"""Match features of canonical records: what the matcher compares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.match.features import company_key, features_of


def test_an_employer_is_compared_as_a_company_name_key() -> None:
    own = features_of({"kind": "person", "family_name": "Weber", "employer": "ACME GmbH"})
    typed = features_of({"kind": "person", "family_name": "Weber", "employer": "Acme"})
    assert own["employer"] == typed["employer"] == "acme"  # legal form and case apart


def test_an_employer_from_elsewhere_fills_in_only_when_the_record_names_none() -> None:
    contact = {"kind": "person", "family_name": "Weber", "account_ref": "001A"}
    assert features_of(contact, employer="Globex Ltd")["employer"] == "globex"
    named = contact | {"employer": "Initech"}
    assert features_of(named, employer="Globex Ltd")["employer"] == "initech"
    assert "employer" not in features_of(contact)
    assert "employer" not in features_of(contact, employer="")


@pytest.mark.parametrize("typed", ["GmbH", "Sas", "-", "   ", "Ltd."])
def test_an_employer_that_names_no_company_is_left_out(typed: str) -> None:
    assert "employer" not in features_of({"kind": "person", "employer": typed})
    assert "employer" not in features_of({"kind": "person"}, employer=typed)


@given(st.text(max_size=40))
def test_any_employer_text_gives_its_company_key_or_nothing(typed: str) -> None:
    found = features_of({"kind": "person", "family_name": "Weber", "employer": typed})
    key = company_key(typed)
    # text that names a company gives its key; anything else, no employer (never an
    # error, never an empty key)
    assert found.get("employer") == (key or None)
