"""Notifications from a real server: a failed run and Alertmanager incidents reach local webhook receivers, once."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import httpx
import pytest

import bizra_server.notifications as notifications
from bizra_nb.cli import main
from bizra_nb.errors import InvalidSetting
from tests.conftest import TOKEN, wait_until
from tests.test_notify import HOSTILE, Mailbox, Receiver, free_port

PUBLIC = "https://bizra.example"


def alert(status: str, title: str) -> dict:
    labels = {"alertname": "ApiErrors", "severity": "critical", "service": "api-gateway"}
    return {"version": "4", "groupKey": "{}:{alertname=\"ApiErrors\"}", "status": status, "receiver": "bizra",
            "groupLabels": {"alertname": "ApiErrors"}, "commonLabels": labels,
            "commonAnnotations": {"summary": title}, "externalURL": "http://am:9093",
            "alerts": [{"status": status, "labels": labels, "annotations": {"summary": title},
                        "startsAt": "2026-11-30T12:00:00Z",
                        "endsAt": "2026-11-30T12:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                        "fingerprint": "f00d", "generatorURL": "http://prom:9090/graph"}]}


@pytest.fixture
def plain_smtp():
    """A real SMTP server without TLS or login (the settings' --no-smtp-starttls path)."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    mailbox.port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def receivers():
    made = {"hook": Receiver(), "slack": Receiver(), "down": Receiver(then=500)}
    yield made
    for receiver in made.values():
        receiver.close()


def events(receiver: Receiver, name: str) -> list[dict]:
    return [b for b in receiver.delivered() if b.get("event") == name]


def test_a_failed_run_and_an_incident_reach_their_webhooks_once(make_nb_server, receivers, auth, tmp_path,
                                                                 monkeypatch, plain_smtp):
    monkeypatch.setattr(notifications, "RETRY_DELAYS", (0.01, 0.02))
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""
channels:
  hook: {{type: webhook, url: "{receivers['hook'].url}/hook"}}
  slack: {{type: slack, url: "{receivers['slack'].url}/services/T/B/x"}}
  down: {{type: webhook, url: "{receivers['down'].url}/down"}}
  mail: {{type: email, to: [oncall@example.com]}}
routes:
  - {{event: run_failed, channel: [hook, mail]}}
  - {{event: run_succeeded, channel: slack}}
  - {{event: incident_opened, severity: [P0, P1], channel: [hook, slack, down]}}
  - {{event: incident_resolved, channel: hook}}
""")
    server = make_nb_server(notify_routes=str(routes), public_url=PUBLIC, smtp_host="127.0.0.1",
                            smtp_port=plain_smtp.port, smtp_starttls=False, smtp_from="bizra@example.com")
    http = httpx.Client(base_url=server.url, timeout=30)
    hook, slack = receivers["hook"], receivers["slack"]

    run_id = http.post("/runs", json={"notebook": "fails_in_cell_3"}, headers=auth).json()["id"]
    [failed] = wait_until(lambda: events(hook, "run_failed"), timeout=120)
    assert failed["run"]["id"] == run_id and failed["run"]["status"] == "failed"
    assert failed["title"] == "fails_in_cell_3 run failed" and "deliberate failure" in failed["summary"]
    assert failed["link"].startswith(PUBLIC + "/reports/") and failed["link"].endswith("/report.html")
    assert http.get(failed["link"][len(PUBLIC):]).status_code == 200  # the link is the run's report
    assert slack.delivered() == []  # run_succeeded only
    [mail] = wait_until(lambda: plain_smtp.messages)
    assert mail["Subject"] == "[bizra] fails_in_cell_3 run failed" and mail["From"] == "bizra@example.com"
    html = mail.get_body(("html",)).get_content()
    assert f'href="{failed["link"]}"' in html and "deliberate failure" in html
    assert list(mail.iter_attachments()) == []  # not an audit: linked, not attached

    title = f"API errors {HOSTILE}"
    assert http.post("/alerts/webhook", json=alert("firing", title), headers=auth).json()["action"] == "opened"
    assert http.post("/alerts/webhook", json=alert("firing", title), headers=auth).json()["action"] != "opened"
    [opened] = wait_until(lambda: events(hook, "incident_opened"))
    assert opened["severity"] == "P1" and HOSTILE in opened["title"] and opened["incident"]["service"] == "api-gateway"
    [posted] = wait_until(lambda: slack.delivered())
    assert posted["text"].startswith("[bizra] P1 incident opened: ")
    assert "API errors &lt;img src=x onerror=alert(1)&gt; &amp; &lt;!channel&gt;" in posted["text"]
    assert "<img" not in str(posted) and "<!channel>" not in str(posted)

    # the channel that always fails: three attempts, then a silent_failure in /health and the violations log
    wait_until(lambda: len(receivers["down"].bodies) == 3)
    body = wait_until(lambda: (b := http.get("/health").json())["violations"]["silent_failure"] >= 1 and b)
    assert body["violations"]["silent_failure"] == 1
    logged = wait_until(lambda: [v for v in server.services.store.recent_violations()
                                 if "notification incident_opened to down failed: HTTP 500" in v["detail"]])
    assert logged[0]["kind"] == "silent_failure"
    assert len(receivers["down"].bodies) == 3  # recorded after the last attempt: no 4th one came or comes

    incident_id = opened["incident"]["id"]
    assert http.post("/alerts/webhook", json=alert("resolved", title), headers=auth).json()["action"] == "resolved"
    [resolved] = wait_until(lambda: events(hook, "incident_resolved"))
    assert resolved["incident"]["id"] == incident_id and resolved["title"].startswith("P1 incident resolved: ")
    # a note on the resolved incident publishes it again: not a second notification
    assert http.patch(f"/rca/incidents/{incident_id}", json={"status": "resolved", "note": "done"},
                      headers=auth).status_code == 200
    assert http.post("/rca/incidents", json={"title": "second", "severity": "P0"}, headers=auth).status_code == 201
    wait_until(lambda: [e for e in events(hook, "incident_opened") if e["title"] == "P0 incident opened: second"])
    assert len(events(hook, "incident_resolved")) == 1
    assert len([e for e in events(hook, "incident_opened") if e["incident"]["id"] == incident_id]) == 1
    assert len(events(hook, "run_failed")) == 1


def test_a_bad_routes_file_stops_the_start(make_server, tmp_path, capsys):
    routes = tmp_path / "routes.yaml"
    routes.write_text("channels: {mail: {type: email, to: [a@example.com]}}\n"
                      "routes: [{event: incident_opened, severity: P9, channel: mail}]\n")
    with pytest.raises(InvalidSetting) as caught:
        make_server(notify_routes=str(routes))
    assert caught.value.message.splitlines() == [
        f"{routes}: channels.mail: an email channel needs an SMTP server: set --smtp-host (BIZRA_SMTP_HOST)",
        f"{routes}: routes[0].severity: 'P9' is not allowed; allowed: P0, P1, P2, P3"]
    code = main(["serve", "--notify-routes", str(routes), "--port", "0", "--ws-port", "-1",
                 "--data-dir", str(tmp_path / "data"), "--reports-dir", str(tmp_path / "reports")])
    assert code == 2
    assert "routes[0].severity: 'P9' is not allowed" in capsys.readouterr().err


def test_with_two_replicas_each_change_is_sent_once(make_server, receivers, auth, tmp_path, redis_server):
    """Replicas on one store and one Redis: the replica that made a change sends it; a change that two
    replicas publish (a run failed as lost by the leader, then by its owner) is claimed in Redis, sent once."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"channels: {{hook: {{type: webhook, url: '{receivers['hook'].url}'}}}}\n"
                      "routes: [{event: incident_opened, channel: hook}]\n")
    shared = dict(notify_routes=str(routes), redis_url=redis_server.url,
                  store_url=f"sqlite:///{tmp_path / 'shared.sqlite3'}")
    first, second = make_server(**shared), make_server(**shared)
    hook = receivers["hook"]

    def opened(title: str) -> list[dict]:
        return [e for e in events(hook, "incident_opened") if e["incident"]["title"] == title]

    assert httpx.post(first.url + "/rca/incidents", json={"title": "through the first", "severity": "P2"},
                      headers=auth).status_code == 201
    wait_until(lambda: opened("through the first"))
    twice = {"id": 999, "title": "published by both", "severity": "P1", "opened_at": 1.79e9, "action": "opened"}
    for replica in (first, second):
        replica.call(replica.services.hub.publish, "incident", twice)
    wait_until(lambda: opened("published by both"))
    assert httpx.post(second.url + "/rca/incidents", json={"title": "through the second", "severity": "P2"},
                      headers=auth).status_code == 201
    wait_until(lambda: opened("through the second"))  # after the others: each would have come by now
    assert [len(opened(t)) for t in ("through the first", "published by both", "through the second")] == [1, 1, 1]
    assert len(hook.bodies) == 3


def test_the_served_log_at_info_tells_no_webhook_url(receivers, tmp_path):
    """``bizra-nb serve --log-level info`` as people run it: httpx's own INFO lines ("HTTP Request: POST <url>")
    would write the Slack webhook's secret path and a URL's user:password to the log; they are not there."""
    from bizra_nb.demo import stop_server

    slack, hook = receivers["slack"], receivers["hook"]
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""
channels:
  slack: {{type: slack, url: "{slack.url}/services/T0/B0/SLACKSECRET?token=QUERYSECRET"}}
  hook: {{type: webhook, url: "{hook.url.replace('http://', 'http://alice:PASSWORDSECRET@')}/hook"}}
routes:
  - {{event: incident_opened, channel: [slack, hook]}}
""")
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bizra_nb.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--ws-port", "-1",
             "--log-level", "info", "--notify-routes", str(routes), "--data-dir", str(tmp_path / "data"),
             "--reports-dir", str(tmp_path / "reports")],
            stdout=subprocess.PIPE, stderr=err, text=True, env=os.environ | {"BIZRA_API_TOKEN": TOKEN})
    try:
        url = next(line.split("serving ")[1].removesuffix("/health\n") for line in proc.stdout if "serving " in line)
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        assert httpx.post(url + "/rca/incidents", json={"title": "disk full", "severity": "P1"},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).status_code == 201
        wait_until(lambda: slack.delivered() and hook.delivered(), timeout=60)
    finally:
        stop_server(proc)
    assert [b["path"] for b in slack.bodies] == ["/services/T0/B0/SLACKSECRET?token=QUERYSECRET"]
    log = stderr.read_text()
    assert "notifications: 1 route(s) to 2 channel(s)" in log  # the log at INFO, as written
    for secret in ("SLACKSECRET", "QUERYSECRET", "PASSWORDSECRET", "/services/", slack.url, hook.url):
        assert secret not in log, secret
