"""Hostile alerts end to end: the diagnosis report and the status page, rendered in Chromium, execute nothing."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.server.test_rca_api import alert_payload
from tests.browser import Watched

# Each payload would change document.title and set window.pwned if it ever ran.
SCRIPT = "<script>document.title='pwned-script';window.pwned='script'</script>"
IMG = "<img src=x onerror=\"document.title='pwned-img';window.pwned='img'\">"
LINK = "[open the runbook](javascript:document.title='pwned-link';window.pwned='link')"
SVG = "\"><svg onload=\"document.title='pwned-svg';window.pwned='svg'\">"
TICK = "`</code><img src=y onerror=\"window.pwned='tick'\">`"
NOT_RUN = "() => window.pwned === undefined && !document.title.includes('pwned')"


def hostile_alert(fleet) -> dict:
    body = alert_payload(fleet)
    labels = {"alertname": f"Hostile{SCRIPT}", "service": SVG, "severity": "critical", "team": IMG + TICK}
    annotations = {"summary": f"{IMG} {SVG}", "description": f"{LINK} {SCRIPT} {TICK}",
                   "runbook_url": "javascript:document.title='pwned-runbook'"}
    body["commonLabels"] = labels
    body["groupLabels"] = {"alertname": labels["alertname"]}
    body["commonAnnotations"] = annotations
    for alert in body["alerts"]:
        alert["labels"] = labels
        alert["annotations"] = annotations
    return body


@pytest.fixture
def hostile_incident(make_server, fleet, auth):
    """A server that diagnosed a hostile alert with the notebook: (server, http, incident)."""
    running = make_server(dataset=str(fleet.metrics), diagnose_with_notebook=True, heartbeat_interval=30)
    http = httpx.Client(base_url=running.url, timeout=30)
    assert http.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=auth).status_code == 200
    incident_id = http.post("/alerts/webhook", json=hostile_alert(fleet), headers=auth).json()["incident_id"]
    incident = wait_until(lambda: (lambda i: i if i.get("report_url") else None)(
        http.get(f"/rca/incidents/{incident_id}").json()), timeout=120, interval=0.2)
    yield running, http, incident
    http.close()


def test_a_hostile_alert_report_runs_only_its_own_scripts(browser, hostile_incident):
    running, http, incident = hostile_incident
    response = http.get(incident["report_url"])
    assert response.status_code == 200
    page_html = response.text
    assert "&lt;img src=x onerror=" in page_html  # the payloads did reach the report, escaped
    policy = response.headers["Content-Security-Policy"]
    script_src = policy.split("script-src ")[1].split(";")[0].split()
    assert script_src and all(s.startswith("'sha256-") for s in script_src), policy
    assert "sandbox allow-scripts" in policy and "allow-same-origin" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"

    page = Watched(browser, running.url + incident["report_url"], viewport={"width": 1280, "height": 900})
    page.page.wait_for_selector(".main-svg")  # the report's own scripts (plotly) did run under the policy
    assert page.page.evaluate(NOT_RUN), (page.page.title(), page.page.evaluate("window.pwned"))
    text = page.page.inner_text("main")
    for shown in ("<img src=x onerror=", "<script>document.title='pwned-script'", "javascript:document.title"):
        assert shown in text, shown  # shown as text, for the reader to see
    assert page.page.query_selector_all("main a[href^='javascript:'], main img[src='x'], main svg[onload]") == []
    page.close()


def test_a_report_opened_from_the_status_page_cannot_read_the_token(browser, hostile_incident, auth):
    running, http, incident = hostile_incident
    page = Watched(browser, running.url + "/", viewport={"width": 1280, "height": 900})
    page.dot("green")
    page.page.fill("#token", auth["Authorization"].split()[1])
    page.page.click("#token-form button[type=submit]")
    page.page.wait_for_function("() => sessionStorage.getItem('bizra-token')")  # checked, then kept
    item = page.page.wait_for_selector(f"li[data-incident='{incident['id']}'] a[href$='report.html']")
    assert "pwned" not in page.page.title() and page.page.evaluate("window.pwned") is None
    assert SVG in page.page.text_content(f"li[data-incident='{incident['id']}'] .incident-title")
    assert item.get_attribute("target") == "_blank"
    assert {"noopener", "noreferrer"} <= set(item.get_attribute("rel").split())
    with page.context.expect_page() as opened:
        item.click()
    report = opened.value
    report.wait_for_selector(".main-svg")
    assert report.evaluate("window.opener") is None
    # the report lives in an opaque origin: the API origin's storage is out of reach
    assert report.evaluate("() => { try { return sessionStorage.getItem('bizra-token'); } "
                           "catch (e) { return 'blocked: ' + e.name; } }") in (None, "blocked: SecurityError")
    assert report.evaluate("origin") == "null"
    assert report.evaluate(NOT_RUN)
    page.close()


def test_a_failed_run_banner_shows_hostile_parameters_as_text(browser, server, auth):
    notebook = Path(__file__).parent.parent / "notebooks" / "fails_in_cell_3.ipynb"
    run = server.services.runner.create(notebook, {"label": SCRIPT + IMG + LINK})
    run = server.services.runner.execute(run["id"])
    assert run["status"] == "failed"
    url = server.url + "/reports/" + "/".join(Path(run["folder"]).parts[-2:]) + "/report.html"
    page = Watched(browser, url)
    page.page.wait_for_selector(".bizra-failure")
    assert page.page.evaluate(NOT_RUN)
    assert SCRIPT in page.page.inner_text(".bizra-failure")
    page.close()


def test_markup_that_slipped_past_escaping_still_cannot_run(browser, server):
    """The second line: only the figures' scripts run, in a report served and in one opened offline."""
    import nbformat
    import plotly.graph_objects as go

    from bizra_nb.notebook import OfflineRenderer
    from bizra_nb.reports import export_html

    OfflineRenderer.sent_plotlyjs = False
    figure = OfflineRenderer().to_mimebundle(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])).to_dict())
    unescaped = f"{IMG}{SCRIPT}<a id=l href=\"javascript:window.pwned='link'\">l</a>"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": unescaped}),
                    nbformat.v4.new_output("display_data", data=figure),
                    nbformat.v4.new_output("display_data", data={"text/html": SVG + SCRIPT})]
    nb.cells = [cell]
    folder = server.services.runner.reports_dir / "incident" / "2026-10-01-0123456789"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text(export_html(nb, title="slipped"))
    for url in (server.url + "/reports/incident/2026-10-01-0123456789/report.html",
                (folder / "report.html").as_uri()):
        page = Watched(browser, url)
        page.page.wait_for_selector(".main-svg")  # the figure's own scripts ran
        page.page.dispatch_event("#l", "click")  # a javascript: link, followed
        assert page.page.evaluate(NOT_RUN), url
        page.close()
