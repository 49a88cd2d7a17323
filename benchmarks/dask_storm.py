"""An incident storm on the local pool vs a Dask cluster: time to the last report, /health meanwhile, submit-to-start.

Usage: python benchmarks/dask_storm.py [--incidents 40] [--workers 2] [--rate 50] [--latency-runs 10]

For each executor, a fresh `bizra-nb serve` (a subprocess, SQLite store, the demo fleet as --dataset):
first `--run-workers W` (the local pool), then `--dask-scheduler` with a `dask scheduler` and W ×
`dask worker --nthreads 1` started here. On each, in this order:

1. W diagnoses at once through POST /runs (every worker warmed up), then one alone: the per-run time
   without contention;
2. submit-to-start on the idle executor: --latency-runs tiny runs (the benchmark notebook for 0.2 s)
   one after the other, from the run's created_at to its started_at, and from the POST's send;
3. /health at --rate req/s for --idle-seconds, idle;
4. the storm: --incidents alert groups POSTed to /alerts/webhook at once (one delivery each, as
   Alertmanager flushes groups), /health at --rate req/s until every incident links its report, and
   the CPU seconds the API process and the Dask processes (scheduler, nannies, workers; not the
   notebooks they run) used meanwhile. Wall time = the last diagnosis run's finished_at (its report is
   written just before) minus the moment the first alert was sent.

Projection for N workers, each with a core of its own (an estimate, not a measure):
wall(N) ≈ ceil(incidents / N) × per-run alone + overhead, where overhead = measured wall −
ceil(incidents / W) × per-run alone (the storm's queueing, the API's work, contention for the cores).

Targets (issue 12): Dask's wall within 10 % of the local pool's with as many workers (here both share
the same cores: no gain is expected); submit-to-start on an idle cluster under 200 ms (p50).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bizra_nb.dataset import write_dataset  # noqa: E402
from bizra_nb.demo import start_server, stop_server  # noqa: E402
from bizra_nb.fleet import Fault, generate  # noqa: E402
from tests.dask_cluster import DaskCluster  # noqa: E402

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
FINISHED = ("succeeded", "failed", "cancelled")


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes ``pids`` used themselves so far, not their children (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


class HealthProbe:
    """GET /health at a fixed rate (open loop: a late answer does not delay the next request); latencies in ms."""

    def __init__(self, base: str, rate: float, threads: int = 8) -> None:
        self.base, self.interval = base, 1.0 / rate
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="health-probe")
        self._thread = threading.Thread(target=self._schedule, daemon=True)

    def __enter__(self) -> "HealthProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def _schedule(self) -> None:
        due = time.perf_counter()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            due += self.interval
            self._stop.wait(max(0.0, due - time.perf_counter()))

    def _one(self) -> None:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(base_url=self.base, timeout=30)
        began = time.perf_counter()
        try:
            ok = client.get("/health").status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            self.latencies.append((time.perf_counter() - began) * 1000)
        else:
            self.errors += 1

    def percentiles(self) -> tuple[float, float, int]:
        """(p50, p99) in ms and the number of answers."""
        values = sorted(self.latencies)
        if not values:
            return float("nan"), float("nan"), 0
        return values[len(values) // 2], values[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)], len(values)


def wait_finished(http: httpx.Client, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = http.get(f"/runs/{run_id}").json()
        if run["status"] in FINISHED:
            return run
        time.sleep(0.05)
    raise RuntimeError(f"run {run_id} did not finish within {timeout:g} s")


def submit_to_start(http: httpx.Client, base: str, runs: int) -> tuple[list[float], list[float]]:
    """Tiny runs one after the other: (created_at → started_at, POST sent → started_at), in ms."""
    stored, seen = [], []
    for _ in range(runs):
        sent = time.time()
        response = http.post("/runs", headers=HEADERS, json={"notebook": "benchmark", "parameters": {
            "target_url": base, "duration": 0.2, "rate": 5.0, "concurrency": 1, "ws_clients": 0}})
        response.raise_for_status()
        run = wait_finished(http, response.json()["id"])
        if run["status"] != "succeeded" or not run.get("started_at"):
            raise RuntimeError(f"tiny run {run['id']} {run['status']}: {run.get('error')}")
        stored.append((run["started_at"] - run["created_at"]) * 1000)
        seen.append((run["started_at"] - sent) * 1000)
    return stored, seen


def alert(fault: Fault, n: int) -> dict:
    """Alertmanager's delivery of alert group ``n`` (its own group key, labels and fingerprint)."""
    labels = {"alertname": "StormAlert", "severity": "critical", "service": "frontend", "shard": f"s{n:03d}"}
    return {"version": "4", "groupKey": f'{{}}:{{alertname="StormAlert",shard="s{n:03d}"}}', "status": "firing",
            "receiver": "bizra", "groupLabels": {"alertname": "StormAlert", "shard": f"s{n:03d}"},
            "commonLabels": labels, "commonAnnotations": {"summary": f"storm {n}"}, "externalURL": "http://am:9093",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": f"storm {n}"},
                        "startsAt": fault.start.isoformat(), "endsAt": "0001-01-01T00:00:00Z",
                        "fingerprint": f"storm-{n:03d}", "generatorURL": "http://prom:9090/graph"}]}


def storm(http: httpx.Client, base: str, fault: Fault, incidents: int, rate: float, pids: dict[str, list[int]]) -> dict:
    """Every alert group at once; returns the wall time, the runs' durations, /health meanwhile and the CPU
    seconds the processes of ``pids`` (by role) used during it."""
    cpu = {role: cpu_seconds(p) for role, p in pids.items()}
    bodies = [alert(fault, n) for n in range(incidents)]

    def deliver(body: dict) -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            client.post("/alerts/webhook", json=body, headers=HEADERS).raise_for_status()

    with HealthProbe(base, rate) as probe, ThreadPoolExecutor(incidents) as pool:
        began = time.time()
        list(pool.map(deliver, bodies))
        while True:
            linked = [i for i in http.get("/rca/incidents", params={"limit": 1000}).json()["incidents"]
                      if i.get("report_url")]
            if len(linked) >= incidents:
                break
            time.sleep(0.25)
        seen = time.time()
    cpu = {role: cpu_seconds(p) - cpu[role] for role, p in pids.items()}
    runs = [r for r in http.get("/runs", params={"kind": "incident", "limit": 1000}).json()["runs"]
            if r.get("trigger") == "incident"]
    failed = [r for r in runs if r["status"] != "succeeded"]
    if len(runs) != incidents or failed:
        raise RuntimeError(f"{len(runs)} diagnosis runs for {incidents} incidents, {len(failed)} not succeeded: "
                           f"{[(r['id'], r['status'], r.get('error')) for r in failed[:3]]}")
    return {"wall": max(r["finished_at"] for r in runs) - began, "seen": seen - began,
            "per_run": statistics.median(r["duration_seconds"] for r in runs),
            "health": probe.percentiles(), "health_errors": probe.errors, "cpu": cpu}


def diagnoses(http: httpx.Client, metrics: Path, fault: Fault, count: int) -> list[float]:
    """``count`` diagnosis runs at once through POST /runs (not incidents); their durations in s."""
    ids = []
    for _ in range(count):
        response = http.post("/runs", headers=HEADERS, json={"notebook": "incident_diagnosis", "parameters": {
            "source": str(metrics), "incident": {"title": "warm-up", "severity": "P1", "service": "frontend",
                                                 "opened_at": (fault.start + pd.Timedelta("2min")).timestamp()}}})
        response.raise_for_status()
        ids.append(response.json()["id"])
    runs = [wait_finished(http, run_id) for run_id in ids]
    failed = [r for r in runs if r["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"a warm-up diagnosis {failed[0]['status']}: {failed[0].get('error')}")
    return [r["duration_seconds"] for r in runs]


def measure(name: str, work: Path, executor: list[str], metrics: Path, cmdb: Path, fault: Fault,
            args: argparse.Namespace, cluster_pids: list[int] = ()) -> dict:
    """One executor: a fresh server, the idle measures, then the storm."""
    folder = work / name
    proc, base = start_server(folder / "data", "--api-token", TOKEN, "--reports-dir", str(folder / "reports"),
                              "--dataset", str(metrics), "--audit-schedule", "", "--benchmark-schedule", "",
                              *executor)
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            http.post("/cmdb/import", content=cmdb.read_text(), headers=HEADERS).raise_for_status()
            diagnoses(http, metrics, fault, args.workers)  # warms every worker up (imports, first report)
            alone = diagnoses(http, metrics, fault, 1)[0]
            stored, seen = submit_to_start(http, base, args.latency_runs)
            with HealthProbe(base, args.rate) as idle:
                time.sleep(args.idle_seconds)  # a fixed measuring window, not a wait for a condition
            result = storm(http, base, fault, args.incidents, args.rate,
                           {"api": [proc.pid], "cluster": list(cluster_pids)})
    finally:
        stop_server(proc)
    print(f"{name}: storm {result['wall']:.1f} s, per run {result['per_run']:.2f} s (alone {alone:.2f} s), "
          f"/health p99 {result['health'][1]:.1f} ms", flush=True)
    return {**result, "alone": alone, "start_stored": stored, "start_seen": seen, "idle": idle.percentiles(),
            "idle_errors": idle.errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2, help="local run workers, and Dask workers (1 thread each)")
    parser.add_argument("--rate", type=float, default=50.0, help="/health requests per second during the measures")
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bizra-storm-"))
    start = pd.Timestamp("2026-10-20T10:00Z")
    fault = Fault("payments-db", "latency", start + pd.Timedelta("90min"))
    data = generate(start=start, duration="2h", faults=[fault], seed=3)
    metrics = write_dataset(data.metrics, work / "metrics.parquet")
    cmdb = work / "cmdb.yaml"
    cmdb.write_text(data.cmdb.dumps("yaml"))
    print(f"{args.incidents} incidents, {args.workers} workers, /health at {args.rate:g} req/s, "
          f"{os.cpu_count()} cores; work in {work}", flush=True)

    local = measure("local", work, ["--run-workers", str(args.workers)], metrics, cmdb, fault, args)
    cluster = DaskCluster(work / "cluster", workers=args.workers)
    try:
        dask_pids = [cluster.scheduler.pid, *(nanny.pid for nanny in cluster.workers), *cluster.worker_pids()]
        dask = measure("dask", work, ["--dask-scheduler", cluster.address], metrics, cmdb, fault, args, dask_pids)
    finally:
        cluster.stop()

    def row(label: str, value) -> None:
        print(f"{label:<44}{value(local):>20}{value(dask):>20}")

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} / {max(values):.0f} ms"

    print()
    print(f"{'':<44}{'local pool (' + str(args.workers) + ')':>20}{'dask (' + str(args.workers) + ' workers)':>20}")
    row("storm: first alert -> last report", lambda r: f"{r['wall']:.1f} s")
    row("  (last report link seen by polling)", lambda r: f"{r['seen']:.1f} s")
    row("per-run time in the storm (median)", lambda r: f"{r['per_run']:.2f} s")
    row("per-run time alone (one diagnosis)", lambda r: f"{r['alone']:.2f} s")
    row("/health p50 / p99 idle", lambda r: f"{r['idle'][0]:.1f} / {r['idle'][1]:.1f} ms")
    row("/health p50 / p99 during the storm", lambda r: f"{r['health'][0]:.1f} / {r['health'][1]:.1f} ms")
    row("/health answers (errors) during the storm", lambda r: f"{r['health'][2]} ({r['health_errors']})")
    row("CPU s of the API process in the storm", lambda r: f"{r['cpu']['api']:.1f} s")
    row("CPU s of the Dask processes in the storm", lambda r: f"{r['cpu']['cluster']:.1f} s" if r is dask else "-")
    row("submit->start p50 / max, created->started", lambda r: ms(r["start_stored"]))
    row("submit->start p50 / max, POST sent->started", lambda r: ms(r["start_seen"]))

    overhead = dask["wall"] - math.ceil(args.incidents / args.workers) * dask["alone"]
    print(f"\nprojection (dask): wall(N) = ceil({args.incidents}/N) x {dask['alone']:.2f} s (per run alone) "
          f"+ {overhead:.1f} s (overhead at {args.workers} workers on these {os.cpu_count()} cores)")
    for n in sorted(n for n in {1, 2, 4, 8, 10, 20, args.incidents} if n <= args.incidents):
        print(f"  N = {n:>3}: {math.ceil(args.incidents / n) * dask['alone'] + overhead:7.1f} s")

    ratio = dask["wall"] / local["wall"]
    start_p50 = statistics.median(dask["start_stored"])
    ok_wall, ok_start = ratio <= 1.10, start_p50 < 200
    print(f"\ndask / local wall: {ratio:.2f} (target <= 1.10) {'PASS' if ok_wall else 'FAIL'}; "
          f"submit->start on idle dask p50 {start_p50:.0f} ms (target < 200 ms) {'PASS' if ok_start else 'FAIL'}")
    return 0 if ok_wall and ok_start else 1


if __name__ == "__main__":
    sys.exit(main())
