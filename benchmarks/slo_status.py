"""Time of slo_budget.status() (what GET /slo and the deploy gate compute) on a real Prometheus and on the dataset.

Usage: python benchmarks/slo_status.py [--month 2026-10] [--calls 10]
Loads a month of the platform's counters (fleet.platform_month, with a latency fault) into a Prometheus with
promtool, then times status(load_specs(), url, at=<the 20th, 13:37>) for the default spec's three SLOs:

- warm (the usual call): the counts of the month's whole past days come from the 10-minute cache, only the
  day so far and the seven burn-rate windows are queried. Target: median <= 1 s: a CI pipeline's deploy gate
  and the status page's budget bars call it, and a second is what a `curl --fail` step may cost;
- cold (the first call after the cache expires): every minute of the month so far is evaluated by Prometheus
  (time-slice subqueries at 1 m). Target: median <= 10 s, the per-query timeout: the server runs it off its
  IOLoop, so only that one request waits; and its max within slo_prometheus.EVALUATION_DEADLINE (15 s), past
  which the gate answers 503 (a status call that errs stops the benchmark);
- on the dataset file (read once per call, as the server does): target median <= 2 s.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bizra_nb import slo_budget, slo_prometheus  # noqa: E402
from bizra_nb.dataset import write_dataset  # noqa: E402
from bizra_nb.fleet import Fault, platform_month  # noqa: E402
from bizra_nb.openmetrics import create_blocks  # noqa: E402
from bizra_nb.slo_spec import load_specs  # noqa: E402
from tests.prometheus_server import PrometheusProcess  # noqa: E402

TARGETS = {"warm": 1.0, "cold": 10.0, "dataset": 2.0}


def timed(calls: int, fn) -> list[float]:
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        budgets = fn()
        times.append(time.perf_counter() - began)
        errors = [b.error for b in budgets if b.error]
        if errors:
            raise SystemExit(f"status failed: {errors[0]}")
    return times


def report(name: str, times: list[float]) -> bool:
    median, worst = statistics.median(times), max(times)
    ok = median <= TARGETS[name]
    print(f"{name:<8} median {median * 1000:7.0f} ms, max {worst * 1000:7.0f} ms over {len(times)} calls "
          f"(target median <= {TARGETS[name]:g} s) {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    start = pd.Timestamp(args.month + "-01", tz="UTC")
    at = start + pd.Timedelta(days=19, hours=13, minutes=37)
    platform = platform_month(args.month, seed=3, faults=[Fault("payment", "latency", at - pd.Timedelta(hours=2),
                                                                magnitude=2.0)])
    work = Path(tempfile.mkdtemp(prefix="bizra-slo-"))
    began = time.monotonic()
    create_blocks(None, work / "tsdb", work_dir=work, platform=platform)
    dataset = write_dataset(platform, work / "platform.parquet")
    print(f"loaded {args.month} ({len(platform)} steps) in {time.monotonic() - began:.1f} s; status at {at.isoformat()}")
    slos = load_specs()
    server = PrometheusProcess(shutil.which("prometheus"), work / "prom", tsdb=work / "tsdb")
    try:
        def cold():
            slo_prometheus._cache.clear()
            return slo_budget.status(slos, server.url, at=at)

        cold_times = timed(args.calls, cold)
        ok = report("cold", cold_times)
        within = max(cold_times) <= slo_prometheus.EVALUATION_DEADLINE
        print(f"cold max {max(cold_times):.1f} s within the evaluation deadline "
              f"({slo_prometheus.EVALUATION_DEADLINE:g} s): {'PASS' if within else 'FAIL'}")
        ok &= within
        slo_budget.status(slos, server.url, at=at)  # fills the cache
        ok &= report("warm", timed(args.calls, lambda: slo_budget.status(slos, server.url, at=at)))
        ok &= report("dataset", timed(args.calls, lambda: slo_budget.status(slos, str(dataset), at=at)))
        for b in slo_budget.status(slos, server.url, at=at):
            print(f"  {b.slo}: {b.remaining:.0%} left, alerting {b.alerting}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
