"""Query time of a month from a real Prometheus: the audit's platform metrics, and 50 services' metrics.

Usage: python benchmarks/audit_query.py [--services 50]
Loads a month (platform counters at 1 min, a fleet of N services x 6 metrics at 5 min) with
promtool, starts Prometheus on a free port, and times load_platform_metrics (target: < 30 s)
and a month-long fetch of the fleet (auto step).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bizra_nb.audit import audit_month, load_platform_metrics  # noqa: E402
from bizra_nb.fleet import platform_month  # noqa: E402
from bizra_nb.openmetrics import create_blocks  # noqa: E402
from bizra_nb.prometheus import PrometheusSource  # noqa: E402
from tests.prometheus_server import PrometheusProcess  # noqa: E402


def fleet_month(services: int, month: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    start = pd.Timestamp(month + "-01", tz="UTC")
    index = pd.date_range(start, start + pd.offsets.MonthBegin(1), freq="5min", inclusive="left")
    columns = {f"svc{s:02d}_{m}": rng.normal(100, 5, len(index)).round(3)
               for s in range(services) for m in ("rate", "error", "lat_50", "lat_99", "cpu", "mem")}
    return pd.DataFrame(columns, index=index)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--month", default="2026-10")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bizra-auditq-"))
    began = time.monotonic()
    fleet = fleet_month(args.services, args.month)
    create_blocks(fleet, work / "tsdb", work_dir=work, platform=platform_month(args.month))
    print(f"loaded {args.month}: {fleet.shape[1]} fleet series + platform counters in {time.monotonic() - began:.1f} s")
    server = PrometheusProcess(shutil.which("prometheus"), work / "prom", tsdb=work / "tsdb")
    try:
        began = time.monotonic()
        frame, queries, _ = load_platform_metrics(server.url, args.month)
        platform_s = time.monotonic() - began
        summary = audit_month(frame, args.month).summary
        print(f"audit queries: {len(queries)} PromQL over the month at 1 min ({len(frame)} steps): {platform_s:.2f} s "
              f"(target < 30 s); verdict {summary['verdict']}, score {summary['score']}")
        start = pd.Timestamp(args.month + "-01", tz="UTC")
        began = time.monotonic()
        fetch = PrometheusSource(server.url).fetch(start=start, end=start + pd.offsets.MonthBegin(1) - pd.Timedelta("1s"))
        print(f"fleet month: {fetch.frame.shape[1]} series x {fetch.frame.shape[0]} steps in "
              f"{time.monotonic() - began:.2f} s ({len(fetch.queries)} queries)")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if platform_s < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
