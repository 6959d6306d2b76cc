"""packed lineage: every golden record's lineage rewritten in its stored form
(`accord.model.lineage.pack`: each member record named once, values left to `data`),
and the fingerprints of active golden records worked out again over it, as a resolve
now does (`golden.resolve.golden_content`), so that the first resolve after the upgrade
changes no customer that did not change.

A fingerprint is only worked out again where the old one is what the record's content
and its members in the crosswalk give: a record that was out of step before (a member
since gone) keeps a fingerprint no resolve can produce, so the next resolve rewrites
it, as it would have. Golden records are read and written a thousand at a time.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from accord.digest import digest
from accord.model.lineage import pack, unpack

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_BATCH = 1000
_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_GOLDEN = sa.table(
    "golden_record",
    sa.column("golden_id", sa.String),
    sa.column("status", sa.String),
    sa.column("data", _DOCUMENT),
    sa.column("lineage", _DOCUMENT),
    sa.column("fingerprint", sa.String),
)
_CROSSWALK = sa.table(
    "crosswalk", sa.column("golden_id", sa.String), sa.column("system", sa.String),
    sa.column("source_id", sa.String),
)  # fmt: skip


def upgrade() -> None:
    # unpacked first: a record written packed already (by this code, in a store migrated
    # step by step behind it) is packed as it was
    _rewrite(lambda data, lineage: pack(unpack(data, lineage)))


def downgrade() -> None:
    _rewrite(unpack)


def _rewrite(form: Callable[[Any, Any], Any]) -> None:
    """Every golden record's lineage as `form(data, lineage)` gives it; an active
    record's fingerprint over the new form where it was in step with the old."""
    conn = op.get_bind()
    after = ""
    while True:
        rows = conn.execute(
            sa.select(
                _GOLDEN.c.golden_id,
                _GOLDEN.c.status,
                _GOLDEN.c.data,
                _GOLDEN.c.lineage,
                _GOLDEN.c.fingerprint,
            )
            .where(_GOLDEN.c.golden_id > after)
            .order_by(_GOLDEN.c.golden_id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1].golden_id
        members = _members(conn, [row.golden_id for row in rows])
        updates = []
        for row in rows:
            lineage = form(row.data, row.lineage)
            keys = members.get(row.golden_id, [])
            fingerprint = row.fingerprint
            if row.status == "active" and fingerprint == digest([row.data, row.lineage, keys]):
                fingerprint = digest([row.data, lineage, keys])
            updates.append({"b_id": row.golden_id, "lineage": lineage, "fingerprint": fingerprint})
        conn.execute(
            sa.update(_GOLDEN)
            .where(_GOLDEN.c.golden_id == sa.bindparam("b_id"))
            .values(lineage=sa.bindparam("lineage"), fingerprint=sa.bindparam("fingerprint")),
            updates,
        )


def _members(conn: sa.Connection, golden_ids: list[str]) -> dict[str, list[str]]:
    """golden id -> its members' keys (system/source id), sorted, as a fingerprint
    takes them."""
    found: dict[str, list[str]] = defaultdict(list)
    for golden_id, system, source_id in conn.execute(
        sa.select(_CROSSWALK.c.golden_id, _CROSSWALK.c.system, _CROSSWALK.c.source_id).where(
            _CROSSWALK.c.golden_id.in_(golden_ids)
        )
    ):
        found[golden_id].append(f"{system}/{source_id}")
    return {golden_id: sorted(keys) for golden_id, keys in found.items()}
