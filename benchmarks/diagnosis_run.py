"""Time from POST /runs (incident_diagnosis on the demo data) to a finished report.html, and the report's size.

Usage: python benchmarks/diagnosis_run.py [--repeat 3]
Targets (issue 4): under 8 s from request to report; HTML under 6 MB.
"""
from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bizra-diag-"))
    start = pd.Timestamp("2026-10-20T10:00Z")
    fault = Fault("payments-db", "latency", start + pd.Timedelta("90min"))
    data = generate(start=start, duration="2h", faults=[fault], seed=3)
    write_dataset(data.metrics, work / "metrics.parquet")
    (work / "cmdb.yaml").write_text(data.cmdb.dumps("yaml"))
    proc, base = start_server(work / "data", "--api-token", TOKEN, "--reports-dir", str(work / "reports"))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times, sizes = [], []
    try:
        for n in range(args.repeat):
            began = time.perf_counter()
            run = httpx.post(base + "/runs", headers=headers, timeout=30, json={
                "notebook": "incident_diagnosis",
                "parameters": {"source": str(work / "metrics.parquet"), "cmdb": str(work / "cmdb.yaml"),
                               "incident": {"title": "bench", "severity": "P1",
                                            "opened_at": (fault.start + pd.Timedelta("2min")).timestamp()}}}).json()
            while True:
                run = httpx.get(f"{base}/runs/{run['id']}", timeout=30).json()
                if run["status"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - began
            html = httpx.get(base + run["links"]["html"], timeout=30).content
            times.append(elapsed)
            sizes.append(len(html))
            print(f"run {n + 1}: {run['status']} in {elapsed:.2f} s (worker {run['duration_seconds']:.2f} s), "
                  f"report {len(html) / 2**20:.2f} MB, top cause {run['summary'].get('headline')}", flush=True)
    finally:
        stop_server(proc)
    best, worst = min(times), max(times)
    ok = worst < 8 and max(sizes) < 6 * 2**20
    print(f"request -> report: best {best:.2f} s, worst {worst:.2f} s (target < 8 s); largest report "
          f"{max(sizes) / 2**20:.2f} MB (target < 6 MB) {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
