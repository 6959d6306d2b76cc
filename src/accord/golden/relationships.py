"""Relationships between customers that are not merges: a person is a contact of an
organization, an organization a subsidiary of another.

They come from the source systems' own hierarchy fields, mapped to canonical reference
fields that hold the id of another record *in the same system*: a CRM contact's account
(`account_ref`), an account's parent account (`parent_ref`). Each reference is followed
through the crosswalk to the golden customer that record belongs to, so a relationship
always joins golden customers, whichever system said so, and survives merges: when two
accounts merge, their contacts are contacts of the merged customer.

A person's `employer`, a company named in free text (the service desk's organization
field), states a contact too, when exactly one customer is an organization of that name
or of a name beginning with it (compared as company-name keys: case, accents and legal
form apart). A name that fits several organizations is counted as ambiguous and left
out; one that fits none, as unknown.

An organization's `parent_tax_id`, the tax or VAT number of its parent company, states a
subsidiary across systems (the ERP names its customer's group parent by VAT number; the
CRM holds the company with that number): when the organization records holding that
`tax_id` all belong to one customer. A number that several customers hold is counted as
ambiguous and left out; one that none holds, as unknown. Both fields are standardized
alike on the way in (`standardize.tax_id`), so they compare as they are.

A reference to a record Accord does not hold (the account was never loaded, or it was
quarantined) is counted as dangling, not guessed. A reference inside one customer (a
contact merged with its own account, a parent tax id its own customer holds) is not a
relationship.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from accord.match.features import company_key
from accord.store import golden as golden_store
from accord.store import records as record_store
from accord.store import relationships as store

Key = tuple[str, str]  # (system, source id)

# canonical reference field -> the relationship it states, from the record's customer to
# the referenced record's customer
REFERENCES: dict[str, str] = {"account_ref": "contact_of", "parent_ref": "subsidiary_of"}
# the canonical fields relationships are worked out from (`tax_id`: an organization's own,
# which a `parent_tax_id` is matched against)
STATING_FIELDS = (
    "kind",
    "organization_name",
    "employer",
    *REFERENCES,
    "tax_id",
    "parent_tax_id",
)
# fields that state or answer a relationship only on an organization's record
ORGANIZATION_ONLY = ("tax_id", "parent_tax_id")


@dataclass
class Relationships:
    # (from golden id, to golden id, type) -> the source records and fields that say so
    found: dict[tuple[str, str, str], list[dict[str, str]]] = field(default_factory=dict)
    dangling: int = 0  # references to records Accord does not hold
    ambiguous_employers: int = 0  # employer names that fit several organizations
    unknown_employers: int = 0  # employer names that fit no organization
    ambiguous_parent_tax_ids: int = 0  # parents' tax ids that several customers hold
    unknown_parent_tax_ids: int = 0  # parents' tax ids that no customer holds

    def add(self, edge: tuple[str, str, str], evidence: dict[str, str]) -> None:
        self.found.setdefault(edge, []).append(evidence)


def relationships(
    records: Iterable[tuple[Key, Mapping[str, Any]]],
    golden_of: Mapping[Key, str],
    *,
    by_name: bool = True,
) -> Relationships:
    """The relationships stated by `records` ((system, source id), canonical data),
    between the golden customers `golden_of` assigns. `by_name`: also the contacts
    stated by employer names, matched against the organizations among `records` (so
    `records` must be all of them). A parent's tax id is matched against the
    organizations among `records`, so those must include every organization record that
    holds a tax id some record states as its parent's."""
    listed = list(records)
    out = Relationships()
    naming_parents: list[tuple[Key, str, str]] = []  # (record, its customer, parent's tax id)
    for key, data in listed:
        source = golden_of.get(key)
        if source is None:
            continue
        parent_tax_id = data.get("parent_tax_id")
        if parent_tax_id and data.get("kind") == "organization":
            naming_parents.append((key, source, str(parent_tax_id)))
        for ref_field, kind in REFERENCES.items():
            ref = data.get(ref_field)
            if not ref:
                continue
            target = golden_of.get((key[0], str(ref)))
            if target is None:
                out.dangling += 1
            elif target != source:
                out.add(
                    (source, target, kind),
                    {"system": key[0], "source_id": key[1], "field": ref_field, "ref": str(ref)},
                )
    if naming_parents:
        _by_parent_tax_id(listed, golden_of, naming_parents, out)
    if by_name:
        _by_employer(listed, golden_of, out)
    for evidence in out.found.values():
        evidence.sort(key=_evidence_order)
    return out


def _by_employer(
    records: list[tuple[Key, Mapping[str, Any]]], golden_of: Mapping[Key, str], out: Relationships
) -> None:
    """Contacts stated by a person's employer name: to the one customer that is an
    organization of that name, or whose name begins with it (a name typed short fits the
    whole group: "Provenceservice" is as much "Provenceservice Immobilier" as the parent,
    so with both there it is ambiguous). The evidence names the organization record
    matched, so that an incremental resolve can follow it like a reference."""
    fitting: dict[str, dict[str, Key]] = {}  # name or its first words -> golden id -> record
    for key, data in records:
        golden = golden_of.get(key)
        if golden and data.get("kind") == "organization" and data.get("organization_name"):
            words = (_name_key(data["organization_name"]) or "").split()
            for end in range(1, len(words) + 1):
                named = fitting.setdefault(" ".join(words[:end]), {})
                named[golden] = min(named.get(golden, key), key)
    for key, data in records:
        employer = data.get("employer")
        source = golden_of.get(key)
        if not employer or source is None or data.get("kind") != "person":
            continue
        name = _name_key(employer)
        if name is None:
            continue  # free text that names no company ("GmbH", "-")
        fits = fitting.get(name, {})
        if len(fits) > 1:
            out.ambiguous_employers += 1
        elif not fits:
            out.unknown_employers += 1
        else:
            ((target, matched),) = fits.items()
            if target != source:
                out.add((source, target, "contact_of"), _employer_evidence(key, data, matched))


def _employer_evidence(key: Key, data: Mapping[str, Any], matched: Key) -> dict[str, str]:
    return {
        "system": key[0],
        "source_id": key[1],
        "field": "employer",
        "name": str(data["employer"]),
        "matched_system": matched[0],
        "matched_source_id": matched[1],
    }


def _by_parent_tax_id(
    records: list[tuple[Key, Mapping[str, Any]]],
    golden_of: Mapping[Key, str],
    naming_parents: list[tuple[Key, str, str]],
    out: Relationships,
) -> None:
    """Subsidiaries stated by a parent's tax id: of the one customer whose organization
    records hold that tax id. One pass over `records` collects the holders of the tax
    ids named (only those: at a million records, every organization's would not be
    small); the evidence names the smallest key of the holder's records that hold it,
    so that an incremental resolve can follow it like a reference."""
    named = {tax_id for _, _, tax_id in naming_parents}
    holders: dict[str, dict[str, Key]] = {}  # tax id -> golden id -> smallest record key
    for key, data in records:
        tax_id = data.get("tax_id")
        golden = golden_of.get(key)
        if golden and tax_id in named and data.get("kind") == "organization":
            held = holders.setdefault(str(tax_id), {})
            held[golden] = min(held.get(golden, key), key)
    for key, source, tax_id in naming_parents:
        held = holders.get(tax_id, {})
        if len(held) > 1:
            out.ambiguous_parent_tax_ids += 1
        elif not held:
            out.unknown_parent_tax_ids += 1
        else:
            ((target, matched),) = held.items()
            if target != source:
                out.add((source, target, "subsidiary_of"), _tax_id_evidence(key, tax_id, matched))


def _tax_id_evidence(key: Key, tax_id: str, matched: Key) -> dict[str, str]:
    return {
        "system": key[0],
        "source_id": key[1],
        "field": "parent_tax_id",
        "tax_id": tax_id,
        "matched_system": matched[0],
        "matched_source_id": matched[1],
    }


def _name_key(name: Any) -> str | None:
    return company_key(str(name))


def _evidence_order(evidence: Mapping[str, str]) -> tuple[str, str, str]:
    return evidence["system"], evidence["source_id"], evidence["field"]


def stating(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """What of a record's canonical data may state or answer a relationship
    (`STATING_FIELDS`), or None when it can do neither: an organization's name and tax
    id, its parent's tax id, a person's employer, a reference. `relationships` and
    `referenced_employers` read nothing else, so a full resolve keeps this for each
    record instead of its data. A person's tax id is not kept: only organizations are
    parents."""
    view = {name: data[name] for name in STATING_FIELDS if data.get(name)}
    if view.get("kind") != "organization":
        for name in ORGANIZATION_ONLY:
            view.pop(name, None)
    organization = view.get("kind") == "organization" and (
        "organization_name" in view or "tax_id" in view or "parent_tax_id" in view
    )
    if organization or "employer" in view or any(ref in view for ref in REFERENCES):
        return view
    return None


def referenced_employers(records: Iterable[tuple[Key, Mapping[str, Any]]]) -> dict[Key, str]:
    """Per person record that names no employer itself but references its account
    (`account_ref`), the name of that account, when the account is among `records`: the
    employer the person's match features carry. (A CRM contact rarely repeats its
    account's name; the service desk writes the company into its own field.)"""
    listed = list(records)
    names = {
        key: str(data["organization_name"])
        for key, data in listed
        if data.get("kind") == "organization" and data.get("organization_name")
    }
    out: dict[Key, str] = {}
    for key, data in listed:
        ref = data.get("account_ref")
        if ref and data.get("kind") == "person" and not data.get("employer"):
            name = names.get((key[0], str(ref)))
            if name:
                out[key] = name
    return out


def referenced_employer(conn: Connection, key: Key, data: Mapping[str, Any]) -> str | None:
    """`referenced_employers` for one record, reading its account from the store."""
    ref = data.get("account_ref")
    if not ref or data.get("kind") != "person" or data.get("employer"):
        return None
    account = (key[0], str(ref))
    found = referenced_employers(
        [(account, r.data) for r in record_store.current_of(conn, [account])] + [(key, data)]
    )
    return found.get(key)


def sync_all(
    conn: Connection,
    records: Iterable[tuple[Key, Mapping[str, Any]]],
    golden_of: Mapping[Key, str],
    at: datetime,
) -> tuple[Relationships, dict[str, int]]:
    """After a full resolve: every relationship the records state, stored; the rest
    removed."""
    found = relationships(records, golden_of)
    return found, store.sync(conn, found.found, store.current(conn), at)


def refresh(
    conn: Connection,
    golden_ids: Iterable[str],
    records: Mapping[Key, Mapping[str, Any]],
    golden_of: Mapping[Key, str],
    at: datetime,
) -> None:
    """After incremental matching changed the customers `golden_ids` (including ids merged
    away) and the `records` in them (canonical data, and their golden ids as now
    written): the relationships touching those customers, worked out again from the
    records that state them. A reference to one of these records from a record that is
    not among them and not already the evidence of a relationship (a contact loaded
    before its account) is found by the next full resolve. So are new contacts by
    employer name, which need every organization to be matched against; those found
    before follow the organization record they were matched to.

    Parents by tax id are found both ways through the store's indexes: a parent's tax id
    that one of these records (or one cited) states is matched against every
    organization holding it, as a full resolve would; and the organizations that name
    one of these records' tax ids as their parent's (a subsidiary loaded before its
    parent) are worked out again with their customers' relationships."""
    affected = set(golden_ids)
    known = dict(golden_of)
    naming = store.organizations_naming_parents(conn, _organization_values(records, "tax_id"))
    for key, _, golden in naming:
        known.setdefault(key, golden)
    # the customers of the subsidiaries naming these records' tax ids: only their links to
    # a parent are worked out again (a number turned ambiguous, or held by another
    # customer now), not all they have (a group's parent may have a thousand)
    subsidiaries = {golden for _, _, golden in naming} - affected
    existing = store.current(conn, affected)
    existing.update(store.outgoing(conn, subsidiaries, "subsidiary_of"))
    stating = dict(records)
    cited = {(e["system"], e["source_id"]) for evidence in existing.values() for e in evidence}
    cited |= {key for key, _, _ in naming}
    for r in record_store.current_of(conn, sorted(cited - stating.keys())):
        stating[(r.system, r.source_id)] = r.data
    # every organization holding a parent's tax id stated, matched as in a full resolve
    holding = store.organizations_holding(conn, _organization_values(stating, "parent_tax_id"))
    for key, tax_id, golden in holding:
        known.setdefault(key, golden)
        stating.setdefault(key, {"kind": "organization", "tax_id": tax_id})
    targets = {
        (key[0], str(data[field]))
        for key, data in stating.items()
        for field in REFERENCES
        if data.get(field)
    }
    # a contact found by employer name follows the organization record it was matched to
    by_name = [e for evidence in existing.values() for e in evidence if e["field"] == "employer"]
    targets |= {(e["matched_system"], e["matched_source_id"]) for e in by_name}
    missing = sorted((stating.keys() | targets) - known.keys())
    known.update(
        {key: row["golden_id"] for key, row in golden_store.crosswalk_for(conn, missing).items()}
    )
    found = relationships(stating.items(), known, by_name=False)
    for e in by_name:
        key = (e["system"], e["source_id"])
        data = stating.get(key)
        source = known.get(key)
        target = known.get((e["matched_system"], e["matched_source_id"]))
        if data is None or data.get("employer") != e["name"] or data.get("kind") != "person":
            continue  # the record names another employer now: the next full resolve looks
        if source and target and source != target:
            found.add((source, target, "contact_of"), dict(e))
    wanted = {
        edge: sorted(evidence, key=_evidence_order)
        for edge, evidence in found.found.items()
        if edge[0] in affected
        or edge[1] in affected
        or (edge[2] == "subsidiary_of" and edge[0] in subsidiaries)
    }
    store.sync(conn, wanted, existing, at)


def _organization_values(records: Mapping[Key, Mapping[str, Any]], name: str) -> set[str]:
    """The values of the field `name` on the organization records among `records`."""
    return {
        str(data[name])
        for data in records.values()
        if data.get(name) and data.get("kind") == "organization"
    }
