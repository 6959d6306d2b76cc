"""Customer search and the customer page in the browser."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import shot, sign_in


def test_search_as_you_type_and_open_a_customer(page: Page) -> None:
    sign_in(page, "viewer")
    expect(page).to_have_url(re.compile(r"/customers$"))
    total = page.locator(".count").inner_text()
    page.get_by_label("Search by name, email, phone, city or id").press_sequentially("ber")
    # htmx replaces the rows while the user types, and the address follows the search
    expect(page).to_have_url(re.compile(r"q=ber"))
    expect(page.locator(".count")).not_to_have_text(total)
    first = page.locator("#results tbody tr a").first
    name = first.inner_text()
    first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.get_by_role("heading", name=re.compile("Member records"))).to_be_visible()
    shot(page, "customer")
