"""The platform's own metrics per step for a calendar month, from a dataset file or Prometheus, and the
Ahsan score over them (what the recording rule computes, step by step).

The audit and the error-budget arithmetic (:mod:`bizra_nb.slo_budget`) both read them through this module.
Columns: ``bizra_requests``, ``bizra_errors``, ``bizra_events``, ``bizra_violations_<kind>``,
``bizra_lat_p99`` (see :func:`bizra_nb.fleet.platform_month`).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bizra_nb.errors import InvalidInput
from bizra_nb.score import EVENT_FLOOR, WEIGHTS


def month_bounds(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``"2026-10"`` → [2026-10-01T00:00Z, 2026-11-01T00:00Z): the calendar month, not 30 days."""
    if not isinstance(month, str) or not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise InvalidInput(f"month must be YYYY-MM (e.g. 2026-10), got {month!r}", field="month")
    start = pd.Timestamp(month + "-01", tz="UTC")
    return start, start + pd.offsets.MonthBegin(1)


def score_over_time(frame: pd.DataFrame, window: str = "5min") -> pd.Series:
    """The Ahsan score at each step over the trailing ``window`` (events and violations summed)."""
    events = frame["bizra_events"].rolling(window).sum()
    weighted = sum(WEIGHTS[k] * frame[f"bizra_violations_{k}"].rolling(window).sum() for k in WEIGHTS)
    raw = 100.0 * (1.0 - np.minimum(1.0, weighted / np.maximum(events, EVENT_FLOOR)))
    return raw.where((events > 0) | (weighted > 0), 100.0).round(1)


PROMQL = {  # the platform's counters per series; differenced per step on our side, resets handled
    "bizra_events": 'bizra_events_total{job="bizra"}',
    "bizra_requests": 'bizra_http_requests_total{job="bizra", route!~"/metrics|/slo.*"}',
    "bizra_errors": 'bizra_http_requests_total{job="bizra", route!~"/metrics|/slo.*", code=~"5.."}',
    **{f"bizra_violations_{k}": f'bizra_violations_total{{job="bizra", kind="{k}"}}' for k in WEIGHTS},
}
P99_PROMQL = ('histogram_quantile(0.99, sum by (le) (rate(bizra_http_request_duration_seconds_bucket'
              '{job="bizra", route!~"/metrics|/slo.*"}[2m]))) * 1000')


def _counter_steps(frame: pd.DataFrame) -> pd.Series:
    """Per-step increase of each counter series (a drop is a restart: the new value counts), summed."""
    diff = frame.diff()
    diff = diff.where(diff >= 0, frame)  # counter reset
    return diff.iloc[1:].sum(axis=1, min_count=1)


def load_platform_metrics(source: str, month: str, *, step: int = 60) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The month's platform metrics per step from a dataset file or Prometheus: frame, queries used, warnings.

    From Prometheus the counters are read at the step's boundaries over the calendar month
    ([start − step, end − step], chunked under the point limit) and differenced, so each
    step holds exactly what happened in it; p99 comes from the latency histogram.
    """
    from bizra_nb.sources import open_source

    start, end = month_bounds(month)
    if not str(source).startswith(("http://", "https://")):
        fetched = open_source(source).fetch(start=start, end=end - pd.Timedelta(seconds=1))
        return fetched.frame, fetched.queries, fetched.warnings
    from bizra_nb.prometheus import PrometheusSource

    prom = PrometheusSource(source)
    first, last = start - pd.Timedelta(seconds=step), end - pd.Timedelta(seconds=step)
    columns, used = {}, []
    for name, promql in PROMQL.items():
        raw = prom.query_range(promql, first, last, step)
        used.append(f"{promql} (range {first.isoformat()} .. {last.isoformat()}, step {step}s, differenced)")
        index = pd.date_range(first, last, freq=f"{step}s")
        columns[name] = _counter_steps(raw.reindex(index)) if len(raw.columns) else pd.Series(0.0, index=index[1:])
    p99 = prom.query_range(P99_PROMQL, start, last, step)
    used.append(f"{P99_PROMQL} (range {start.isoformat()} .. {last.isoformat()}, step {step}s)")
    frame = pd.DataFrame(columns)
    frame["bizra_lat_p99"] = p99.iloc[:, 0] if len(p99.columns) else float("nan")
    frame.index.name = "time"
    warnings = []
    missing = frame["bizra_events"].isna()
    if missing.any():
        warnings.append(f"{int(missing.sum())} of {len(frame)} steps have no platform metrics (scrape gaps)")
    frame = frame.dropna(subset=["bizra_events"])
    return frame, used, warnings
