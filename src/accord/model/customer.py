"""The canonical customer (party): a person or an organization.

Every system's records are mapped into these fields. `FieldType` says which
standardizer a value goes through on the way in; docs/canonical-model.md documents
each field and the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    STRING = "string"
    NAME = "name"  # a person's given or family name
    FULL_NAME = "full_name"  # "Given Family" or "Family, Given"; split on the way in
    COMPANY_NAME = "company_name"  # legal form split off into `legal_form`
    DATE = "date"
    EMAIL = "email"
    PHONE = "phone"
    COUNTRY = "country"
    POSTCODE = "postcode"
    IDENTIFIER = "identifier"  # tax ids, registration numbers
    VOCABULARY = "vocabulary"  # one of a closed set of words
    TIMESTAMP = "timestamp"


class PartyKind(StrEnum):
    PERSON = "person"
    ORGANIZATION = "organization"


class LifecycleStatus(StrEnum):
    """The one lifecycle vocabulary shared by every mapping (C1.7)."""

    LEAD = "lead"
    PROSPECT = "prospect"
    ACTIVE_CUSTOMER = "active_customer"
    CHURNED = "churned"


@dataclass(frozen=True)
class CanonicalField:
    name: str
    type: FieldType
    description: str
    vocabulary: tuple[str, ...] = ()
    # Fields that a mapping may fill but that survivorship does not publish on the golden
    # record (inputs that standardization turns into other fields).
    input_only: bool = False


CUSTOMER_FIELDS: tuple[CanonicalField, ...] = (
    CanonicalField("kind", FieldType.VOCABULARY, "person or organization", tuple(PartyKind)),
    CanonicalField("given_name", FieldType.NAME, "a person's given name(s)"),
    CanonicalField("family_name", FieldType.NAME, "a person's family name"),
    CanonicalField(
        "full_name",
        FieldType.FULL_NAME,
        "a person's whole name in one value; split into given and family name",
        input_only=True,
    ),
    CanonicalField(
        "organization_name", FieldType.COMPANY_NAME, "an organization's name, legal form apart"
    ),
    CanonicalField("legal_form", FieldType.STRING, "GmbH, Ltd, Inc, SA...: normalized"),
    CanonicalField(
        "employer",
        FieldType.STRING,
        "for a person: the organization they work for, by name, as the source wrote it",
    ),
    CanonicalField("birth_date", FieldType.DATE, "a person's date of birth"),
    CanonicalField("email", FieldType.EMAIL, "an email address"),
    CanonicalField("phone", FieldType.PHONE, "a phone number, stored in E.164"),
    CanonicalField("tax_id", FieldType.IDENTIFIER, "VAT or tax registration number"),
    CanonicalField("street", FieldType.STRING, "street and house number"),
    CanonicalField("postcode", FieldType.POSTCODE, "postal code"),
    CanonicalField("city", FieldType.STRING, "city or town"),
    CanonicalField("country", FieldType.COUNTRY, "ISO 3166-1 alpha-2 country code"),
    CanonicalField(
        "lifecycle_status",
        FieldType.VOCABULARY,
        "where the customer is in its lifecycle",
        tuple(LifecycleStatus),
    ),
    CanonicalField(
        "account_ref",
        FieldType.STRING,
        "for a contact: the id, in the same system, of the organization it is a contact of",
        input_only=True,
    ),
    CanonicalField(
        "parent_ref",
        FieldType.STRING,
        "for an organization: the id, in the same system, of its parent company",
        input_only=True,
    ),
    CanonicalField(
        "parent_tax_id",
        FieldType.IDENTIFIER,
        "for an organization: the tax or VAT number of its parent company",
        input_only=True,
    ),
    CanonicalField(
        "source_updated_at",
        FieldType.TIMESTAMP,
        "when the source system last changed the record; used by most-recent survivorship",
        input_only=True,
    ),
)

FIELDS_BY_NAME: dict[str, CanonicalField] = {f.name: f for f in CUSTOMER_FIELDS}

ENTITY_TYPES: dict[str, tuple[CanonicalField, ...]] = {"customer": CUSTOMER_FIELDS}
