"""The customer 360 over HTTP: values with lineage, members by system, linked records,
relationships, the timeline, and splitting a record out, with who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.workspace import Workspace
from tests.web.stewarding import C1, C2, HOSTILE, Stewarding, stewarding


@pytest.fixture
def site(workspace: Workspace, tmp_path: Path) -> Iterator[Stewarding]:
    yield from stewarding(workspace, tmp_path)


def _split(site: Stewarding, golden_id: str, **form: str) -> object:
    data = {"system": "crm", "source_id": "C2", "csrf_token": site.csrf()} | form
    return site.client.post(f"/customers/{golden_id}/split", data=data, follow_redirects=False)


def test_the_customer_360_renders_for_a_steward(site: Stewarding) -> None:
    site.sign_in("stewie")
    page = site.client.get("/customers/C0000001")
    assert page.status_code == 200
    text = page.text
    assert "Values and where they come from" in text and "<details>" in text
    assert "Source record" in text and '<dd class="mono">crm:C' in text
    assert "Member records (2)" in text and '<h3 class="system-heading">crm' in text
    assert "Orders, invoices and tickets" in text and "No linked records." in text
    assert "Relationships" in text
    # the timeline: created, and the decision the setup made about C1
    assert "Timeline" in text and "created" in text
    assert "decided different customers" in text and "crm:C1 · crm:C3" in text
    assert text.count(">Split out<") == 2
    assert 'href="/customers/C0000001/split?system=crm&amp;source_id=C2"' in text

    hostile = site.client.get("/customers/C0000003")
    assert hostile.status_code == 200
    assert HOSTILE not in hostile.text
    assert "&lt;script&gt;alert(&#34;street&#34;)&lt;/script&gt;" in hostile.text


def test_the_timeline_pages_through_htmx(site: Stewarding) -> None:
    site.sign_in("stewie")
    fragment = site.client.get("/customers/C0000001/timeline", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and '<li class="event created">' in fragment.text
    page = site.client.get("/customers/C0000001/timeline?offset=0")
    assert "<html" in page.text and "Timeline of C0000001" in page.text
    beyond = site.client.get("/customers/C0000001/timeline?offset=5000")
    assert beyond.status_code == 200 and "event" not in beyond.text.split("<main>")[1]
    assert site.client.get("/customers/C0000001/timeline?offset=x").status_code == 422
    assert site.client.get("/customers/C9999999/timeline").status_code == 404


def test_a_steward_splits_a_record_out_after_confirming(site: Stewarding) -> None:
    site.sign_in("stewie")
    confirm = site.client.get("/customers/C0000001/split?system=crm&source_id=C2")
    assert confirm.status_code == 200
    assert "Split <span" in confirm.text and 'name="csrf_token"' in confirm.text
    assert site.decision(C1, C2) is None  # asking changes nothing

    response = _split(site, "C0000001", note="two people")
    assert response.status_code == 303
    assert response.headers["location"] == "/customers/C0000001?split_out=crm%3AC2"
    after = site.client.get(response.headers["location"])
    assert "crm:C2 was split out" in after.text
    # the rules engine cannot match incrementally: the split shows at the next resolve
    assert "stays in this customer until the next resolve" in after.text
    assert site.decision(C1, C2) == "different"
    assert "two people" in after.text  # the timeline has the decision and its note
    assignment = site.resolve()
    assert assignment[C1] != assignment[C2]


def test_a_viewer_reads_the_customer_but_cannot_split(site: Stewarding) -> None:
    site.sign_in("vera")
    page = site.client.get("/customers/C0000001")
    assert page.status_code == 200 and "Split out" not in page.text
    assert site.client.get("/customers/C0000001/split?system=crm&source_id=C2").status_code == 403
    assert _split(site, "C0000001").status_code == 403
    site.sign_in("otto")
    assert _split(site, "C0000001").status_code == 403
    assert site.decision(C1, C2) is None


def test_a_split_without_the_csrf_token_is_refused(site: Stewarding) -> None:
    site.sign_in("stewie")
    response = _split(site, "C0000001", csrf_token="forged")
    assert response.status_code == 403 and "did not come from this site" in response.text
    assert site.decision(C1, C2) is None


def test_bad_splits_and_unknown_customers_get_a_page_that_says_why(site: Stewarding) -> None:
    site.sign_in("stewie")
    assert site.client.get("/customers/C9999999").status_code == 404
    unknown = site.client.get("/customers/C0000001/split?system=crm&source_id=C4")
    assert unknown.status_code == 404 and "not a member record of C0000001" in unknown.text
    assert site.client.get("/customers/C9999999/split?system=crm&source_id=C2").status_code == 404
    alone = _split(site, "C0000002", source_id="C4")
    assert alone.status_code == 422 and "leave at least one" in alone.text
    stranger = _split(site, "C0000001", source_id="C4")
    assert stranger.status_code == 422 and "not in C0000001" in stranger.text
    missing = _split(site, "C0000001", source_id="")
    assert missing.status_code == 422 and "which member record" in missing.text
    assert site.decision(C1, C2) is None
