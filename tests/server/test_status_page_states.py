"""The status page's states in Chromium at 1400 px and 390 px: stale, overall status, tokens, empty states, failures."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest

from tests.conftest import wait_until
from tests.prometheus_server import free_port
from tests.server.test_runs_api import finished, nb_server  # noqa: F401 - a fixture, used by name
from tests.browser import ARTEFACTS, Watched
from tests.test_incidents import payload

WIDTHS = [1400, 390]
HOSTILE = '<img src=x onerror="window.__pwned=1">'
EVIL_RUNBOOK = "javascript:window.__pwned=1"
GOOD_RUNBOOK = "https://runbooks.example/high-error-rate"


def open_page(browser, url: str, width: int) -> Watched:
    page = Watched(browser, url, viewport={"width": width, "height": 900}, is_mobile=width < 600)
    page.dot("green")  # green once the first fresh state is on screen
    return page


def no_sideways_scroll(page: Watched, width: int) -> None:
    scroll = page.page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page scrolls sideways at {width}px ({scroll}px wide)"


def shot(page: Watched, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTEFACTS / name), full_page=True)
    page.page.evaluate("window.scrollTo(0, 0)")
    page.page.screenshot(path=str(ARTEFACTS / name.replace(".png", "_first_screen.png")))  # what one sees first


def p1_with_hostile_text() -> dict:
    """An Alertmanager group: a P1 whose summary is HTML and whose runbook is a script, plus a P2 with a real runbook."""
    started = datetime.fromtimestamp(time.time() - 600, timezone.utc).isoformat()
    body = payload(group_key="{}:{alertname=\"hostile\"}")
    body["commonAnnotations"] = {"summary": HOSTILE}
    p1 = body["alerts"][0]
    p1.update(startsAt=started, annotations={"summary": HOSTILE, "runbook_url": EVIL_RUNBOOK})
    p2 = {**p1, "fingerprint": "def456", "labels": {**p1["labels"], "alertname": "HighErrorRate", "severity": "warning"},
          "annotations": {"runbook_url": GOOD_RUNBOOK}}
    body["alerts"].append(p2)
    return body


@pytest.mark.parametrize("width", WIDTHS)
def test_everything_goes_stale_when_the_server_stops(browser, make_server, width):
    port = free_port()
    running = make_server(port=port, ws_port=-1)
    page = open_page(browser, f"http://127.0.0.1:{port}/", width)
    page.page.wait_for_function("() => document.querySelector('#score').textContent === '100.0'")
    assert not page.page.evaluate("document.body.classList.contains('stale')")
    assert page.page.get_attribute("#overall-status", "data-status") == "operational"
    assert "updated" in page.page.text_content("#updated") and " s ago" in page.page.text_content("#updated")
    running.stop()
    page.dot("red", timeout=10000)
    page.page.wait_for_function("() => document.body.classList.contains('stale')")
    assert page.page.text_content("#score") == "—"  # unknown, not the last green number
    assert page.page.text_content("#tier") == "unknown"
    assert page.page.get_attribute("#overall-status", "data-status") == "unknown"
    banner = page.page.text_content("#stale-banner")
    assert page.page.is_visible("#stale-banner")
    assert "reconnecting" in banner and "last update" in banner
    assert any(part.count(":") == 2 for part in banner.split()), banner  # HH:MM:SS
    assert page.page.evaluate("getComputedStyle(document.querySelector('main')).filter").startswith("grayscale")
    no_sideways_scroll(page, width)
    shot(page, f"status_page_stale_{width}.png")
    make_server(port=port, ws_port=-1)  # back: fresh again, the score known again
    page.dot("green", timeout=20000)
    page.page.wait_for_function("() => document.querySelector('#score').textContent === '100.0'")
    assert not page.page.evaluate("document.body.classList.contains('stale')")
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_open_p1_is_a_partial_outage_with_reasons_runbooks_and_escaped_text(browser, make_server, fleet, auth,
                                                                               width):
    running = make_server(dataset=str(fleet.metrics), heartbeat_interval=30)
    http = httpx.Client(base_url=running.url, timeout=30)
    http.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=auth)
    page = open_page(browser, running.url + "/", width)
    page.page.wait_for_function("() => document.querySelector('#score').textContent === '100.0'")
    incident_id = http.post("/alerts/webhook", json=p1_with_hostile_text(), headers=auth).json()["incident_id"]
    item = f"li[data-incident='{incident_id}']"
    page.page.wait_for_selector(item)
    page.page.wait_for_selector("#overall-status[data-status='partial_outage']", timeout=10000)
    assert page.page.text_content("#overall-status") == "Partial outage"
    reasons = page.page.text_content("#overall-reasons")
    assert f"open P1 incident {incident_id}" in reasons and HOSTILE in reasons  # shown as text
    # the page and /health agree
    assert http.get("/health").json()["overall_status"]["status"] == "partial_outage"
    # what each number measures is said on the page
    assert "Platform API" in page.page.text_content("#score-title")
    assert "Fleet" in page.page.text_content("#incidents-title")
    text = page.page.text_content(item)
    assert HOSTILE in text and "open for 10 min" in text
    assert page.page.query_selector_all("#incidents img, #overall-reasons img") == []
    assert page.page.evaluate("window.__pwned") is None
    assert page.page.query_selector_all("a[href^='javascript']") == []
    assert EVIL_RUNBOOK in page.page.text_content(item)  # shown, as text
    link = page.page.query_selector(f"{item} a.runbook")
    assert link.get_attribute("href") == GOOD_RUNBOOK
    assert link.get_attribute("rel") == "noopener noreferrer" and link.get_attribute("target") == "_blank"
    assert page.page.is_hidden("#grafana-link")  # no grafana_url configured
    no_sideways_scroll(page, width)
    # the CMDB is readable: a drawing with real-size labels when wide, a list of services when narrow
    if width < 600:
        page.page.wait_for_selector(".graph-list .node-button[data-node='catalog-db']")
        assert page.page.is_hidden("#graph svg")
        size = page.page.evaluate("parseFloat(getComputedStyle(document.querySelector('.node-button')).fontSize)")
        assert size >= 13
        page.page.click(".node-button[data-node='catalog-db']")
    else:
        page.page.wait_for_selector("#graph svg")
        label = page.page.evaluate("document.querySelector('#graph .node text').getBoundingClientRect().height")
        assert label >= 12, f"labels {label}px high"
        page.page.click("g[data-node='catalog-db']")
    page.page.wait_for_function("() => document.querySelector('#node-detail').textContent.includes('Blast radius')")
    # the sparkline fills its card, and its time axis has distinct labels
    page.page.wait_for_selector("#sparkline .main-svg")
    fill = page.page.evaluate("""() => {
        const card = document.querySelector('#score-card'), style = getComputedStyle(card);
        const inner = card.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return document.querySelector('#sparkline .main-svg').getBoundingClientRect().width / inner; }""")
    assert fill > 0.95, f"the sparkline fills {fill:.0%} of its card"
    ticks = page.page.eval_on_selector_all("#sparkline .xtick text", "els => els.map(e => e.textContent)")
    assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks
    shot(page, f"status_page_p1_{width}.png")
    assert page.errors == [], page.errors
    page.close()


def test_health_carries_the_overall_status_the_source_and_the_grafana_link(make_server, auth):
    running = make_server(grafana_url="https://grafana.example/d/bizra")
    http = httpx.Client(base_url=running.url, timeout=10)
    body = http.get("/health").json()
    assert body["status"] == "ok"  # liveness, as before
    assert body["overall_status"] == {"status": "operational", "reasons": []}
    assert body["metric_source"]["configured"] is False and "--dataset" in body["metric_source"]["hint"]
    assert body["links"] == {"grafana": "https://grafana.example/d/bizra"}
    opened = http.post("/rca/incidents", json={"title": "orders lost", "severity": "P0"}, headers=auth).json()
    body = wait_until(lambda: (b := http.get("/health").json())["overall_status"]["status"] == "major_outage" and b)
    assert body["overall_status"]["reasons"] == [f"open P0 incident {opened['id']} in the fleet: orders lost"]
    assert body["open_incidents"] == 1


@pytest.mark.parametrize("width", WIDTHS)
def test_a_token_is_checked_at_once_and_a_refused_action_says_so_by_its_button(browser, make_server, auth, width):
    port = free_port()
    first = make_server(port=port, ws_port=-1)
    http = httpx.Client(base_url=first.url, timeout=10)
    opened = http.post("/rca/incidents", json={"title": "slow checkout", "severity": "P2"}, headers=auth).json()
    page = open_page(browser, first.url + "/", width)
    resolve = f"li[data-incident='{opened['id']}'] button[data-action='resolved']"
    page.page.fill("#token", "wrong")
    page.page.click("#token-form button[type=submit]")
    page.page.wait_for_function("() => document.querySelector('#token-error').textContent.includes('HTTP 401')")
    assert page.page.evaluate("document.querySelector('#token-error').closest('form').id") == "token-form"
    assert page.page.is_disabled(resolve)
    page.page.fill("#token", auth["Authorization"].split()[1])
    page.page.click("#token-form button[type=submit]")
    page.page.wait_for_function("() => document.querySelector('#token-state').textContent.includes('accepted')")
    assert page.page.text_content("#token-error") == ""
    page.page.wait_for_selector(resolve + ":not([disabled])")
    # the server comes back with a rotated token: the action fails, and says why, next to its button
    first.stop()
    page.dot("red", timeout=10000)
    make_server(port=port, ws_port=-1, api_token="rotated-token")
    page.dot("green", timeout=20000)
    page.page.click(resolve)
    message = page.page.wait_for_selector(f"li[data-incident='{opened['id']}'] .action-error:has-text('HTTP 401')")
    assert "refused the token" in message.text_content() and f"resolve incident {opened['id']}" in message.text_content()
    assert http.get(f"/rca/incidents/{opened['id']}").json()["status"] == "open"
    no_sideways_scroll(page, width)
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_empty_cmdb_and_no_metric_source_say_what_to_do(browser, server, width):
    page = open_page(browser, server.url + "/", width)
    page.page.wait_for_selector("#graph .empty-hint")
    hint = page.page.text_content("#graph")
    assert "The CMDB is empty" in hint and "curl -X POST --data-binary @cmdb.yaml" in hint
    assert f"{server.url}/cmdb/import" in hint
    warning = page.page.wait_for_selector("#source-warning:visible")
    assert "diagnoses cannot run" in warning.text_content()
    assert "--prometheus-url" in warning.text_content() and "--dataset" in warning.text_content()
    assert "No run yet" in page.page.text_content("#runs")
    no_sideways_scroll(page, width)
    shot(page, f"status_page_empty_{width}.png")
    page.close()


def test_no_warning_when_a_source_is_configured(browser, make_server, fleet):
    page = open_page(browser, make_server(dataset=str(fleet.metrics)).url + "/", 1400)
    assert page.page.is_hidden("#source-warning")
    page.close()


def test_the_grafana_link_shows_when_configured(browser, make_server):
    page = open_page(browser, make_server(grafana_url="https://grafana.example/d/bizra").url + "/", 1400)
    link = page.page.wait_for_selector("#grafana-link:visible")
    assert link.get_attribute("href") == "https://grafana.example/d/bizra"
    assert link.get_attribute("rel") == "noopener noreferrer"
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_failed_run_shows_why(browser, nb_server, auth, width):  # noqa: F811 - nb_server is the fixture
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    run_id = http.post("/runs", json={"notebook": "fails_in_cell_3"}, headers=auth).json()["id"]
    run = finished(http, run_id)
    assert run["status"] == "failed"
    nb_server.services.store.update_run(run_id, error=run["error"] + " " + HOSTILE)  # a message quoting input
    page = open_page(browser, nb_server.url + "/", width)
    why = page.page.wait_for_selector(f"li[data-run='{run_id}'] .run-error")
    assert "deliberate failure with x=1" in why.text_content() and HOSTILE in why.text_content()
    assert page.page.query_selector_all("#runs img") == []
    no_sideways_scroll(page, width)
    shot(page, f"status_page_failed_run_{width}.png")
    page.close()
