"""A data dir that takes no writes is reported: /ready says so, and so does an incident's evidence.

How the tests break writes as root: CI runs the tests as root, and root ignores file modes, so
``chmod -w`` proves nothing. A path the server must create as a *file* is made an existing
*directory* instead: ``open(O_CREAT)`` of it and ``rename()`` onto it fail with EISDIR for every
user, root included, through the very system calls a read-only or full disk fails.
"""
from __future__ import annotations

import httpx

from bizra_server.health import PROBE_FILE
from tests.conftest import TOKEN, wait_until
from tests.server.test_rca_api import alert_payload

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_ready_is_503_naming_the_data_dir_when_it_takes_no_file_writes(server, http):
    wait_until(lambda: server.services.controller.alive)
    assert http.get("/ready").json()["components"]["data_dir"]["ok"] is True
    blocker = server.settings.data_dir / PROBE_FILE
    blocker.mkdir()
    try:
        response = http.get("/ready")
    finally:
        blocker.rmdir()
    assert response.status_code == 503
    body = response.json()
    assert body["components"]["data_dir"]["ok"] is False
    reason = next(r for r in body["reasons"] if r.startswith("data_dir:"))
    assert str(server.settings.data_dir) in reason and "not writable" in reason
    assert body["components"]["store"]["ok"] is True  # the store alone would have said "ready"
    assert http.get("/ready").status_code == 200  # and back once the data dir takes writes


def test_the_ready_probe_leaves_no_file(server, http):
    wait_until(lambda: server.services.controller.alive)
    assert http.get("/ready").status_code == 200
    assert not (server.settings.data_dir / PROBE_FILE).exists()


def test_an_incident_whose_report_cannot_start_shows_why(make_server, fleet):
    """The diagnosis notebook's CMDB snapshot cannot be written in the data dir: the evidence says so."""
    running = make_server(dataset=str(fleet.metrics), diagnose_with_notebook=True)
    http = httpx.Client(base_url=running.url, timeout=30)
    assert http.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=AUTH).status_code == 200
    (running.settings.data_dir / "cmdb.snapshot.yaml").mkdir()  # the snapshot's write fails, even for root
    incident_id = http.post("/alerts/webhook", json=alert_payload(fleet), headers=AUTH).json()["incident_id"]
    evidence = wait_until(lambda: (e := http.get(f"/rca/incidents/{incident_id}/evidence").json())["report"][
        "status"] == "failed" and e, timeout=60)
    assert evidence["status"] == "failed"
    assert "the diagnosis report could not be started" in evidence["error"]
    assert "cmdb.snapshot.yaml" in evidence["report"]["error"]
    assert "report could not be started" in http.get(f"/rca/incidents/{incident_id}").json()["report_error"]
    assert http.get("/runs").json()["count"] == 0
    assert not list(running.settings.data_dir.glob(".*.tmp"))  # write_atomic cleaned up after itself


def test_an_incident_whose_diagnosis_breaks_shows_why(make_server, fleet, monkeypatch):
    """Not only the expected errors: any exception of the diagnosis ends as `failed` with the reason."""
    running = make_server(dataset=str(fleet.metrics))
    flow = running.services.incident_flow

    def broken(incident, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(flow, "run_diagnosis", broken)
    http = httpx.Client(base_url=running.url, timeout=30)
    incident_id = http.post("/alerts/webhook", json=alert_payload(fleet), headers=AUTH).json()["incident_id"]
    evidence = wait_until(lambda: (e := http.get(f"/rca/incidents/{incident_id}/evidence").json())["status"]
                          != "pending" and e, timeout=60)
    assert evidence["status"] == "failed" and "Read-only file system" in evidence["error"]
