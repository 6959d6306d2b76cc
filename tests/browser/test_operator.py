"""The operator's pages in the browser: correct and replay a quarantined record, the
health charts, and the audit log's filter and Verify."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import shot, sign_in


def test_correct_and_replay_a_quarantined_record(page: Page) -> None:
    sign_in(page, "operator")
    page.get_by_role("link", name="Quarantine").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Quarantine")
    page.get_by_label("System").select_option("crm")
    page.get_by_label("Reason code").fill("date.invalid")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"reason=date.invalid"))
    shot(page, "quarantine")
    page.locator("table.list tbody a").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Entry #")
    expect(page.locator("ul.reasons")).to_contain_text("date.invalid")

    box = page.get_by_label("Corrected record")
    record = json.loads(box.input_value())
    assert re.match(r"\d{4}-1[3-9]|\d{4}-\d\d-[34]\d", record["BirthDate"])
    record["BirthDate"] = "1980-06-15"
    box.fill(json.dumps(record, indent=2))
    page.get_by_role("button", name="Save and replay").click()

    expect(page.get_by_role("status")).to_contain_text("passed the checks and was stored")
    expect(page.locator("h1 .badge")).to_have_text("replayed")
    expect(page.locator("#destination")).to_contain_text(
        re.compile(r"waiting for matching|is part of customer C\d+")
    )
    shot(page, "quarantine-replayed")


def test_the_health_page_shows_charts_per_system(page: Page) -> None:
    sign_in(page, "operator")
    page.get_by_role("link", name="Health").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Integration health")
    crm = page.locator("section.flow", has=page.get_by_role("heading", name=re.compile("^crm in")))
    expect(crm.locator("svg.chart")).to_have_count(4)
    expect(crm.locator("svg.chart rect.bar").first).to_be_attached()
    # the figures as a table for those who cannot see the charts
    crm.get_by_text("crm in: the figures as a table").click()
    expect(crm.locator("details.data table tbody tr")).to_have_count(12)  # 5-minute buckets
    page.get_by_role("link", name="last 24 hours").click()
    expect(page).to_have_url(re.compile(r"window=24h"))
    expect(crm.locator("details.data table tbody tr")).to_have_count(24)
    shot(page, "health")


def test_filter_the_audit_log_and_verify_its_chain(page: Page) -> None:
    sign_in(page, "admin")
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    page.get_by_label("Action").select_option("user.signed_in")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=user.signed_in"))
    rows = page.locator("table.audit tbody tr")
    expect(rows.first).to_contain_text("user:admin")
    for action in rows.locator("td:nth-child(4)").all_inner_texts():
        assert action == "user.signed_in"
    shot(page, "audit-filtered")
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.locator("#verify-result")).to_contain_text(
        re.compile(r"Chain intact: [\d,]+ entries checked")
    )
    shot(page, "audit")
