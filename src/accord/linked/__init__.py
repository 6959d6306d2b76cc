"""Linked records (C3.9): orders, invoices, tickets and contracts from any system,
attached to the golden customer through the crosswalk when read; orphans listed, never
dropped. `mapping` (pure), `intake` (loading), `service` (reading, behind an actor)."""

from __future__ import annotations


def is_linked_version(mapping_version: str, system: str) -> bool:
    """Whether a load's mapping version (`name@digest`) is a linked-record mapping's: a
    customer mapping is named after its system, a linked-record mapping never is."""
    return mapping_version.partition("@")[0] != system
