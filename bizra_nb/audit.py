"""The monthly compliance audit: the SLO spec's error budgets, score distribution, violations, incidents, benchmarks.

Every SLO of the spec (:mod:`bizra_nb.slo_spec`; default: the platform's ``monitoring/slo/bizra.yaml``) is
measured over its window (:func:`bizra_nb.slo_budget.month_budgets`); the month is compliant when its
score is at or above the score line and every SLO is met (one that could not be measured is not).

Inputs are per-step counts of the platform's own metrics for one calendar month
(columns ``bizra_requests``, ``bizra_errors``, ``bizra_events``,
``bizra_violations_<kind>``, ``bizra_lat_p99``; see :func:`bizra_nb.fleet.platform_month`),
from a dataset file or, later, PromQL. The score over time uses the formula of
:mod:`bizra_nb.score` on 5-minute sums, exactly as the recording rule does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bizra_nb.errors import InvalidInput
from bizra_nb.markup import md
from bizra_nb.platform_metrics import (  # noqa: F401 - audit.month_bounds etc. stay importable
    P99_PROMQL, PROMQL, load_platform_metrics, month_bounds, score_over_time)
from bizra_nb.schedule import CronError, parse_scheduled_for, parse_zone, previous_month_of
from bizra_nb.score import WEIGHTS, ahsan_score, tier

DEFAULT_SLO = {"availability": 0.999, "latency_p99_ms": 100.0, "latency_attainment": 0.99, "score": 95.0}
#: the audit's legacy ``slo`` keys and what each overrides in the spec: (SLO name, "target" | "value")
LEGACY_SLO = {"availability": ("bizra-api-availability", "target"),
              "latency_attainment": ("bizra-api-latency", "target"),
              "latency_p99_ms": ("bizra-api-latency", "value")}
SEVERITIES = ("P0", "P1", "P2", "P3")


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
    budgets: list = field(default_factory=list)  # bizra_nb.slo_budget.Budget, one per SLO of the spec
    slos: list = field(default_factory=list)  # the effective SLOs (the spec with the overrides applied)


def effective_slos(slos: list | None = None, slo: dict | None = None) -> tuple[list, float]:
    """The SLOs the audit judges (the spec with the ``slo`` overrides applied) and the month-score line.

    Parameters
    ----------
    slos
        The spec's SLOs (:class:`bizra_nb.slo_spec.SLO`); None: the platform's default spec
        (:func:`bizra_nb.slo_spec.load_specs`).
    slo
        Overrides, the audit's ``slo`` parameter: a key naming an SLO of the spec sets its target
        (0 < target < 1); ``score`` is the month-score line (default 95, the runbook's criterion, not an
        SLO); the legacy keys map onto the default spec's SLOs: ``availability`` → the target of
        ``bizra-api-availability``, ``latency_attainment`` → the target of ``bizra-api-latency``,
        ``latency_p99_ms`` → that SLO's threshold ``value`` (ms).

    Returns
    -------
    tuple[list[SLO], float]
        The effective SLOs, in the spec's order, and the score line.

    Raises
    ------
    InvalidInput
        ``field="slo"``: an unknown key, a legacy key whose SLO is not in the spec (both naming the known
        keys), or a value out of range.
    """
    from dataclasses import replace

    from bizra_nb.slo_spec import load_specs

    specs = list(load_specs() if slos is None else slos)
    overrides = dict(slo or {})
    by_name = {s.name: i for i, s in enumerate(specs)}
    known = ["score", *[k for k, (name, _) in LEGACY_SLO.items() if name in by_name and k not in by_name],
             *by_name]
    line = DEFAULT_SLO["score"]
    for key, value in overrides.items():
        # an SLO's own name first (a spec may name one "availability"), then the legacy keys
        name, what = (key, "target") if key in by_name else LEGACY_SLO.get(key, (key, "target"))
        if key != "score" and name not in by_name:
            missing = f" (it sets {name}, which the spec lacks)" if key in LEGACY_SLO else ""
            raise InvalidInput(f"unknown SLO override {_key(key)}{missing}; known: {', '.join(known)}", field="slo")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise InvalidInput(f"slo {_key(key)} must be a number, got {_shown(value)}", field="slo")
        if key == "score":
            if not 0 <= value <= 100:
                raise InvalidInput(f"slo score (the month-score line) must be 0..100, got {value:g}", field="slo")
            line = float(value)
            continue
        i = by_name[name]
        if what == "value":
            if value <= 0:
                raise InvalidInput(f"slo {key} must be above 0, got {value:g}", field="slo")
            specs[i] = replace(specs[i], indicator=replace(specs[i].indicator, value=float(value)))
        else:
            if not 0 < value < 1:
                raise InvalidInput(f"slo {_key(key)}: a target is a ratio between 0 and 1 (0.999), got {value:g}",
                                   field="slo")
            specs[i] = replace(specs[i], target=float(value))
    return specs, line


def _key(key: object) -> str:
    return repr(str(key)[:60])


def _shown(value: object) -> str:
    return repr(value)[:60]


def legacy_targets(slos: list, line: float) -> dict:
    """``summary["slo"]`` as before the spec: availability, latency_p99_ms, latency_attainment, score, taken
    from the effective SLOs (the default values where the spec lacks that SLO)."""
    by_name = {s.name: s for s in slos}
    out = dict(DEFAULT_SLO, score=line)
    for key, (name, what) in LEGACY_SLO.items():
        if name in by_name:
            found = by_name[name].target if what == "target" else by_name[name].indicator.value
            out[key] = DEFAULT_SLO[key] if found is None else float(found)
    return out


def slo_reason(budget) -> str | None:
    """One plain sentence on an SLO that is not met or could not be measured (None when met)."""
    if budget.error or budget.met is None:
        why = budget.error or "no data"
        return (f"{budget.display_name} could not be measured ({why}); an audit does not certify what it "
                f"could not measure")
    if budget.met:
        return None
    from bizra_nb.slo_budget import budget_percent
    from bizra_nb.summaries import _percent

    consumed = "" if budget.consumed is None else f" ({budget_percent(budget.consumed)} of its error budget consumed)"
    return (f"{budget.display_name}: {_percent(budget.attainment, budget.target)} attained, under its "
            f"{_percent(budget.target, budget.target)} target{consumed}")


def audit_month(frame: pd.DataFrame, month: str, *, slos: list | None = None, slo: dict | None = None,
                incidents: list[dict] = (), benchmarks: list[dict] = (), previous: dict | None = None,
                queries: list[str] = (), source: str = "") -> AuditResult:
    """Compute the month's audit from platform metrics, the SLO spec, incidents, benchmark runs and the previous audit.

    The verdict: *compliant* when the month's score is at or above the score line AND every SLO of the
    spec is met over its window (:func:`bizra_nb.slo_budget.month_budgets`). An SLO that could not be
    measured (``Budget.error``: no data, no dataset mapping, source down) makes the audit not compliant,
    its reason saying why: an audit does not certify what it could not measure. ``reasons`` holds one
    plain sentence per unmet criterion.

    Parameters
    ----------
    frame
        Per-step counts covering the month (other rows are ignored, except by an SLO whose rolling window
        reaches before the month).
    month
        ``YYYY-MM``.
    slos
        The SLO spec (:func:`bizra_nb.slo_spec.load_specs`); None: the platform's default spec.
    slo
        Overrides (see :func:`effective_slos`): an SLO name → its target; ``score`` → the month-score line
        (default 95, the runbook's criterion, not an SLO); the legacy keys ``availability``,
        ``latency_attainment`` (targets) and ``latency_p99_ms`` (the latency threshold) map onto the
        default spec's SLOs. An unknown key, or a legacy key whose SLO is not in the spec: InvalidInput
        naming ``slo``.
    incidents
        Incident records (store format) opened in the month.
    benchmarks
        Benchmark runs of the month (store format, with their summaries).
    previous
        The previous month's audit summary, for month-over-month comparison.
    queries
        The queries that fetched ``frame`` (shown in the appendix).
    source
        Where ``frame`` came from: a Prometheus URL makes the SLOs measured there, with their own queries;
        anything else (a dataset file, ``""``) measures them on ``frame`` through their dataset mappings.

    Returns
    -------
    AuditResult
        ``summary`` keeps every key it had before the spec (``availability``, ``error_budget_used`` and
        ``latency_attainment`` from the effective targets; ``slo`` = {availability, latency_p99_ms,
        latency_attainment, score} of the effective spec) and adds ``slos`` (each
        :meth:`bizra_nb.slo_budget.Budget.to_dict`), ``slos_met``, ``slos_total`` and ``slo_spec_files``
        (:func:`spec_fingerprints`: which targets were in force). ``headline``: the verdict, score,
        availability, SLOs met and incidents in one line.
    """
    from bizra_nb.slo_budget import month_budgets

    specs, line = effective_slos(slos, slo)
    targets = legacy_targets(specs, line)
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
    budget = 1.0 - targets["availability"]
    budget_used = (1.0 - availability) / budget if budget > 0 else float("inf")
    if "bizra_lat_p99" in data:
        p99 = data["bizra_lat_p99"].dropna()
        attainment = float((p99 <= targets["latency_p99_ms"]).mean()) if len(p99) else None
    else:
        attainment = None
    minutes = step.total_seconds() / 60
    below97 = float((score < 97).sum() * minutes)
    below95 = float((score < 95).sum() * minutes)
    inc = _incidents_frame(incidents)
    stats = _incident_stats(inc)
    bench = _benchmarks_frame(benchmarks)
    # the frame's counts for every SLO mapped onto it, from a file or Prometheus alike (exact: the counters are
    # differenced at the month's edges, as for the availability above); unmapped SLOs from Prometheus' PromQL
    budgets = month_budgets(specs, month, frame=frame, source=source)
    slos_met = sum(1 for b in budgets if b.met and not b.error)
    compliant = month_score >= line and slos_met == len(budgets)
    reasons = [] if month_score >= line else [f"the month's score {month_score} is under {line}"]
    reasons += [r for r in (slo_reason(b) for b in budgets) if r]
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
        "slo": targets,
        "slos": [_slo_dict(b, specs) for b in budgets],
        "slos_met": slos_met,
        "slos_total": len(budgets),
        "slo_spec_files": spec_fingerprints(specs),
    }
    summary["headline"] = (f"{month}: {summary['verdict']}, score {month_score} ({summary['tier']}), "
                           f"availability {availability * 100:.3f} %, {slos_met}/{len(budgets)} SLOs met, "
                           f"{len(inc)} incidents")
    by_day = data[[f"bizra_violations_{k}" for k in WEIGHTS]].resample("1D").sum()
    by_day.columns = list(WEIGHTS)
    coverage = _coverage(data, required, start, end, step, expected, present)
    comparison = _compare(summary, previous) if previous else None
    formulas = [
        "score(t) = 100 × (1 − min(1, Σ weight_k × violations_k / max(events, 100))) over the 5 minutes before t",
        "month score = the same formula over the month's totals; weights: " +
        ", ".join(f"{k} {w}" for k, w in WEIGHTS.items()),
        "availability = 1 − 5xx responses / requests; error budget used = (1 − availability) / (1 − SLO)",
        f"latency attainment = share of steps whose p99 ≤ {targets['latency_p99_ms']:g} ms",
        "each SLO: attainment = 1 − bad / measured; error budget allowed = (1 − target) × total; consumed = "
        "bad / allowed; remaining = 1 − consumed (time slices: the total is every slice of the whole period)",
        "MTTA = acknowledged_at − opened_at; MTTR = resolved_at − opened_at (per incident, then mean and median)",
        *[f"query: {q}" for q in queries],
    ]
    return AuditResult(month=month, summary=summary, score=score, violations=by_day, incidents=inc,
                       incident_stats=stats, benchmarks=bench, coverage=coverage, comparison=comparison,
                       formulas=formulas, budgets=budgets, slos=specs)


_OP_SIGNS = {"lt": "<", "lte": "≤", "gt": ">", "gte": "≥"}


def _slo_dict(budget, specs: list) -> dict:
    """``Budget.to_dict()`` with what the report's target column says: the time slice and the threshold."""
    out = budget.to_dict()
    spec = next((s for s in specs if s.name == budget.slo), None)
    if spec is not None:
        out.setdefault("timeslice_window", spec.timeslice_window)
        if spec.indicator.kind == "threshold" and spec.indicator.value is not None:
            out.setdefault("threshold", f"{_OP_SIGNS.get(spec.indicator.op, spec.indicator.op)} "
                                        f"{spec.indicator.value:g}")
    return out


def spec_files(slos: list) -> list[str]:
    """The files the SLOs were read from, in order, each once (``""`` left out)."""
    return list(dict.fromkeys(s.source for s in slos if s.source))


def shown_path(path: str | Path) -> str:
    """A spec file's path as a report shows it: relative to the data dir, the project or the installed
    package's folder when it is inside one (``monitoring/slo/bizra.yaml``), else the file's name alone (reports
    are served to anyone who can reach /reports: they do not map the server's folders); the sha256 beside it
    says which file it was."""
    from bizra_nb import paths

    given = Path(path).expanduser()
    if not given.is_absolute():
        return given.as_posix()
    try:
        resolved = given.resolve()
    except OSError:
        return given.as_posix()
    project = paths.project_dir()
    bases = [paths.data_dir(), *([project] if (project / "pyproject.toml").is_file() else []),
             Path(__file__).resolve().parent.parent]  # the checkout, or site-packages: bizra_nb/slo_specs/…
    for base in bases:
        try:
            return resolved.relative_to(Path(base).resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return given.name


def spec_fingerprints(slos: list) -> list[dict]:
    """Which targets were in force: each spec file the SLOs were read from, ``{"path", "sha256"}``.

    Parameters
    ----------
    slos
        The SLOs (:class:`bizra_nb.slo_spec.SLO`), each naming its ``source`` file.

    Returns
    -------
    list[dict]
        In the order of :func:`spec_files`: ``path`` as :func:`shown_path` shows it, ``sha256`` the hex
        SHA-256 of the bytes the SLOs were parsed from (their ``source_sha256``: the file as it was read, not
        as it is now; None when no SLO of it carries one). SLOs built in code, without a source file, add
        nothing.
    """
    digests: dict[str, str] = {}
    for s in slos:
        if s.source and s.source_sha256:
            digests.setdefault(s.source, s.source_sha256)
    return [{"path": shown_path(source), "sha256": digests.get(source)} for source in spec_files(slos)]


def load_spec(slo_spec: str = "") -> list:
    """The SLOs of the audit's ``slo_spec`` parameter: one spec file (OpenSLO v1 or Sloth ``prometheus/v1``);
    ``""``: the platform's default spec. A relative name is looked for as the notebooks look for files
    (:func:`bizra_nb.paths.data_path`: the data dir, then the working directory).

    Raises
    ------
    bizra_nb.slo_spec.SpecError
        (``field="slo_spec"``) listing every problem of the file, or naming a file that does not exist.
    """
    from bizra_nb.slo_spec import load_specs

    if not slo_spec:
        return load_specs()
    from bizra_nb.paths import data_path

    return load_specs([data_path(slo_spec)])


def check_spec(slo_spec: str) -> None:
    """Refuse a run whose ``slo_spec`` parameter names a spec that does not parse, before it is recorded.

    A file that is not found is left to :func:`bizra_nb.parameters.preflight` (it says where it looked).

    Raises
    ------
    bizra_nb.slo_spec.SpecError
        (``field="slo_spec"``, a 400 at ``POST /runs``) listing every problem of the file.
    """
    from bizra_nb.paths import data_path

    if slo_spec and data_path(slo_spec).is_file():
        load_spec(slo_spec)


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
