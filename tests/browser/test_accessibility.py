"""Every page checked by axe-core (the engine behind most accessibility audits) in the
browser: no serious or critical WCAG 2 A/AA violation (labels, names, contrast, roles,
headings, keyboard reachability), signed in as an administrator, who sees every page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import text

from tests.browser.conftest import Site, shot, sign_in

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = {"serious", "critical"}


@pytest.fixture
def audited(browser: Browser, site: Site) -> Iterator[Page]:
    """A page whose context lets the test add axe's script (the app's own
    Content-Security-Policy refuses any script it did not serve, as it should)."""
    context = browser.new_context(
        base_url=site.url, viewport={"width": 1280, "height": 860}, bypass_csp=True
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _addresses(site: Site) -> list[str]:
    queries = {
        "/customers/{}": "SELECT golden_id FROM golden_record WHERE status = 'active' "
        "ORDER BY member_count DESC, golden_id LIMIT 1",
        "/reviews/{}": "SELECT min(id) FROM match_review WHERE status = 'open'",
        "/quarantine/{}": "SELECT min(id) FROM quarantine WHERE status = 'open'",
    }
    found = ["/customers", "/customers?q=ber", "/reviews", "/quarantine", "/status", "/audit"]
    found += ["/users", "/account"]
    with site.workspace.engine.connect() as conn:
        for address, sql in queries.items():
            value = conn.execute(text(sql)).scalar()
            assert value is not None, address
            found.append(address.format(value))
    return found


def _violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [v for v in result["violations"] if v["impact"] in BLOCKING]


def _described(address: str, violations: list[dict[str, Any]]) -> list[str]:
    return [
        f"{address}: {v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
        for v in violations
    ]


def test_every_page_passes_axe(audited: Page, site: Site) -> None:
    audited.goto("/login")
    problems = _described("/login", _violations(audited))
    sign_in(audited, "admin")
    for address in _addresses(site):
        audited.goto(address)
        problems += _described(address, _violations(audited))
    shot(audited, "accessibility-last-page")
    assert not problems, "\n".join(problems)
