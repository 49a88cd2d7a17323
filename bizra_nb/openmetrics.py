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


def write_openmetrics(frame: pd.DataFrame, out: IO[str], *, prefix: str = "fleet_") -> None:
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
    out.write("# EOF\n")


def create_blocks(frame: pd.DataFrame, data_dir: str | Path, *, promtool: str | None = None,
                  work_dir: str | Path | None = None) -> Path:
    """Load a wide frame into the Prometheus TSDB at ``data_dir`` (``promtool tsdb create-blocks-from``)."""
    promtool = promtool or shutil.which("promtool")
    if not promtool:
        raise Unavailable("promtool is not installed (Debian package 'prometheus')")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    text_path = Path(work_dir or data_dir.parent) / "fleet.om.txt"
    with open(text_path, "w", encoding="utf-8") as out:
        write_openmetrics(frame, out)
    result = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(text_path), str(data_dir)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise Unavailable(f"promtool could not create blocks: {result.stderr.strip()[-500:]}")
    text_path.unlink()
    return data_dir
