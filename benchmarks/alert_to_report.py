"""Time from an Alertmanager webhook delivery to the incident's diagnosis report link, and to report.html served.

Usage: python benchmarks/alert_to_report.py [--repeat 3] [--kernel-pool N] [--settle 5] [--start-wait 15]

Starts ``bizra-nb serve`` in a temporary folder on a generated fleet dataset (a latency fault at
catalog-db, ``--dataset``; the fleet's CMDB imported), then ``--repeat`` times POSTs a firing
Alertmanager group (labels alertname, service, severity; a new group key each time, so each opens
an incident) to ``/alerts/webhook`` and polls ``GET /rca/incidents/{id}`` every 20 ms until the
incident has its ``report_url``, then GETs that report until it is served. The server's warm
kernel pool, when it has one (``--kernel-pool``; default: the server's default), is given
``--start-wait`` seconds after the start (a server that has been up) and ``--settle`` seconds between
two alerts to fill. ``--start-wait 0`` measures an alert right after a restart: the pool's workers
are still starting, so that run starts its own kernel (seconds more).

Breakdown of each delivery, in seconds from the POST (the server's and papermill's wall-clock stamps):
answered (the webhook's 200), quick diagnosis (the incident's own diagnosis seen by the poll),
run created (the notebook run's created_at), run started (started_at: the queue), first cell
(kernel and worker ready), finished (finished_at: cells and export), link (report_url seen by the
poll), served (report.html answered 200).

Target (issue 14): webhook delivery -> report link <= 5 s, every repeat. Exit 0 when met, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import statistics
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

from bizra_nb.dataset import write_dataset
from bizra_nb.demo import start_server, stop_server
from bizra_nb.fleet import Fault, generate

TOKEN = "bench-token"
TARGET_SECONDS = 5.0
POLL = 0.02  # seconds between two polls of the incident
STEPS = ("answered", "quick diagnosis", "run created", "run started", "first cell", "finished", "link", "served")


def alert_group(n: int, starts_at: pd.Timestamp) -> dict:
    """A firing Alertmanager (version 4) group of one alert; ``n`` makes its group key and fingerprint new."""
    labels = {"alertname": "HighLatency", "service": "frontend", "severity": "critical"}
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="HighLatency", bench="{n}"}}', "status": "firing",
        "receiver": "bizra", "groupLabels": {"alertname": "HighLatency"}, "commonLabels": labels,
        "commonAnnotations": {"summary": "p99 latency above its normal range"}, "externalURL": "http://am:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "p99 latency above its normal range"},
                    "startsAt": starts_at.isoformat(), "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": f"bench{n:04d}", "generatorURL": "http://prom:9090/graph"}],
    }


def _stamp(text: str | None) -> float | None:
    return pd.Timestamp(text).timestamp() if text else None


def first_cell_start(notebook: dict) -> float | None:
    """When papermill started the notebook's first cell (its cell metadata), as a Unix time."""
    for cell in notebook.get("cells", []):
        start = cell.get("metadata", {}).get("papermill", {}).get("start_time")
        if start:
            return _stamp(start)
    return None


def deliver(client: httpx.Client, n: int, starts_at: pd.Timestamp) -> dict[str, float]:
    """POST one alert group, follow its incident to a served report; seconds of each step from the POST."""
    began, began_wall = time.perf_counter(), time.time()
    response = client.post("/alerts/webhook", json=alert_group(n, starts_at))
    steps = {"answered": time.perf_counter() - began}
    response.raise_for_status()
    body = response.json()
    if body["action"] != "opened":
        raise RuntimeError(f"the alert did not open an incident: {body}")
    incident_id = body["incident_id"]
    while True:
        incident = client.get(f"/rca/incidents/{incident_id}").json()
        if incident.get("diagnosis") and "quick diagnosis" not in steps:
            steps["quick diagnosis"] = time.perf_counter() - began
        if incident.get("report_url"):
            steps["link"] = time.perf_counter() - began
            break
        if incident.get("report_error"):
            raise RuntimeError(f"incident {incident_id}: {incident['report_error']}")
        if time.perf_counter() - began > 120:
            raise RuntimeError(f"incident {incident_id} has no report link after 120 s")
        time.sleep(POLL)
    while client.get(incident["report_url"]).status_code != 200:
        time.sleep(POLL)
    steps["served"] = time.perf_counter() - began
    run = client.get(f"/runs/{incident['report_run']}").json()
    if run["status"] != "succeeded":
        raise RuntimeError(f"the diagnosis run {run['id']} {run['status']}: {run.get('error')}")
    notebook = json.loads(client.get(run["links"]["notebook"]).content)
    for name, stamp in (("run created", run.get("created_at")), ("run started", run.get("started_at")),
                        ("first cell", first_cell_start(notebook)), ("finished", run.get("finished_at"))):
        if stamp is not None:
            steps[name] = stamp - began_wall
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--repeat", type=int, default=3, help="alerts, one after the other (default 3)")
    parser.add_argument("--kernel-pool", type=int, default=None,
                        help="the server's --kernel-pool, when it has that setting (default: the server's default)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds before each alert, for a warm pool to refill (default 5)")
    parser.add_argument("--start-wait", type=float, default=15.0,
                        help="seconds after the start before the first alert (default 15: a server that has been "
                             "up, its pool filled; 0: an alert right after a restart)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bizra-alert-"))
    data_dir = work / "data"
    data_dir.mkdir()
    start = pd.Timestamp("2026-10-01T10:00:00Z")
    fault = Fault(service="catalog-db", kind="latency", start=start + pd.Timedelta("80min"))
    data = generate(start=start, duration="2h", faults=[fault], seed=11)
    metrics = write_dataset(data.metrics, data_dir / "metrics.parquet")
    extra = ["--api-token", TOKEN, "--reports-dir", str(work / "reports"), "--dataset", str(metrics),
             "--audit-schedule", "", "--benchmark-schedule", ""]
    if args.kernel_pool is not None:
        extra += ["--kernel-pool", str(args.kernel_pool)]
    proc, base = start_server(data_dir, *extra)
    started = time.monotonic()
    results = []
    try:
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            client.post("/cmdb/import", content=data.cmdb.dumps("yaml")).raise_for_status()
            for n in range(args.repeat):
                time.sleep(max(args.start_wait - (time.monotonic() - started), 0.0) if n == 0 else args.settle)
                steps = deliver(client, n, fault.start + pd.Timedelta("2min"))
                results.append(steps)
                print(f"alert {n + 1}: report link {steps['link']:.2f} s, served {steps['served']:.2f} s   ("
                      + ", ".join(f"{name} {steps[name]:.2f}" for name in STEPS if name in steps) + ")", flush=True)
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    links, served = [r["link"] for r in results], [r["served"] for r in results]
    print("median, s from the POST: " + ", ".join(
        f"{name} {statistics.median(r[name] for r in results if name in r):.2f}" for name in STEPS
        if any(name in r for r in results)))
    ok = max(links) <= TARGET_SECONDS
    print(f"alert -> report link: median {statistics.median(links):.2f} s, max {max(links):.2f} s; "
          f"report served: median {statistics.median(served):.2f} s, max {max(served):.2f} s "
          f"(target: link <= {TARGET_SECONDS:g} s every time) {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
