"""The status page's incident lines: why a report failed, UTC dates, the token's place, incidents first on a phone."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from bizra_nb.store import Store
from tests.server.test_status_page_states import HOSTILE, WIDTHS, no_sideways_scroll, open_page

OPENED = time.time() - 34 * 86400


@pytest.mark.parametrize("width", WIDTHS)
def test_a_failed_report_says_why_and_times_are_utc_with_the_date(browser, make_server, settings, width):
    store = Store.open(settings.data_dir)
    failed = store.create_incident(title="HighErrorRate on api-gateway", severity="P1", service="api-gateway",
                                   source="alertmanager", opened_at=OPENED, status="open",
                                   report_error="the notebook could not start: " + HOSTILE + "x" * 400)
    pending = store.create_incident(title="HighLatency on cart", severity="P2", service="cart",
                                    source="alertmanager", opened_at=time.time() - 60, status="open")
    running = make_server()
    page = open_page(browser, running.url + "/", width)
    failed_text = page.page.wait_for_selector(f"li[data-incident='{failed['id']}']").text_content()
    assert "report failed: the notebook could not start: " + HOSTILE in failed_text  # escaped: shown as text
    assert "report pending" not in failed_text and "x" * 400 not in failed_text  # clipped
    assert page.page.query_selector_all("#incidents img") == [] and page.page.evaluate("window.__pwned") is None
    day = datetime.fromtimestamp(OPENED, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    assert f"(since {day})" in failed_text
    pending_text = page.page.text_content(f"li[data-incident='{pending['id']}']")
    assert "report pending" in pending_text and "UTC)" in pending_text
    no_sideways_scroll(page, width)
    # the empty CMDB's hint says where the token is
    hint = page.page.wait_for_selector("#graph .empty-hint").text_content()
    assert "data/api_token" in hint and "--api-token" in hint
    # on a phone the fleet's incidents come before the platform's score card, after the overall status
    top = {sel: page.page.evaluate(f"document.querySelector('{sel}').getBoundingClientRect().top")
           for sel in ("#overall", "#incidents-card", "#score-card")}
    if width < 600:
        assert top["#overall"] < top["#incidents-card"] < top["#score-card"], top
    assert page.errors == [], page.errors
    page.close()
