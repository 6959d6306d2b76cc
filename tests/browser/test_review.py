"""Match review and the customer 360 in the browser: a steward merges a pair with the
keyboard and splits it again from the customer's page, and clears a queue with keys."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from accord.govern.permissions import Actor, Role
from accord.steward import service as steward
from accord.store import golden as golden_store
from accord.store.engine import writing
from accord.workspace import Workspace
from tests.browser.conftest import Site, shot, sign_in

STEWARD = Actor("user", "steward", Role.STEWARD)
LEFT_TO_CLEAR = 8


def _golden_of(workspace: Workspace, system: str, source_id: str) -> str | None:
    with workspace.engine.connect() as conn:
        link = golden_store.crosswalk_of(conn, system, source_id)
    return None if link is None else str(link["golden_id"])


def _pair_in_two_customers(workspace: Workspace) -> dict[str, Any]:
    """The first open pair in queue order whose records are in two customers."""
    with workspace.engine.connect() as conn:
        for item in steward.queue(conn, STEWARD, limit=200).items:
            left, right = item["left"], item["right"]
            a = _golden_of(workspace, left["system"], left["source_id"])
            b = _golden_of(workspace, right["system"], right["source_id"])
            if a and b and a != b:
                return item
    raise AssertionError("the demo has no open pair across two customers")


def test_a_steward_merges_a_pair_with_the_m_key_then_splits_it_out_again(
    page: Page, site: Site
) -> None:
    item = _pair_in_two_customers(site.workspace)
    left, right = item["left"], item["right"]
    sign_in(page, "steward")
    page.goto(f"/reviews/{item['id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Pair {item['id']}")
    chart = page.get_by_role("img", name=re.compile("Match weights of pair"))
    expect(chart).to_be_visible()
    expect(page.locator("table.pair tr.differs").first).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Same customer"))).to_be_visible()
    shot(page, "review")

    page.keyboard.press("m")
    notice = page.get_by_role("status")
    expect(notice).to_contain_text(f"Pair {item['id']} decided the same customer")
    merged = _golden_of(site.workspace, left["system"], left["source_id"])
    assert merged is not None
    assert merged == _golden_of(site.workspace, right["system"], right["source_id"])
    notice.get_by_role("link", name=merged).click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(merged)
    members = page.locator("#members")
    expect(members).to_contain_text(left["source_id"])
    expect(members).to_contain_text(right["source_id"])
    expect(page.locator("#timeline-events")).to_contain_text("decided the same customer")
    page.locator("ul.values summary").first.click()
    expect(page.locator("dl.lineage").first).to_be_visible()
    shot(page, "customer-360")

    page.get_by_role("link", name=f"Split out {right['system']}:{right['source_id']}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Split")
    page.get_by_label("Note for the audit log (optional)").fill("not the same person")
    page.get_by_role("button", name="Split out").click()

    expect(page.get_by_role("status")).to_contain_text("was split out")
    apart = _golden_of(site.workspace, right["system"], right["source_id"])
    stays = _golden_of(site.workspace, left["system"], left["source_id"])
    assert apart is not None and stays is not None and apart != stays
    expect(page.get_by_role("status").get_by_role("link", name=apart)).to_be_visible()
    expect(page.locator("#timeline-events")).to_contain_text("not the same person")
    shot(page, "customer-split")


def test_a_steward_clears_the_queue_with_the_keyboard(page: Page, site: Site) -> None:
    with writing(site.workspace.engine) as conn:
        queued = steward.queue(conn, STEWARD, limit=200)
        assert queued.total > LEFT_TO_CLEAR, "the demo should queue more pairs than this"
        for item in queued.items[:-LEFT_TO_CLEAR]:
            steward.decide(conn, STEWARD, item["id"], "different", "decided before the test")
    sign_in(page, "steward")
    page.goto("/reviews")
    expect(page.locator(".count")).to_contain_text(f"{LEFT_TO_CLEAR} pairs waiting")
    with page.expect_navigation():
        page.get_by_role("link", name="Start reviewing").press("Enter")
    expect(page).to_have_url(re.compile(r"/reviews/\d+$"))

    # the help, and keys typed into the note, decide nothing
    heading = page.get_by_role("heading", level=1)
    first = heading.inner_text()
    page.keyboard.press("?")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    page.get_by_label("Note for the audit log (optional)").fill("mns")
    expect(heading).to_have_text(first)
    page.keyboard.press("Escape")

    # skip the first, decide the rest: merges for the likeliest, "not the same" after
    with page.expect_navigation():
        page.keyboard.press("s")
    expect(heading).not_to_have_text(first)
    keys = iter("mn" + "n" * 40)
    while re.search(r"/reviews/\d+", page.url):
        with page.expect_navigation():
            page.keyboard.press(next(keys))
    # only the skipped pair is left; start again from the top and decide it too
    expect(page.locator(".count")).to_contain_text("1 pair waiting")
    with page.expect_navigation():
        page.get_by_role("link", name="Start again from the top").press("Enter")
    expect(heading).to_have_text(first)
    with page.expect_navigation():
        page.keyboard.press("n")
    expect(page.get_by_role("heading", name="The queue is empty")).to_be_visible()
    with site.workspace.engine.connect() as conn:
        assert steward.queue(conn, STEWARD).total == 0
    shot(page, "review-queue-empty")
