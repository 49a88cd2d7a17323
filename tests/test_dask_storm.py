"""The storm: 16 incidents opened in a burst through the webhook, diagnosed on a real two-worker Dask cluster."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import TOKEN, wait_until
from tests.server.test_rca_api import alert_payload

AUTH = {"Authorization": f"Bearer {TOKEN}"}
INCIDENTS = 16  # a burst past both workers and the queue; benchmarks/dask_storm.py storms 40


@pytest.fixture
def cluster(tmp_path):
    """A fresh scheduler and two worker processes: other tests kill the session cluster's workers."""
    from tests.dask_cluster import DaskCluster

    running = DaskCluster(tmp_path / "dask", workers=2)
    yield running
    running.stop()


def storm_alert(fleet, n: int) -> dict:
    """Alertmanager's delivery of alert group ``n``: its own group key, labels, fingerprint and summary."""
    body = alert_payload(fleet)
    body["groupKey"] = f'{{}}:{{alertname="StormAlert",shard="s{n:02d}"}}'
    labels = {"alertname": "StormAlert", "severity": "critical", "service": "frontend", "shard": f"s{n:02d}"}
    body["groupLabels"] = {"alertname": "StormAlert", "shard": f"s{n:02d}"}
    body["commonLabels"] = labels
    body["commonAnnotations"] = {"summary": f"storm{n:02d}"}
    alert = body["alerts"][0]
    alert.update(labels=labels, annotations={"summary": f"storm{n:02d}"}, fingerprint=f"storm-{n:02d}")
    return body


def deliver_burst(url: str, bodies: list[dict]) -> list[dict]:
    """POST every group at once, each from its own thread and connection (Alertmanager's group flush)."""
    def one(body: dict) -> dict:
        with httpx.Client(base_url=url, timeout=60) as client:
            response = client.post("/alerts/webhook", json=body, headers=AUTH)
            assert response.status_code == 200, response.text
            return response.json()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


@pytest.mark.slow  # about a minute: 16 diagnoses of about 5 s each on two workers
def test_a_storm_of_16_incidents_gets_16_reports_from_both_workers(cluster, make_server, fleet):
    # cluster first: the server (and its Dask client) stops before the cluster does
    running = make_server(dataset=str(fleet.metrics), diagnose_with_notebook=True, dask_scheduler=cluster.address,
                          heartbeat_interval=30, cell_timeout=120, run_timeout=600)
    http = httpx.Client(base_url=running.url, timeout=60)
    assert http.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=AUTH).status_code == 200
    workers = cluster.worker_pids()
    assert len(workers) == 2

    outcomes = deliver_burst(running.url, [storm_alert(fleet, n) for n in range(INCIDENTS)])
    assert [o["action"] for o in outcomes] == ["opened"] * INCIDENTS
    ids = {o["incident_id"] for o in outcomes}
    assert len(ids) == INCIDENTS

    def reported() -> list[dict] | None:
        incidents = http.get("/rca/incidents", params={"limit": 1000}).json()["incidents"]
        return incidents if sum(1 for i in incidents if i.get("report_url")) >= INCIDENTS else None

    incidents = wait_until(reported, timeout=1200, interval=1.0)
    assert {i["id"] for i in incidents} == ids  # the storm's incidents, nothing else
    runs = http.get("/runs", params={"kind": "incident", "limit": 1000}).json()["runs"]
    assert len(runs) == INCIDENTS
    assert sorted(r["incident_id"] for r in runs) == sorted(ids)  # one run per incident, none twice
    assert {r["status"] for r in runs} == {"succeeded"}, [(r["id"], r["status"], r.get("error")) for r in runs]
    assert {r["notebook"] for r in runs} == {"incident_diagnosis"}
    by_incident = {r["incident_id"]: r for r in runs}
    for incident in incidents:
        run = by_incident[incident["id"]]
        assert incident["report_url"] == run["links"]["html"] and incident["report_run"] == run["id"]
        report = http.get(incident["report_url"])
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        shard = incident["labels"]["shard"]  # the alert's own summary names it in the report's opening
        assert f"Incident {incident['id']} diagnosis" in report.text and f"storm{shard[1:]}" in report.text
        assert "Most likely root cause" in report.text

    # Where each run executed: the workers' ``started`` messages (run id, worker, pid), kept by the scheduler.
    from bizra_nb.run_remote import TOPIC

    with cluster.client() as client:
        started = [message for _, message in client.get_events(TOPIC) if message.get("event") == "started"]
        addresses = set(client.scheduler_info(n_workers=-1)["workers"])
    assert sorted(m["run"] for m in started) == sorted(r["id"] for r in runs)  # each started once: no retry
    assert {m["pid"] for m in started} == set(workers)  # in both worker processes, and only in them
    assert {m["worker"] for m in started} == addresses and len(addresses) == 2
