"""An incident's story on a real server (issue 15): the timeline of an incident opened by the API and of one
opened by an Alertmanager webhook, notes (validated, token-protected), and the postmortem draft in HTML and
Markdown; hostile notes rendered inert in Chromium."""
from __future__ import annotations

import copy
import re
import time

import httpx
import pytest

from bizra_nb.postmortem import humanise as humanise_seconds  # as the draft shows durations
from bizra_server.incident_flow import incident_for_notebook
from tests.conftest import TOKEN, wait_until
from tests.server.test_rca_api import alert_payload
from tests.server.test_report_xss import IMG, LINK, SCRIPT, SVG, TICK
from tests.browser import Watched

OPERATOR = "Alice <b>on-call</b>"  # a name with markup: shown as text wherever it appears


@pytest.fixture
def story_server(make_server, fleet, auth):
    """A server diagnosing the fleet dataset, its operator named OPERATOR: (server, client)."""
    running = make_server(dataset=str(fleet.metrics), operator_name=OPERATOR)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        assert client.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=auth).status_code == 200
        yield running, client


def kinds_and_actors(http, incident_id) -> list[tuple[str, str | None]]:
    response = http.get(f"/rca/incidents/{incident_id}/timeline")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["incident_id"] == incident_id
    return [(e["kind"], e["actor"]) for e in body["events"]]


def test_an_api_incident_s_story(server, http, auth):
    opened = http.post("/rca/incidents", json={"title": "checkout slow", "severity": "P2", "service": "checkout",
                                               "anomaly_start": time.time() - 3600}, headers=auth)
    assert opened.status_code == 201, opened.text
    incident_id = opened.json()["id"]
    assert http.patch(f"/rca/incidents/{incident_id}", json={"status": "acknowledged"}, headers=auth).status_code == 200
    note = http.post(f"/rca/incidents/{incident_id}/notes", json={"text": "  rolled back v2.3  "}, headers=auth)
    assert note.status_code == 201, note.text
    assert note.headers["Location"] == f"/rca/incidents/{incident_id}/timeline"
    event = note.json()
    assert (event["kind"], event["actor"], event["detail"], event["incident_id"]) == (
        "note", "bizra-nb", {"text": "rolled back v2.3"}, incident_id)  # the default operator_name, trimmed text
    # a status that does not change records nothing; a PATCH note is a note event too
    assert http.patch(f"/rca/incidents/{incident_id}", json={"status": "acknowledged"}, headers=auth).status_code == 200
    resolved = http.patch(f"/rca/incidents/{incident_id}", json={"status": "resolved", "note": "fixed by rollback"},
                          headers=auth)
    assert resolved.status_code == 200
    assert http.patch(f"/rca/incidents/{incident_id}", json={"status": "open"}, headers=auth).status_code == 200
    events = http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]
    assert [e["kind"] for e in events] == ["opened", "acknowledged", "note", "resolved", "note", "reopened"]
    assert {e["actor"] for e in events} == {"bizra-nb"}
    assert events[0]["detail"]["source"] == "api" and events[0]["detail"]["severity"] == "P2"
    assert events[3]["detail"] == {"from": "acknowledged", "to": "resolved"}
    assert events[4]["detail"]["text"] == "fixed by rollback"
    assert events[5]["detail"] == {"from": "resolved", "to": "open"}
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert [e["kind"] for e in http.get(f"/rca/incidents/{incident_id}/timeline?limit=2").json()["events"]] == [
        "note", "reopened"]


def test_an_alert_s_story_with_its_diagnosis(story_server, fleet, auth):
    running, http = story_server
    published: list[tuple[str, dict]] = []
    running.services.hub.listeners.append(lambda kind, data: published.append((kind, data)))
    first = alert_payload(fleet)
    opened = http.post("/alerts/webhook", json=first, headers=auth).json()
    assert opened["action"] == "opened"
    incident_id = opened["incident_id"]
    wait_until(lambda: http.get(f"/rca/incidents/{incident_id}/evidence").json()["status"] == "ready", timeout=60)
    wait_until(lambda: len(kinds_and_actors(http, incident_id)) >= 3, timeout=10)

    assert http.post("/alerts/webhook", json=first, headers=auth).json()["action"] == "unchanged"  # no event
    second = copy.deepcopy(first)  # the group gains an alert: one update, one event (not one per alert)
    extra = copy.deepcopy(second["alerts"][0])
    extra["fingerprint"], extra["labels"] = "second", {**extra["labels"], "instance": "b"}
    second["alerts"] = [second["alerts"][0], extra]
    assert http.post("/alerts/webhook", json=second, headers=auth).json()["action"] == "updated"
    assert http.patch(f"/rca/incidents/{incident_id}", json={"status": "acknowledged"}, headers=auth).status_code == 200
    assert http.post(f"/rca/incidents/{incident_id}/notes", json={"text": "db pool exhausted"},
                     headers=auth).status_code == 201
    assert http.post("/alerts/webhook", json=alert_payload(fleet, status="resolved"),
                     headers=auth).json()["action"] == "resolved"

    events = http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("opened", "alertmanager"), ("diagnosis_started", None), ("diagnosis_finished", None),
        ("alert_updated", "alertmanager"), ("acknowledged", OPERATOR), ("note", OPERATOR), ("resolved", "alertmanager")]
    opened_event, finished, updated, resolved = events[0], events[2], events[3], events[6]
    assert opened_event["detail"]["alertname"] == first["commonLabels"]["alertname"]
    assert opened_event["detail"]["labels"] == first["commonLabels"] and opened_event["detail"]["firing"] == 1
    assert opened_event["ts"] == pytest.approx(fleet.fault.start.timestamp())  # when it began, as the alert says
    assert updated["detail"]["firing"] == 2 and len(updated["detail"]["alerts"]) == 2
    assert finished["detail"]["top_cause"] == "catalog-db" and finished["detail"]["mode"] == "quick"
    assert finished["detail"]["confidence"] in ("high", "medium", "low")
    assert finished["detail"]["evidence_url"] == f"/rca/incidents/{incident_id}/evidence"
    assert resolved["detail"]["status"] == "resolved" and resolved["detail"]["resolved_at"] is not None
    # the note told the live page (an `incident` event with action "note")
    wait_until(lambda: any(k == "incident" and d["action"] == "note" and d["id"] == incident_id
                           for k, d in published))

    html = http.get(f"/rca/incidents/{incident_id}/postmortem")
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    assert "script-src 'none'" in html.headers["Content-Security-Policy"]
    for text in ("Summary", "Impact", "Timeline", "Root-cause candidates", "What went well", "What to improve",
                 "Action items", "catalog-db", "db pool exhausted", "Alert updated", "Diagnosis finished",
                 "Alice &lt;b&gt;on-call&lt;/b&gt;", f"/rca/incidents/{incident_id}/evidence"):
        assert text in html.text, text
    markdown = http.get(f"/rca/incidents/{incident_id}/postmortem?format=markdown")
    assert markdown.status_code == 200 and markdown.headers["Content-Type"].startswith("text/markdown")
    assert "## Timeline" in markdown.text and "| Time (UTC) | Event | By | Details |" in markdown.text
    assert "catalog-db" in markdown.text and "Alice &lt;b>on-call&lt;/b>" in markdown.text
    pdf = http.get(f"/rca/incidents/{incident_id}/postmortem?format=pdf")
    assert pdf.status_code == 400 and pdf.json()["error"]["code"] == "invalid_input"
    assert pdf.json()["error"]["field"] == "format" and "html, markdown" in pdf.json()["error"]["message"]


def test_the_postmortem_has_the_figures_and_the_notes(server, http, auth):
    incident_id = http.post("/rca/incidents", json={"title": "api 5xx", "severity": "P1",
                                                    "anomaly_start": time.time() - 2 * 3600}, headers=auth).json()["id"]
    ongoing = http.get(f"/rca/incidents/{incident_id}/postmortem").text
    assert "→ ongoing" in ongoing and "not acknowledged" in ongoing and "not resolved" in ongoing
    http.patch(f"/rca/incidents/{incident_id}", json={"status": "acknowledged"}, headers=auth)
    http.post(f"/rca/incidents/{incident_id}/notes", json={"text": "line one\nline | two *bold*"}, headers=auth)
    http.patch(f"/rca/incidents/{incident_id}", json={"status": "resolved"}, headers=auth)
    incident = http.get(f"/rca/incidents/{incident_id}").json()
    mtta, mttr = humanise_seconds(incident["tta_seconds"]), humanise_seconds(incident["ttr_seconds"])
    assert mtta.startswith("2 h")  # measured from the anomaly's start two hours ago
    html = http.get(f"/rca/incidents/{incident_id}/postmortem").text
    assert f"<dt>Time to acknowledge (TTA)</dt><dd>{mtta}</dd>" in html
    assert f"<dt>Time to resolve (TTR)</dt><dd>{mttr}</dd>" in html
    assert "line one\nline | two *bold*" in html and "ongoing" not in html
    assert "No diagnosis is stored for this incident." in html
    markdown = http.get(f"/rca/incidents/{incident_id}/postmortem?format=markdown").text
    assert f"- **Time to acknowledge (TTA)**: {mtta}" in markdown
    assert f"- **Time to resolve (TTR)**: {mttr}" in markdown
    row = next(line for line in markdown.splitlines() if "line one" in line)
    assert row.endswith("| line one line \\| two \\*bold\\* |") and row.count(" | ") == 3  # one row, 4 cells


@pytest.mark.parametrize("body, fragment", [
    ({}, "text: a string is required"),
    ({"text": 5}, "text: a string is required"),
    ({"text": "   \n "}, "the note is empty"),
    ({"text": "x" * 4001}, "at most 4000 characters"),
])
def test_a_bad_note_is_a_400_naming_text(server, http, auth, body, fragment):
    incident_id = http.post("/rca/incidents", json={"title": "t", "severity": "P3"}, headers=auth).json()["id"]
    response = http.post(f"/rca/incidents/{incident_id}/notes", json=body, headers=auth)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "text" and fragment in error["message"]
    assert [e["kind"] for e in http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]] == ["opened"]


def test_notes_need_the_token_and_an_incident(server, http, auth):
    incident_id = http.post("/rca/incidents", json={"title": "t", "severity": "P3"}, headers=auth).json()["id"]
    assert http.post(f"/rca/incidents/{incident_id}/notes", json={"text": "x" * 4000}, headers=auth).status_code == 201
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = http.post(f"/rca/incidents/{incident_id}/notes", json={"text": "hi"}, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["message"]
    unknown = http.post(f"/rca/incidents/{incident_id}/notes", json={"text": "hi", "colour": 1}, headers=auth)
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "colour"
    assert len(http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]) == 2
    for response in (http.post("/rca/incidents/999999/notes", json={"text": "hi"}, headers=auth),
                     http.get("/rca/incidents/999999/timeline"), http.get("/rca/incidents/999999/postmortem"),
                     http.get("/rca/incidents/999999999999/timeline")):
        assert response.status_code == 404 and response.json()["error"]["field"] == "id", response.text
    assert http.get(f"/rca/incidents/{incident_id}/timeline?limit=0").status_code == 400
    assert TOKEN not in http.get(f"/rca/incidents/{incident_id}/postmortem").text


def test_a_hostile_note_is_inert_in_the_postmortem(browser, make_server, auth):
    running = make_server(operator_name=OPERATOR)
    with httpx.Client(base_url=running.url, timeout=30) as http:
        hostile = f"{SCRIPT} {IMG} {LINK} {SVG} {TICK}"
        incident_id = http.post("/rca/incidents", json={"title": f"title {SVG}", "severity": "P1",
                                                        "service": IMG}, headers=auth).json()["id"]
        assert http.post(f"/rca/incidents/{incident_id}/notes", json={"text": hostile},
                         headers=auth).status_code == 201
        response = http.get(f"/rca/incidents/{incident_id}/postmortem")
        assert "&lt;img src=x onerror=" in response.text  # it reached the page, escaped
        page = Watched(browser, f"{running.url}/rca/incidents/{incident_id}/postmortem",
                       viewport={"width": 1280, "height": 900})
        page.page.wait_for_selector("#action-items")
        assert page.page.evaluate("window.pwned") is None  # (the title holds a payload as text: NOT_RUN's
        assert page.page.title().startswith("Postmortem draft: incident #")  # title check cannot apply)
        text = page.page.inner_text("body")
        for shown in ("<script>document.title='pwned-script'", "<img src=x onerror=", "javascript:document.title",
                      OPERATOR):
            assert shown in text, shown  # shown as text, for the reader to see
        assert page.page.query_selector_all("a[href^='javascript:'], img, svg, script, b") == []
        page.close()


def test_the_diagnosis_report_shows_the_timeline_so_far(make_server, fleet, auth):
    running = make_server(dataset=str(fleet.metrics), diagnose_with_notebook=True, operator_name=OPERATOR)
    with httpx.Client(base_url=running.url, timeout=30) as http:
        assert http.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=auth).status_code == 200
        incident_id = http.post("/rca/incidents", json={
            "title": "frontend slow", "severity": "P1", "service": "frontend",
            "anomaly_start": fleet.fault.start.timestamp()}, headers=auth).json()["id"]
        http.post(f"/rca/incidents/{incident_id}/notes", json={"text": f"suspect the db {IMG}"}, headers=auth)
        assert http.post(f"/rca/incidents/{incident_id}/diagnose", headers=auth).status_code == 202
        wait_until(lambda: "diagnosis_finished" in [k for k, _ in kinds_and_actors(http, incident_id)]
                   and http.get(f"/rca/incidents/{incident_id}").json().get("report_url"), timeout=120, interval=0.2)
        events = http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]
        report_events = [e for e in events if e["detail"].get("mode") == "report"]
        assert [e["kind"] for e in report_events] == ["diagnosis_started", "diagnosis_finished"]
        started, finished = report_events
        assert started["detail"]["run_id"] == finished["detail"]["run_id"]
        assert finished["detail"]["top_cause"] == "catalog-db" and finished["detail"]["confidence"]
        incident = http.get(f"/rca/incidents/{incident_id}").json()
        assert finished["detail"]["report_url"] == incident["report_url"]
        run = http.get(f"/runs/{finished['detail']['run_id']}").json()
        passed = run["parameters"]["incident"]["timeline"]
        assert [e["kind"] for e in passed][:2] == ["opened", "note"] and set(passed[0]) == {"ts", "kind", "actor",
                                                                                            "what"}
        report = http.get(incident["report_url"]).text
        assert "Incident timeline" in report and "suspect the db &lt;img src=x onerror=" in report
        assert report.index("Incident timeline") < report.index("Data checks")
        assert "Alice &lt;b&gt;on-call&lt;/b&gt;" in report
        postmortem = http.get(f"/rca/incidents/{incident_id}/postmortem").text
        assert f'<a href="{running.url}{incident["report_url"]}">Latest diagnosis report</a>' in postmortem


def test_an_incident_without_events_reads_from_its_record(server, http, auth):
    """An incident from before the timeline (the demo's, or one older than migration v7): its opening,
    acknowledgement and resolution come from its own times, marked as such, wherever people read it."""
    store = server.services.store
    opened_at = time.time() - 4 * 86400
    incident = store.create_incident(title="HighErrorRate on api-gateway", severity="P1", service="api-gateway",
                                     source="demo", opened_at=opened_at, labels={"alertname": "HighErrorRate"})
    store.update_incident(incident["id"], status="acknowledged", acknowledged_at=opened_at + 72)
    store.add_incident_event(incident["id"], "note", actor="noam", detail={"text": "restarted cart-cache"})
    events = http.get(f"/rca/incidents/{incident['id']}/timeline").json()["events"]
    assert [(e["kind"], e["actor"], e.get("from_record", False)) for e in events] == [
        ("opened", "demo", True), ("acknowledged", "demo", True), ("note", "noam", False)]
    assert events[0]["ts"] == pytest.approx(opened_at) and events[0]["detail"]["title"] == incident["title"]
    assert events[1]["ts"] == pytest.approx(opened_at + 72)
    # the newest one only: the opening is not made up before what was read
    assert [e["kind"] for e in http.get(f"/rca/incidents/{incident['id']}/timeline?limit=1").json()["events"]] == [
        "note"]
    page = http.get(f"/rca/incidents/{incident['id']}/postmortem").text
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>", page)
    assert rows == [("Opened", "demo"), ("Acknowledged", "demo"), ("Note", "noam")]
    assert "<dt>Time to acknowledge (TTA)</dt><dd>1 min 12 s</dd>" in page
    passed = incident_for_notebook(store, incident["id"])["timeline"]  # what a diagnosis notebook gets
    assert [(e["kind"], e.get("from_record", False)) for e in passed] == [
        ("opened", True), ("acknowledged", True), ("note", False)]


def test_a_long_timeline_s_postmortem_starts_at_the_beginning(server, http, auth):
    incident_id = http.post("/rca/incidents", json={"title": "chatty", "severity": "P2"}, headers=auth).json()["id"]
    store, now = server.services.store, time.time()
    for n in range(1100):
        store.add_incident_event(incident_id, "note", actor="bot", detail={"text": f"tick {n}"}, ts=now + n)
    page = http.get(f"/rca/incidents/{incident_id}/postmortem").text
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td><td>[^<]*</td><td class=\"what\">([^<]*)</td>", page)
    assert rows[0][0] == "Opened" and rows[1] == ("Note", "tick 0")  # where it began
    assert rows[-1] == ("Note", "tick 1099") and len(rows) == 1000 + 1  # the newest, and one line for the rest
    assert ("…", "… 101 events not shown …") in rows, [r for r in rows if "not shown" in r[1]]
    assert "1101 timeline events (101 of them not shown below), 999 notes shown." in page


# -- resolved without an acknowledgement; a report started through POST /runs; the quick diagnosis's event -------

def test_an_incident_resolved_directly_has_no_made_up_acknowledgement(server, http, auth):
    incident_id = http.post("/rca/incidents", json={"title": "disk full", "severity": "P3",
                                                    "anomaly_start": time.time() - 600}, headers=auth).json()["id"]
    assert http.patch(f"/rca/incidents/{incident_id}", json={"status": "resolved"}, headers=auth).status_code == 200
    events = http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]
    assert [(e["kind"], e.get("from_record", False)) for e in events] == [("opened", False), ("resolved", False)]
    incident = http.get(f"/rca/incidents/{incident_id}").json()
    assert incident["tta_seconds"] == incident["ttr_seconds"]  # MTTA, as the audit counts it, is unchanged
    html = http.get(f"/rca/incidents/{incident_id}/postmortem").text
    assert "<dt>Time to acknowledge (TTA)</dt><dd>not acknowledged (resolved directly)</dd>" in html
    assert f"<dt>Time to resolve (TTR)</dt><dd>{humanise_seconds(incident['ttr_seconds'])}</dd>" in html
    assert "not recorded" not in html and "Acknowledged" not in html
    markdown = http.get(f"/rca/incidents/{incident_id}/postmortem?format=markdown").text
    assert "- **Time to acknowledge (TTA)**: not acknowledged (resolved directly)" in markdown
    assert "not recorded" not in markdown
    passed = incident_for_notebook(server.services.store, incident_id)["timeline"]
    assert [(e["kind"], e.get("from_record", False)) for e in passed] == [("opened", False), ("resolved", False)]


def test_an_alert_resolved_without_an_acknowledgement(server, http, auth):
    from tests.test_incidents import payload

    incident_id = http.post("/alerts/webhook", json=payload(), headers=auth).json()["incident_id"]
    assert http.post("/alerts/webhook", json=payload(status="resolved"), headers=auth).json()["action"] == "resolved"
    events = http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "opened" and "resolved" in kinds and "acknowledged" not in kinds
    assert not any(e.get("from_record") for e in events)
    html = http.get(f"/rca/incidents/{incident_id}/postmortem").text
    assert "<dd>not acknowledged (resolved directly)</dd>" in html and "not recorded" not in html


def test_an_old_incident_resolved_directly_reads_from_its_record(server, http, auth):
    store = server.services.store
    opened_at = time.time() - 4 * 86400
    incident = store.create_incident(title="old", severity="P2", source="demo", opened_at=opened_at)
    store.update_incident(incident["id"], status="resolved", resolved_at=opened_at + 600,
                          acknowledged_at=opened_at + 600)  # as a resolution without acknowledgement leaves it
    events = http.get(f"/rca/incidents/{incident['id']}/timeline").json()["events"]
    assert [(e["kind"], e["actor"], e.get("from_record", False)) for e in events] == [
        ("opened", "demo", True), ("resolved", "demo", True)]
    html = http.get(f"/rca/incidents/{incident['id']}/postmortem").text
    assert "<dd>not acknowledged (resolved directly)</dd>" in html and "were not recorded when they happened" in html


def test_a_report_started_through_post_runs_is_on_the_timeline(make_server, auth):
    running = make_server(operator_name=OPERATOR)
    store = running.services.store
    with httpx.Client(base_url=running.url, timeout=30) as http:
        incident_id = http.post("/rca/incidents", json={"title": "t", "severity": "P2"}, headers=auth).json()["id"]
        created = http.post("/runs", json={"notebook": "incident_diagnosis", "parameters": {"incident_id": incident_id}},
                            headers=auth)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        http.post(f"/runs/{run_id}/cancel", headers=auth)  # its report is not what is tested
        # recorded before the answer: no waiting
        started = [e for e in http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]
                   if e["kind"] == "diagnosis_started"]
        assert [(e["actor"], e["detail"]) for e in started] == [(OPERATOR, {"mode": "report", "run_id": run_id})]
        # the incident's unfinished run again (deduplicated): that run, nothing new on the timeline
        other = http.post("/rca/incidents", json={"title": "u", "severity": "P2"}, headers=auth).json()["id"]
        store.create_run(id="unfinished1", notebook="incident_diagnosis.ipynb", kind="incident", trigger="incident",
                         parameters={"incident_id": other}, created_at=time.time(), incident_id=other,
                         status="running")
        again = http.post("/runs", json={"notebook": "incident_diagnosis", "parameters": {"incident_id": other}},
                          headers=auth)
        assert again.status_code == 200 and again.json()["deduplicated"] is True
        assert [e["kind"] for e in http.get(f"/rca/incidents/{other}/timeline").json()["events"]] == ["opened"]


def test_the_quick_diagnosis_event_carries_no_report_link(story_server, fleet, auth):
    running, http = story_server
    incident_id = http.post("/rca/incidents", json={
        "title": "frontend slow", "severity": "P1", "service": "frontend",
        "anomaly_start": fleet.fault.start.timestamp()}, headers=auth).json()["id"]
    old = "/reports/2026/01/incident_diagnosis-older/report.html"  # an earlier run's report
    running.services.store.update_incident(incident_id, report_url=old, report_run="older")
    assert http.post(f"/rca/incidents/{incident_id}/diagnose", headers=auth).status_code == 202
    wait_until(lambda: "diagnosis_finished" in [k for k, _ in kinds_and_actors(http, incident_id)], timeout=60)
    finished = next(e for e in http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]
                    if e["kind"] == "diagnosis_finished")
    assert finished["detail"]["mode"] == "quick" and finished["detail"]["run_id"] is None
    assert "report_url" not in finished["detail"] and old not in str(finished["detail"])
    assert finished["detail"]["evidence_url"] == f"/rca/incidents/{incident_id}/evidence"
    assert finished["detail"]["top_cause"] == "catalog-db"
