"""Turning canonical data into comparable features, and comparing them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler

from accord import standardize as std

FEATURES: tuple[str, ...] = (
    "email",
    "phone",
    "tax_id",
    "birth_date",
    "postcode",
    "city",
    "street",
    "country",
    "given_name",
    "family_name",
    "person_name",
    "full_name",
    "organization_name",
    "employer",
)


def features_of(data: dict[str, Any], employer: str | None = None) -> dict[str, str]:
    """The match features of one canonical customer record; absent values are left out.

    `employer` is a person's employer from elsewhere (the name of the account the record
    references, see `golden.relationships.referenced_employers`), used when the record
    names none itself; it is compared as a company name key, like `organization_name`.

    Names are compared as keys (case, accents and punctuation folded); `person_name` is
    "given root|family", with the given name's nickname resolved (Bill -> william), for
    the deterministic rules; the learned engine reads `given_name~root` for that.
    `full_name` is every name word in one value, for names split differently."""
    out: dict[str, str] = {}
    for name in ("email", "phone", "tax_id", "birth_date", "postcode", "country"):
        value = data.get(name)
        if value:
            out[name] = str(value)
    if data.get("city"):
        out["city"] = std.name_key(data["city"])
    if data.get("street"):
        out["street"] = std.street_key(data["street"])
    given = std.name_key(data["given_name"]) if data.get("given_name") else ""
    family = std.name_key(data["family_name"]) if data.get("family_name") else ""
    if given:
        out["given_name"] = given
    if family:
        out["family_name"] = family
    if given and family:
        out["person_name"] = f"{std.given_name_root(data['given_name'])}|{family}"
    if given or family:
        # every name word, wherever a source put it: "Anna Maria|Weber" and "Anna|Maria
        # Weber" have the same words
        out["full_name"] = f"{given} {family}".strip()
    if data.get("organization_name"):
        out["organization_name"] = std.company_name(data["organization_name"]).key
    out = {k: v for k, v in out.items() if v}
    works_for = data.get("employer") or employer
    if works_for:
        set_employer(out, works_for)
    return out


def set_employer(features: dict[str, str], employer: Any) -> None:
    """Give a person's features its employer (compared as a company name key), when the
    name is a company's: for a record whose employer is only known from elsewhere once
    its features are made (see `features_of`)."""
    key = company_key(str(employer))
    if key:
        features["employer"] = key


def company_key(name: str) -> str | None:
    """A company name's key (case, accents, punctuation and legal form apart), or None
    for free text that names no company ("GmbH", "-"): an employer typed by hand is
    compared when it can be, and otherwise left out."""
    try:
        return std.company_name(name).key
    except std.InvalidValue:
        return None


def _person_name(a: str, b: str) -> float:
    """Similarity of two "given|family" names, allowing for swapped order."""
    given_a, family_a = a.split("|", 1)
    given_b, family_b = b.split("|", 1)
    straight = min(_jaro_winkler(given_a, given_b), _jaro_winkler(family_a, family_b))
    swapped = min(_jaro_winkler(given_a, family_b), _jaro_winkler(family_a, given_b))
    return max(straight, swapped)


def _jaro_winkler(a: str, b: str) -> float:
    return float(JaroWinkler.normalized_similarity(a, b))


def _token_sort(a: str, b: str) -> float:
    return float(fuzz.token_sort_ratio(a, b)) / 100.0


def _exact(a: str, b: str) -> float:
    return 1.0 if a == b else 0.0


SIMILARITY: dict[str, Callable[[str, str], float]] = {
    "given_name": _jaro_winkler,
    "family_name": _jaro_winkler,
    "person_name": _person_name,
    "organization_name": _token_sort,
    "employer": _token_sort,
    "street": _token_sort,
    "city": _jaro_winkler,
    "email": _exact,
    "phone": _exact,
    "tax_id": _exact,
    "birth_date": _exact,
    "postcode": _exact,
}
