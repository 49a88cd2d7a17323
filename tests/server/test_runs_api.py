"""/runs and /reports on a real server: start, progress, finish, links, cancel; an alert's diagnosis report."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest
import websocket

from tests.conftest import TOKEN, wait_until
from tests.server.test_rca_api import alert_payload

TINY = Path(__file__).parent.parent / "notebooks"


@pytest.fixture
def nb_server(make_nb_server):
    """A server whose notebooks folder also holds the tiny test notebooks."""
    return make_nb_server(cell_timeout=30, heartbeat_interval=30)  # the sync WebSocket client answers pings


def finished(http, run_id, timeout=60):
    return wait_until(lambda: (r := http.get(f"/runs/{run_id}").json())["status"] in
                      ("succeeded", "failed", "cancelled") and r, timeout=timeout)


def test_start_a_run_follow_it_and_read_its_report(nb_server, auth):
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    ws = websocket.create_connection(nb_server.ws_url, timeout=30)
    ws.send(json.dumps({"subscribe": ["run"]}))
    response = http.post("/runs", json={"notebook": "succeeds_with_a_figure", "parameters": {"x": 3}}, headers=auth)
    assert response.status_code == 201 and response.headers["Location"] == f"/runs/{response.json()['id']}"
    run = finished(http, response.json()["id"])
    assert run["status"] == "succeeded" and run["summary"]["x"] == 3 and run["duration_seconds"] > 0
    report = http.get(run["links"]["html"])
    assert report.status_code == 200 and "A tiny report" in report.text
    assert http.get(run["links"]["summary"]).json()["status"] == "succeeded"
    index = http.get("/reports/")
    assert index.status_code == 200
    assert f'-{run["id"]}/report.html"' in index.text  # the index links this run's report
    statuses = []
    while "succeeded" not in statuses:
        message = json.loads(ws.recv())
        if message["type"] == "run":
            statuses.append(message["data"]["status"])
            if message["data"].get("progress"):
                assert message["data"]["progress"]["cells"] >= 6
    assert statuses[0] == "queued" and "running" in statuses
    listed = http.get("/runs", params={"status": "succeeded"}).json()
    assert listed["count"] == 1 and listed["runs"][0]["id"] == run["id"]
    ws.close()


def test_cancel_a_run(nb_server, auth):
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    run_id = http.post("/runs", json={"notebook": "sleeps_past_timeout"}, headers=auth).json()["id"]
    wait_until(lambda: http.get(f"/runs/{run_id}").json()["status"] == "running", timeout=30)
    wait_until(lambda: run_id in nb_server.services.runner._running, timeout=60)  # its worker process runs
    assert http.post(f"/runs/{run_id}/cancel", headers=auth).status_code == 202
    run = finished(http, run_id)
    assert run["status"] == "cancelled" and run["links"]["html"]
    again = http.post(f"/runs/{run_id}/cancel", headers=auth)
    assert again.status_code == 409


@pytest.mark.parametrize("body, fragment", [
    ({"notebook": "nope"}, "unknown notebook 'nope'"),
    ({"notebook": "../../etc/passwd"}, "must be the name of a notebook"),
    ({"notebook": "benchmark", "parameters": {"rate": "fast"}}, "must be of type float"),
    ({"notebook": "benchmark", "parameters": {"os.system('id')": 1}}, "unknown parameter"),
    ({"notebook": "benchmark", "parameters": [1]}, "parameters must be an object"),
    ({"notebook": "benchmark", "extra": 1}, "unknown field"),
])
def test_bad_runs_are_400_and_never_run(http, auth, body, fragment):
    response = http.post("/runs", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]
    assert http.get("/runs").json()["count"] == 0


def test_runs_api_errors(http, auth):
    assert http.post("/runs", json={"notebook": "benchmark"}).status_code == 401
    assert http.get("/runs/abcdef1234").status_code == 404
    assert http.get("/runs?status=done").status_code == 400
    assert http.get("/reports/nope.html").status_code == 404
    assert http.get("/reports/../../etc/passwd").status_code in (403, 404)
    notebooks = http.get("/runs/notebooks").json()["notebooks"]
    assert notebooks["benchmark"]["rate"]["type"] == "float"


def test_an_alert_runs_the_diagnosis_notebook_and_links_its_report(make_server, fleet, auth):
    running = make_server(dataset=str(fleet.metrics), diagnose_with_notebook=True, heartbeat_interval=30)
    http = httpx.Client(base_url=running.url, timeout=30)
    http.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=auth)
    ws = websocket.create_connection(running.ws_url, timeout=60)
    ws.send(json.dumps({"subscribe": ["rca"]}))
    incident_id = http.post("/alerts/webhook", json=alert_payload(fleet), headers=auth).json()["incident_id"]
    report_event = None
    while report_event is None:
        message = json.loads(ws.recv())
        if message["type"] == "rca" and message["data"].get("report_url"):
            report_event = message["data"]
    assert report_event["incident_id"] == incident_id and report_event["status"] == "succeeded"
    assert report_event["top_causes"][0]["service"] == "catalog-db"
    incident = http.get(f"/rca/incidents/{incident_id}").json()
    assert incident["report_url"] == report_event["report_url"]
    assert "Most likely root cause" in http.get(incident["report_url"]).text
    ws.close()


def test_a_run_interrupted_by_a_crash_is_failed_at_the_next_start(tmp_path):
    from bizra_nb.demo import start_server

    data = tmp_path / "data"
    proc, base = start_server(data, "--api-token", TOKEN, "--reports-dir", str(tmp_path / "reports"),
                              "--cell-timeout", "60")
    try:
        run_id = httpx.post(base + "/runs", json={"notebook": "benchmark", "parameters": {"duration": 30.0,
                            "rate": 5.0, "target_url": base}}, headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=30).json()["id"]
        wait_until(lambda: httpx.get(f"{base}/runs/{run_id}").json()["status"] == "running", timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: no graceful shutdown
        proc.wait(timeout=10)
    proc, base = start_server(data, "--api-token", TOKEN, "--reports-dir", str(tmp_path / "reports"))
    try:
        run = httpx.get(f"{base}/runs/{run_id}").json()
        assert run["status"] == "failed" and "interrupted" in run["error"]
        assert httpx.get(base + "/health").json()["violations"]["run_failed"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
