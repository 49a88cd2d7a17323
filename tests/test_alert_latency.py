"""The incident flow's warm-up at start (issue 14): what the first alert would load is loaded before it,
on a worker thread, without reading metrics or recording anything."""
from __future__ import annotations

import logging
import threading

import httpx

import bizra_server.incident_flow as incident_flow
from bizra_server.incident_flow import IncidentFlow
from tests.conftest import wait_until
from tests.server.test_rca_api import alert_payload


def test_the_server_warms_the_incident_flow_once_at_start_off_the_ioloop(make_server, monkeypatch):
    calls = []
    monkeypatch.setattr(IncidentFlow, "warm_up", lambda self: calls.append(threading.current_thread().name))
    make_server()
    wait_until(lambda: calls)
    assert len(calls) == 1 and calls[0].startswith("bizra-worker")  # the diagnoses' threads, never the IOLoop


def test_the_warm_up_reads_no_metrics_and_records_nothing(make_server, fleet):
    running = make_server(dataset=str(fleet.metrics), diagnose_with_notebook=True)
    services = running.services
    flow = services.incident_flow
    flow.warm_up()  # again, here: it may be called any number of times
    assert flow._source is None  # the dataset is read by the first diagnosis, as before, not at the start
    assert services.store.list_incidents(limit=10) == [] and services.store.list_runs(limit=10) == []
    assert not any(services.scorekeeper.snapshot()["violations"].values())


def test_without_a_metric_source_nothing_is_loaded(make_server, monkeypatch):
    running = make_server(diagnose_with_notebook=True)
    monkeypatch.setattr(incident_flow, "declared_parameters", lambda path: (_ for _ in ()).throw(AssertionError))
    running.services.incident_flow.warm_up()  # no source: nothing is diagnosed, so nothing to load


def test_the_notebook_parameters_are_read_only_when_alerts_run_the_notebook(make_server, fleet, monkeypatch):
    read = []
    monkeypatch.setattr(incident_flow, "declared_parameters", read.append)
    make_server(dataset=str(fleet.metrics), diagnose_with_notebook=False).services.incident_flow.warm_up()
    assert read == []
    make_server(dataset=str(fleet.metrics), diagnose_with_notebook=True).services.incident_flow.warm_up()
    assert read and {p.name for p in read} == {"incident_diagnosis.ipynb"}  # (the start's own warm-up may add one)


def test_a_failing_warm_up_is_logged_and_the_alert_flow_still_works(make_server, fleet, auth, tmp_path, caplog):
    running = make_server(dataset=str(fleet.metrics))
    services = running.services
    services.settings = services.settings.replace(diagnose_with_notebook=True)
    services.runner.notebooks_dir = tmp_path  # no incident_diagnosis.ipynb in it
    with caplog.at_level(logging.WARNING, logger="bizra.incidents"):
        services.incident_flow.warm_up()  # does not raise
    assert "preparing the incident diagnoses" in caplog.text
    services.settings = services.settings.replace(diagnose_with_notebook=False)
    with httpx.Client(base_url=running.url, timeout=30) as http:
        opened = http.post("/alerts/webhook", json=alert_payload(fleet), headers=auth).json()
        assert opened["action"] == "opened"
        again = http.post("/alerts/webhook", json=alert_payload(fleet), headers=auth).json()
        assert again == {"action": "unchanged", "incident_id": opened["incident_id"]}  # the same group: deduplicated
        wait_until(lambda: http.get(f"/rca/incidents/{opened['incident_id']}/evidence").json()["status"] == "ready")
