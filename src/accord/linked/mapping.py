"""Mapping a linked record (an order, an invoice, a ticket): its id, the customer it
belongs to, and a few typed fields. Pure: no I/O.

A linked record is not a customer and is never matched: what it needs is the source id
of its customer's record (in its own system, or the one `customer_system` names), by
which it is attached to a golden customer through the crosswalk when read. Its fields
have one shape whatever the system calls them:

- `occurred_at`: when it happened, an aware UTC datetime (ISO text);
- `amount`: a decimal as text, as written (`1234.50`, never a float);
- `currency`: an ISO 4217 code;
- `status`, `title`: text, cleaned.

An `occurred_at`, `amount` or `currency` that cannot be read sends the record to
quarantine (unless its field says `on_invalid: flag`): a wrong format usually means a
wrong mapping. A record without its own id or its customer's goes to quarantine too.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pycountry

from accord import standardize as std
from accord.config.loader import LinkedMapping
from accord.config.models import FieldMapping
from accord.intake.mapping import MAX_SOURCE_ID_CHARS, Rejected, lookup, source_text
from accord.intake.reasons import Reason
from accord.standardize.errors import show

FIELDS = ("occurred_at", "amount", "currency", "status", "title")
_QUARANTINE_BY_DEFAULT = frozenset({"occurred_at", "amount", "currency"})
_AMOUNT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
MAX_AMOUNT_DIGITS = 38  # what a numeric(38) holds; more is a mistake, not money
_MIN_YEAR, _MAX_YEAR = 1850, 2100
_CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies)


@dataclass(frozen=True)
class LinkedValues:
    """A linked record mapped: whose it is, and its typed fields (absent when empty)."""

    source_id: str
    customer_source_id: str
    data: dict[str, str]
    issues: tuple[Reason, ...]


class LinkedMapper:
    """Maps one system's linked records of one kind."""

    def __init__(self, mapping: LinkedMapping) -> None:
        config = mapping.config
        self.mapping = mapping
        self.version = mapping.version
        self.system = config.system
        self.kind = config.kind
        self.customer_system = config.customers_in
        self._source_id = config.source_id.split(".")
        self._customer = config.customer.split(".")
        self._fields = [
            (name, spec, spec.source.split(".") if spec.source else None)
            for name in FIELDS
            if (spec := getattr(config.fields, name)) is not None
        ]
        self._folded = {
            name: {key.casefold(): target for key, target in spec.translate.items()}
            for name, spec, _ in self._fields
            if spec.translate is not None
        }

    def source_columns(self) -> tuple[str, ...]:
        """The top-level source fields this mapping reads (a CSV header must have them)."""
        config = self.mapping.config
        paths = [config.source_id, config.customer] + [
            spec.source for _, spec, _ in self._fields if spec.source is not None
        ]
        return tuple(dict.fromkeys(p.split(".")[0] for p in paths))

    def source_id(self, fields: dict[str, Any]) -> str | None:
        """The record's own id as written (None when it has none)."""
        return source_text(lookup(fields, self._source_id))

    def map(self, fields: dict[str, Any]) -> LinkedValues | Rejected:
        """The record's values, or the reasons it cannot be stored."""
        reasons: list[Reason] = []
        source_id = _identifier(self.source_id(fields), "source_id", "its own id", reasons)
        customer = _identifier(
            source_text(lookup(fields, self._customer)), "customer", "its customer's id", reasons
        )
        data: dict[str, str] = {}
        issues: list[Reason] = []
        for name, spec, path in self._fields:
            try:
                raw = spec.value if path is None else _read(spec, lookup(fields, path))
                if raw is not None and spec.translate is not None:
                    raw = spec.translate.get(raw) or self._folded[name].get(raw.casefold(), raw)
                raw = raw or spec.default
                if raw is not None:
                    data[name] = _standardize(name, raw, spec)
            except std.InvalidValue as exc:
                reason = Reason(exc.code, exc.message, name)
                policy = spec.on_invalid or (
                    "quarantine" if name in _QUARANTINE_BY_DEFAULT else "flag"
                )
                (reasons if policy == "quarantine" else issues).append(reason)
        if reasons or source_id is None or customer is None:
            return Rejected(source_id, tuple(reasons))
        return LinkedValues(source_id, customer, data, tuple(issues))


def _identifier(value: str | None, field: str, what: str, reasons: list[Reason]) -> str | None:
    if value is None:
        reasons.append(Reason(f"{field}.missing", f"the record has no {what}", field))
        return None
    if len(value) > MAX_SOURCE_ID_CHARS:
        reasons.append(
            Reason(f"{field}.too_long", f"{what} is longer than {MAX_SOURCE_ID_CHARS}", field)
        )
        return value[:MAX_SOURCE_ID_CHARS]
    return value


def _standardize(name: str, raw: str, spec: FieldMapping) -> str:
    if name == "occurred_at":
        return occurred_at(raw, spec.formats).isoformat()
    if name == "amount":
        return amount(raw)
    if name == "currency":
        return currency(raw)
    return std.clean_text(raw)


def occurred_at(raw: str, formats: list[str] | None = None) -> dt.datetime:
    """When a linked record happened, as an aware UTC datetime: in the first of `formats`
    that fits (strptime; a date is midnight, a time without an offset is UTC), else ISO
    8601. Raises InvalidValue for anything else, or a year outside 1850-2100."""
    text = raw.strip()
    if formats is None:
        value = std.timestamp(text)
    else:
        found = None
        for fmt in formats:
            try:
                found = dt.datetime.strptime(text, fmt)  # noqa: DTZ007  (naive is UTC, below)
                break
            except ValueError:
                continue
        if found is None:
            raise std.InvalidValue(
                "date.invalid", f"{show(raw)} is not a date in the format(s) {', '.join(formats)}"
            )
        value = found.replace(tzinfo=dt.UTC) if found.tzinfo is None else found.astimezone(dt.UTC)
    if not _MIN_YEAR <= value.year <= _MAX_YEAR:
        raise std.InvalidValue(
            "date.out_of_range", f"{show(raw)} is outside the years {_MIN_YEAR}-{_MAX_YEAR}"
        )
    return value


def amount(raw: str) -> str:
    """A decimal amount as text with the digits it was given (`1234.50`, `-3`, `0.5` for
    `.5`); no thousands separators, no exponent. Raises InvalidValue otherwise."""
    text = raw.strip().replace(" ", "")
    digits = sum(c.isdigit() for c in text)
    if not _AMOUNT.fullmatch(text) or digits > MAX_AMOUNT_DIGITS:
        hint = " (a decimal point, no thousands separators)" if "," in text else ""
        raise std.InvalidValue("amount.invalid", f"{show(raw)} is not a decimal amount{hint}")
    try:
        value = Decimal(text) + 0  # + 0: -0 is 0
    except InvalidOperation:  # the pattern lets none through; kept as a guard
        raise std.InvalidValue("amount.invalid", f"{show(raw)} is not a decimal amount") from None
    return format(value, "f")


def currency(raw: str) -> str:
    """An ISO 4217 code, upper case; raises InvalidValue for any other text."""
    code = raw.strip().upper()
    if code not in _CURRENCIES:
        raise std.InvalidValue("currency.invalid", f"{show(raw)} is not an ISO 4217 currency")
    return code


def _read(spec: FieldMapping, found: Any) -> str | None:
    if isinstance(found, dict | list):
        what = "an object" if isinstance(found, dict) else "a list"
        raise std.InvalidValue(
            "value.structured", f"{spec.source} holds {what} where a single value belongs"
        )
    return source_text(found)
