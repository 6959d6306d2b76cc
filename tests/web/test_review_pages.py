"""The match review pages over HTTP: the queue, a pair, deciding and skipping, who may
do what, and how bad requests are answered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from accord.store.tables import match_decision
from accord.workspace import Workspace
from tests.web.stewarding import C1, C2, C3, HOSTILE, Stewarding, stewarding


@pytest.fixture
def site(workspace: Workspace, tmp_path: Path) -> Iterator[Stewarding]:
    yield from stewarding(workspace, tmp_path)


def _decide(site: Stewarding, review: int | str, decision: str, **form: str) -> object:
    data = {"decision": decision, "csrf_token": site.csrf()} | form
    return site.client.post(f"/reviews/{review}/decision", data=data, follow_redirects=False)


def _decisions(site: Stewarding) -> int:
    with site.workspace.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(match_decision)).scalar_one())


def test_the_queue_and_a_pair_render_for_a_steward(site: Stewarding) -> None:
    site.sign_in("stewie")
    queue = site.client.get("/reviews")
    assert queue.status_code == 200
    assert f'href="/reviews/{site.held}"' in queue.text
    assert "1 pair waiting" in queue.text
    assert "Start reviewing" in queue.text

    pair = site.client.get(f"/reviews/{site.held}")
    assert pair.status_code == 200
    text = pair.text
    assert ">C2<" in text and ">C3<" in text
    assert 'href="/customers/C0000001"' in text and 'href="/customers/C0000003"' in text
    for key in ("m", "n", "s", "?"):
        assert f"<kbd>{key}</kbd>" in text
    assert 'value="same"' in text and 'value="different"' in text and 'value="skip"' in text
    assert 'src="/static/review.js"' in text
    # the streets differ and are highlighted; the hostile one is escaped
    assert HOSTILE not in text
    assert "&lt;script&gt;alert(&#34;street&#34;)&lt;/script&gt;" in text
    assert '<tr class="differs">' in text and '<tr class="same">' in text


def test_same_customer_is_recorded_and_the_next_pair_follows(site: Stewarding) -> None:
    site.sign_in("stewie")
    response = _decide(site, site.held, "same", note="same phone")
    assert response.status_code == 303
    assert response.headers["location"] == f"/reviews/next?last={site.held}"
    after = site.client.get(response.headers["location"])  # no pair left: the queue
    assert after.url.path == "/reviews"
    assert "The queue is empty" in after.text
    assert f"Pair {site.held} decided <strong>the same customer</strong>" in after.text
    # the rules engine cannot match incrementally: the merge shows at the next resolve
    assert "joined at the next resolve" in after.text
    assert site.decision(C2, C3) == "same"
    assignment = site.resolve()
    assert assignment[C2] == assignment[C3] != assignment[C1]


def test_not_the_same_is_recorded_and_not_proposed_again(site: Stewarding) -> None:
    site.sign_in("stewie")
    response = _decide(site, site.held, "different")
    assert response.status_code == 303
    after = site.client.get(response.headers["location"])
    assert "not the same" in after.text and "not proposed again" in after.text
    assert site.decision(C2, C3) == "different"
    site.resolve()
    assert "The queue is empty" in site.client.get("/reviews").text


def test_skip_changes_nothing_and_does_not_come_back_in_the_sitting(site: Stewarding) -> None:
    site.sign_in("stewie")
    before = _decisions(site)
    response = _decide(site, site.held, "skip")
    assert response.headers["location"] == f"/reviews/next?skipped={site.held}"
    following = site.client.get(response.headers["location"], follow_redirects=False)
    assert following.headers["location"] == f"/reviews?skipped={site.held}"
    queue = site.client.get(following.headers["location"])
    assert "1 pair waiting" in queue.text and "1 skipped in this sitting" in queue.text
    assert "Start again from the top" in queue.text
    assert _decisions(site) == before
    assert site.decision(C2, C3) is None
    again = site.client.get("/reviews/next", follow_redirects=False)
    assert again.headers["location"] == f"/reviews/{site.held}"


def test_an_operator_sees_pairs_without_deciding_and_a_viewer_sees_none(
    site: Stewarding,
) -> None:
    site.sign_in("otto")
    assert site.client.get("/reviews").status_code == 200
    pair = site.client.get(f"/reviews/{site.held}")
    assert pair.status_code == 200
    assert 'id="decide-form"' not in pair.text and "Next pair" in pair.text
    refused = _decide(site, site.held, "same")
    assert refused.status_code == 403
    assert "may not matches:decide" in refused.text

    site.sign_in("vera")
    assert site.client.get("/reviews").status_code == 403
    assert site.client.get(f"/reviews/{site.held}").status_code == 403
    assert _decide(site, site.held, "different").status_code == 403
    assert site.decision(C2, C3) is None


def test_a_decision_without_the_csrf_token_is_refused(site: Stewarding) -> None:
    site.sign_in("stewie")
    site.client.get("/reviews")
    for token in ("", "forged"):
        response = site.client.post(
            f"/reviews/{site.held}/decision",
            data={"decision": "same", "csrf_token": token},
            follow_redirects=False,
        )
        assert response.status_code == 403
        assert "did not come from this site" in response.text
    assert site.decision(C2, C3) is None


def test_bad_requests_get_a_page_that_says_what_is_wrong(site: Stewarding) -> None:
    site.sign_in("stewie")
    for path in ("/reviews/999999", "/reviews/abc", "/reviews/0", f"/reviews/{2**70}"):
        response = site.client.get(path)
        assert response.status_code == 404, path
        assert "no review" in response.text
    assert _decide(site, 999999, "same").status_code == 404
    withdrawn = _decide(site, site.withdrawn, "different")
    assert withdrawn.status_code == 409 and "withdrawn" in withdrawn.text
    wrong = _decide(site, site.held, "maybe")
    assert wrong.status_code == 422 and "Same customer, Not the same, or Skip" in wrong.text
    skipped = site.client.get(f"/reviews/{site.held}?skipped=1,x")
    assert skipped.status_code == 422 and "skipped review id" in skipped.text
    paged = site.client.get("/reviews?page=-1")
    assert paged.status_code == 422 and "page must be" in paged.text
    long_note = _decide(site, site.held, "same", note="x" * 2001)
    assert long_note.status_code == 422 and "a note is at most 2000 characters" in long_note.text
    assert site.decision(C2, C3) is None
