"""`accord demo` end to end, without the web server: the demo company loaded and
resolved, then its golden records delivered to the billing and service desk peers,
which run as processes of their own and are stopped at the end, and the sync story told
(accord.demo.story)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from accord.cli.main import app


def test_the_demo_delivers_its_golden_records_to_both_peers(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", str(root), "--customers", "150", "--no-serve"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "Delivered to the peers" in result.output
    for scene in (
        "A change in the CRM reaches billing",
        "Crossing edits, settled by policy",
        "Crossing edits, left to a steward",
        "Billing down, then back: nothing lost",
    ):
        assert scene in result.output
    store = sqlite3.connect(root / ".accord" / "accord.sqlite3")
    try:
        golden = store.execute(
            "SELECT COUNT(*) FROM golden_record WHERE status = 'active'"
        ).fetchone()[0]
        states = dict(
            store.execute(
                "SELECT target || ':' || state, COUNT(*) FROM sync_delivery GROUP BY 1"
            ).fetchall()
        )
        conflicts = store.execute(
            "SELECT target, field, policy, kept FROM sync_conflict ORDER BY id"
        ).fetchall()
        linked = dict(
            store.execute(
                "SELECT system || ':' || kind, COUNT(*) FROM linked_record GROUP BY 1"
            ).fetchall()
        )
        # the generator writes no dangling reference: an order is an orphan only when its
        # customer's row is one of the malformed ones it writes on purpose (quarantined)
        orphans = store.execute(
            "SELECT l.customer_system, l.customer_source_id, EXISTS (SELECT 1 FROM quarantine q"
            " WHERE q.system = l.customer_system AND q.source_id = l.customer_source_id)"
            " FROM linked_record l WHERE NOT EXISTS (SELECT 1 FROM crosswalk c"
            " WHERE c.system = l.customer_system AND c.source_id = l.customer_source_id)"
        ).fetchall()
    finally:
        store.close()
    # every change sent (the story's among them), none dead
    assert set(states) == {"billing:sent", "service:sent"}
    assert states["billing:sent"] > golden and states["service:sent"] > golden
    assert "Linked records" in result.output
    assert set(linked) == {"erp:order", "billing:invoice", "service:ticket"}
    assert all(count > 0 for count in linked.values())
    assert all(quarantined for _, _, quarantined in orphans), orphans
    assert conflicts == [
        ("billing", "city", "newest", "ours"),
        ("service", "phone", "steward", "waiting"),
    ]
    seeded = re.search(
        r"The peers hold their systems' records: billing ([\d,]+), service ([\d,]+)",
        " ".join(result.output.split()),
    )
    assert seeded is not None, result.output
    store = sqlite3.connect(root / ".accord" / "accord.sqlite3")
    try:
        outcomes = [
            json.loads(row[0])["records"]
            for row in store.execute("SELECT outcome FROM sync_delivery WHERE outcome IS NOT NULL")
        ]
    finally:
        store.close()
    # the peers hold their systems' records, so Accord updates those it links to the
    # customers (none is absent) and creates one for each customer a system lacks
    done = Counter(what for records in outcomes for what in records.values())
    assert done["absent"] == 0 and done["updated"] > 0 and done["created"] > 0
    for system, count in zip(("billing", "service"), seeded.groups(), strict=True):
        peer = sqlite3.connect(root / "peers" / f"{system}.sqlite3")
        try:
            held, changed = peer.execute("SELECT COUNT(*), SUM(version > 1) FROM record").fetchone()
        finally:
            peer.close()
        assert held > int(count.replace(",", ""))  # theirs, and those created
        assert changed > 0  # records of theirs brought up to the golden values
