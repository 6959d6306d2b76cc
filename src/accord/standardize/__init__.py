"""Standardization: pure functions from a raw source value to Accord's canonical form.

Every function takes text as a source system holds it and returns the canonical value, or
raises `InvalidValue` with a stable `code` ("email.invalid") and a message naming the value.
Nothing here guesses: a value that cannot be standardized is flagged, never "fixed" into
something else. No I/O, no database; safe to call from many threads or processes.
"""

from accord.standardize.addresses import postcode, street_key
from accord.standardize.companies import CompanyName, company_name
from accord.standardize.countries import country
from accord.standardize.dates import date, timestamp
from accord.standardize.emails import email
from accord.standardize.errors import InvalidValue
from accord.standardize.identifiers import tax_id
from accord.standardize.names import SplitName, given_name_root, person_name, split_full_name
from accord.standardize.phones import phone
from accord.standardize.text import clean_text, name_key

__all__ = [
    "CompanyName",
    "InvalidValue",
    "SplitName",
    "clean_text",
    "company_name",
    "country",
    "date",
    "email",
    "given_name_root",
    "name_key",
    "person_name",
    "phone",
    "postcode",
    "split_full_name",
    "street_key",
    "tax_id",
    "timestamp",
]
