"""A customer's golden content: what survivorship makes of its member records, with the
fingerprint a rewrite is decided by and what search and lists show of it. Pure; built
by the resolving process, or by `golden.parallel`'s beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from accord.digest import digest
from accord.golden.survivorship import Member, Pin, Survivorship
from accord.model import lineage as lineage_form
from accord.store import records as record_store


def member_of(current: record_store.CurrentRecord) -> Member:
    """A current record as survivorship sees it."""
    return Member(
        current.system,
        current.source_id,
        current.source_record_id,
        current.canonical_record_id,
        current.mapping_version,
        current.data,
        current.received_at,
        current.hlc,
    )


def golden_content(
    survivorship: Survivorship,
    members: Sequence[Member],
    pins: Mapping[str, Pin] | None = None,
) -> dict[str, Any]:
    data, lineage = survivorship.build_packed(members, pins)  # lineage as stored
    member_keys = sorted(f"{m.system}/{m.source_id}" for m in members)
    fingerprint = digest([data, lineage, member_keys])
    name = display_name(data)
    return {
        "display_name": name,
        "search_text": search_text(name, data, member_keys),
        "data": data,
        "lineage": lineage,
        # field -> the system its value came from, for the outbox (not a column)
        "sources": lineage_form.sources(data, lineage),
        "member_count": len(members),
        "fingerprint": fingerprint,
    }


def search_text(name: str, data: dict[str, Any], member_keys: Sequence[str]) -> str:
    """What customer search looks in: the name, contact points, city, tax id, postcode
    and the member records' keys (system/source id), casefolded."""
    searchable = [
        name,
        data.get("email"),
        data.get("phone"),
        data.get("city"),
        data.get("tax_id"),
        data.get("postcode"),
        *member_keys,
    ]
    return " ".join(str(s) for s in searchable if s).casefold()


def display_name(data: dict[str, Any]) -> str:
    if data.get("kind") == "organization" and data.get("organization_name"):
        parts = [data["organization_name"], data.get("legal_form")]
    else:
        parts = [data.get("given_name"), data.get("family_name")]
    return " ".join(str(p) for p in parts if p) or data.get("email") or "(no name)"
