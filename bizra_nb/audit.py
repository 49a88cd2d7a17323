"""The monthly compliance audit: score distribution, violations, SLO attainment, incidents, benchmarks.

Inputs are per-step counts of the platform's own metrics for one calendar month
(columns ``bizra_requests``, ``bizra_errors``, ``bizra_events``,
``bizra_violations_<kind>``, ``bizra_lat_p99``; see :func:`bizra_nb.fleet.platform_month`),
from a dataset file or, later, PromQL. The score over time uses the formula of
:mod:`bizra_nb.score` on 5-minute sums, exactly as the recording rule does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bizra_nb.errors import InvalidInput
from bizra_nb.markup import md
from bizra_nb.schedule import CronError, parse_scheduled_for, parse_zone, previous_month_of
from bizra_nb.score import EVENT_FLOOR, WEIGHTS, ahsan_score, tier

DEFAULT_SLO = {"availability": 0.999, "latency_p99_ms": 100.0, "latency_attainment": 0.99, "score": 95.0}
SEVERITIES = ("P0", "P1", "P2", "P3")


def month_bounds(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``"2026-10"`` → [2026-10-01T00:00Z, 2026-11-01T00:00Z): the calendar month, not 30 days."""
    if not isinstance(month, str) or not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise InvalidInput(f"month must be YYYY-MM (e.g. 2026-10), got {month!r}", field="month")
    start = pd.Timestamp(month + "-01", tz="UTC")
    return start, start + pd.offsets.MonthBegin(1)


def previous_month(month: str) -> str:
    start, _ = month_bounds(month)
    return (start - pd.Timedelta(days=1)).strftime("%Y-%m")


def audited_month(month: str = "", *, scheduled_for: str = "", tz: str = "UTC", now=None) -> str:
    """The month an audit covers: ``month`` when given, else the month before ``scheduled_for`` (the time the
    run was scheduled for, taken in the schedule's time zone ``tz``), else the month before ``now``.

    A late or re-run scheduled audit thus audits the month it was scheduled for, not the month it runs in.

    Parameters
    ----------
    month
        ``YYYY-MM`` or ``""``.
    scheduled_for
        ISO-8601 time with its offset (``2026-11-01T06:00:00+00:00``) or ``""``; checked even when ``month`` is given.
    tz
        IANA time zone name of the schedule.
    now
        The current time (an aware datetime or Timestamp; default: now), used when neither is given.

    Raises
    ------
    InvalidInput
        Naming ``month``, ``scheduled_for`` or ``tz``.
    """
    due = parse_scheduled_for(scheduled_for, field="scheduled_for")
    try:
        parse_zone(tz)
    except CronError as exc:
        raise InvalidInput(f"tz: {exc}", field="tz") from None
    if month:
        month_bounds(month)  # InvalidInput naming month
        return month
    if due is not None:
        return previous_month_of(due, tz)
    return previous_month_of(pd.Timestamp(now if now is not None else pd.Timestamp.now(tz="UTC")).to_pydatetime(), tz)


def when_made(scheduled_for: str = "", tz: str = "UTC", *, now=None) -> str:
    """Markdown: when the report was made and, for a scheduled run, the time it was scheduled for."""
    made = pd.Timestamp(now if now is not None else pd.Timestamp.now(tz="UTC")).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")
    due = parse_scheduled_for(scheduled_for)
    if due is None:
        return f"Made {made}."
    shown = due.strftime("%Y-%m-%d %H:%M UTC")
    if tz != "UTC":
        shown += f" ({due.astimezone(parse_zone(tz)).strftime('%Y-%m-%d %H:%M')} {md(tz)})"
    return f"Made {made}, scheduled for {shown}."


def score_over_time(frame: pd.DataFrame, window: str = "5min") -> pd.Series:
    """The Ahsan score at each step over the trailing ``window`` (events and violations summed)."""
    events = frame["bizra_events"].rolling(window).sum()
    weighted = sum(WEIGHTS[k] * frame[f"bizra_violations_{k}"].rolling(window).sum() for k in WEIGHTS)
    raw = 100.0 * (1.0 - np.minimum(1.0, weighted / np.maximum(events, EVENT_FLOOR)))
    return raw.where((events > 0) | (weighted > 0), 100.0).round(1)


@dataclass
class AuditResult:
    month: str
    summary: dict
    score: pd.Series
    violations: pd.DataFrame  # by day and kind
    incidents: pd.DataFrame
    incident_stats: pd.DataFrame
    benchmarks: pd.DataFrame
    coverage: dict
    comparison: pd.DataFrame | None = None
    formulas: list[str] = field(default_factory=list)


def audit_month(frame: pd.DataFrame, month: str, *, slo: dict | None = None, incidents: list[dict] = (),
                benchmarks: list[dict] = (), previous: dict | None = None, queries: list[str] = ()) -> AuditResult:
    """Compute the month's audit from platform metrics, incidents, benchmark runs and the previous audit.

    Parameters
    ----------
    frame
        Per-step counts covering the month (other rows are ignored).
    slo
        ``availability`` (0.999), ``latency_p99_ms`` (100), ``latency_attainment`` (0.99), ``score`` (95).
    incidents
        Incident records (store format) opened in the month.
    benchmarks
        Benchmark runs of the month (store format, with their summaries).
    previous
        The previous month's audit summary, for month-over-month comparison.
    """
    slo = {**DEFAULT_SLO, **(slo or {})}
    unknown = set(slo) - set(DEFAULT_SLO)
    if unknown:
        raise InvalidInput(f"unknown SLO target(s) {sorted(unknown)}; known: {list(DEFAULT_SLO)}", field="slo")
    start, end = month_bounds(month)
    required = ["bizra_requests", "bizra_errors", "bizra_events"] + [f"bizra_violations_{k}" for k in WEIGHTS]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the platform metrics lack column(s) {', '.join(missing)}", field="source")
    data = frame.loc[(frame.index >= start) & (frame.index < end)]
    if data.empty:
        raise InvalidInput(f"no platform metrics in {month} (the data covers {frame.index.min()} .. "
                           f"{frame.index.max()})", field="month")
    step = data.index.to_series().diff().median()
    expected = int((end - start) / step)
    present = int(data[required].notna().all(axis=1).sum())
    filled = data.reindex(pd.date_range(start, end, freq=step, inclusive="left")).fillna(0.0)
    score = score_over_time(filled)
    totals = {k: float(data[f"bizra_violations_{k}"].sum()) for k in WEIGHTS}
    events = float(data["bizra_events"].sum())
    month_score = ahsan_score(events, totals)
    requests, errors = float(data["bizra_requests"].sum()), float(data["bizra_errors"].sum())
    availability = 1.0 - errors / requests if requests else 1.0
    budget = 1.0 - slo["availability"]
    budget_used = (1.0 - availability) / budget if budget > 0 else float("inf")
    if "bizra_lat_p99" in data:
        p99 = data["bizra_lat_p99"].dropna()
        attainment = float((p99 <= slo["latency_p99_ms"]).mean()) if len(p99) else None
    else:
        attainment = None
    minutes = step.total_seconds() / 60
    below97 = float((score < 97).sum() * minutes)
    below95 = float((score < 95).sum() * minutes)
    inc = _incidents_frame(incidents)
    stats = _incident_stats(inc)
    bench = _benchmarks_frame(benchmarks)
    checks = {
        "score": month_score >= slo["score"],
        "availability": availability >= slo["availability"],
        "latency": attainment is None or attainment >= slo["latency_attainment"],
    }
    compliant = all(checks.values())
    reasons = []
    if not checks["score"]:
        reasons.append(f"the month's score {month_score} is under {slo['score']}")
    if not checks["availability"]:
        reasons.append(f"availability {availability:.4%} is under the {slo['availability']:.3%} SLO "
                       f"({budget_used:.0%} of the error budget used)")
    if not checks["latency"]:
        reasons.append(f"p99 latency met {slo['latency_p99_ms']:g} ms in {attainment:.2%} of the time "
                       f"(target {slo['latency_attainment']:.0%})")
    summary = {
        "month": month,
        "compliant": compliant,
        "verdict": "compliant" if compliant else "not compliant",
        "reasons": reasons,
        "score": month_score,
        "tier": tier(month_score),
        "score_p5": float(np.percentile(score, 5)),
        "score_median": float(np.median(score)),
        "minutes_below_97": below97,
        "minutes_below_95": below95,
        "events": events,
        "violations": totals,
        "requests": requests,
        "availability": round(availability, 6),
        "error_budget_used": round(budget_used, 4),
        "latency_attainment": None if attainment is None else round(attainment, 5),
        "incidents": int(len(inc)),
        "incidents_by_severity": {s: int((inc["severity"] == s).sum()) if len(inc) else 0 for s in SEVERITIES},
        "benchmarks": int(len(bench)),
        "coverage": round(present / expected, 5) if expected else 0.0,
        "slo": slo,
    }
    summary["headline"] = (f"{month}: {summary['verdict']}, score {month_score} ({summary['tier']}), "
                           f"availability {availability:.3%}, {len(inc)} incidents")
    by_day = data[[f"bizra_violations_{k}" for k in WEIGHTS]].resample("1D").sum()
    by_day.columns = list(WEIGHTS)
    coverage = _coverage(data, required, start, end, step, expected, present)
    comparison = _compare(summary, previous) if previous else None
    formulas = [
        "score(t) = 100 × (1 − min(1, Σ weight_k × violations_k / max(events, 100))) over the 5 minutes before t",
        "month score = the same formula over the month's totals; weights: " +
        ", ".join(f"{k} {w}" for k, w in WEIGHTS.items()),
        "availability = 1 − 5xx responses / requests; error budget used = (1 − availability) / (1 − SLO)",
        f"latency attainment = share of steps whose p99 ≤ {slo['latency_p99_ms']:g} ms",
        "MTTA = acknowledged_at − opened_at; MTTR = resolved_at − opened_at (per incident, then mean and median)",
        *[f"query: {q}" for q in queries],
    ]
    return AuditResult(month=month, summary=summary, score=score, violations=by_day, incidents=inc,
                       incident_stats=stats, benchmarks=bench, coverage=coverage, comparison=comparison,
                       formulas=formulas)


def _incidents_frame(incidents) -> pd.DataFrame:
    rows = []
    for i in incidents:
        rows.append({"id": i["id"], "title": i["title"], "severity": i["severity"], "status": i["status"],
                     "service": i.get("service"), "opened": pd.Timestamp(i["opened_at"], unit="s", tz="UTC"),
                     "tta_minutes": None if i.get("acknowledged_at") is None else (i["acknowledged_at"] - i["opened_at"]) / 60,
                     "ttr_minutes": None if i.get("resolved_at") is None else (i["resolved_at"] - i["opened_at"]) / 60})
    columns = ["id", "title", "severity", "status", "service", "opened", "tta_minutes", "ttr_minutes"]
    return pd.DataFrame(rows, columns=columns)


def _incident_stats(inc: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for sev in SEVERITIES:
        part = inc[inc["severity"] == sev] if len(inc) else inc
        tta = pd.to_numeric(part["tta_minutes"], errors="coerce").dropna()
        ttr = pd.to_numeric(part["ttr_minutes"], errors="coerce").dropna()
        rows.append({"severity": sev, "incidents": int(len(part)),
                     "MTTA_minutes": round(float(tta.mean()), 1) if len(tta) else None,
                     "MTTR_minutes": round(float(ttr.mean()), 1) if len(ttr) else None,
                     "median_TTR_minutes": round(float(ttr.median()), 1) if len(ttr) else None})
    return pd.DataFrame(rows).set_index("severity")


def _benchmarks_frame(runs) -> pd.DataFrame:
    rows = []
    for run in runs:
        s = run.get("summary") or {}
        rows.append({"run": run["id"], "date": pd.Timestamp(run["created_at"], unit="s", tz="UTC"),
                     "status": run["status"], "p50_ms": s.get("p50_ms"), "p99_ms": s.get("p99_ms"),
                     "throughput_rps": s.get("throughput_rps"), "passed": s.get("passed")})
    return pd.DataFrame(rows, columns=["run", "date", "status", "p50_ms", "p99_ms", "throughput_rps", "passed"])


def _coverage(data, required, start, end, step, expected, present) -> dict:
    index = data.index
    diffs = index.to_series().diff().dropna()
    gaps = diffs[diffs > 2 * step]
    missing_head = index[0] - start if index[0] > start else pd.Timedelta(0)
    missing_tail = end - step - index[-1] if index[-1] < end - step else pd.Timedelta(0)
    return {"expected_steps": expected, "present_steps": present, "share": round(present / expected, 5),
            "gaps": int(len(gaps)), "longest_gap": str(gaps.max()) if len(gaps) else "0",
            "missing_at_start": str(missing_head), "missing_at_end": str(missing_tail), "step": str(step)}


def _compare(current: dict, previous: dict) -> pd.DataFrame:
    rows = []
    for key in ("score", "availability", "error_budget_used", "latency_attainment", "minutes_below_95", "incidents"):
        before, now = previous.get(key), current.get(key)
        change = None if before is None or now is None else round(now - before, 6)
        rows.append({"measure": key, "previous": before, "this month": now, "change": change})
    return pd.DataFrame(rows).set_index("measure")


PROMQL = {  # the platform's counters per series; differenced per step on our side, resets handled
    "bizra_events": 'bizra_events_total{job="bizra"}',
    "bizra_requests": 'bizra_http_requests_total{job="bizra", route!="/metrics"}',
    "bizra_errors": 'bizra_http_requests_total{job="bizra", route!="/metrics", code=~"5.."}',
    **{f"bizra_violations_{k}": f'bizra_violations_total{{job="bizra", kind="{k}"}}' for k in WEIGHTS},
}
P99_PROMQL = ('histogram_quantile(0.99, sum by (le) (rate(bizra_http_request_duration_seconds_bucket'
              '{job="bizra", route!="/metrics"}[2m]))) * 1000')


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


def alerts_fired(source: str, month: str, *, evaluation_interval: float = 15.0) -> pd.DataFrame:
    """Alerts that fired in the month (from Prometheus' ALERTS and ALERTS_FOR_STATE): episodes and minutes.

    Empty for a dataset source, which holds no alert history.
    """
    columns = ["alertname", "severity", "episodes", "minutes_firing"]
    if not str(source).startswith(("http://", "https://")):
        return pd.DataFrame(columns=columns)
    from bizra_nb.prometheus import PrometheusSource

    start, end = month_bounds(month)
    seconds = int((end - start).total_seconds())
    at = end.timestamp()
    prom = PrometheusSource(source)
    samples = prom.query(f'sum by (alertname, severity) (count_over_time(ALERTS{{alertstate="firing"}}[{seconds}s] @ {at}))')
    episodes = prom.query(f'sum by (alertname, severity) (changes(ALERTS_FOR_STATE[{seconds}s] @ {at}) + 1)')
    step = pd.Timedelta(seconds=evaluation_interval)
    rows = []
    for key, count in samples.items():
        labels = dict(part.split("=", 1) for part in key.strip("{}").split(",") if "=" in part)
        labels = {k: v.strip('"') for k, v in labels.items()}
        rows.append({"alertname": labels.get("alertname"), "severity": labels.get("severity"),
                     "episodes": int(episodes.get(key, 1)), "minutes_firing": round(count * step.total_seconds() / 60, 1)})
    return pd.DataFrame(rows, columns=columns).sort_values("minutes_firing", ascending=False).reset_index(drop=True)


def history(store, month: str) -> dict:
    """From the store: the month's incidents and benchmark runs, and the previous month's audit summary."""
    start, end = month_bounds(month)
    incidents = [i for i in store.list_incidents(since=start.timestamp(), limit=10_000)
                 if i["opened_at"] < end.timestamp()]
    benchmarks = store.list_runs(kind="benchmark", since=start.timestamp(), until=end.timestamp(), limit=1000)
    earlier = previous_month(month)
    previous = next((r["summary"] for r in store.list_runs(kind="audit", status="succeeded", limit=1000)
                     if (r.get("parameters") or {}).get("month") == earlier and r.get("summary")), None)
    return {"incidents": incidents, "benchmarks": benchmarks, "previous": previous}
