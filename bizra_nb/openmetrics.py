"""Fleet metrics as OpenMetrics text, and loading them into a Prometheus data dir with promtool.

``promtool tsdb create-blocks-from openmetrics`` wants each metric family in
one block of lines, timestamps in seconds, and samples in time order; that is
what :func:`write_openmetrics` writes (family ``fleet_<metric>``, label
``service``), the names :data:`bizra_nb.prometheus.DEFAULT_QUERIES` reads.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from bizra_nb.dataset import split_column
from bizra_nb.errors import Unavailable


def write_openmetrics(frame: pd.DataFrame, out: IO[str], *, prefix: str = "fleet_", end: bool = True) -> None:
    """Write a wide ``<service>_<metric>`` frame as gauges ``<prefix><metric>{service="…"}``."""
    by_metric: dict[str, list[tuple[str, str]]] = {}
    for column in frame.columns:
        service, metric = split_column(column)
        by_metric.setdefault(metric, []).append((service, column))
    seconds = frame.index.as_unit("s").asi8
    for metric, series in by_metric.items():
        name = prefix + metric
        out.write(f"# HELP {name} demo fleet {metric}\n# TYPE {name} gauge\n")
        values = frame[[c for _, c in series]].to_numpy()
        labels = [f'{name}{{service="{s}"}} ' for s, _ in series]
        for row, ts in enumerate(seconds):
            suffix = f" {ts}\n"
            out.write("".join(f"{labels[j]}{values[row, j]:.6g}{suffix}"
                              for j in range(len(series)) if np.isfinite(values[row, j])))
    if end:
        out.write("# EOF\n")


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TARGET = 'job="bizra",instance="demo:8080"'


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz and Stegun 7.1.26), vectorised."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t \
        * np.exp(-x * x)
    return sign * y


def latency_buckets(requests: np.ndarray, p50_ms: np.ndarray, p99_ms: np.ndarray) -> np.ndarray:
    """Cumulative bucket counts per step (steps × buckets) of a lognormal with the given P50 and P99."""
    mu = np.log(np.maximum(p50_ms, 1e-3) / 1000)[:, None]
    sigma = (np.log(np.maximum(p99_ms, p50_ms * 1.01) / np.maximum(p50_ms, 1e-3)) / 2.3263)[:, None]
    cdf = 0.5 * (1 + _erf((np.log(np.array(LATENCY_BUCKETS))[None, :] - mu) / (sigma * np.sqrt(2))))
    return np.floor(requests[:, None] * cdf + 0.5)


def write_platform_openmetrics(frame: pd.DataFrame, out: IO[str]) -> None:
    """The platform's own counters, as the server exports them, from per-step counts (fleet.platform_month)."""
    from bizra_nb.score import WEIGHTS

    seconds = frame.index.as_unit("s").asi8
    cum = {c: np.cumsum(frame[c].fillna(0).to_numpy()) for c in frame.columns if not c.startswith("bizra_lat")}
    ok = cum["bizra_requests"] - cum["bizra_errors"]

    def family(name: str, kind: str, series: list[tuple[str, np.ndarray]]) -> None:
        out.write(f"# HELP {name} demo platform {name}\n# TYPE {name} {kind}\n")
        for row, ts in enumerate(seconds):
            out.write("".join(f"{label} {values[row]:.10g} {ts}\n" for label, values in series))

    family("bizra_events", "counter", [(f"bizra_events_total{{{TARGET}}}", cum["bizra_events"])])
    family("bizra_violations", "counter", [(f'bizra_violations_total{{{TARGET},kind="{k}"}}',
                                             cum[f"bizra_violations_{k}"]) for k in WEIGHTS])
    family("bizra_violation_weight", "gauge", [(f'bizra_violation_weight{{{TARGET},kind="{k}"}}',
                                                np.full(len(seconds), float(w))) for k, w in WEIGHTS.items()])
    family("bizra_http_requests", "counter", [
        (f'bizra_http_requests_total{{{TARGET},method="GET",route="/rca/incidents",code="200"}}', ok),
        (f'bizra_http_requests_total{{{TARGET},method="GET",route="/rca/incidents",code="500"}}', cum["bizra_errors"]),
    ])
    buckets = np.cumsum(latency_buckets(frame["bizra_requests"].fillna(0).to_numpy(), frame["bizra_lat_p50"].to_numpy(),
                                        frame["bizra_lat_p99"].to_numpy()), axis=0)
    route = f'{TARGET},route="/rca/incidents"'
    series = [(f'bizra_http_request_duration_seconds_bucket{{{route},le="{le:g}"}}', buckets[:, j])
              for j, le in enumerate(LATENCY_BUCKETS)]
    series.append((f'bizra_http_request_duration_seconds_bucket{{{route},le="+Inf"}}', cum["bizra_requests"]))
    series.append((f'bizra_http_request_duration_seconds_count{{{route}}}', cum["bizra_requests"]))
    series.append((f'bizra_http_request_duration_seconds_sum{{{route}}}',
                   np.cumsum(frame["bizra_requests"].fillna(0).to_numpy() * frame["bizra_lat_p50"].to_numpy() / 1000)))
    family("bizra_http_request_duration_seconds", "histogram", series)
    family("up", "gauge", [(f"up{{{TARGET}}}", np.ones(len(seconds)))])
    _alert_history(frame, seconds, out)
    family("process_resident_memory_bytes", "gauge", [(f"process_resident_memory_bytes{{{TARGET}}}",
                                                        np.full(len(seconds), 62e6))])
    out.write("# EOF\n")


def _alert_history(frame: pd.DataFrame, seconds: np.ndarray, out: IO[str]) -> None:
    """ALERTS and ALERTS_FOR_STATE as Prometheus would have kept them while the score was under its lines.

    Written every 15 s within each 1-minute step of the platform data (the `for:` is ignored).
    """
    from bizra_nb.platform_metrics import score_over_time

    score = score_over_time(frame.fillna(0)).to_numpy()
    alerts = []
    for name, line, severity in (("AhsanScoreBelowThreshold", 95, "critical"), ("AhsanScoreDegraded", 97, "warning")):
        firing = score < line
        began = np.where(firing & ~np.r_[False, firing[:-1]], seconds, 0)
        began = np.maximum.accumulate(began)  # each firing step keeps the start of its episode
        alerts.append((f'alertname="{name}",{TARGET},severity="{severity}"', firing, began))
    for family_name, value_of in (("ALERTS", lambda firing, began, row: 1), ("ALERTS_FOR_STATE",
                                                                             lambda firing, began, row: began[row])):
        out.write(f"# HELP {family_name} demo alert history\n# TYPE {family_name} gauge\n")
        state = ',alertstate="firing"' if family_name == "ALERTS" else ""
        for row, ts in enumerate(seconds):
            for offset in range(0, 60, 15):  # as rules evaluated every 15 s would have written them
                for labels, firing, began in alerts:
                    if firing[row]:
                        out.write(f"{family_name}{{{labels}{state}}} {value_of(firing, began, row)} {ts + offset}\n")


def create_blocks(frame: pd.DataFrame | None, data_dir: str | Path, *, promtool: str | None = None,
                  work_dir: str | Path | None = None, platform: pd.DataFrame | None = None) -> Path:
    """Load fleet metrics (``frame``) and/or the platform's counters into the Prometheus TSDB at ``data_dir``."""
    promtool = promtool or shutil.which("promtool")
    if not promtool:
        raise Unavailable("promtool is not installed (Debian package 'prometheus')")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    text_path = Path(work_dir or data_dir.parent) / "fleet.om.txt"
    with open(text_path, "w", encoding="utf-8") as out:
        if frame is not None:
            write_openmetrics(frame, out, end=platform is None)
        if platform is not None:
            write_platform_openmetrics(platform, out)
    result = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                             "--max-block-duration=768h", str(text_path), str(data_dir)],  # few large blocks: fast
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise Unavailable(f"promtool could not create blocks: {result.stderr.strip()[-500:]}")
    text_path.unlink()
    return data_dir
