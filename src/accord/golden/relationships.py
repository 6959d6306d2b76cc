"""Relationships between customers that are not merges: a person is a contact of an
organization, an organization a subsidiary of another.

They come from the source systems' own hierarchy fields, mapped to canonical reference
fields that hold the id of another record *in the same system*: a CRM contact's account
(`account_ref`), an account's parent account (`parent_ref`). Each reference is followed
through the crosswalk to the golden customer that record belongs to, so a relationship
always joins golden customers, whichever system said so, and survives merges: when two
accounts merge, their contacts are contacts of the merged customer.

A reference to a record Accord does not hold (the account was never loaded, or it was
quarantined) is counted as dangling, not guessed. A reference inside one customer (a
contact merged with its own account) is not a relationship.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from accord.store import golden as golden_store
from accord.store import records as record_store
from accord.store import relationships as store

Key = tuple[str, str]  # (system, source id)

# canonical reference field -> the relationship it states, from the record's customer to
# the referenced record's customer
REFERENCES: dict[str, str] = {"account_ref": "contact_of", "parent_ref": "subsidiary_of"}


@dataclass
class Relationships:
    # (from golden id, to golden id, type) -> the source records and fields that say so
    found: dict[tuple[str, str, str], list[dict[str, str]]] = field(default_factory=dict)
    dangling: int = 0  # references to records Accord does not hold

    def add(self, edge: tuple[str, str, str], evidence: dict[str, str]) -> None:
        self.found.setdefault(edge, []).append(evidence)


def relationships(
    records: Iterable[tuple[Key, Mapping[str, Any]]], golden_of: Mapping[Key, str]
) -> Relationships:
    """The relationships stated by `records` ((system, source id), canonical data),
    between the golden customers `golden_of` assigns."""
    out = Relationships()
    for key, data in records:
        source = golden_of.get(key)
        if source is None:
            continue
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
    for evidence in out.found.values():
        evidence.sort(key=lambda e: (e["system"], e["source_id"], e["field"]))
    return out


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
    before its account) is found by the next full resolve."""
    affected = set(golden_ids)
    existing = store.current(conn, affected)
    stating = dict(records)
    cited = {(e["system"], e["source_id"]) for evidence in existing.values() for e in evidence}
    for r in record_store.current_of(conn, sorted(cited - stating.keys())):
        stating[(r.system, r.source_id)] = r.data
    targets = {
        (key[0], str(data[field]))
        for key, data in stating.items()
        for field in REFERENCES
        if data.get(field)
    }
    known = dict(golden_of)
    missing = sorted((stating.keys() | targets) - known.keys())
    known.update(
        {key: row["golden_id"] for key, row in golden_store.crosswalk_for(conn, missing).items()}
    )
    found = relationships(stating.items(), known)
    wanted = {
        edge: evidence
        for edge, evidence in found.found.items()
        if edge[0] in affected or edge[1] in affected
    }
    store.sync(conn, wanted, existing, at)
