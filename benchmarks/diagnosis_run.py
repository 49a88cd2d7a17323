"""Time from POST /runs (incident_diagnosis on the demo data) to a finished report.html, with a breakdown.

Usage: python benchmarks/diagnosis_run.py [--repeat 5] [--kernel-pool N] [--run-workers N] [--settle 6]

Starts ``bizra-nb serve`` in a temporary folder (the demo fleet's metrics and CMDB in its data dir,
named relative to it as POST /runs demands), asks for ``--repeat`` diagnoses one after the other and
polls each until it ends. The server's warm kernel pool (``--kernel-pool``, default: the server's
default, one per run worker) gets ``--settle`` seconds to fill before each request, as it would between
alerts; ``--kernel-pool 0`` measures the cold path (every run starts its own kernel, as before the pool).

Breakdown of each run (wall-clock stamps of the server, the worker and papermill's cell metadata):
queued→start (the store's created_at → started_at), kernel ready (→ the first cell's start: worker
process, papermill, kernel), cells (first cell start → last cell end), export (→ finished_at: run.ipynb,
report.html, summary.json, the index), seen (→ the poll that saw it end).

Targets (issue 14): request → report.html <= 3 s (the median; max shown); HTML under 6 MB (issue 4).
Exit 0 when all targets are met, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
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
TARGET_SECONDS = 3.0
TARGET_BYTES = 6 * 2**20
PHASES = ("queued→start", "kernel ready", "cells", "export", "seen")


def _stamp(text: str | None) -> float | None:
    return pd.Timestamp(text).timestamp() if text else None


def breakdown(run: dict, notebook: dict, seen: float) -> dict[str, float]:
    """Seconds of each phase of a finished run (see the module docstring); absent stamps are skipped."""
    cells = [c.get("metadata", {}).get("papermill", {}) for c in notebook.get("cells", [])]
    first = next((_stamp(c.get("start_time")) for c in cells if c.get("start_time")), None)
    last = next((_stamp(c.get("end_time")) for c in reversed(cells) if c.get("end_time")), None)
    stamps = [run.get("created_at"), run.get("started_at"), first, last, run.get("finished_at"), seen]
    return {name: b - a for name, a, b in zip(PHASES, stamps, stamps[1:]) if a is not None and b is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--repeat", type=int, default=5, help="diagnoses, one after the other (default 5)")
    parser.add_argument("--kernel-pool", type=int, default=None,
                        help="the server's --kernel-pool (default: the server's default; 0: cold runs)")
    parser.add_argument("--run-workers", type=int, default=None, help="the server's --run-workers")
    parser.add_argument("--settle", type=float, default=6.0,
                        help="seconds before each request, for the pool to (re)fill (default 6)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bizra-diag-"))
    data_dir = work / "data"
    data_dir.mkdir()
    start = pd.Timestamp("2026-10-20T10:00Z")
    fault = Fault("payments-db", "latency", start + pd.Timedelta("90min"))
    data = generate(start=start, duration="2h", faults=[fault], seed=3)
    write_dataset(data.metrics, data_dir / "metrics.parquet")
    (data_dir / "cmdb.yaml").write_text(data.cmdb.dumps("yaml"))
    extra = ["--api-token", TOKEN, "--reports-dir", str(work / "reports")]
    if args.kernel_pool is not None:
        extra += ["--kernel-pool", str(args.kernel_pool)]
    if args.run_workers is not None:
        extra += ["--run-workers", str(args.run_workers)]
    proc, base = start_server(data_dir, *extra)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times, sizes, phases = [], [], []
    try:
        for n in range(args.repeat):
            time.sleep(args.settle)  # between alerts: the pool refills (a cold server idles the same)
            began = time.perf_counter()
            response = httpx.post(base + "/runs", headers=headers, timeout=30, json={
                "notebook": "incident_diagnosis",
                "parameters": {"source": "metrics.parquet", "cmdb": "cmdb.yaml",  # relative: in the data dir
                               "incident": {"title": "bench", "severity": "P1",
                                            "opened_at": (fault.start + pd.Timedelta("2min")).timestamp()}}})
            if response.status_code >= 400:
                print(f"POST /runs refused: {response.status_code} {response.text}", file=sys.stderr)
                return 1
            run = response.json()
            while True:
                run = httpx.get(f"{base}/runs/{run['id']}", timeout=30).json()
                if run["status"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.02)
            elapsed = time.perf_counter() - began
            seen = time.time()
            html = httpx.get(base + run["links"]["html"], timeout=30).content
            notebook = json.loads(httpx.get(base + run["links"]["notebook"], timeout=30).content)
            times.append(elapsed)
            sizes.append(len(html))
            parts = breakdown(run, notebook, seen)
            phases.append(parts)
            print(f"run {n + 1}: {run['status']} in {elapsed:.2f} s, report {len(html) / 2**20:.2f} MB; "
                  + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
                  + f"; top cause {run.get('summary', {}).get('headline')}", flush=True)
            if run["status"] != "succeeded":
                print(f"the run {run['status']}: {run.get('error')}", file=sys.stderr)
                return 1
    finally:
        stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    median, worst = statistics.median(times), max(times)
    print("median breakdown: " + ", ".join(
        f"{k} {statistics.median(p[k] for p in phases if k in p):.2f} s" for k in PHASES
        if any(k in p for p in phases)))
    time_ok, size_ok = median <= TARGET_SECONDS, max(sizes) < TARGET_BYTES
    print(f"request -> report.html: median {median:.2f} s, best {min(times):.2f} s, max {worst:.2f} s "
          f"(target <= {TARGET_SECONDS:g} s) {'PASS' if time_ok else 'FAIL'}")
    print(f"largest report {max(sizes) / 2**20:.2f} MB (target < 6 MB) {'PASS' if size_ok else 'FAIL'}")
    return 0 if time_ok and size_ok else 1


if __name__ == "__main__":
    sys.exit(main())
