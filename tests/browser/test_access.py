"""Signing in with a second factor, the account page, and users and roles, in the
browser. The demo requires a second factor of admins and stewards."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from accord.govern import users
from accord.govern.permissions import cli_actor
from accord.store.engine import writing
from tests.browser.conftest import PASSWORD, Site, shot, sign_in, totp_code


@pytest.fixture
def second_page(browser: Browser, site: Site) -> Iterator[Page]:
    """Another browser (cookies of its own) on the same site: another person."""
    context = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield opened
    context.close()
    assert not errors, f"the browser reported errors: {errors}"


def _password(page: Page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _set_up_second_factor(page: Page) -> str:
    """On a set-up page: read the key, answer with its code, keep going; the secret."""
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    secret = page.locator("#secret").inner_text().replace(" ", "")
    page.get_by_label("Code").fill(totp_code(page, secret))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Two-step sign-in is on")).to_be_visible()
    expect(page.get_by_role("list", name="Recovery codes").locator("li")).to_have_count(10)
    return secret


def test_an_admin_sets_up_a_second_factor_and_signs_in_with_it(page: Page, site: Site) -> None:
    # the admin lost their phone: an administrator reset it from the command line
    with writing(site.workspace.engine) as conn:
        users.reset_mfa(conn, cli_actor(), "admin")
    _password(page, "admin")
    # the role requires a second factor: set it up before anything else
    expect(page).to_have_url(re.compile(r"/login/enrol"))
    expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
    shot(page, "mfa-enrol")
    secret = _set_up_second_factor(page)
    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/customers$"))

    page.get_by_role("link", name="admin · admin").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("stays on")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    _password(page, "admin")
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_label("Code").fill(totp_code(page, secret))
    shot(page, "sign-in-code")
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/customers$"))
    expect(page.get_by_role("link", name="Users")).to_be_visible()


def test_an_operator_turns_on_a_second_factor_on_the_account_page(page: Page) -> None:
    sign_in(page, "operator")
    page.goto("/account")
    expect(page.get_by_text("You sign in with your password alone.")).to_be_visible()
    page.get_by_role("button", name="Set up two-step sign-in").click()
    secret = _set_up_second_factor(page)
    page.get_by_role("link", name="Continue").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("unused recovery codes left")).to_contain_text("10")
    shot(page, "account")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "operator", totp_secret=secret)
    expect(page).to_have_url(re.compile(r"/customers$"))


def test_changing_a_role_changes_what_the_user_may_do(page: Page, second_page: Page) -> None:
    viewer = second_page
    sign_in(viewer, "viewer")
    expect(viewer.get_by_role("link", name="Customers")).to_be_visible()
    expect(viewer.get_by_role("link", name="Review")).to_have_count(0)
    assert viewer.request.get("/api/v1/reviews").status == 403

    sign_in(page, "admin")
    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users and roles")).to_be_visible()
    page.get_by_label("Role of viewer", exact=True).select_option("steward")
    page.get_by_role("button", name="Change role of viewer").click()
    expect(page.get_by_role("status")).to_have_text("Changed the role of viewer.")
    shot(page, "users")

    # stewards sign in with a second factor, which the viewer has not set up: their
    # session ended, and they set one up at their next sign-in
    viewer.reload()
    expect(viewer.get_by_text("Your session ended.")).to_be_visible()
    viewer.get_by_label("Username").fill("viewer")
    viewer.get_by_label("Password").fill(PASSWORD)
    viewer.get_by_role("button", name="Sign in").click()
    _set_up_second_factor(viewer)
    viewer.get_by_role("link", name="Continue").click()
    expect(viewer.get_by_role("link", name="Review")).to_be_visible()
    assert viewer.request.get("/api/v1/reviews").status == 200

    page.get_by_label("Role of viewer", exact=True).select_option("viewer")
    page.get_by_role("button", name="Change role of viewer").click()
    expect(page.get_by_role("status")).to_have_text("Changed the role of viewer.")
    viewer.reload()
    expect(viewer.get_by_role("link", name="Customers")).to_be_visible()
    expect(viewer.get_by_role("link", name="Review")).to_have_count(0)
    assert viewer.request.get("/api/v1/reviews").status == 403
