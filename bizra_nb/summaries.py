"""Executive-summary paragraphs (Markdown) for the reports, written from computed results."""
from __future__ import annotations

import time

import pandas as pd

from bizra_nb.rca import Diagnosis


def _when(ts) -> str:
    if ts is None or ts == "" or (isinstance(ts, float) and pd.isna(ts)):
        return "unknown"
    stamp = pd.Timestamp(ts, unit="s", tz="UTC") if isinstance(ts, (int, float)) else pd.Timestamp(ts)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def incident_summary(diagnosis: Diagnosis, incident: dict | None = None, *, symptom_service: str = "") -> str:
    incident = incident or {}
    top = diagnosis.ranking[0] if diagnosis.ranking else None
    title = incident.get("title") or (f"symptoms at {symptom_service}" if symptom_service else "incident window")
    lines = [f"### {title}"]
    if incident.get("severity"):
        lines.append(f"**Severity {incident['severity']}**, status *{incident.get('status', 'open')}*, "
                     f"opened {_when(incident.get('opened_at'))}.")
    started = "detected" if diagnosis.anomaly_start_detected else "given"
    lines.append(f"The anomaly began at **{_when(diagnosis.anomaly_start)}** ({started}); the window ends "
                 f"{_when(diagnosis.end)}.")
    if top is not None and top.evidence:
        lines.append(f"**Most likely root cause: `{top.service}`.** {top.explanation}")
        others = [c.service for c in diagnosis.ranking[1:4] if c.evidence]
        if others:
            lines.append(f"Also anomalous: {', '.join(f'`{o}`' for o in others)}.")
    else:
        lines.append("No service left its normal range in this window: nothing to blame yet.")
    if diagnosis.warnings:
        lines.append(f"⚠ {len(diagnosis.warnings)} data warning(s); see *Data checks* below.")
    return "\n\n".join(lines)


def benchmark_summary(stats: dict, verdicts: pd.DataFrame, target_url: str) -> str:
    failed = verdicts[verdicts["pass"] == False].index.tolist()  # noqa: E712 - pandas comparison
    verdict = "**PASS**: every target met." if not failed else f"**FAIL**: {', '.join(failed)} missed."
    return "\n\n".join([
        f"### Benchmark of `{target_url}`",
        verdict,
        f"{stats['requests']} requests at a target {stats['target_rate_rps']:g} req/s (open loop): "
        f"P50 {stats['p50_ms']} ms, P95 {stats['p95_ms']} ms, P99 {stats['p99_ms']} ms, "
        f"throughput {stats['throughput_rps']} req/s, error rate {stats['error_rate']:.2%}"
        + (f", WebSocket round trip {stats['ws_latency_ms']} ms." if "ws_latency_ms" in stats else "."),
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
