"""The status page's on-call parts in Chromium: the runs' filters and "compare with previous run", the schedules
with "Run now", and an incident's view (timeline, notes, postmortem links, silences against a real Alertmanager)."""
from __future__ import annotations

import socket
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from tests.browser import ARTEFACTS, Watched
from tests.conftest import wait_until
from tests.server.test_runs_api import finished, nb_server  # noqa: F401 - a fixture, used by name
from tests.server.test_status_page_states import HOSTILE
from tests.test_incidents import payload

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def open_page(browser, url: str) -> Watched:
    page = Watched(browser, url, viewport={"width": 1280, "height": 900})
    page.dot("green")
    return page


def enter_token(page: Watched) -> None:
    page.page.fill("#token", TOKEN)
    page.page.click("#token-form button[type=submit]")
    page.wait_text("#token-state", "accepted")


def start_run(http: httpx.Client, notebook: str, parameters: dict | None = None) -> dict:
    response = http.post("/runs", json={"notebook": notebook, "parameters": parameters or {}}, headers=AUTH)
    assert response.status_code == 201, response.text
    return finished(http, response.json()["id"])


def shown_runs(page: Watched) -> list[str]:
    return page.page.eval_on_selector_all("#runs li[data-run]", "els => els.map(e => e.dataset.run)")


def wait_for_runs(page: Watched, ids: list[str]) -> None:
    page.page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#runs li[data-run]')].map(e => e.dataset.run)) === "
        "JSON.stringify(ids)", arg=ids)


def test_the_runs_filters_show_what_they_ask_for(browser, nb_server):  # noqa: F811
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    good = start_run(http, "succeeds_with_a_figure", {"x": 2})
    bad = start_run(http, "fails_in_cell_3")
    page = open_page(browser, nb_server.url + "/")
    queries: list[str] = []
    page.page.on("request", lambda r: queries.append(r.url) if "/runs?" in r.url else None)
    wait_for_runs(page, [bad["id"], good["id"]])  # newest first
    page.page.wait_for_function("() => document.querySelectorAll('#filter-notebook option').length > 1")
    # failed runs only: the failed one, with why
    page.page.select_option("#filter-status", "failed")
    page.page.click("#runs-filter button[type=submit]")
    wait_for_runs(page, [bad["id"]])
    assert "deliberate failure with x=1" in page.page.text_content(f"li[data-run='{bad['id']}'] .run-error")
    assert "status=failed" in queries[-1]
    # one notebook, any status: its run, with its report
    page.page.select_option("#filter-status", "")
    page.page.select_option("#filter-notebook", "succeeds_with_a_figure")
    page.page.click("#runs-filter button[type=submit]")
    wait_for_runs(page, [good["id"]])
    assert "notebook=succeeds_with_a_figure" in queries[-1]
    report = page.page.get_attribute(f"li[data-run='{good['id']}'] a.report-link", "href")
    assert report == good["links"]["html"]
    # days (UTC): up to yesterday there is nothing; from today, both
    today = datetime.now(timezone.utc).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    page.page.select_option("#filter-notebook", "")
    page.page.fill("#filter-until", yesterday)
    page.page.click("#runs-filter button[type=submit]")
    page.wait_text("#runs", "No run matches")
    assert "until=" in queries[-1]
    page.page.fill("#filter-since", today.isoformat())
    page.page.click("#runs-filter button[type=submit]")  # from after to: said at the field, nothing asked
    page.wait_text("#runs-error", "before")
    page.page.fill("#filter-until", "")
    page.page.click("#runs-filter button[type=submit]")
    wait_for_runs(page, [bad["id"], good["id"]])
    assert "since=" in queries[-1]
    page.page.click("#filter-clear")
    page.wait_text("#runs-filter-state", "most recent")
    wait_for_runs(page, [bad["id"], good["id"]])
    assert page.errors == [], page.errors
    page.close()


def test_compare_with_previous_run_opens_the_comparison_in_a_new_tab(browser, nb_server):  # noqa: F811
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    first = start_run(http, "succeeds_with_a_figure", {"x": 1})
    second = start_run(http, "succeeds_with_a_figure", {"x": 5})
    page = open_page(browser, nb_server.url + "/")
    page.page.wait_for_selector(f"li[data-run='{second['id']}']")
    with page.context.expect_page() as opened:
        page.page.click(f"li[data-run='{second['id']}'] button[data-run-action='compare']")
    tab = opened.value
    expected = f"/runs/compare?a={first['id']}&b={second['id']}"
    assert tab.url == nb_server.url + expected
    tab.wait_for_load_state()
    assert first["id"] in tab.content() and second["id"] in tab.content()
    assert not tab.evaluate("window.opener")  # opened without a handle on this page
    link = page.page.wait_for_selector(f"li[data-run='{second['id']}'] a.compare-link")
    assert link.get_attribute("href") == expected and link.get_attribute("target") == "_blank"
    # "Copy link" has its own place: the comparison's link stays
    page.page.click(f"li[data-run='{second['id']}'] button[data-run-action='copy']")
    page.page.wait_for_selector(f"li[data-run='{second['id']}'] .share-link")
    assert page.page.get_attribute(f"li[data-run='{second['id']}'] a.compare-link", "href") == expected
    # the first run of a notebook has nothing to compare with: said, and no tab
    page.page.click(f"li[data-run='{first['id']}'] button[data-run-action='compare']")
    page.wait_text(f"li[data-run='{first['id']}'] .compare-note", "no earlier succeeded run")
    assert len(page.context.pages) == 2
    tab.close()
    page.close()


def test_compare_is_with_the_previous_succeeded_run_only(browser, nb_server):  # noqa: F811
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    failed = [start_run(http, "fails_in_cell_3") for _ in range(2)]
    assert [r["status"] for r in failed] == ["failed", "failed"]
    page = open_page(browser, nb_server.url + "/")
    asked: list[str] = []
    page.page.on("request", lambda r: asked.append(r.url) if "/previous" in r.url else None)
    item = f"li[data-run='{failed[1]['id']}']"
    page.page.wait_for_selector(item)
    page.page.click(f"{item} button[data-run-action='compare']")  # an earlier run exists, but it failed too
    note = page.wait_text(f"{item} .compare-note", "no earlier succeeded run")
    assert note.startswith("Nothing to compare with")
    assert asked and asked[-1].endswith(f"/runs/{failed[1]['id']}/previous?status=succeeded")
    assert page.page.query_selector(f"{item} a.compare-link") is None and len(page.context.pages) == 1
    assert [e for e in page.errors if "status of 404" not in e] == [], page.errors  # the 404 is the answer
    page.close()


def test_the_schedules_list_and_run_now(browser, make_server, fleet):
    running = make_server(audit_schedule="0 6 1 * *", audit_schedule_tz="Europe/Berlin",
                          audit_source=str(fleet.metrics), benchmark_schedule="")
    http = httpx.Client(base_url=running.url, timeout=30)
    listed = {s["name"]: s for s in http.get("/schedules").json()["schedules"]}
    audit = listed["audit"]
    page = open_page(browser, running.url + "/")
    item = "#schedules li[data-schedule='audit']"
    page.page.wait_for_selector(item)
    text = page.page.text_content(item)
    assert "compliance_audit" in text and "0 6 1 * *" in text and "Europe/Berlin" in text
    local = audit["next_fire_local"][:16].replace("T", " ")
    utc = datetime.fromisoformat(audit["next_fire"].replace("Z", "+00:00")).astimezone(timezone.utc)
    fire = page.page.text_content(f"{item} .next-fire")
    assert f"{local} Europe/Berlin" in fire and utc.strftime("%H:%M UTC") in fire
    assert "not run yet" in page.page.text_content(f"{item} .last-run")
    benchmark = page.page.text_content("#schedules li[data-schedule='benchmark']")
    assert "Off:" in benchmark and "--benchmark-schedule is empty" in benchmark
    assert page.page.query_selector("#schedules li[data-schedule='benchmark'] button") is None
    run_now = f"{item} button[data-run-schedule='audit']"
    assert page.page.is_disabled(run_now)  # no token yet
    enter_token(page)
    page.page.click(run_now)
    note = page.page.wait_for_selector(f"{item} .schedule-note:has-text('Started run')")
    run = http.get("/runs").json()["runs"][0]
    http.post(f"/runs/{run['id']}/cancel", headers=AUTH)  # what it audits does not matter here
    assert run["id"] in note.text_content() and run["trigger"] == "manual:audit"
    assert run["parameters"]["scheduled_for"].endswith(("Z", "+00:00"))
    page.wait_text(f"{item} .last-run", run["id"])
    page.page.wait_for_selector(f"#runs li[data-run='{run['id']}']")
    assert page.errors == [], page.errors
    page.close()


def hostile_alert(service: str) -> dict:
    body = payload(group_key=f"{{}}:{{alertname=\"{service}\"}}", service=service, team=HOSTILE)
    body["commonAnnotations"] = {"summary": HOSTILE}
    return body


def test_the_incident_view_shows_the_timeline_takes_notes_and_keeps_hostile_text_inert(browser, make_server):
    running = make_server()
    http = httpx.Client(base_url=running.url, timeout=30)
    incident_id = http.post("/alerts/webhook", json=hostile_alert("checkout"), headers=AUTH).json()["incident_id"]
    page = open_page(browser, running.url + "/")
    page.page.click(f"li[data-incident='{incident_id}'] button[data-open-incident]")
    opened = page.page.wait_for_selector("#timeline li[data-event='opened']")
    assert "AhsanScoreBelowThreshold" in opened.text_content() and f"team={HOSTILE}" in opened.text_content()
    assert page.page.is_visible("#incident-view")
    assert page.page.get_attribute("#postmortem-link", "href") == f"/rca/incidents/{incident_id}/postmortem"
    assert page.page.get_attribute("#postmortem-md-link", "href") == \
        f"/rca/incidents/{incident_id}/postmortem?format=markdown"
    # without Alertmanager: said plainly, no error
    page.wait_text("#silences-state", "no Alertmanager")
    assert page.page.is_disabled("#silence-submit")
    # a note needs the token; then it shows up on the timeline, as text
    page.page.fill("#note-text", "rolled back " + HOSTILE)
    page.page.click("#note-submit")
    page.wait_text("#note-error", "token")
    enter_token(page)
    page.page.click("#note-submit")
    note = page.page.wait_for_selector("#timeline li[data-event='note']")
    assert "rolled back " + HOSTILE in note.text_content() and "by bizra-nb" in note.text_content()
    assert page.page.input_value("#note-text") == ""
    events = http.get(f"/rca/incidents/{incident_id}/timeline").json()["events"]
    assert [e["detail"]["text"] for e in events if e["kind"] == "note"] == ["rolled back " + HOSTILE]
    # what others do to the incident arrives live
    http.post(f"/rca/incidents/{incident_id}/notes", json={"text": "from the terminal"}, headers=AUTH)
    page.page.wait_for_selector("#timeline li[data-event='note']:has-text('from the terminal')")
    assert page.page.query_selector_all("#incident-view img, #incidents img") == []
    assert page.page.evaluate("window.__pwned") is None
    # the postmortem draft is there, and the view opens from a link too
    assert http.get(f"/rca/incidents/{incident_id}/postmortem").status_code == 200
    page.page.click("#incident-close")
    assert page.page.is_hidden("#incident-view")
    page.page.evaluate(f"location.hash = 'incident={incident_id}'")
    page.page.wait_for_selector("#incident-view #timeline li[data-event='note']")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTEFACTS / "status_page_incident_view.png"), full_page=True)
    assert page.errors == [], page.errors
    page.close()


def test_silence_and_expire_from_the_incident_view(browser, make_server, alertmanager):
    running = make_server(alertmanager_url=alertmanager.url)
    http = httpx.Client(base_url=running.url, timeout=30)
    service = "svc-" + uuid.uuid4().hex[:8]  # this test's silences, apart from others' on the shared Alertmanager
    incident_id = http.post("/alerts/webhook", json=payload(group_key=f"{{}}:{{s=\"{service}\"}}", service=service),
                            headers=AUTH).json()["incident_id"]
    page = open_page(browser, f"{running.url}/#incident={incident_id}")
    page.wait_text("#silences-state", "No active")
    enter_token(page)
    page.page.select_option("#silence-duration", "2h")
    page.page.click("#silence-submit")  # no comment: said at the field, nothing sent
    page.wait_text("#silence-error", "why")
    page.page.fill("#silence-comment", "deploy in progress " + HOSTILE)
    page.page.click("#silence-submit")
    item = page.page.wait_for_selector("#silences li[data-silence]")
    silence_id = item.get_attribute("data-silence")
    assert "deploy in progress " + HOSTILE in item.text_content() and f'service="{service}"' in item.text_content()
    made = alertmanager.silence(silence_id)
    assert made["status"]["state"] == "active" and made["comment"] == "deploy in progress " + HOSTILE
    ends = datetime.fromisoformat(made["endsAt"].replace("Z", "+00:00")).timestamp()
    starts = datetime.fromisoformat(made["startsAt"].replace("Z", "+00:00")).timestamp()
    assert abs(ends - starts - 7200) < 120
    page.page.wait_for_selector("#timeline li[data-event='silence_created']")
    page.page.click(f"#silences li[data-silence='{silence_id}'] button[data-expire-silence]")
    page.page.wait_for_selector("#timeline li[data-event='silence_expired']")
    wait_until(lambda: alertmanager.silence(silence_id)["status"]["state"] == "expired", timeout=10)
    page.page.wait_for_function("id => [...document.querySelectorAll('#silences li[data-silence]')]"
                                ".every(li => li.dataset.silence !== id || li.textContent.includes('expired'))",
                                arg=silence_id)  # gone from the list, or shown expired
    assert page.page.query_selector_all("#incident-view img") == [] and page.page.evaluate("window.__pwned") is None
    assert page.errors == [], page.errors
    page.close()


NEW_YORK = {"timezone_id": "America/New_York"}


def test_days_and_times_are_utc_whatever_the_browsers_zone(browser, make_server, fleet):
    """In New York, the 'From day' 2026-11-29 is the UTC day: a run at 01:39 UTC that day is in it (New York's
    midnight would be 05:00 UTC, after it). The list writes dates; a schedule adds the viewer's own time."""
    from zoneinfo import ZoneInfo

    running = make_server(audit_schedule="0 6 1 * *", audit_schedule_tz="Europe/Berlin",
                          audit_source=str(fleet.metrics), benchmark_schedule="")
    store = running.services.store
    midnight = datetime.combine(datetime.now(timezone.utc).date() - timedelta(days=2), datetime.min.time(),
                                tzinfo=timezone.utc)
    early = store.create_run(id="ab12cd0001", notebook="/srv/notebooks/benchmark.ipynb", kind="benchmark",
                             status="succeeded", trigger="api", parameters={},
                             created_at=midnight.timestamp() + 99 * 60,
                             folder="/srv/reports/2026-11/benchmark-ab12cd0001")
    audit = store.create_run(id="ab12cd0002", notebook="/srv/notebooks/compliance_audit.ipynb", kind="audit",
                             status="succeeded", trigger="schedule:audit", parameters={},
                             created_at=datetime.now(timezone.utc).timestamp() - 60,
                             folder="/srv/reports/2026-12/compliance_audit-ab12cd0002")
    page = Watched(browser, running.url + "/", viewport={"width": 1280, "height": 900}, **NEW_YORK)
    page.dot("green")
    assert page.page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "America/New_York"
    queries: list[str] = []
    page.page.on("request", lambda r: queries.append(r.url) if "/runs?" in r.url else None)
    # the runs list: dates and times in UTC, each with its report and PDF
    wait_for_runs(page, [audit["id"], early["id"]])
    today = datetime.fromtimestamp(audit["created_at"], timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    assert f"started {today}" in page.page.text_content(f"li[data-run='{audit['id']}'] .run-time")
    assert f"started {midnight:%Y-%m-%d} 01:39 UTC" in page.page.text_content(f"li[data-run='{early['id']}']")
    links = page.page.eval_on_selector_all(f"li[data-run='{early['id']}'] a.report-link",
                                           "els => els.map(a => [a.textContent, a.getAttribute('href')])")
    assert links == [["report", "/reports/2026-11/benchmark-ab12cd0001/report.html"],
                     ["PDF", "/reports/2026-11/benchmark-ab12cd0001/report.pdf"]]
    # the filters: labelled UTC, and the day sent is the UTC day
    assert "(UTC)" in page.page.text_content("label:has(#filter-since)")
    page.page.fill("#filter-since", f"{midnight:%Y-%m-%d}")
    page.page.fill("#filter-until", f"{midnight:%Y-%m-%d}")
    page.page.click("#runs-filter button[type=submit]")
    wait_for_runs(page, [early["id"]])
    day = int(midnight.timestamp())
    assert f"since={day}" in queries[-1] and f"until={day + 86400}" in queries[-1]
    # a schedule's last run: its status, time and report links as links (never ",http://…" as text)
    item = "#schedules li[data-schedule='audit']"
    last = page.page.wait_for_selector(f"{item} .last-run")
    text = last.text_content()
    assert audit["id"] in text and ",http" not in text and "report.html" not in text
    folder = "/reports/2026-12/compliance_audit-ab12cd0002"
    assert [a.get_attribute("href") for a in last.query_selector_all("a")] == [f"{folder}/report.html",
                                                                               f"{folder}/report.pdf"]
    # the next fire: Berlin's time, UTC, and (differing from both) New York's
    listed = {s["name"]: s for s in httpx.get(running.url + "/schedules").json()["schedules"]}
    fire = datetime.fromisoformat(listed["audit"]["next_fire"].replace("Z", "+00:00"))
    text = page.page.text_content(f"{item} .next-fire")
    assert f"{fire.astimezone(ZoneInfo('Europe/Berlin')):%Y-%m-%d %H:%M} Europe/Berlin" in text
    assert f"{fire:%H:%M} UTC" in text
    assert f"your time {fire.astimezone(ZoneInfo('America/New_York')):%Y-%m-%d %H:%M} America/New_York" in text
    assert page.errors == [], page.errors
    page.close()


def test_the_incident_view_has_its_own_link_says_a_failed_diagnosis_and_retries_alertmanager(browser, make_server):
    with socket.socket() as probe:  # a port nothing listens on: Alertmanager "down"
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    running = make_server(alertmanager_url=dead_url)
    http = httpx.Client(base_url=running.url, timeout=30)
    incident_id = http.post("/alerts/webhook", json=payload(group_key='{}:{s="down"}', service="cart"),
                            headers=AUTH).json()["incident_id"]
    running.services.store.update_incident(incident_id, diagnosis_error="no metric source " + HOSTILE,
                                           report_url="/reports/2026/12/incident_diagnosis-ab12cd0003/report.html")
    page = open_page(browser, running.url + "/")
    page_requests: list[str] = []
    page.page.on("request", lambda r: page_requests.append(r.url))
    page.page.click(f"li[data-incident='{incident_id}'] button[data-open-incident]")
    page.page.wait_for_selector("#incident-view:not([hidden])")
    assert page.page.evaluate("location.hash") == f"#incident={incident_id}"  # a link to copy
    # the diagnosis failed: said, and its run's report is not offered as "the diagnosis report"
    diagnosis = page.wait_text("#incident-diagnosis", "Diagnosis failed")
    assert "diagnosis report" not in diagnosis and page.page.query_selector("#incident-view img") is None
    assert "diagnosis report" not in page.page.text_content(f"li[data-incident='{incident_id}']")
    assert "failed" in page.page.text_content(f"li[data-incident='{incident_id}'] .report-failed")
    # Alertmanager does not answer: said, with "Try again", and the form is not left dead
    page.wait_text("#silences-state", "Try again")
    assert "HTTP 502" in page.page.text_content("#silences-state")
    assert not page.page.is_disabled("#silence-submit")
    listed = lambda: [u for u in page_requests if u.endswith(f"/rca/incidents/{incident_id}/silences")]  # noqa: E731
    before = len(listed())
    page.page.click("#silences-state button.silences-retry")
    page.page.wait_for_function("() => document.querySelector('#silences-state button.silences-retry')")
    page.wait_text("#silences-state", "Try again")  # asked again, still down
    assert len(listed()) == before + 1
    # closing removes the link; opening from it works
    page.page.click("#incident-close")
    assert page.page.evaluate("location.hash") == "" and page.page.is_hidden("#incident-view")
    page.page.evaluate(f"location.hash = 'incident={incident_id}'")
    page.page.wait_for_selector("#incident-view:not([hidden])")
    page.wait_text("#incident-diagnosis", "Diagnosis failed")
    gateway = [e for e in page.errors if "status of 502" in e]
    assert len(gateway) >= 2 and len(gateway) == len(page.errors), page.errors  # "Try again" asked again
    page.close()


def dead_alertmanager() -> str:
    """A URL nothing listens on: silences are asked for, and the form would be left usable ("Try again")."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def resolved_ids(page: Watched) -> list[int]:
    return page.page.eval_on_selector_all("#resolved-incidents li[data-resolved-incident]",
                                          "els => els.map(e => Number(e.dataset.resolvedIncident))")


def wait_for_resolved(page: Watched, ids: list[int]) -> None:
    page.page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#resolved-incidents li[data-resolved-incident]')]"
        ".map(e => Number(e.dataset.resolvedIncident))) === JSON.stringify(ids)", arg=ids)


def test_recently_resolved_incidents_keep_their_postmortem_in_reach(browser, make_server):
    """After a reload a resolved incident is under "Recently resolved" (newest first), its view opens from there with
    its postmortem links and a silence form that says why it is off; a live resolve moves an open one across."""
    running = make_server(alertmanager_url=dead_alertmanager())
    http = httpx.Client(base_url=running.url, timeout=30)
    made = lambda title, severity: http.post("/rca/incidents", json={"title": title, "severity": severity},  # noqa: E731
                                             headers=AUTH).json()
    older, done, live = made("older trouble", "P3"), made("disk full " + HOSTILE, "P2"), made("queue backlog", "P1")
    for incident in (older, done):  # resolved in this order: `done` is the newest resolved
        response = http.patch(f"/rca/incidents/{incident['id']}", json={"status": "resolved"}, headers=AUTH)
        assert response.status_code == 200, response.text
    page = open_page(browser, running.url + "/")  # loaded after the resolves: what a reload shows
    wait_for_resolved(page, [done["id"], older["id"]])
    page.page.wait_for_selector(f"#incidents li[data-incident='{live['id']}']")
    assert page.page.query_selector(f"#incidents li[data-incident='{done['id']}']") is None
    assert page.page.is_hidden("#resolved-empty")
    item = f"#resolved-incidents li[data-resolved-incident='{done['id']}']"
    stored = http.get(f"/rca/incidents/{done['id']}").json()
    assert page.page.text_content(f"{item} .incident-title") == "disk full " + HOSTILE  # text, not markup
    assert page.page.text_content(f"{item} .sev") == "P2" and f"incident {done['id']}" in page.page.text_content(item)
    when = datetime.fromtimestamp(stored["resolved_at"], timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    took = int(stored["ttr_seconds"] + 0.5)  # seconds here: resolved right after it opened
    assert page.page.text_content(f"{item} .resolved-when") == f"resolved {when}, {took} s after it opened"
    assert page.page.query_selector_all("#resolved-incidents img") == [] and page.page.evaluate("window.__pwned") is None
    # its button opens the view, with the postmortem links; the silence form is off, saying why
    page.page.click(f"{item} button[data-open-incident]")
    page.page.wait_for_selector("#incident-view:not([hidden])")
    assert page.page.evaluate("location.hash") == f"#incident={done['id']}"
    assert page.page.get_attribute("#postmortem-link", "href") == f"/rca/incidents/{done['id']}/postmortem"
    assert page.page.get_attribute("#postmortem-md-link", "href") == \
        f"/rca/incidents/{done['id']}/postmortem?format=markdown"
    assert http.get(f"/rca/incidents/{done['id']}/postmortem").status_code == 200
    page.wait_text("#incident-view-title", "(resolved)")
    page.wait_text("#silences-state", "Try again")  # Alertmanager is down: an open incident's form would stay usable
    assert "reopen the incident first" in page.wait_text("#silence-resolved", "Resolved: a silence now would hide")
    assert page.page.is_visible("#silence-resolved")
    assert all(page.page.is_disabled(s) for s in ("#silence-submit", "#silence-duration", "#silence-comment"))
    # an open incident's view: the form is usable; resolved live, it moves lists and its form turns off, no reload
    page.page.evaluate("window.__kept = 1")
    page.page.click(f"#incidents li[data-incident='{live['id']}'] button[data-open-incident]")
    page.wait_text("#incident-view-title", "(open)")
    page.wait_text("#silences-state", "Try again")
    assert page.page.is_hidden("#silence-resolved") and not page.page.is_disabled("#silence-submit")
    assert not page.page.is_disabled("#silence-comment")
    response = http.patch(f"/rca/incidents/{live['id']}", json={"status": "resolved"}, headers=AUTH)
    assert response.status_code == 200, response.text
    wait_for_resolved(page, [live["id"], done["id"], older["id"]])
    page.page.wait_for_selector(f"#incidents li[data-incident='{live['id']}']", state="detached")
    assert page.page.is_visible("#incidents-empty")
    page.page.wait_for_selector("#silence-resolved", state="visible")
    assert page.page.is_disabled("#silence-submit") and page.page.is_disabled("#silence-duration")
    assert page.page.evaluate("window.__kept") == 1  # the same page: nothing reloaded
    assert [e for e in page.errors if "status of 502" not in e] == [], page.errors  # the 502s: Alertmanager is down
    page.close()
