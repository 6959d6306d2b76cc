"""Applying a mapping: source fields to canonical fields, standardized and checked.

Pure: no I/O. A record either maps (possibly with flagged issues: invalid optional
values kept out of the canonical data and listed beside it) or is rejected with reasons
that send it to quarantine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from accord import expressions
from accord import standardize as std
from accord.config.loader import Mapping
from accord.config.models import FieldMapping, SystemConfig
from accord.expressions import Expression, ExpressionError, Needs, Scope
from accord.intake.reasons import Reason
from accord.intake.rules import compile_rules, judge
from accord.model.customer import FIELDS_BY_NAME, CanonicalField, FieldType, PartyKind

MAX_SOURCE_ID_CHARS = 256

# Invalid values of these types make the record unusable by default: a date or a
# vocabulary word we cannot read usually means the mapping is wrong. Others are flagged.
_QUARANTINE_BY_DEFAULT = {FieldType.DATE, FieldType.TIMESTAMP, FieldType.VOCABULARY}

# Standardizers are pure, and most values repeat from record to record (names, streets,
# cities, postcodes, companies, countries; phones across systems): each function
# remembers its latest answers, so a repeated value is standardized once. Invalid values
# raise and are not remembered. At most this many values per function (a few MB each).
_REMEMBERED = 32_768


def _remembered(function: Callable[..., Any]) -> Callable[..., Any]:
    return lru_cache(maxsize=_REMEMBERED)(function)


_split_full_name = _remembered(std.split_full_name)
_company_name = _remembered(std.company_name)
_date = _remembered(std.date)
_phone = _remembered(std.phone)
_postcode = _remembered(std.postcode)

# Standardization order: kind first (fields may apply to one kind only), then country,
# since phones and postcodes depend on it.
_FIRST = ("kind", "country")


@dataclass(frozen=True)
class MappedRecord:
    source_id: str
    data: dict[str, Any]
    issues: tuple[Reason, ...]


@dataclass(frozen=True)
class Rejected:
    source_id: str | None
    reasons: tuple[Reason, ...]


class _Plan:
    """How one canonical field is read from a source record, worked out once."""

    __slots__ = ("field", "finish", "flat", "name", "only_for", "path", "simple", "spec")

    def __init__(self, field: CanonicalField, spec: FieldMapping, path: list[str] | None) -> None:
        self.field = field
        self.spec = spec
        self.name = field.name
        self.only_for = spec.only_for
        self.path = path  # None: a constant or a computed value
        self.flat = path is not None and len(path) == 1
        self.finish = spec.translate is not None  # a value read is translated
        # a standardizer of one value into one field (the others, in `_standardize`)
        self.simple = _SIMPLE.get(field.type)


class RecordMapper:
    """Maps one system's source records into canonical customer records.

    Field order: `kind` and `country` first, then fields read `from` a source or set to
    a `value`, then computed fields in the order the mapping lists them, so a `compute`
    expression's `record` holds every field mapped before it. Business rules judge the
    finished record. CEL expressions are compiled once, here.
    """

    def __init__(self, mapping: Mapping, system: SystemConfig) -> None:
        self.mapping = mapping
        self.version = mapping.version
        self._region = system.default_region
        config = mapping.config
        self._source_id_path = config.source_id.split(".")
        ordered = [n for n in _FIRST if n in config.fields]
        later = [n for n in config.fields if n not in _FIRST]
        ordered += [n for n in later if config.fields[n].compute is None]
        ordered += [n for n in later if config.fields[n].compute is not None]
        self._fields = [(FIELDS_BY_NAME[n], config.fields[n]) for n in ordered]
        self._plans = [
            _Plan(field, spec, spec.source.split(".") if spec.source else None)
            for field, spec in self._fields
        ]
        self._computed: dict[str, Expression] = {
            name: expressions.compile_expression(spec.compute, expressions.COMPUTE_VARIABLES)
            for name, spec in config.fields.items()
            if spec.compute is not None
        }
        self._rules = compile_rules(mapping.rules)
        # What the expressions read of a record: converting values to CEL is their main
        # cost, so only that is converted.
        self._needs = Needs.of(
            [*self._computed.values()]
            + [e for rule in self._rules for e in (rule.when, rule.check) if e is not None]
        )
        # Translations match exactly first, then ignoring case; fold the tables once.
        self._folded = {
            name: {key.casefold(): target for key, target in spec.translate.items()}
            for name, spec in config.fields.items()
            if spec.translate is not None
        }

    def source_columns(self) -> tuple[str, ...]:
        """The top-level source fields this mapping reads (a CSV header must have them)."""
        paths = [self.mapping.config.source_id] + [
            spec.source for _, spec in self._fields if spec.source is not None
        ]
        return tuple(dict.fromkeys(p.split(".")[0] for p in paths))

    def source_id(self, fields: dict[str, Any]) -> str | None:
        """The record's source id as written, before any check (None when it has none)."""
        return source_text(lookup(fields, self._source_id_path))

    def map(self, fields: dict[str, Any]) -> MappedRecord | Rejected:
        source_id = self.source_id(fields)
        reasons: list[Reason] = []
        if source_id is None:
            reasons.append(Reason("source_id.missing", "the record has no source id"))
        elif len(source_id) > MAX_SOURCE_ID_CHARS:
            reasons.append(
                Reason("source_id.too_long", f"source id longer than {MAX_SOURCE_ID_CHARS}")
            )
            source_id = source_id[:MAX_SOURCE_ID_CHARS]
        data: dict[str, Any] = {}
        issues: list[Reason] = []
        scope: Scope | None = None
        for plan in self._plans:
            spec = plan.spec
            if plan.only_for is not None and data.get("kind") != plan.only_for:
                continue
            try:
                if plan.path is None:
                    if spec.compute is None:
                        raw = spec.value  # a constant
                    else:
                        scope = scope or Scope(self._needs, fields)
                        raw = self._computed_value(plan.name, spec, scope, data)
                else:
                    found = fields.get(plan.path[0]) if plan.flat else lookup(fields, plan.path)
                    # text, as every CSV value is, first
                    raw = found.strip() or None if type(found) is str else self._read(plan, found)
                    if raw is not None and plan.finish:
                        raw = self._finish(plan.name, raw, spec)
                    elif raw is None and spec.default is not None:
                        raw = spec.default
                if raw is None:
                    continue
                if plan.simple is not None:
                    data[plan.name] = plan.simple(raw)
                else:
                    self._standardize(plan.field, spec, raw, data)
            except std.InvalidValue as exc:
                field = plan.field
                reason = Reason(exc.code, exc.message, field.name)
                policy = spec.on_invalid or (
                    "quarantine" if field.type in _QUARANTINE_BY_DEFAULT else "flag"
                )
                (reasons if policy == "quarantine" else issues).append(reason)
        explained = {r.field for r in reasons}  # one reason per field is enough
        reasons.extend(r for r in _required(data) if r.field not in explained)
        if self._rules and not reasons:
            scope = scope or Scope(self._needs)
            scope.set_record(data)
            for verdict in judge(self._rules, scope):
                (reasons if verdict.action == "quarantine" else issues).append(verdict.reason)
        if reasons or source_id is None:
            return Rejected(source_id, tuple(reasons))
        return MappedRecord(source_id, data, tuple(issues))

    @staticmethod
    def _read(plan: _Plan, found: Any) -> str | None:
        """A source value that is not text, as text (None when missing or empty)."""
        if isinstance(found, dict | list):
            what = "an object" if isinstance(found, dict) else "a list"
            raise std.InvalidValue(
                "value.structured",
                f"{plan.spec.source} holds {what} where a single value belongs",
            )
        return source_text(found)

    def _computed_value(
        self, name: str, spec: FieldMapping, scope: Scope, data: dict[str, Any]
    ) -> str | None:
        expression = self._computed[name]
        if "record" in expression.variables:
            scope.set_record(data)
        try:
            value = expressions.as_text(expression.run(scope))
        except ExpressionError as exc:
            shown = expression.text if len(expression.text) <= 80 else expression.text[:77] + "..."
            raise std.InvalidValue("compute.failed", f"{shown}: {exc}") from None
        return self._finish(name, value.strip() if value is not None else None, spec)

    def _finish(self, name: str, value: str | None, spec: FieldMapping) -> str | None:
        """Translate a value read or computed, and fall back to the default."""
        value = value or None
        if value is not None and spec.translate is not None:
            if value in spec.translate:
                value = spec.translate[value]
            else:
                value = self._folded[name].get(value.casefold(), value)
        return value if value is not None else spec.default

    def _standardize(
        self, field: CanonicalField, spec: FieldMapping, raw: str, data: dict[str, Any]
    ) -> None:
        kind = field.type
        name = field.name
        if kind is FieldType.FULL_NAME:
            split = _split_full_name(raw)
            data.setdefault("given_name", split.given_name)
            data.setdefault("family_name", split.family_name)
            if data["given_name"] is None:
                del data["given_name"]
            if data["family_name"] is None:
                del data["family_name"]
        elif kind is FieldType.COMPANY_NAME:
            company = _company_name(raw)
            data[name] = company.name
            if company.legal_form is not None:
                data.setdefault("legal_form", company.legal_form)
        elif kind is FieldType.DATE:
            data[name] = _date(raw, tuple(spec.formats or ("%Y-%m-%d",))).isoformat()
        elif kind is FieldType.TIMESTAMP:
            data[name] = std.timestamp(raw).isoformat()
        elif kind is FieldType.PHONE:
            data[name] = _phone(raw, data.get("country") or self._region)
        elif kind is FieldType.POSTCODE:
            data[name] = _postcode(raw, data.get("country"))
        elif kind is FieldType.VOCABULARY:
            if raw not in field.vocabulary:
                raise std.InvalidValue(
                    "vocabulary.unknown",
                    f"{raw!r} is not one of {', '.join(field.vocabulary)}; "
                    "add it to `translate` in the mapping",
                )
            data[name] = raw
        else:  # the others are one value into one field: `_Plan.simple`, in `map`
            raise ValueError(f"{kind} is standardized by `_SIMPLE`, not here")


_SIMPLE: dict[FieldType, Callable[[str], str]] = {
    FieldType.STRING: _remembered(std.clean_text),
    FieldType.NAME: _remembered(std.person_name),
    FieldType.EMAIL: std.email,  # mostly unique; its domains are remembered (emails.py)
    FieldType.COUNTRY: _remembered(std.country),
    FieldType.IDENTIFIER: std.tax_id,  # unique
}


def _required(data: dict[str, Any]) -> list[Reason]:
    kind = data.get("kind")
    if kind is None:
        return [Reason("kind.missing", "cannot tell a person from an organization", "kind")]
    if kind == PartyKind.PERSON and not (data.get("given_name") or data.get("family_name")):
        return [Reason("name.missing", "a person needs a given or family name", "family_name")]
    if kind == PartyKind.ORGANIZATION and not data.get("organization_name"):
        return [Reason("name.missing", "an organization needs a name", "organization_name")]
    return []


def lookup(fields: dict[str, Any], path: list[str]) -> Any:
    """The value at `path` in a source record (nested objects), None where it stops."""
    value: Any = fields
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def source_text(value: Any) -> str | None:
    """A source value as stripped text; None for missing, empty or structured values
    (a field's structured value is refused before, in `RecordMapper._read`)."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip() if not isinstance(value, bool) else str(value).lower()
    return text or None
