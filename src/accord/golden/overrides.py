"""Steward overrides: a steward pins the value of one field of a golden customer.

The value is standardized as a mapped value of the field would be (an invalid one is
refused), stored (`golden_override`), and the customer's golden record is rebuilt at
once through `golden.resolve.write_clusters`, so the change is audited and goes to the
sync outbox like any other. Every later rebuild, full or incremental, applies it: it wins
over every survivorship strategy (lineage rule `steward_override`, with who, when and
why; the values it beat stay as alternatives). When the customer is merged into another
the override follows it (`store.overrides.follow_merges`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from accord.config.loader import Project
from accord.errors import Conflict, InputRejected, NotFound
from accord.golden.content import golden_content, member_of
from accord.golden.resolve import (
    MATCHING_LOCK,
    ResolveReport,
    Scope,
    one_by_one,
    write_clusters,
)
from accord.golden.survivorship import PUBLISHED_FIELDS, Survivorship
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.govern.permissions import Actor, Permission, require
from accord.model.customer import FIELDS_BY_NAME, FieldType
from accord.standardize import (
    InvalidValue,
    clean_text,
    company_name,
    country,
    date,
    email,
    person_name,
    phone,
    postcode,
    tax_id,
)
from accord.store import golden as golden_store
from accord.store import overrides as store
from accord.store import records as record_store
from accord.store.dialect import exclusive
from accord.store.types import utcnow

MAX_REASON_CHARS = 2000


def canonical_value(field: str, raw: str, *, country_code: str | None = None) -> str:
    """`raw` standardized as a value of `field` (phones and postcodes in the customer's
    `country_code`); raises InputRejected naming what is wrong."""
    canonical = FIELDS_BY_NAME.get(field)
    if canonical is None or field not in PUBLISHED_FIELDS:
        raise InputRejected(
            f"{field!r} is not a field of the golden record",
            hint="fields: " + ", ".join(PUBLISHED_FIELDS),
        )
    text = raw.strip()
    if not text:
        raise InputRejected("an override needs a value", hint="to remove one, use --clear")
    try:
        return _standardized(canonical.type, canonical.vocabulary, text, country_code)
    except InvalidValue as invalid:
        raise InputRejected(
            f"{raw!r} is not a valid {field}: {invalid.message}", hint=f"({invalid.code})"
        ) from invalid


def _standardized(
    kind: FieldType, vocabulary: tuple[str, ...], text: str, country_code: str | None
) -> str:
    if kind is FieldType.EMAIL:
        return email(text)
    if kind is FieldType.PHONE:
        return phone(text, country_code)
    if kind is FieldType.POSTCODE:
        return postcode(text, country_code)
    if kind is FieldType.COUNTRY:
        return country(text)
    if kind is FieldType.IDENTIFIER:
        return tax_id(text)
    if kind is FieldType.NAME:
        return person_name(text)
    if kind is FieldType.DATE:
        return date(text).isoformat()
    if kind is FieldType.COMPANY_NAME:
        company = company_name(text)
        if company.legal_form is not None:
            raise InvalidValue(
                "company.legal_form",
                f"it holds the legal form {company.legal_form!r}: pin `legal_form` on its own",
            )
        return company.name
    if kind is FieldType.VOCABULARY:
        if text not in vocabulary:
            raise InvalidValue("vocabulary.unknown", "it is not one of " + ", ".join(vocabulary))
        return text
    return clean_text(text)


def override(
    conn: Connection,
    actor: Actor,
    project: Project,
    golden_id: str,
    field: str,
    *,
    value: str,
    reason: str,
) -> dict[str, Any]:
    """Pin `field` of an active customer to `value` (standardized) and rebuild its golden
    record; `conn` must be writing. Returns the override and the golden value before."""
    require(actor, Permission.GOLDEN_OVERRIDE)
    reason = _reason(reason)
    row = _active(conn, golden_id)
    pinned = canonical_value(field, value, country_code=row["data"].get("country"))
    now = utcnow()
    store.set_pin(conn, golden_id, field, pinned, reason=reason, by=actor.label, at=now)
    before = row["data"].get(field)
    _rebuild(
        conn,
        actor,
        project,
        golden_id,
        AuditEvent(
            AuditAction.GOLDEN_OVERRIDDEN,
            "golden",
            golden_id,
            {"field": field, "value": pinned, "before": before, "reason": reason},
        ),
    )
    return {
        "golden_id": golden_id,
        "field": field,
        "value": pinned,
        "before": before,
        "reason": reason,
        "set_by": actor.label,
        "set_at": now.isoformat(),
    }


def clear(
    conn: Connection,
    actor: Actor,
    project: Project,
    golden_id: str,
    field: str,
    *,
    reason: str = "",
) -> dict[str, Any]:
    """Remove the override of `field` and rebuild the golden record, whose value goes
    back to what survivorship chooses; `conn` must be writing."""
    require(actor, Permission.GOLDEN_OVERRIDE)
    reason = _reason(reason, required=False)
    _active(conn, golden_id)
    removed = store.clear_pin(conn, golden_id, field)
    if removed is None:
        raise NotFound(
            f"{golden_id} has no override of {field!r}",
            hint=f"`accord golden overrides DIR {golden_id}` lists them",
        )
    _rebuild(
        conn,
        actor,
        project,
        golden_id,
        AuditEvent(
            AuditAction.GOLDEN_OVERRIDE_CLEARED,
            "golden",
            golden_id,
            {"field": field, "value": removed["value"], "reason": reason},
        ),
    )
    after = golden_store.get(conn, golden_id)
    return {
        "golden_id": golden_id,
        "field": field,
        "was": removed["value"],
        "value": (after or {}).get("data", {}).get(field),
    }


def listed(conn: Connection, actor: Actor, golden_id: str | None = None) -> list[dict[str, Any]]:
    """The overrides (of one customer, or all). Those on a customer merged away were set
    aside by the merge (another override of the field won) and wait for a steward."""
    require(actor, Permission.CUSTOMERS_READ)
    return [
        row | {"set_at": row["set_at"].isoformat(), "in_effect": row["status"] == "active"}
        for row in store.listed(conn, golden_id)
    ]


def _reason(reason: str, *, required: bool = True) -> str:
    reason = reason.strip()
    if required and not reason:
        raise InputRejected("an override needs a reason", hint="--reason 'why this value'")
    if len(reason) > MAX_REASON_CHARS:
        raise InputRejected(f"a reason is at most {MAX_REASON_CHARS} characters")
    return reason


def _active(conn: Connection, golden_id: str) -> dict[str, Any]:
    row = golden_store.get(conn, golden_id)
    if row is None:
        raise NotFound(f"no customer {golden_id!r}")
    if row["status"] != "active":
        merged_into = row.get("merged_into")
        raise Conflict(
            f"{golden_id} is {row['status']}",
            hint=f"override the customer it merged into, {merged_into}"
            if merged_into
            else "a retired customer has no golden record to override",
        )
    return row


def _rebuild(
    conn: Connection, actor: Actor, project: Project, golden_id: str, event: AuditEvent
) -> None:
    """Build the customer's golden record again from its members and write it (and its
    outbox change) through `write_clusters`, with `event` and what it returns audited."""
    exclusive(conn, MATCHING_LOCK)  # as a resolve would: nothing else rewrites it meanwhile
    keys = [(m["system"], m["source_id"]) for m in golden_store.members(conn, golden_id)]
    records = {(r.system, r.source_id): r for r in record_store.current_of(conn, keys)}
    members = [key for key in keys if key in records]
    if not members:
        raise Conflict(
            f"{golden_id} has no current member records",
            hint="run `accord resolve DIR` first",
        )
    scope = Scope.of(conn, members, also=frozenset({golden_id}), restore=False)
    survivorship = Survivorship(project.config.survivorship, project.config.systems)
    events = write_clusters(
        conn,
        actor=actor.label,
        entity=project.config.entity,
        keys=[members],
        content=one_by_one(
            lambda _, pins: golden_content(
                survivorship, [member_of(records[key]) for key in members], pins
            )
        ),
        evidence=scope.evidence(),
        report=ResolveReport(),
        scope=scope,
    )
    record(conn, actor.label, [event, *events])
