"""`bizra-nb demo`: the main job on the embedded defaults.

Generates the demo fleet (CMDB, a month of metrics with incidents, the platform's
own metrics), records the month's incidents, then runs the three report notebooks:
the incident diagnosis of the last incident, a benchmark against a server it starts
itself, and the monthly audit. Nothing else needs to run.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pandas as pd

DATA = Path("data") / "demo"


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def start_server(data_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start ``bizra-nb serve`` on free ports; returns the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", "0", "--ws-port", "0",
         "--data-dir", str(data_dir), "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        found = re.search(r"serving (http://[\d.]+:\d+)/health", line)
        if found:
            return proc, found.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("the server did not start (see its output above)")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def generate_fleet(data_dir: Path, month: str, *, seed: int = 7) -> dict:
    """Write the demo month: metrics.parquet, platform.parquet, cmdb.yaml, truth.json; returns the truth."""
    from bizra_nb.dataset import write_dataset
    from bizra_nb.fleet import Fault, demo_cmdb, generate, platform_month

    start = pd.Timestamp(month + "-01", tz="UTC")
    days = (start + pd.offsets.MonthBegin(1) - start).days
    faults = [
        Fault("payments-db", "latency", start + pd.Timedelta(days=4, hours=14, minutes=20), magnitude=1.2),
        Fault("cart-cache", "error_burst", start + pd.Timedelta(days=11, hours=9, minutes=5), magnitude=1.0),
        Fault("catalog-db", "cpu_hog", start + pd.Timedelta(days=days - 5, hours=16, minutes=40), magnitude=1.1),
    ]
    for i, fault in enumerate(faults):  # each fault lasts 35 minutes
        faults[i] = Fault(fault.service, fault.kind, fault.start, fault.start + pd.Timedelta(minutes=35),
                          fault.magnitude)
    data = generate(start=start, duration=pd.Timedelta(days=days), step="1min", faults=faults, seed=seed,
                    cmdb=demo_cmdb())
    write_dataset(data.metrics, data_dir / "metrics.parquet")
    write_dataset(platform_month(month, seed=seed, faults=faults), data_dir / "platform.parquet")
    (data_dir / "cmdb.yaml").write_text(data.cmdb.dumps("yaml"), encoding="utf-8")
    truth = [f.as_dict() for f in faults]
    (data_dir / "truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
    return {"faults": faults, "cmdb": data.cmdb}


def record_history(store, faults, cmdb) -> list[dict]:
    """The month's incidents as on-call handled them: opened at the alert, acknowledged, resolved."""
    store.save_cmdb(cmdb.to_dict())
    incidents = []
    acks = (6, 14, 3)
    fixes = (48, 95, 31)
    levels = ("P1", "P2", "P1")
    for n, (fault, ack, fix, level) in enumerate(zip(faults, acks, fixes, levels)):
        opened = (fault.start + pd.Timedelta(minutes=2)).timestamp()
        last = n == len(faults) - 1  # the last one is still being worked on: the status page shows it open
        incident = store.create_incident(
            title=f"{'AhsanScoreBelowThreshold' if level == 'P1' else 'HighErrorRate'} on api-gateway",
            severity=level, service="api-gateway", source="alertmanager", group_key=f"demo-{fault.service}",
            opened_at=opened, acknowledged_at=opened + ack * 60, resolved_at=None if last else opened + fix * 60,
            status="acknowledged" if last else "resolved", anomaly_start=fault.start.timestamp(),
            symptom_service="api-gateway",
        )
        incidents.append(incident)
    return incidents


def run_demo(*, out: str = "reports", serve: bool = False, month: str | None = None) -> int:
    from bizra_nb.runner import Runner
    from bizra_nb.store import Store

    began = time.monotonic()
    month = month or (datetime.now(timezone.utc).replace(day=1) - pd.Timedelta(days=1)).strftime("%Y-%m")
    if DATA.exists():
        shutil.rmtree(DATA)
    DATA.mkdir(parents=True)
    say(f"1/5 generating the demo fleet for {month} (15 services, a month at 1-minute resolution, 3 faults) ...")
    fleet = generate_fleet(DATA, month)
    store = Store.open(DATA)
    incidents = record_history(store, fleet["faults"], fleet["cmdb"])
    say(f"      {DATA}/metrics.parquet, platform.parquet, cmdb.yaml, truth.json; {len(incidents)} incidents recorded")

    def progress(run: dict) -> None:
        p = run.get("progress") or {}
        if run["status"] == "running" and p:
            print(f"      cell {p['cell']}/{p['cells']}", end="\n" if p["cell"] == p["cells"] else "\r", flush=True)

    runner = Runner(store, reports_dir=out, workers=1, on_event=progress)
    reports = {}
    last = incidents[-1]
    say(f"2/5 diagnosing incident {last['id']} ({last['title']}) with incident_diagnosis.ipynb ...")
    run = runner.run("incident_diagnosis", {
        "incident_id": last["id"], "incident": last, "source": str(DATA / "metrics.parquet"),
        "cmdb": str(DATA / "cmdb.yaml"), "symptom_service": "api-gateway"}, trigger="demo", incident_id=last["id"])
    store.update_incident(last["id"], report_url=_link(run, out), report_run=run["id"],
                          diagnosis=_quick_diagnosis(last, fleet["cmdb"]))
    reports["diagnosis"] = run
    say(f"      top cause: {run['summary'].get('headline')}; the injected fault was at {fleet['faults'][-1].service}")
    say("3/5 starting a server and benchmarking it with benchmark.ipynb ...")
    proc, base = start_server(DATA, "--dataset", str(DATA / "metrics.parquet"), "--reports-dir", out,
                              "--audit-source", str(DATA / "platform.parquet"))
    try:
        run = runner.run("benchmark", {"target_url": base, "duration": 5.0, "rate": 1200.0, "concurrency": 32,
                                       "ws_clients": 5}, trigger="demo")
        reports["benchmark"] = run
        say(f"      {run['summary'].get('headline')}")
    finally:
        if not serve:
            stop_server(proc)
    say(f"4/5 auditing {month} with compliance_audit.ipynb ...")
    run = runner.run("compliance_audit", {"month": month, "source": str(DATA / "platform.parquet"),
                                          "data_dir": str(DATA)}, trigger="demo")
    reports["audit"] = run
    say(f"      {run['summary'].get('headline')}")
    index = runner.write_index()
    say(f"5/5 done in {time.monotonic() - began:.0f} s. Reports:")
    for name, run in reports.items():
        print(f"  {name:<10} {Path(run['folder']) / 'report.html'}")
    print(f"  {'index':<10} {index}")
    if serve:
        token = (DATA / "api_token").read_text().strip()
        say(f"the status page: {base}/  (API token for its actions: {token}); Ctrl-C stops the server")
        try:
            proc.wait()
        except KeyboardInterrupt:
            stop_server(proc)
    return 0


def _quick_diagnosis(incident: dict, cmdb) -> dict:
    """The incident's evidence, as the server stores it for an incident it diagnoses."""
    from bizra_nb.diagnose import diagnose, incident_window
    from bizra_nb.sources import open_source

    start, end = incident_window(incident)
    diagnosis, fetched = diagnose(open_source(DATA / "metrics.parquet"), start=start, end=end, cmdb=cmdb)
    return {**diagnosis.as_dict(), "queries": fetched.queries}


def _link(run: dict, out: str) -> str:
    folder = Path(run["folder"]).resolve()
    return "/reports/" + str(folder.relative_to(Path(out).resolve()) / "report.html")
