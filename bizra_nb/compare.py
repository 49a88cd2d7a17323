"""Two runs of one notebook side by side, from their ``summary.json``: numbers and deltas, verdicts, figures.

A run is given as its *document*: the content of the ``summary.json`` the runner writes in its folder
(``run_id``, ``notebook``, ``status``, ``parameters``, ``error``, ``summary``, ``created_at``...).
:func:`read_document` reads one from a folder (bounded: :data:`MAX_SUMMARY_BYTES`), :func:`run_document`
makes one from a store record. Every value in a document is untrusted: the page is rendered by a Jinja
template with autoescape, its figures hold numbers and fixed labels only, and it carries the reports'
Content-Security-Policy (:func:`bizra_nb.markup.protect_html`), so only its own figure scripts run.
Numbers are untrusted too (Python's JSON reads ``NaN``, ``Infinity`` and integers of hundreds of digits): only
finite ones a float holds count as numbers; other values are left out of the numbers and shown, where
shown, as clipped text.
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

from bizra_nb.errors import InvalidInput, NotFound
from bizra_nb.summaries import NOT_METRICS, VERDICTS, sense_of

MAX_SUMMARY_BYTES = 2 << 20  # a summary.json larger than this is no run's: refused, never parsed
MAX_POINTS = 5000  # a figure's series longer than this is not drawn
MAX_STEP_MINUTES = 31 * 1440  # a score series' step beyond a month is no step: the default (an hour) is drawn
RUN_ID = re.compile(r"[0-9a-f]{6,32}")
LATENCIES = frozenset({"p50_ms", "p95_ms", "p99_ms", "max_ms"})  # a benchmark's HTTP latencies (successful answers)
UNRELIABLE_ERROR_RATE = 0.5  # at or above it, a run's latencies describe too few answers to compare
PERCENT = frozenset({"availability", "error_budget_used", "latency_attainment", "coverage", "error_rate",
                     "slo.availability", "slo.latency_attainment"})  # ratios the reports show as percentages
MAX_PARAMETERS = 20  # differing parameters named at the top, at most


def read_document(path: str | Path) -> dict:
    """The document of a run folder (or of a ``summary.json`` named directly), read with a size limit.

    Raises
    ------
    NotFound
        No such folder or file.
    InvalidInput
        Larger than :data:`MAX_SUMMARY_BYTES`, not JSON, or not a run's summary (no ``notebook``).
    """
    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    try:
        with open(file, "rb") as handle:
            data = handle.read(MAX_SUMMARY_BYTES + 1)
    except OSError:
        raise NotFound(f"no summary.json in {str(path)!r}", field="run") from None
    if len(data) > MAX_SUMMARY_BYTES:
        raise InvalidInput(f"{file.name} of {str(path)!r} is larger than {MAX_SUMMARY_BYTES} bytes", field="run")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        raise InvalidInput(f"{str(file)!r} is not JSON", field="run") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("notebook"), str):
        raise InvalidInput(f"{str(file)!r} is not a run's summary.json (no notebook)", field="run")
    return doc


def run_document(run: dict) -> dict:
    """The document of a store record: its folder's ``summary.json`` when it has one, else the record's fields.

    ``run_id``, ``status``, ``created_at`` and the notebook's name come from the record (the store is the
    authority on them); ``summary`` and ``error`` from the file when it is readable.
    """
    doc: dict = {}
    if run.get("folder") and (Path(run["folder"]) / "summary.json").is_file():
        try:
            doc = read_document(run["folder"])
        except (InvalidInput, NotFound):
            doc = {}
    return {**doc, "run_id": run["id"], "notebook": Path(str(run["notebook"])).stem,
            "status": run["status"], "created_at": run.get("created_at"),
            "finished_at": run.get("finished_at") or doc.get("finished_at"),
            "parameters": doc.get("parameters", run.get("parameters") or {}),
            "summary": doc.get("summary") if isinstance(doc.get("summary"), dict) else (run.get("summary") or {}),
            "error": doc.get("error", run.get("error"))}


def numbers(summary: dict) -> dict[str, float]:
    """The summary's numbers by (flattened) key: top-level numbers and those of its dicts one level down
    (``violations.incident``), without ids and figures' data (:data:`~bizra_nb.summaries.NOT_METRICS`)."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        if not isinstance(key, str) or key in NOT_METRICS:
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items() if isinstance(k, str) and _is_number(v)})
        elif _is_number(value):
            out[key] = value
    return out


def _is_number(value) -> bool:
    """Whether ``value`` is a number to compute with: an int or float a float holds finitely.

    Bools, NaN, the infinities and integers beyond a float's range (``10**400``, which ``math.isfinite``
    refuses with OverflowError) are not.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def metric_rows(a: dict, b: dict) -> list[dict]:
    """Each number of either summary: ``key``, ``a``, ``b``, ``delta`` (b − a), ``sense`` and ``direction``.

    ``direction``: "better" or "worse" by the metric's sense (:func:`~bizra_nb.summaries.sense_of`),
    "changed" when it has none, "same", or "only in A" / "only in B". A latency (:data:`LATENCIES`) of
    two runs one of which answered nothing or mostly errors (:func:`failed_share`) gets no better or
    worse: "not comparable".
    """
    left, right = numbers(a), numbers(b)
    unreliable = bool(failed_share(a) or failed_share(b))
    rows = []
    for key in list(left) + [k for k in right if k not in left]:
        x, y, sense = left.get(key), right.get(key), sense_of(key)
        if key in LATENCIES and unreliable:  # None: the run that answered nothing measured none
            delta = y - x if x is not None and y is not None and _is_number(y - x) else None
            rows.append({"key": key, "a": x, "b": y, "delta": delta, "sense": sense, "direction": "not comparable"})
            continue
        if x is None or y is None:
            rows.append({"key": key, "a": x, "b": y, "delta": None, "sense": sense,
                         "direction": "only in B" if x is None else "only in A"})
            continue
        delta = y - x  # exact for ints; floats near the limits may overflow to inf: then it is not shown
        if not _is_number(delta):
            delta = None
        if x == y:
            direction = "same"
        elif sense is None:
            direction = "changed"
        else:
            direction = "better" if (y > x) == (sense == "higher") else "worse"
        rows.append({"key": key, "a": x, "b": y, "delta": delta, "sense": sense, "direction": direction})
    return rows


def failed_share(summary: dict) -> float | None:
    """The share of a benchmark's requests that failed when it makes its latencies meaningless: 1.0 for a run
    with requests and no successful response, its ``error_rate`` when at least :data:`UNRELIABLE_ERROR_RATE`;
    None otherwise (a run that is no benchmark, or mostly answered)."""
    requests, successes, rate = (summary.get(k) for k in ("requests", "successes", "error_rate"))
    if _is_number(requests) and requests > 0 and _is_number(successes) and successes <= 0:
        return 1.0
    if _is_number(rate) and UNRELIABLE_ERROR_RATE <= rate <= 1:
        return float(rate)
    return None


def failure_warnings(sa: dict, sb: dict) -> list[str]:
    """Plain warnings for the top of the page: each run whose requests mostly failed (:func:`failed_share`)."""
    out = []
    for name, summary in (("A", sa), ("B", sb)):
        share = failed_share(summary)
        if share is not None:
            out.append(f"{name}: {_percent(share)} of requests failed; its latencies are not comparable.")
    return out


def parameter_changes(a: dict, b: dict) -> list[dict]:
    """The parameters the two runs were given that differ: ``key``, ``a``, ``b`` (shown values; "(default)"
    for one a run was not given: the notebook's default), in A's order; at most :data:`MAX_PARAMETERS`;
    empty where neither run records parameters."""
    pa = a.get("parameters") if isinstance(a.get("parameters"), dict) else {}
    pb = b.get("parameters") if isinstance(b.get("parameters"), dict) else {}
    out = []
    for key in list(pa) + [k for k in pb if k not in pa]:
        if not isinstance(key, str) or key.startswith("_"):
            continue
        x, y = pa.get(key), pb.get(key)
        if (key in pa) == (key in pb) and x == y:
            continue
        out.append({"key": _text(key, 60), "a": _param(x) if key in pa else "(default)",
                    "b": _param(y) if key in pb else "(default)"})
    return out[:MAX_PARAMETERS]


def _param(value) -> str:
    if _is_number(value):
        return _shown(value)
    return _text(value, 80) if isinstance(value, str) else _text(value, 80, as_json=True)


def verdict_rows(a: dict, b: dict, notebook: str = "") -> list[dict]:
    """The run's status and the notebook's verdicts (:data:`~bizra_nb.summaries.VERDICTS`; for another
    notebook its texts and true/false values): ``key``, ``a``, ``b``, ``changed`` and ``direction``."""
    keys = VERDICTS.get(notebook) or sorted({k for s in (a, b) for k, v in s.items() if isinstance(k, str) and (
        isinstance(v, bool) or (isinstance(v, str) and len(v) <= 500)) and k not in NOT_METRICS})
    rows = []
    for key in ["status", *keys]:
        x, y = _verdict(a, key), _verdict(b, key)
        direction = ""
        if x != y and isinstance(x, bool) and isinstance(y, bool) and sense_of(key):
            direction = "better" if y == (sense_of(key) == "higher") else "worse"
        rows.append({"key": key, "a": x, "b": y, "changed": x != y and not (_nan(x) and _nan(y)),
                     "direction": direction})
    return rows


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _verdict(doc: dict, key: str):
    if key == "top_cause":
        causes = doc.get("top_causes")
        first = causes[0] if isinstance(causes, list) and causes and isinstance(causes[0], dict) else {}
        return first.get("service")
    if "." in key:
        parent, _, child = key.partition(".")
        value = doc.get(parent)
        return value.get(child) if isinstance(value, dict) else None
    value = doc.get(key)
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value[:100])
    return value if value is None or isinstance(value, (bool, str, int, float)) else _text(value, as_json=True)


def _text(value, limit: int = 500, *, as_json: bool = False) -> str:
    """``value`` as text (``str``, or JSON) of at most ``limit`` characters, whatever it is: a structure
    nested too deep to print, or an integer of too many digits, is "…"."""
    try:
        text = json.dumps(value, default=str) if as_json else str(value)
    except (RecursionError, ValueError, TypeError):
        text = "…"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check_comparable(a: dict, b: dict) -> str:
    """The notebook both documents ran; runs of different notebooks are refused (``field`` ``b``)."""
    left, right = str(a.get("notebook") or ""), str(b.get("notebook") or "")
    if left != right:
        raise InvalidInput(f"run b ran the notebook {right!r} and run a {left!r}: only runs of the same notebook "
                           f"compare", field="b")
    return left


def _series(values, limit: int = MAX_POINTS) -> list[float | None] | None:
    """A figure's series as finite numbers (None for a gap); None when it is not one."""
    if not isinstance(values, list) or not values or len(values) > limit:
        return None
    if not all(v is None or _is_number(v) for v in values):
        return None
    return [None if v is None else float(v) for v in values]


def figures(a: dict, b: dict, notebook: str) -> list[tuple[str, object]]:
    """The figures both summaries hold data for, each overlaying A and B: (title, plotly figure).

    Benchmarks: the latency distribution (``latency_quantiles_ms``) as cumulative curves; audits: the
    score over the month (``score_hourly``) by day of the month. Labels are fixed text (never a value
    of the summaries); the data are checked numbers.
    """
    import plotly.graph_objects as go

    out = []
    sa, sb = a.get("summary") or {}, b.get("summary") or {}
    qa, qb = (None if failed_share(s) == 1.0 else _series(s.get("latency_quantiles_ms")) for s in (sa, sb))
    if qa and qb:  # a run without a successful answer has no distribution (an older one recorded its errors')
        fig = go.Figure()
        for name, q in (("A", qa), ("B", qb)):
            share = [100.0 * i / (len(q) - 1) for i in range(len(q))] if len(q) > 1 else [100.0]
            fig.add_trace(go.Scatter(x=q, y=share, mode="lines", name=_label(name, a if name == "A" else b)))
        ticks = _log_ticks(min(qa + qb), max(qa + qb))
        fig.update_layout(xaxis_title="latency (ms)", yaxis_title="successful responses within (%)",
                          template="plotly_white", height=420, margin={"t": 30},
                          xaxis={"type": "log", "tickvals": ticks, "ticktext": [_number(t) for t in ticks],
                                 "minor": {"showgrid": False}})
        out.append(("Latency distribution", fig))
    ha, hb = sa.get("score_hourly"), sb.get("score_hourly")
    va = _series(ha.get("values")) if isinstance(ha, dict) else None
    vb = _series(hb.get("values")) if isinstance(hb, dict) else None
    if va and vb:
        fig = go.Figure()
        for name, values, spec in (("A", va, ha), ("B", vb, hb)):
            step = spec.get("step_minutes")
            step = step if _is_number(step) and 0 < step <= MAX_STEP_MINUTES else 60
            first = _day_of_month(spec.get("start"))  # data starting after the 1st stays on its own days
            days = [first + i * step / 1440 for i in range(len(values))]
            fig.add_trace(go.Scatter(x=days, y=values, mode="lines", name=_label(name, a if name == "A" else b)))
        fig.update_layout(xaxis_title="day of the month", yaxis_title="score (lowest of each hour)",
                          template="plotly_white", height=420, margin={"t": 30})
        out.append(("Score over the month", fig))
    return out


def _day_of_month(start: object) -> float:
    """Where an ISO-8601 ``start`` falls in its month as a day number (1.0: the 1st at 00:00); 1.0 when unknown."""
    from datetime import datetime

    try:
        t = datetime.fromisoformat(str(start)) if isinstance(start, str) and len(start) <= 40 else None
    except ValueError:
        t = None
    return 1.0 if t is None else t.day + (t.hour * 60 + t.minute) / 1440


def _log_ticks(low: float, high: float) -> list[float]:
    """The 1-2-5 values from ``low`` to ``high`` (positive), for a log axis labelled at those only."""
    import numpy as np

    low, high = max(low, 1e-6), max(high, low, 1e-6)
    decades = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    values = (np.array([1.0, 2.0, 5.0])[None, :] * 10.0 ** decades[:, None]).ravel()
    lo, hi = values[values <= low].max(initial=values[0]), values[values >= high].min(initial=values[-1])
    return [float(f"{v:.6g}") for v in values if lo <= v <= hi]


def _label(name: str, doc: dict) -> str:
    run_id = doc.get("run_id")
    return f"{name} ({run_id})" if isinstance(run_id, str) and RUN_ID.fullmatch(run_id) else name


def _when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if _is_number(ts) and 0 <= ts < 1e11 else "–"


def _shown(value, key: str = "") -> str:
    """A value for the page: a number with thousands separators and at most 4 decimals (4 significant
    digits under 1), a ratio of :data:`PERCENT` as a percentage; yes/no; clipped text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_number(value):
        return _percent(value) if key in PERCENT else _number(value)
    return _text(value, 300)


def _number(value: float) -> str:
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e18):
        return f"{int(value):,}"
    if abs(value) >= 1:
        text = f"{value:,.4f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:.4g}"  # 0.0001234: significant digits, not zeros
    return "0" if text in ("-0", "0") else text


def _percent(share: float) -> str:
    """0.999259 as ``99.926 %`` (at most 3 decimals of a percent)."""
    text = f"{share * 100:,.3f}".rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text} %"


def _delta(value, key: str = "") -> str:
    if not _is_number(value):
        return "–"
    sign = "+" if value > 0 else ""
    if key in PERCENT:  # a difference of percentages is in percentage points
        return sign + _percent(value)[:-2] + " pp"
    return sign + _number(value)


def _error_line(error) -> str:
    if isinstance(error, dict):
        return f"{_text(error.get('type') or 'Error', 200)}: {_text(error.get('message') or '')}"[:500]
    return _text(error) if error else ""


def comparison_html(a: dict, b: dict) -> str:
    """The self-contained HTML comparison of two run documents (A the base, B compared with it).

    Parameters
    ----------
    a, b
        Run documents (:func:`read_document`, :func:`run_document`).

    Returns
    -------
    str
        The page: headline numbers side by side with delta and direction, the verdicts that changed,
        the overlaid figures (plotly inlined once), under a CSP allowing only those figures' scripts.

    Raises
    ------
    InvalidInput
        The runs are of different notebooks (``field`` ``b``).
    """
    import plotly.io as pio

    from bizra_nb.markup import protect_html, script_hashes
    from bizra_nb.reports import _templates

    notebook = check_comparable(a, b)
    sa = a.get("summary") if isinstance(a.get("summary"), dict) else {}
    sb = b.get("summary") if isinstance(b.get("summary"), dict) else {}
    verdicts = verdict_rows({**sa, "status": a.get("status")}, {**sb, "status": b.get("status")}, notebook)
    shown = []
    for n, (title, fig) in enumerate(figures({**a, "summary": sa}, {**b, "summary": sb}, notebook)):
        shown.append({"title": title, "html": pio.to_html(
            fig, include_plotlyjs=n == 0, include_mathjax=False, full_html=False, default_width="100%",
            default_height=420, validate=False, config={"displaylogo": False, "responsive": True})})
    rows = [{**r, "a": _shown(r["a"], r["key"]), "b": _shown(r["b"], r["key"]),
             "delta": _delta(r["delta"], r["key"]),
             "sense": {"higher": "higher is better", "lower": "lower is better"}.get(r["sense"], "")}
            for r in metric_rows(sa, sb)]
    runs = [{"name": name, "id": _text(doc.get("run_id") or ""), "status": _text(doc.get("status") or ""),
             "created": _when(doc.get("created_at")), "headline": _shown(s.get("headline")) if s.get("headline")
             else "", "error": _error_line(doc.get("error")), "title": _text(doc.get("title") or "", 200)}
            for name, doc, s in (("A", a, sa), ("B", b, sb))]
    page = _templates().get_template("compare.html.j2").render(
        notebook=notebook, runs=runs, rows=rows, unchanged=[v for v in verdicts if not v["changed"]],
        warnings=failure_warnings(sa, sb), parameters=parameter_changes(a, b),
        verdicts=[{**v, "a": _shown(v["a"]), "b": _shown(v["b"])} for v in verdicts if v["changed"]],
        figures=shown, missing_figures=_missing_figures(notebook, sa, sb),
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    return protect_html(page, [h for f in shown for h in script_hashes(f["html"])])


def _missing_figures(notebook: str, sa: dict, sb: dict) -> str:
    wanted = {"benchmark": ("latency_quantiles_ms", "latency distributions"),
              "compliance_audit": ("score_hourly", "scores over the month")}.get(notebook)
    if wanted is None:
        return "This notebook records no figure data to overlay." if notebook == "incident_diagnosis" else ""
    key, words = wanted
    if notebook == "benchmark":
        silent = [name for name, s in (("A", sa), ("B", sb)) if failed_share(s) == 1.0]
        if silent:
            return (f"No overlay of the {words}: run {' and '.join(silent)} had no successful response, so no "
                    f"latency to draw.")
    lacking = [name for name, s in (("A", sa), ("B", sb)) if key not in s]
    return (f"No overlay of the {words}: run {' and '.join(lacking)} did not record them "
            f"(runs made before they were recorded, or failed ones).") if lacking else ""


def write_comparison(a: dict, b: dict, out: str | Path) -> Path:
    """Write :func:`comparison_html` of ``a`` and ``b`` to ``out`` (atomically); returns the path."""
    from bizra_nb.reports import write_atomic

    return write_atomic(Path(out), comparison_html(a, b))
