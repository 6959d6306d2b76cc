"""Customer search in the browser: filters applied as they change, close matches for a
name typed with a typo."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from accord.golden import customers
from accord.govern.permissions import Actor, Role
from tests.browser.conftest import Site, shot, sign_in

VIEWER = Actor("user", "viewer", Role.VIEWER)


def _a_person(site: Site) -> dict[str, str]:
    """A person of the demo company with a family name long enough to mistype."""
    with site.workspace.engine.connect() as conn:
        page = customers.search(conn, VIEWER, "", limit=200)
    return next(
        item["data"]
        for item in page.items
        if len(item["data"].get("family_name") or "") >= 7 and item["data"].get("country")
    )


def test_filters_apply_as_they_change_and_typos_find_close_matches(page: Page, site: Site) -> None:
    person = _a_person(site)
    family = person["family_name"]
    typo = family[:-2] + family[-1] + family[-2]  # the last two letters swapped
    sign_in(page, "viewer")
    expect(page).to_have_url(re.compile(r"/customers$"))

    page.get_by_label("Country").select_option(person["country"])
    expect(page).to_have_url(re.compile(rf"country={person['country']}"))
    countries = page.locator("#results tbody tr td:nth-child(6)")
    expect(countries.first).to_have_text(person["country"])
    assert set(countries.all_inner_texts()) == {person["country"]}

    page.get_by_label("System").select_option("crm")
    expect(page).to_have_url(re.compile(r"system=crm"))

    page.get_by_label("System").select_option("")
    page.get_by_label("Search by name, email, phone, city or id").press_sequentially(typo)
    expect(page).to_have_url(re.compile(rf"q={re.escape(typo)}"))
    close = page.locator("#results tbody.near")
    expect(close.get_by_role("rowheader", name="Close matches")).to_be_visible()
    expect(close).to_contain_text(family)
    shot(page, "customer-search")
