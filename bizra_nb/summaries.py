"""Executive-summary paragraphs (Markdown) for the reports, written from computed results."""
from __future__ import annotations

import time

import pandas as pd

from bizra_nb.markup import md, md_code
from bizra_nb.rca import Diagnosis


def _when(ts) -> str:
    if ts is None or ts == "" or (isinstance(ts, float) and pd.isna(ts)):
        return "unknown"
    try:
        stamp = pd.Timestamp(ts, unit="s", tz="UTC") if isinstance(ts, (int, float)) else pd.Timestamp(ts)
        return stamp.strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, TypeError, OverflowError):
        return md(ts, limit=40)  # not a time: shown as given, inert


def incident_summary(diagnosis: Diagnosis, incident: dict | None = None, *, symptom_service: str = "") -> str:
    """The diagnosis report's opening paragraphs (Markdown); every untrusted value is escaped."""
    incident = incident or {}
    top = diagnosis.ranking[0] if diagnosis.ranking else None
    title = incident.get("title") or (f"symptoms at {symptom_service}" if symptom_service else "incident window")
    lines = [f"### {md(title, limit=200)}"]
    if incident.get("severity"):
        lines.append(f"**Severity {md(incident['severity'])}**, status *{md(incident.get('status', 'open'))}*, "
                     f"opened {_when(incident.get('opened_at'))}.")
    annotations, labels = incident.get("annotations") or {}, incident.get("labels") or {}
    if isinstance(annotations, dict) and annotations.get("description"):
        lines.append(f"> {md(annotations['description'], limit=500)}")
    if isinstance(labels, dict) and labels:
        shown = [md_code(f"{k}={v}", limit=120) for k, v in list(labels.items())[:12]]
        lines.append("Alert labels: " + ", ".join(shown) + ("…" if len(labels) > 12 else "") + ".")
    started = "detected" if diagnosis.anomaly_start_detected else "given"
    lines.append(f"The anomaly began at **{_when(diagnosis.anomaly_start)}** ({started}); the window ends "
                 f"{_when(diagnosis.end)}.")
    if top is not None and top.evidence:
        lines.append(f"**Most likely root cause: {md_code(top.service)}.** {md(top.explanation)}")
        others = [c.service for c in diagnosis.ranking[1:4] if c.evidence]
        if others:
            lines.append(f"Also anomalous: {', '.join(md_code(o) for o in others)}.")
    else:
        lines.append("No service left its normal range in this window: nothing to blame yet.")
    if diagnosis.warnings:
        lines.append(f"⚠ {len(diagnosis.warnings)} data warning(s); see *Data checks* below.")
    return "\n\n".join(lines)


def bullet_list(lines, *, code: bool = False, empty: str = "") -> str:
    """Markdown bullets of untrusted lines (queries, data warnings), each escaped; ``empty`` when there are none."""
    render = md_code if code else md
    return "\n".join(f"- {render(line)}" for line in lines) or empty


def benchmark_summary(stats: dict, verdicts: pd.DataFrame, target_url: str) -> str:
    """The benchmark's verdict and headline figures; throughput as offered and as achieved, side by side."""
    failed = [name for name, ok in verdicts["pass"].items() if ok is False]
    unmeasured = [name for name, ok in verdicts["pass"].items() if ok is None or pd.isna(ok)]
    if not stats["requests"]:
        verdict = "**FAIL**: no request was answered, so no target could be checked."
    elif failed:
        verdict = f"**FAIL**: {', '.join(failed)} missed."
    else:
        verdict = "**PASS**: every target met." + (f" Not measured: {', '.join(unmeasured)}." if unmeasured else "")
    offered = stats.get("offered_rps") or stats["target_rate_rps"]
    if not stats["requests"]:
        figures = f"No request was answered at {offered:g} req/s offered: nothing to measure."
    else:
        figures = (f"{stats['requests']} requests offered at {offered:g} req/s (open loop), "
                   f"{stats.get('successes', stats['requests'])} answered successfully: "
                   f"**achieved {stats['throughput_rps']} req/s** of {offered:g} req/s offered, "
                   f"error rate {stats['error_rate']:.2%}; "
                   f"P50 {stats['p50_ms']} ms, P95 {stats['p95_ms']} ms, P99 {stats['p99_ms']} ms"
                   + (f", WebSocket round trip {stats['ws_latency_ms']} ms." if "ws_latency_ms" in stats else "."))
    return "\n\n".join([
        f"### Benchmark of {md_code(target_url)}",
        verdict,
        figures,
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
    ])


def audit_summary(summary: dict) -> str:
    mark = "✔" if summary["compliant"] else "✖"
    lines = [f"## {mark} {summary['month']}: {summary['verdict'].upper()}",
             f"Monthly Ahsan score **{summary['score']}** (*{summary['tier']}*); availability "
             f"**{summary['availability']:.3%}** against an SLO of {summary['slo']['availability']:.3%} "
             f"({summary['error_budget_used']:.0%} of the error budget used).",
             f"The score was under 97 for {summary['minutes_below_97']:.0f} minutes and under 95 for "
             f"{summary['minutes_below_95']:.0f} minutes. {summary['incidents']} incidents "
             f"({', '.join(f'{k}: {v}' for k, v in summary['incidents_by_severity'].items() if v) or 'none'}); "
             f"{summary['benchmarks']} benchmark runs."]
    if summary["reasons"]:
        lines.append("Why not compliant: " + "; ".join(summary["reasons"]) + ".")
    if summary["coverage"] < 0.99:
        lines.append(f"⚠ Data covers {summary['coverage']:.1%} of the month; see the appendix.")
    return "\n\n".join(lines)
