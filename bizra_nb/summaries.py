"""Executive-summary paragraphs (Markdown) for the reports, written from computed results."""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import pandas as pd

from bizra_nb.markup import md, md_code
from bizra_nb.rca import Candidate, Diagnosis
from bizra_nb.tables import PeopleTable, for_people, format_value
from bizra_nb.units import unit_of


def _when(ts) -> str:
    if ts is None or ts == "" or (isinstance(ts, float) and pd.isna(ts)):
        return "unknown"
    try:
        stamp = pd.Timestamp(ts, unit="s", tz="UTC") if isinstance(ts, (int, float)) else pd.Timestamp(ts)
        return stamp.strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, TypeError, OverflowError):
        return md(ts, limit=40)  # not a time: shown as given, inert


def kind_words(candidate: Candidate, name: Callable[[str], str] = str) -> str:
    """What a candidate's evidence points at, in words (``name`` renders each service name, e.g. ``md_code``).

    Parameters
    ----------
    candidate
        A ranked candidate (its ``kind``, ``edge`` and ``callers``).
    name
        Applied to every service name: ``str`` for terminals, :func:`bizra_nb.markup.md_code` for Markdown.

    Returns
    -------
    str
        E.g. "no metrics of its own — blamed from its callers checkout, payment" or
        "calls from checkout to payment slowed".

    Examples
    --------
    >>> from bizra_nb.rca import Candidate
    >>> kind_words(Candidate("payments-db", 9.0, "-", None, kind="no_metrics", callers=["payment"]))
    'no metrics of its own — blamed from its caller payment'
    """
    callers = ("its caller " if len(candidate.callers) == 1 else "its callers ") + ", ".join(
        name(c) for c in candidate.callers)
    if candidate.kind == "no_metrics":
        return f"no metrics of its own — blamed from {callers}" if candidate.callers else "no metrics of its own"
    if candidate.kind == "dependency_edge":
        if candidate.edge is not None:
            return f"calls from {name(candidate.edge[0])} to {name(candidate.edge[1])} slowed"
        return f"calls into it slowed — blamed from {callers}" if candidate.callers else "calls into it slowed"
    if candidate.callers:
        return f"its own metrics barely moved — blamed from {callers} (its code or network)"
    if candidate.kind == "code":
        return "its own latency or errors"
    return "its own metrics"


def confidence_lines(diagnosis: Diagnosis, *, reason: bool = True) -> tuple[str, str]:
    """The confidence as one line, "high (0.91) — reason", and the advice as one line ("" when high or none).

    ``reason=False``: without the reason (when the verdict already says it).
    """
    conf = diagnosis.confidence or {}
    level = str(conf.get("level") or "low")
    score = conf.get("score")
    line = level + (f" ({float(score):.2f})" if isinstance(score, (int, float)) else "")
    if reason and conf.get("reason"):
        line += f" — {conf['reason']}"
    advice = [str(a) for a in conf.get("advice") or []]
    helps = "; ".join(advice) if level != "high" and advice else ""
    return line, helps


def causes(diagnosis: Diagnosis) -> list[Candidate]:
    """The candidates worth showing, best first: the anomalous ones (own evidence or blamed from their
    callers); none when the verdict is "nothing to blame"."""
    if diagnosis.verdict == "nothing_to_blame":
        return []
    return [c for c in diagnosis.ranking if c.anomalous]


def incident_summary(diagnosis: Diagnosis, incident: dict | None = None, *, symptom_service: str = "") -> str:
    """The diagnosis report's opening paragraphs (Markdown); every untrusted value is escaped.

    The verdict comes first when there is nothing to blame; otherwise the most likely root cause (named with
    what its evidence points at), the confidence and, when it is not high, what would help.
    """
    incident = incident or {}
    shown = causes(diagnosis)
    top = shown[0] if shown else None
    title = incident.get("title") or (f"symptoms at {symptom_service}" if symptom_service else "incident window")
    lines = [f"### {md(title, limit=200)}"]
    confidence, helps = confidence_lines(diagnosis, reason=diagnosis.verdict != "nothing_to_blame")
    if diagnosis.verdict == "nothing_to_blame":
        reason = (diagnosis.confidence or {}).get("reason") or "no service changed beyond its usual behaviour"
        lines.append(f"**Nothing to blame:** {md(reason)}.")
    if incident.get("severity"):
        lines.append(f"**Severity {md(incident['severity'])}**, status *{md(incident.get('status', 'open'))}*, "
                     f"opened {_when(incident.get('opened_at'))}.")
    annotations, labels = incident.get("annotations") or {}, incident.get("labels") or {}
    if isinstance(annotations, dict) and annotations.get("description"):
        lines.append(f"> {md(annotations['description'], limit=500)}")
    if isinstance(labels, dict) and labels:
        listed = [md_code(f"{k}={v}", limit=120) for k, v in list(labels.items())[:12]]
        lines.append("Alert labels: " + ", ".join(listed) + ("…" if len(labels) > 12 else "") + ".")
    alerting = symptom_service or incident.get("symptom_service") or incident.get("service") or ""
    started = "detected" if diagnosis.anomaly_start_detected else "given"
    if diagnosis.anomaly_start_detected and diagnosis.start_confidence is not None:
        started += f" with confidence {diagnosis.start_confidence:.2f}"
    reason = (diagnosis.confidence or {}).get("reason") or ""
    if diagnosis.verdict == "nothing_to_blame" and reason.startswith("traffic"):
        lines.append(f"Traffic changed at **{_when(diagnosis.anomaly_start)}** ({started}), but not as a fault of one "
                     f"service; the window ends {_when(diagnosis.end)}.")
    elif diagnosis.verdict == "nothing_to_blame" and diagnosis.anomaly_start_detected:
        lines.append(f"No common start of an anomaly was found; the window ends {_when(diagnosis.end)}.")
    elif diagnosis.verdict == "nothing_to_blame":
        lines.append(f"Nothing went wrong from the given start, **{_when(diagnosis.anomaly_start)}**, to the end of "
                     f"the window, {_when(diagnosis.end)}.")
    else:
        lines.append(f"The anomaly began at **{_when(diagnosis.anomaly_start)}** ({started}); the window ends "
                     f"{_when(diagnosis.end)}.")
    if alerting:
        lines.append(f"The alert came from {md_code(alerting)}.")
    if top is not None:
        lines.append(f"**Most likely root cause: {md_code(top.service)}** ({kind_words(top, md_code)}). "
                     f"{md(top.explanation)}")
    lines.append(f"**Confidence: {md(confidence)}**" + (f". What would help: {md(helps)}." if helps else ""))
    if top is not None:
        if top.path and len(top.path) > 1:
            reached = " → ".join(md_code(n) for n in top.path)
            alert_note = "" if not alerting or alerting in top.path else \
                f" (the alerting {md_code(alerting)} is not on it: check its own metrics)"
            lines.append(f"It propagated along the dependencies: {reached}{alert_note}.")
        others = [c.service for c in shown[1:]]  # all: they agree with the quiet ones
        if others:
            lines.append(f"Also anomalous: {', '.join(md_code(o) for o in others)}.")
    elif diagnosis.verdict != "nothing_to_blame":
        lines.append("No service left its normal range in this window: nothing to blame yet.")
    lines.append(quiet_services(diagnosis))
    if diagnosis.warnings:
        lines.append(f"⚠ {len(diagnosis.warnings)} data warning(s); see *Data checks* below.")
    return "\n\n".join(line for line in lines if line)


def quiet_services(diagnosis: Diagnosis) -> str:
    """One line naming the services that stayed within their normal range (not anomalous, not blamed: no bar);
    with nothing to blame, one more naming those that moved all the same (a traffic surge)."""
    moved = [c.service for c in diagnosis.ranking if c.anomalous]
    quiet = sorted(c.service for c in diagnosis.ranking if not c.anomalous)
    lines = []
    if moved and diagnosis.verdict == "nothing_to_blame":
        lines.append(f"Moved, but none is to blame on its own: {_names(moved)}.")
    if quiet and not moved:
        lines.append(f"All {len(quiet)} service(s) stayed within their usual range: {_names(quiet)}.")
    elif quiet:
        lines.append(f"{len(quiet)} other service(s) stayed within their normal range: {_names(quiet)}.")
    return "\n\n".join(lines)


def _names(services: list[str], limit: int = 12) -> str:
    more = f" and {len(services) - limit} more" if len(services) > limit else ""
    return ", ".join(md_code(s) for s in services[:limit]) + more


def incident_record(diagnosis: Diagnosis, *, incident_id: int | None = None, k: int = 3) -> dict:
    """The diagnosis report's ``summary.json`` values (:func:`bizra_nb.notebook.record`).

    ``headline``, ``incident_id``, ``anomaly_start`` (ISO-8601), ``anomaly_start_detected``,
    ``anomaly_start_confidence``, ``verdict``, ``confidence`` (level, score, reason, advice),
    ``top_causes`` (up to ``k`` candidates as in ``diagnose --format json``, each with its ``kind``, two
    pieces of evidence at most; none when there is nothing to blame) and ``warnings``.
    """
    shown = causes(diagnosis)[:k]
    top = shown[0] if shown else None
    if top is None:
        headline = "nothing to blame" if diagnosis.verdict == "nothing_to_blame" else "no candidate"
    elif top.kind == "no_metrics" or top.metric in ("", "-") or top.callers:
        headline = f"{top.service} ({kind_words(top)})"
    elif top.kind == "dependency_edge" and top.edge is not None:
        headline = f"{top.service} ({kind_words(top)})"
    else:
        headline = f"{top.service} ({top.metric})"
    return {
        "headline": headline,
        "incident_id": incident_id or None,
        "anomaly_start": diagnosis.anomaly_start.isoformat(),
        "anomaly_start_detected": diagnosis.anomaly_start_detected,
        "anomaly_start_confidence": diagnosis.start_confidence,
        "verdict": diagnosis.verdict,
        "confidence": dict(diagnosis.confidence or {}),
        "top_causes": [c.as_dict() | {"evidence": c.as_dict()["evidence"][:2]} for c in shown],
        "warnings": list(diagnosis.warnings),
    }


def ranking_table(diagnosis: Diagnosis, k: int = 10) -> PeopleTable:
    """The anomalous candidates (own evidence, or blamed from their callers) as a table for people: rank,
    service, what the evidence points at, deviation, metric (with unit), onset, the full explanation.
    No row when the verdict is "nothing to blame": the table says so."""
    rows = [{"rank": n, "service": c.service, "kind": kind_words(c), "score": None if c.callers else c.score,
             "metric": _metric_words(c), "onset": c.onset, "explained_by": c.explained_by or "",
             "explanation": c.explanation}
            for n, c in enumerate(causes(diagnosis)[:k], 1)]
    frame = pd.DataFrame(rows, columns=["rank", "service", "kind", "score", "metric", "onset", "explained_by",
                                        "explanation"])
    if diagnosis.verdict == "nothing_to_blame":
        reason = (diagnosis.confidence or {}).get("reason") or "no service changed beyond its usual behaviour"
        empty = f"No candidate: nothing to blame — {reason}."
    else:
        empty = "No candidate: no service left its normal range."
    return for_people(frame, {"rank": ("#", "int"), "service": "Service", "kind": "Evidence",
                              "score": ("Deviation (× spread)", "number"), "metric": "Strongest metric",
                              "onset": ("Onset", "time"), "explained_by": "Explained by",
                              "explanation": "Explanation"},
                      empty=empty)


def _metric_words(c: Candidate) -> str:
    if c.kind == "no_metrics":
        return "– (no metrics)"
    if c.callers:  # blamed from its callers: its own strongest metric is no evidence of anything
        return "– (from its callers)"
    if c.metric in ("", "-"):
        return "–"
    unit = unit_of(c.metric)
    return c.metric + (f" ({unit if unit != 'ratio' else '%'})" if unit else "")


def checks_table(checks: list[dict]) -> PeopleTable:
    """The data checks of a fetch, each passed (✔) or not (✖) with its message."""
    frame = pd.DataFrame(checks, columns=["check", "ok", "kind", "message"])
    frame["check"] = frame["check"].astype(str).str.replace("_", " ")
    shown = {"check": "Check", "ok": ("Result", "pass")}
    if frame["message"].fillna("").astype(str).str.strip().any():
        shown["message"] = "Detail"
    return for_people(frame, shown,
                      labels=("✔ passed", "✖ failed"), empty="No data check ran.")


def bullet_list(lines, *, code: bool = False, empty: str = "") -> str:
    """Markdown bullets of untrusted lines (queries, data warnings), each escaped; ``empty`` when there are none."""
    render = md_code if code else md
    return "\n".join(f"- {render(line)}" for line in lines) or empty


def benchmark_summary(stats: dict, verdicts: pd.DataFrame, target_url: str, *, scheduled_for: str = "") -> str:
    """The benchmark's verdict and headline figures; throughput as offered and as achieved, side by side;
    when it was measured (and, for a scheduled run, the time it was scheduled for)."""
    failed = [name for name, ok in verdicts["pass"].items() if ok is False]
    unmeasured = [name for name, ok in verdicts["pass"].items() if ok is None or pd.isna(ok)]
    if not stats["requests"]:
        verdict = "**FAIL**: no request was answered, so no target could be checked."
    elif not stats.get("successes", stats["requests"]):
        verdict = f"**FAIL**: {_no_success(stats)}, so no latency could be measured."
    elif failed:
        verdict = f"**FAIL**: {', '.join(failed)} missed."
    else:
        verdict = "**PASS**: every target met." + (f" Not measured: {', '.join(unmeasured)}." if unmeasured else "")
    offered = stats.get("offered_rps") or stats["target_rate_rps"]
    if not stats["requests"]:
        figures = f"No request was answered at {offered:g} req/s offered: nothing to measure."
    elif not stats.get("successes", stats["requests"]):
        figures = (f"{stats['requests']:,} requests offered at {offered:g} req/s (open loop), none answered "
                   f"successfully ({_error_kinds(stats)}).")
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
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        + (f", scheduled for {_scheduled(scheduled_for)}." if scheduled_for else "."),
    ])


def benchmark_headline(stats: dict, verdicts: pd.DataFrame) -> str:
    """The benchmark's one-line headline (``summary.json``, the runs list, a comparison): P99, achieved rate,
    pass/FAIL; without a successful response, that instead (``no successful responses: 100 % errors
    (connection refused …)``): a run that answered nothing has no latency to headline."""
    passed = "pass" if verdicts["pass"].all() else "FAIL"
    if not stats.get("successes", stats.get("requests")):
        return f"{_no_success(stats)}, FAIL"
    return f"P99 {stats['p99_ms']} ms, {stats['throughput_rps']} req/s, {passed}"


def _no_success(stats: dict) -> str:
    if not stats.get("requests"):
        return "no request sent"
    rate = stats.get("error_rate")
    share = f"{rate:.0%}".replace("%", " %") if isinstance(rate, (int, float)) else "all"
    return f"no successful responses: {share} errors ({_error_kinds(stats)})"


def _error_kinds(stats: dict) -> str:
    """The errors by kind, most first: ``no answer (connection refused, reset or timed out)``, ``HTTP 503``."""
    kinds = stats.get("errors_by_status")
    if not isinstance(kinds, dict) or not kinds:
        return "no answer or an error status"
    words = []
    for code, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:3]:
        words.append("connection refused, reset or timed out" if code == "no answer" else f"HTTP {code}")
    return ", ".join(words)


def _scheduled(scheduled_for: str) -> str:
    """``2026-11-02 03:00 UTC`` of a run's ``scheduled_for`` (InvalidInput naming it when it is not a time)."""
    from bizra_nb.schedule import parse_scheduled_for

    return parse_scheduled_for(scheduled_for).strftime("%Y-%m-%d %H:%M UTC")


def benchmark_table(verdicts: pd.DataFrame) -> PeopleTable:
    """The benchmark's verdicts: each runbook target, its measured value with its unit, ✔/✖."""
    names = {"p50_ms": "Latency P50", "p95_ms": "Latency P95", "p99_ms": "Latency P99", "error_rate": "Error rate",
             "throughput_rps": "Throughput (req/s)", "ws_latency_ms": "WebSocket round trip"}
    rows = []
    for metric, row in verdicts.iterrows():
        kind = "rps" if metric == "throughput_rps" else ("share" if metric == "error_rate" else "ms")
        target = str(row["target"])
        op, _, number = target.partition(" ")
        try:
            target = f"{op} {format_value(float(number), kind)}"
        except ValueError:
            pass
        rows.append({"target name": names.get(metric, metric), "target": target,
                     "measured": format_value(row["measured"], kind), "pass": row["pass"], "detail": row["detail"]})
    return for_people(pd.DataFrame(rows), {"target name": "Objective", "target": "Target", "measured": "Measured",
                                           "pass": ("Result", "pass"), "detail": "Detail"},
                      labels=("✔ pass", "✖ fail"))


def latency_by_endpoint(samples: pd.DataFrame) -> PeopleTable:
    """Requests and latency percentiles (ms) per endpoint of a load test; the percentiles are those of the
    successful responses (2xx, 3xx), none for an endpoint without one."""
    ok = samples["status"].between(200, 399) if "status" in samples else pd.Series(True, index=samples.index)
    grouped = samples["latency_ms"].where(ok).groupby(samples["endpoint"])  # NaN (failed) is left out
    frame = pd.DataFrame({"requests": samples.groupby("endpoint").size(), "p50": grouped.quantile(0.5),
                          "p95": grouped.quantile(0.95), "p99": grouped.quantile(0.99),
                          "max": grouped.max()}).reset_index()
    return for_people(frame, {"endpoint": "Endpoint", "requests": ("Requests", "int"), "p50": ("P50", "ms"),
                              "p95": ("P95", "ms"), "p99": ("P99", "ms"), "max": ("Max", "ms")})


def _legacy_criteria(summary: dict) -> list[tuple[str, str, str, bool]]:
    """The criteria of an audit summary made before the SLO spec (no ``slos``): availability, latency."""
    slo = summary["slo"]
    latency = summary.get("latency_attainment")
    return [
        ("Availability (1 − 5xx / requests)", f"≥ {slo['availability'] * 100:.2f} %",
         f"{summary['availability'] * 100:.2f} %", summary["availability"] >= slo["availability"]),
        (f"P99 latency ≤ {slo['latency_p99_ms']:g} ms", f"≥ {slo['latency_attainment'] * 100:.0f} % of the time",
         "not measured" if latency is None else f"{latency * 100:.2f} % of the time",
         latency is None or latency >= slo["latency_attainment"]),
    ]


def _percent(ratio: float | None, target: float | None = None) -> str:
    """A ratio as a percentage with the decimals its target needs (0.99937 against 0.999: ``99.937 %``)."""
    if ratio is None:
        return "–"
    decimals = 2
    if target is not None and 0 < target < 1:
        decimals = min(6, max(2, math.ceil(round(-math.log10(1 - target), 6))))
    return f"{ratio * 100:.{decimals}f} %"


def slo_target_text(budget: dict) -> str:
    """An SLO's target in words, plain text (escape it where it meets Markdown or HTML):
    ``≥ 99.900 % of requests``, ``≥ 99.00 % of minutes at ≤ 100``."""
    target = budget.get("target")
    text = f"≥ {_percent(target, target)}"
    unit = budget.get("unit")
    if budget.get("budgeting") == "Timeslices":
        slice_ = budget.get("timeslice_window")
        text += " of minutes" if slice_ == "1m" else (f" of {str(slice_)[:20]} slices" if slice_ else " of the time")
    elif unit:
        text += f" of {unit}"
    if budget.get("threshold"):
        text += f" at {budget['threshold']}"
    return text


def slo_achieved_text(budget: dict) -> str:
    """What an SLO attained (``99.937 %``), or why it was not measured (plain text)."""
    if budget.get("error") or budget.get("attainment") is None:
        return "not measured" + (f": {budget['error']}" if budget.get("error") else "")
    return _percent(budget["attainment"], budget.get("target"))


def audit_criteria(summary: dict) -> list[tuple[str, str, str, bool]]:
    """The audit's compliance criteria: (objective, target, achieved, met), the verdict's reasons in order:
    each SLO of the spec (``summary["slos"]``), then the monthly score. A summary made before the spec (no
    ``slos``): availability, latency, score. Plain text: the objective's name and the reason an SLO was not
    measured come from the spec and the source, untrusted: escape them where they are rendered."""
    slos = summary.get("slos")
    if slos is None:
        criteria = _legacy_criteria(summary)
    else:
        criteria = [(str(b.get("display_name") or b.get("slo")), slo_target_text(b), slo_achieved_text(b),
                     bool(b.get("met")) and not b.get("error")) for b in slos]
    line = summary["slo"]["score"]
    return criteria + [("Monthly Ahsan score", f"≥ {line:g}", f"{summary['score']:.1f} ({summary['tier']})",
                        summary["score"] >= line)]


def budget_state(budget: dict) -> tuple[str, str]:
    """An error budget's state and colour, as every view shows it: ``("exhausted", "red")`` when none remains,
    ``("fast burn", "red")`` when a page-level burn holds, ``("burning", "amber")`` for a ticket-level one,
    ``("low", "amber")`` under 25 % remaining, ``("ok", "green")``; ``("not measured", "grey")`` without a number."""
    remaining = budget.get("remaining")
    if budget.get("error") or remaining is None:
        return "not measured", "grey"
    if remaining <= 0:
        return "exhausted", "red"
    if budget.get("alerting") == "page":
        return "fast burn", "red"
    if budget.get("alerting") == "ticket":
        return "burning", "amber"
    if remaining < 0.25:
        return "low", "amber"
    return "ok", "green"


def _month_name(month: str) -> str:
    try:
        return pd.Timestamp(month + "-01").strftime("%B %Y")
    except ValueError:
        return md(month)


def _budget_name(budget: dict) -> str:
    """An SLO's name as the reader knows it: its display name, else its name (plain text)."""
    return str(budget.get("display_name") or budget.get("slo") or "")


def _budget_used(budget: dict) -> str | None:
    """The share of an SLO's error budget consumed, as every view writes it (None: not measured)."""
    from bizra_nb.slo_budget import budget_percent

    if budget.get("error") or budget.get("consumed") is None:
        return None
    return budget_percent(budget["consumed"])


def _criteria_count(summary: dict, criteria: list) -> str:
    """What the criteria count says, each part named: "4 of 4 criteria met: the month's score and 3 of 3 SLOs"."""
    met = sum(bool(ok) for *_, ok in criteria)
    said = f"{met} of {len(criteria)} criteria met"
    slos = summary.get("slos")
    if slos is None:
        return said
    # counted from the same criteria as the total, so the two counts always agree
    slos_said = f"{sum(bool(ok) for *_, ok in criteria[:-1])} of {len(criteria) - 1} SLOs met"
    if criteria[-1][3]:
        return f"{said}: the month's score, and {slos_said}"
    return f"{said}: {slos_said}, but not the month's score"


def audit_summary(summary: dict) -> str:
    """The audit's verdict first, with the criteria it was judged on (each SLO of the spec and the monthly
    score) and what the count of met criteria counts, which budgets are exhausted, each SLO's share of its
    error budget used, then the month's figures (Markdown; every name, target and reason escaped here)."""
    mark = "✔" if summary["compliant"] else "✖"
    criteria = audit_criteria(summary)
    lines = [f"## {mark} {md(summary['month'])}: {summary['verdict'].upper()}",
             f"**{_month_name(summary['month'])}** is *compliant* when every criterion below is met. "
             f"{_criteria_count(summary, criteria)}:",  # our words and counts only
             "\n".join(f"- {'✔' if met else '✖'} **{md(name, limit=120)}**: target {md(target)}, "
                       f"achieved {md(achieved, limit=200)}" for name, target, achieved, met in criteria)]
    slos = summary.get("slos")
    if slos is not None:
        exhausted = [b for b in slos if budget_state(b)[0] == "exhausted"]
        unmeasured = [b for b in slos if budget_state(b)[0] == "not measured"]
        said = []
        if exhausted:
            said.append("Error budget exhausted: " + ", ".join(
                f"**{md(_budget_name(b), limit=120)}**" for b in exhausted) + ".")
        if unmeasured:
            said.append("Not measured: " + ", ".join(
                f"**{md(_budget_name(b), limit=120)}**" for b in unmeasured) + ".")
        if slos:
            said.append("Error budget used: " + ", ".join(
                f"{md(_budget_name(b), limit=120)} **{md(_budget_used(b) or 'not measured')}**" for b in slos) + ".")
        if said:
            lines.append(" ".join(said))
        figures = ""
    else:  # a summary made before the spec: its one budget is availability's
        from bizra_nb.slo_budget import budget_percent

        figures = f"Availability error budget used: **{md(budget_percent(summary['error_budget_used']))}**. "
    lines.append(
        f"{figures}The score was under 97 for {format_value(summary['minutes_below_97'], 'minutes')} and under 95 for "
        f"{format_value(summary['minutes_below_95'], 'minutes')}. {summary['incidents']} incident(s) "
        f"({', '.join(f'{k}: {v}' for k, v in summary['incidents_by_severity'].items() if v) or 'none'}); "
        f"{summary['benchmarks']} benchmark run(s).")
    if summary["reasons"]:
        lines.append("Why not compliant: " + "; ".join(md(r) for r in summary["reasons"]) + ".")
    if summary["coverage"] < 0.99:
        lines.append(f"⚠ Data covers {summary['coverage'] * 100:.1f} % of the month; see the appendix.")
    return "\n\n".join(lines)


def _right(table: PeopleTable, *headers: str) -> PeopleTable:
    """``table`` with the named columns (pre-formatted numbers) aligned right, as numbers are."""
    for column in table.columns:
        if column.header in headers:
            column.align = "right"
    return table


def slo_table(summary: dict) -> PeopleTable:
    """The SLOs of the audited month, one row per SLO of the spec (objective, target, window, achieved, met,
    error budget used as :func:`bizra_nb.slo_budget.budget_percent` writes it), then the monthly score's row.
    A summary made before the spec: its availability, latency and score rows. Every cell is escaped by the
    renderer."""
    from bizra_nb.slo_budget import budget_percent

    slos = summary.get("slos")
    if slos is None:
        windows, used = ["calendar month"] * 3, [budget_percent(summary["error_budget_used"]), None, None]
    else:
        windows = [str(b.get("window") or "") for b in slos] + ["calendar month"]
        used = [_budget_used(b) for b in slos] + [None]
    rows = [{"objective": name, "target": target, "window": window, "achieved": achieved, "met": met,
             "budget": budget}
            for (name, target, achieved, met), window, budget in zip(audit_criteria(summary), windows, used)]
    table = for_people(pd.DataFrame(rows), {"objective": "Objective", "target": "Target", "window": "Window",
                                            "achieved": "Achieved", "met": ("Met", "pass"),
                                            "budget": ("Error budget used", "text")})
    return _right(table, "Error budget used")


def _count(value: float | None, unit: str | None) -> str:
    if value is None:
        return "–"
    number = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{number} {unit}" if unit else number


def budget_table(summary: dict) -> PeopleTable:
    """The error budget of each SLO: total, allowed, bad, consumed, remaining (as
    :func:`bizra_nb.slo_budget.budget_percent` writes them) and its state (every cell escaped by the
    renderer; an SLO without a number says why)."""
    from bizra_nb.slo_budget import budget_percent

    rows = []
    for b in summary.get("slos") or []:
        state, _ = budget_state(b)
        measured = not b.get("error")
        rows.append({"slo": _budget_name(b), "total": _count(b.get("total"), b.get("unit")),
                     "allowed": _count(b.get("allowed"), b.get("unit")), "bad": _count(b.get("bad"), b.get("unit")),
                     "consumed": budget_percent(b.get("consumed")) if measured and b.get("consumed") is not None
                     else None,
                     "remaining": budget_percent(b.get("remaining")) if measured and b.get("remaining") is not None
                     else None,
                     "state": state if measured else f"not measured: {b['error']}"})
    frame = pd.DataFrame(rows, columns=["slo", "total", "allowed", "bad", "consumed", "remaining", "state"])
    table = for_people(frame, {"slo": "SLO", "total": "Total", "allowed": "Allowed bad", "bad": "Bad",
                               "consumed": ("Consumed", "text"), "remaining": ("Remaining", "text"),
                               "state": "Budget"},
                       empty="The spec has no SLO.")
    return _right(table, "Consumed", "Remaining")


def spec_line(files) -> str:
    """Markdown: which spec file(s) the targets came from, each with the start of its content hash:
    "Spec: `monitoring/slo/bizra.yaml` (sha256 1a2b3c4d5e6f)." ``files``: ``summary["slo_spec_files"]``
    (``{"path", "sha256"}`` each) or, from an older summary, paths alone."""
    shown = []
    for f in files or ():
        path, digest = (f.get("path"), f.get("sha256")) if isinstance(f, dict) else (f, None)
        hashed = f" (sha256 {md(str(digest)[:12])})" if digest else ""
        shown.append(f"{md_code(path, limit=300)}{hashed}")
    if not shown:
        return "Spec: the platform's default (monitoring/slo/bizra.yaml)."
    return "Spec: " + ", ".join(shown) + "."


def budget_arithmetic(summary: dict, spec_files=()) -> str:
    """The appendix's error-budget arithmetic (Markdown, every value from the spec escaped here): each SLO's
    explanation in plain words (``Budget.explanation``, plain text) with the window it was measured over,
    and the spec file(s) used with their content hash (``summary["slo_spec_files"]``; ``spec_files``, paths,
    for a summary made before it was recorded)."""
    lines = []
    for b in summary.get("slos") or []:
        name = md(_budget_name(b), limit=120)
        period = f"{_when(b.get('period_start'))} – {_when(b.get('period_end'))}"
        measured = f"{_when(b.get('start'))} – {_when(b.get('end'))}"
        window = md(b.get("window") or "")
        where = f"{window} {period}" + ("" if measured == period else f", measured {measured}")
        said = md(b.get("explanation") or "", limit=2000) or "no figures: " + md(b.get("error") or "no data",
                                                                                 limit=500)
        lines.append(f"- **{name}** ({md_code(b.get('slo'), limit=80)}), {where}: {said}")
    files = summary.get("slo_spec_files") or list(spec_files)
    return "\n".join(lines or ["*No SLO in the spec.*"]) + "\n\n" + spec_line(files)


def incident_stats_table(stats: pd.DataFrame) -> PeopleTable:
    """MTTA and MTTR by severity, humanised."""
    return for_people(stats, {"severity": "Severity", "incidents": ("Incidents", "int"),
                              "MTTA_minutes": ("MTTA", "minutes"), "MTTR_minutes": ("MTTR", "minutes"),
                              "median_TTR_minutes": ("Median TTR", "minutes")})


def incidents_table(incidents: pd.DataFrame) -> PeopleTable:
    """The month's incidents: when, severity, service, title, time to acknowledge and to resolve."""
    return for_people(incidents, {"id": ("#", "int"), "opened": ("Opened", "time"), "severity": "Severity",
                                  "status": "Status", "service": "Service", "title": "Title",
                                  "tta_minutes": ("Time to acknowledge", "minutes"),
                                  "ttr_minutes": ("Time to resolve", "minutes")},
                      empty="No incidents this month.")


def benchmarks_table(benchmarks: pd.DataFrame) -> PeopleTable:
    """The month's benchmark runs: date, latency, throughput, pass/fail."""
    return for_people(benchmarks, {"date": ("Date", "time"), "status": "Run", "p50_ms": ("P50", "ms"),
                                   "p99_ms": ("P99", "ms"), "throughput_rps": ("Throughput (req/s)", "rps"),
                                   "passed": ("Targets", "pass")},
                      labels=("✔ pass", "✖ fail"), empty="No benchmark ran this month.")


_COMPARED = {"score": ("Monthly Ahsan score", "score"), "availability": ("Availability", "share"),
             "error_budget_used": ("Error budget used", "share"), "latency_attainment": ("P99 latency met", "share"),
             "minutes_below_95": ("Time under 95", "minutes"), "incidents": ("Incidents", "int")}


def comparison_table(comparison: pd.DataFrame) -> PeopleTable:
    """Month over month: each measure last month, this month and the change, in its own unit."""
    rows = []
    for measure, row in comparison.iterrows():
        name, kind = _COMPARED.get(measure, (str(measure), "number"))
        change = row["change"]
        shown = format_value(change, kind)
        rows.append({"measure": name, "previous": format_value(row["previous"], kind),
                     "now": format_value(row["this month"], kind),
                     "change": shown if shown == "–" or shown.startswith("-") else "+" + shown})
    return for_people(pd.DataFrame(rows), {"measure": "Measure", "previous": "Previous month", "now": "This month",
                                           "change": "Change"})


def coverage_table(coverage: dict) -> PeopleTable:
    """How much of the month the data covers, and its gaps."""
    rows = [("Steps expected", format_value(coverage["expected_steps"], "int")),
            ("Steps with data", format_value(coverage["present_steps"], "int")),
            ("Coverage", format_value(coverage["share"], "share")),
            ("Gaps", format_value(coverage["gaps"], "int")),
            ("Longest gap", _duration_text(coverage["longest_gap"])),
            ("Missing at the start", _duration_text(coverage["missing_at_start"])),
            ("Missing at the end", _duration_text(coverage["missing_at_end"])),
            ("Step", _duration_text(coverage["step"]))]
    return for_people(pd.DataFrame(rows, columns=["what", "value"]), {"what": "Data coverage", "value": "Value"})


def _duration_text(text: str) -> str:
    try:
        return format_value(pd.Timedelta(text), "duration")
    except ValueError:
        return str(text)


def alerts_table(fired: pd.DataFrame) -> PeopleTable:
    """Alerts that fired in the month: name, severity, episodes, time firing."""
    return for_people(fired, {"alertname": "Alert", "severity": "Severity", "episodes": ("Episodes", "int"),
                              "minutes_firing": ("Time firing", "minutes")},
                      empty="No alert history in this source (a dataset file has none; Prometheus keeps it in ALERTS).")


# -- what compares: the sense of each summary number, the verdicts, the figures' data (bizra_nb.compare) ----------

METRIC_SENSES: dict[str, str | None] = {
    # "higher": more is better; "lower": less is better; None: neither (a parameter, a count of work done)
    # benchmark (bizra_nb.loadgen.LoadResult.stats)
    "requests": None, "successes": "higher", "p50_ms": "lower", "p95_ms": "lower", "p99_ms": "lower",
    "max_ms": "lower", "error_rate": "lower", "offered_rps": None, "throughput_rps": "higher",
    "target_rate_rps": None, "elapsed_s": None, "generator_late_p99_ms": "lower", "ws_latency_ms": "lower",
    "ws_latency_p99_ms": "lower", "errors_by_status.*": "lower",
    # audit (bizra_nb.audit.audit_month's summary)
    "score": "higher", "score_p5": "higher", "score_median": "higher", "minutes_below_97": "lower",
    "minutes_below_95": "lower", "events": None, "violations.*": "lower", "availability": "higher",
    "error_budget_used": "lower", "latency_attainment": "higher", "incidents": "lower",
    "incidents_by_severity.*": "lower", "benchmarks": None, "coverage": "higher", "slo.*": None,
    "slos_met": "higher", "slos_total": None,
    # diagnosis (incident_record)
    "anomaly_start_confidence": "higher", "confidence.score": "higher",
    # verdicts (true is better)
    "passed": "higher", "compliant": "higher",
}
"""The sense of each number a notebook records (a key of ``summary.json``; ``parent.*`` for each key of a
dict such as the audit's ``violations``). A key not listed compares as "changed", without a sense."""

NOT_METRICS = frozenset({"incident_id", "run_id", "latency_quantiles_ms", "score_hourly"})  # ids; figures' data

VERDICTS: dict[str, list[str]] = {
    "benchmark": ["passed", "headline"],
    "compliance_audit": ["verdict", "compliant", "tier", "reasons", "headline"],
    "incident_diagnosis": ["verdict", "top_cause", "confidence.level", "anomaly_start", "headline"],
}
"""The verdicts of each notebook's summary, compared as they are (``top_cause``: the first of ``top_causes``)."""

QUANTILES = 101  # latency_quantiles_ms: the 0th to the 100th percentile


def sense_of(key: str) -> str | None:
    """The sense of a (flattened) summary key: "higher", "lower" or None (none known)."""
    if key in METRIC_SENSES:
        return METRIC_SENSES[key]
    parent = key.partition(".")[0]
    return METRIC_SENSES.get(parent + ".*") if "." in key else None


def latency_quantiles(samples: pd.DataFrame) -> list[float]:
    """The benchmark's latency distribution for ``summary.json``: the 0th..100th percentiles (ms, 101 numbers)
    of its successful responses (2xx, 3xx), what :mod:`bizra_nb.compare` overlays; empty without one."""
    import numpy as np

    if not len(samples):
        return []
    latency = samples["latency_ms"].to_numpy(dtype=float)
    if "status" in samples:
        status = samples["status"].to_numpy()
        latency = latency[(status >= 200) & (status < 400)]
    if not len(latency):
        return []
    return [round(float(v), 3) for v in np.percentile(latency, np.linspace(0, 100, QUANTILES))]


def score_hourly(score: pd.Series) -> dict:
    """The audit's score over the month for ``summary.json``: the lowest score of each hour (at most 744
    numbers), with the first hour (ISO-8601) and the step, what :mod:`bizra_nb.compare` overlays."""
    hourly = score.resample("1h").min()
    if hourly.empty:
        return {"start": None, "step_minutes": 60, "values": []}
    return {"start": hourly.index[0].isoformat(), "step_minutes": 60,
            "values": [None if pd.isna(v) else round(float(v), 2) for v in hourly.to_numpy()]}
