"""What the push-style channels remember to tell a redelivery from a new message:
signed webhook deliveries (by the hash of what was signed) and broker messages stored
but not yet acknowledged (by stream, sequence and publish time)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, select

from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import broker_delivery, webhook_delivery
from accord.store.types import utcnow


def earlier_webhook(conn: Connection, system: str, signature: str) -> int | None:
    """The load that stored this webhook delivery of `system`, if it came before."""
    found = conn.execute(
        select(webhook_delivery.c.load_id).where(
            webhook_delivery.c.system == system, webhook_delivery.c.signature == signature
        )
    ).scalar()
    return None if found is None else int(found)


def remember_webhook(conn: Connection, system: str, signature: str, load_id: int) -> None:
    """Keep a delivery, in the transaction that stored its records: its unique key
    makes a twin racing it roll back."""
    conn.execute(
        webhook_delivery.insert(),
        {"system": system, "signature": signature, "load_id": load_id, "created_at": utcnow()},
    )


def prune_webhooks(conn: Connection, system: str, before: datetime) -> int:
    """Forget `system`'s deliveries received before `before`: too old to pass the
    timestamp check again, so a replay of them is refused as expired."""
    result = conn.execute(
        delete(webhook_delivery).where(
            webhook_delivery.c.system == system, webhook_delivery.c.created_at < before
        )
    )
    return int(result.rowcount or 0)


def stored_messages(conn: Connection, system: str, keys: Sequence[str]) -> set[str]:
    """Of these broker message keys, those stored before (and perhaps not acknowledged)."""
    found: set[str] = set()
    for start in range(0, len(keys), LOOKUP_CHUNK):
        found.update(
            conn.execute(
                select(broker_delivery.c.message_key).where(
                    broker_delivery.c.system == system,
                    broker_delivery.c.message_key.in_(keys[start : start + LOOKUP_CHUNK]),
                )
            ).scalars()
        )
    return found


def remember_messages(conn: Connection, system: str, keys: Sequence[str], load_id: int) -> None:
    """Keep the broker messages a load stored, in its transaction."""
    if keys:
        now = utcnow()
        conn.execute(
            broker_delivery.insert(),
            [
                {"system": system, "message_key": k, "load_id": load_id, "created_at": now}
                for k in keys
            ],
        )


def forget_messages(conn: Connection, system: str, keys: Sequence[str]) -> None:
    """Forget broker messages whose acknowledgements were sent: they come no more."""
    for start in range(0, len(keys), LOOKUP_CHUNK):
        conn.execute(
            delete(broker_delivery).where(
                broker_delivery.c.system == system,
                broker_delivery.c.message_key.in_(keys[start : start + LOOKUP_CHUNK]),
            )
        )
