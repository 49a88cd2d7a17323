"""/rca and /alerts/webhook on a real server with the fleet dataset: incidents, diagnosis, WebSocket events."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import websocket

from tests.conftest import wait_until
from tests.test_incidents import payload


def alert_payload(fleet, status="firing"):
    body = payload(status=status, service="frontend")
    starts = fleet.fault.start.isoformat()
    for alert in body["alerts"]:
        alert["startsAt"] = starts
    if status == "resolved":
        body["alerts"][0]["endsAt"] = (fleet.fault.start + pd.Timedelta("20min")).isoformat()
    return body


def test_quick_diagnosis(rca_server, fleet, auth):
    _, http = rca_server
    start, end = fleet.data.metrics.index[0], fleet.data.metrics.index[-1]
    response = http.post("/rca/diagnose", json={"start": start.isoformat(), "end": end.timestamp()}, headers=auth)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["ranking"][0]["service"] == "catalog-db"
    assert doc["ranking"][0]["path"][0] == "catalog-db"
    assert abs(doc["anomaly_start"] - fleet.fault.start.timestamp()) <= 120
    assert doc["queries"] and str(fleet.metrics) in doc["queries"][0]


@pytest.mark.parametrize("body, fragment", [
    ({"end": 1}, "start and end are required"),
    ({"start": "noon", "end": 1}, "start: 'noon' is neither"),
    ({"start": 1790848800, "end": 1790848000}, "must be after start"),
    ({"start": 1790848800, "end": 1790856000, "services": "cart"}, "services must be a list"),
    ({"start": 1790848800, "end": 1790856000, "colour": 1}, "unknown field"),
    ({"start": 1790848800, "end": 1790856000, "dataset": "../../etc/passwd"}, "inside the server's data dir"),
    ({"start": "2030-01-01", "end": "2030-01-02"}, "no data in the requested window"),
])
def test_quick_diagnosis_bad_input_is_400(rca_server, auth, body, fragment):
    _, http = rca_server
    response = http.post("/rca/diagnose", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


def test_quick_diagnosis_without_a_source_is_409(http, auth):
    response = http.post("/rca/diagnose", json={"start": 0, "end": 10}, headers=auth)
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_source"


def test_webhook_opens_diagnoses_and_resolves_one_incident(rca_server, fleet, auth):
    running, http = rca_server
    ws = websocket.create_connection(running.ws_url, timeout=10)
    ws.send(json.dumps({"subscribe": ["incident", "rca", "alert"]}))
    assert http.post("/alerts/webhook", json=alert_payload(fleet)).status_code == 401  # the token is required
    opened = http.post("/alerts/webhook", json=alert_payload(fleet), headers=auth)
    assert opened.status_code == 200 and opened.json()["action"] == "opened"
    incident_id = opened.json()["incident_id"]
    repeat = http.post("/alerts/webhook", json=alert_payload(fleet), headers=auth)
    assert repeat.json() == {"action": "unchanged", "incident_id": incident_id}
    incident = http.get(f"/rca/incidents/{incident_id}").json()
    assert incident["severity"] == "P1" and incident["status"] == "open" and incident["source"] == "alertmanager"
    evidence = wait_until(lambda: (e := http.get(f"/rca/incidents/{incident_id}/evidence").json())["status"] == "ready"
                          and e, timeout=20)
    assert evidence["diagnosis"]["ranking"][0]["service"] == "catalog-db"
    seen = {}
    while "rca" not in seen:
        message = json.loads(ws.recv())
        seen.setdefault(message["type"], message)
    assert seen["incident"]["data"]["id"] == incident_id
    assert seen["rca"]["data"]["top_causes"][0]["service"] == "catalog-db"
    resolved = http.post("/alerts/webhook", json=alert_payload(fleet, "resolved"), headers=auth)
    assert resolved.json()["action"] == "resolved"
    final = http.get(f"/rca/incidents/{incident_id}").json()
    assert final["status"] == "resolved" and final["ttr_seconds"] == 1200.0
    ws.close()


def test_webhook_rejects_malformed_payloads(http, auth):
    for body, field in ((payload() | {"version": "2"}, "version"), ({"alerts": []}, "version"),
                        (payload() | {"alerts": [{"labels": {}}]}, "alerts[0].startsAt")):
        response = http.post("/alerts/webhook", json=body, headers=auth)
        assert response.status_code == 400 and response.json()["error"]["field"] == field
    assert http.post("/alerts/webhook", content=b"{", headers=auth).status_code == 400
    assert http.get("/rca/incidents").json()["count"] == 0  # nothing half-stored


def test_incidents_api(http, auth):
    opened = http.post("/rca/incidents", json={"title": "checkout slow", "service": "checkout"}, headers=auth)
    assert opened.status_code == 201
    incident = opened.json()
    assert incident["severity"] == "P3"  # the score is fine, so the platform's rule gives P3
    http.post("/rca/incidents", json={"title": "db down", "severity": "P0"}, headers=auth)
    assert http.get("/rca/incidents", params={"severity": "P0"}).json()["count"] == 1
    acked = http.patch(f"/rca/incidents/{incident['id']}", json={"status": "acknowledged"}, headers=auth).json()
    assert acked["status"] == "acknowledged" and acked["tta_seconds"] >= 0
    assert http.get("/rca/incidents", params={"status": "acknowledged"}).json()["count"] == 1
    evidence = http.get(f"/rca/incidents/{incident['id']}/evidence").json()
    assert evidence["status"] == "pending" and evidence["diagnosis"] is None


@pytest.mark.parametrize("method, path, body, status", [
    ("post", "/rca/incidents", {"severity": "P1"}, 400),
    ("post", "/rca/incidents", {"title": "x", "severity": "P9"}, 400),
    ("post", "/rca/incidents", {"title": "x", "diagnose": "yes"}, 400),
    ("post", "/rca/incidents", {"title": "x", "anomaly_start": "soon"}, 400),
    ("get", "/rca/incidents/999", None, 404),
    ("get", "/rca/incidents/abc", None, 404),
    ("patch", "/rca/incidents/999", {"status": "resolved"}, 404),
    ("get", "/rca/incidents?limit=0", None, 400),
    ("get", "/rca/incidents?status=closed", None, 400),
])
def test_incident_bad_input(http, auth, method, path, body, status):
    kwargs = {"headers": auth} if method != "get" else {}
    if body is not None:
        kwargs["json"] = body
    response = getattr(http, method)(path, **kwargs)
    assert response.status_code == status and "error" in response.json()


def test_patch_validation(http, auth):
    incident = http.post("/rca/incidents", json={"title": "t"}, headers=auth).json()
    path = f"/rca/incidents/{incident['id']}"
    assert http.patch(path, json={"status": "closed"}, headers=auth).status_code == 400
    assert http.patch(path, json={"owner": "me"}, headers=auth).status_code == 400
    http.patch(path, json={"status": "resolved"}, headers=auth)
    assert http.patch(path, json={"status": "acknowledged"}, headers=auth).status_code == 409


def test_open_with_diagnosis(rca_server, fleet, auth):
    _, http = rca_server
    incident = http.post("/rca/incidents", json={"title": "slow shop", "diagnose": True,
                                                 "anomaly_start": fleet.fault.start.isoformat()}, headers=auth).json()
    evidence = wait_until(lambda: (e := http.get(f"/rca/incidents/{incident['id']}/evidence").json())["status"]
                          != "pending" and e, timeout=20)
    assert evidence["status"] == "ready", evidence
    assert evidence["diagnosis"]["ranking"][0]["service"] == "catalog-db"


def test_rediagnose_an_incident(rca_server, fleet, auth):
    _, http = rca_server
    incident = http.post("/rca/incidents", json={"title": "t", "anomaly_start": fleet.fault.start.isoformat()},
                         headers=auth).json()
    started = http.post(f"/rca/incidents/{incident['id']}/diagnose", headers=auth)
    assert started.status_code == 202 and started.json()["evidence_url"].endswith("/evidence")
    wait_until(lambda: http.get(f"/rca/incidents/{incident['id']}/evidence").json()["status"] == "ready", timeout=20)
    assert http.post("/rca/incidents/999/diagnose", headers=auth).status_code == 404
