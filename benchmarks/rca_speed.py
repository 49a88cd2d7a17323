"""Library time of rank_root_causes: 50 services x 10 metrics x 4 h at 15 s (target < 0.5 s), and a month of the
demo fleet at 1-minute resolution (15 services x 6 metrics, target < 3 s).

Usage: python benchmarks/rca_speed.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from bizra_nb.rca import rank_root_causes

METRICS = ("cpu", "mem", "lat_50", "lat_90", "lat_99", "error", "rate", "gc", "threads", "queue")


def big_frame(services: int = 50, hours: float = 4, step: int = 15, seed: int = 0) -> tuple[pd.DataFrame, pd.Timestamp]:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-10-01", periods=int(hours * 3600 / step), freq=f"{step}s", tz="UTC")
    data = rng.normal(100, 5, size=(len(index), services * len(METRICS)))
    start = index[int(len(index) * 0.7)]
    data[int(len(index) * 0.7):, 7 * len(METRICS) + 2] += 60  # service 7's lat_50
    columns = [f"svc{s:02d}_{m}" for s in range(services) for m in METRICS]
    return pd.DataFrame(data, index=index, columns=columns), start


def month_frame(seed: int = 1):
    """30 days of the demo fleet at 1 minute with a CPU hog on the last day; its CMDB and the fault."""
    from bizra_nb.fleet import Fault, generate

    start = pd.Timestamp("2026-10-01", tz="UTC")
    fault = Fault("payment", "cpu_hog", start + pd.Timedelta(days=29, hours=14, minutes=20))
    data = generate(start=start, duration="30D", step="1min", faults=[fault], seed=seed)
    return data.metrics, data.cmdb, fault


def timed(repeat: int, call) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - began)
    return min(times), float(np.median(times)), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    frame, start = big_frame()
    rank_root_causes(frame, anomaly_start=start)  # warm-up
    for label, given in (("start given", start), ("start detected", None)):
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            diagnosis = rank_root_causes(frame, anomaly_start=given)
            times.append(time.perf_counter() - began)
        best, median = min(times), float(np.median(times))
        print(f"{frame.shape[0]} rows x {frame.shape[1]} series, {label}: best {best:.3f} s, median {median:.3f} s "
              f"(target < 0.5 s) {'PASS' if median < 0.5 else 'FAIL'}; top: {diagnosis.top(1)}")
    month, cmdb, fault = month_frame()
    window = fault.start - pd.Timedelta(hours=1)
    for label, options in (("the whole month is the window, start detected", {}),
                           ("the whole month is the window, start given", {"anomaly_start": fault.start}),
                           ("2-hour window after a month of history, start detected", {"start": window})):
        best, median, diagnosis = timed(args.repeat, lambda: rank_root_causes(month, cmdb=cmdb, **options))
        print(f"{month.shape[0]} rows x {month.shape[1]} series, {label}: best {best:.3f} s, median {median:.3f} s "
              f"(target < 3 s) {'PASS' if median < 3 else 'FAIL'}; top: {diagnosis.top(1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
