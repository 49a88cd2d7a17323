"""Plotly figures of the platform: rankings, time series with onsets, the CMDB graph, latency and score views."""
from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bizra_nb.cmdb import Cmdb
from bizra_nb.rca import Candidate, Diagnosis
from bizra_nb.summaries import causes, kind_words
from bizra_nb.units import shown_unit, unit_of

OK, WARN, BAD, MUTED = "#2e7d32", "#ef6c00", "#c62828", "#9e9e9e"


def _plain(text: object) -> str:
    """``text`` as plotly shows it literally: plotly renders some HTML in labels and titles (links among
    them), and service names come from the data."""
    return html.escape(str(text), quote=False)


def ranking_bar(diagnosis: Diagnosis, k: int = 10) -> go.Figure:
    """The anomalous root-cause candidates as horizontal bars, the strongest metric (or what the evidence
    points at) on each.

    Parameters
    ----------
    diagnosis
        From :func:`bizra_nb.diagnose.diagnose` or :func:`bizra_nb.rca.rank_root_causes`.
    k
        At most this many bars. A candidate gets a bar when it is anomalous itself or blamed from its
        callers' view (a dependency without metrics, a slowed call edge); services that stayed normal get
        none: the title says how many there are.

    Returns
    -------
    plotly.graph_objects.Figure
        Red: the most likely cause; orange: explained by an earlier anomalous dependency. When the
        verdict is "nothing to blame", no bar: the figure says so in a sentence.
    """
    if diagnosis.verdict == "nothing_to_blame":
        reason = (diagnosis.confidence or {}).get("reason") or "no service changed beyond its usual behaviour"
        return _sentence_figure("Anomalous services", _plain(f"Nothing to blame: {reason}."))
    shown = causes(diagnosis)
    quiet = len(diagnosis.ranking) - len(shown)
    top = shown[:k][::-1]
    fig = go.Figure(go.Bar(
        x=[c.score for c in top], y=[_plain(c.service) for c in top], orientation="h",
        text=[_plain(_bar_text(c)) for c in top], textposition="auto",
        marker_color=[BAD if i == len(top) - 1 else (WARN if c.explained_by else MUTED) for i, c in enumerate(top)],
        marker_pattern_shape=["/" if c.callers else "" for c in top],  # no deviation of its own: its callers'

        hovertext=[_plain(c.explanation) for c in top],
    ))
    hatched = "; hatched: blamed from its callers (the bar is theirs)" if any(c.callers for c in top) else ""
    note = f"<br><sup>most likely cause on top; {quiet} other service(s) stayed normal{hatched}</sup>" if quiet else \
        f"<br><sup>most likely cause on top{hatched}</sup>"
    fig.update_layout(title=dict(text=f"Anomalous services{note}", font=dict(size=15)),
                      xaxis_title="deviation (× normal spread)", height=140 + 36 * max(1, len(top)),
                      margin=dict(l=10, r=10, t=50, b=40), autosize=True)
    fig.update_yaxes(automargin=True)
    return fig


def _bar_text(c: Candidate) -> str:
    """The words on a bar: the strongest metric with its unit, or what the callers' view points at."""
    if c.kind in ("no_metrics", "dependency_edge") or c.callers or c.metric in ("", "-"):
        return kind_words(c)
    return f"{c.metric} ({shown_unit(unit_of(c.metric)) or 'no unit'})"


def _sentence_figure(title: str, sentence: str) -> go.Figure:
    """A small empty figure that says one sentence (shown where bars or lines would be)."""
    fig = go.Figure()
    fig.add_annotation(text=sentence, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14))
    fig.update_layout(title=dict(text=title, font=dict(size=15)), height=160, autosize=True,
                      xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=10, r=10, t=50, b=20))
    return fig


def candidate_series(frame: pd.DataFrame, diagnosis: Diagnosis, k: int = 3) -> go.Figure:
    """The strongest metric of each of the top ``k`` anomalous candidates over time, with units.

    The dashed line marks the anomaly start, the dotted one each candidate's onset. A candidate without
    series of its own (no metrics: blamed from its callers) is shown by its callers' strongest metric; one
    of which nothing is in ``frame`` gets a note instead of lines. With nothing to blame: the service that
    deviated most, for a look.
    """
    top = causes(diagnosis)[:k] or diagnosis.ranking[:1]
    plotted = [_series_of(frame, c, diagnosis) for c in top]
    fig = make_subplots(rows=max(1, len(top)), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[_plain(title) for title, _ in plotted] or [""])
    for row, (cand, (_, lines)) in enumerate(zip(top, plotted), start=1):
        unit = ""
        for n, (column, metric) in enumerate(lines):
            unit = unit_of(metric)
            values = frame[column] * (100 if unit == "ratio" else 1)
            colour = BAD if row == 1 and n == 0 else ("#1565c0" if n == 0 else MUTED)
            fig.add_trace(go.Scatter(x=frame.index, y=values, mode="lines", name=_plain(column),
                                     line=dict(color=colour)), row=row, col=1)
        if lines:
            fig.update_yaxes(title_text=shown_unit(unit), row=row, col=1)
        else:
            fig.add_annotation(text="no series of it or its callers in the data", x=0.5, y=0.5, showarrow=False,
                               xref=f"x{row if row > 1 else ''} domain", yref=f"y{row if row > 1 else ''} domain")
        if cand.onset is not None:
            fig.add_vline(x=cand.onset, line=dict(color=WARN, dash="dot"), row=row, col=1)
        fig.add_vline(x=diagnosis.anomaly_start, line=dict(color=BAD, dash="dash"), row=row, col=1)
    heading = "Top candidates over time" if causes(diagnosis) else \
        "The strongest deviation over time (nothing to blame)"
    fig.update_layout(title=dict(text=f"{heading}<br><sup>dashed: anomaly start, dotted: onset</sup>",
                                 font=dict(size=15)),
                      showlegend=False, height=220 * max(1, len(top)) + 60, margin=dict(l=10, r=10, t=80, b=40),
                      autosize=True)
    fig.update_yaxes(automargin=True)
    return fig


def _series_of(frame: pd.DataFrame, cand: Candidate, diagnosis: Diagnosis) -> tuple[str, list[tuple[str, str]]]:
    """A subplot's title and its lines ``(column, metric)``: the candidate's strongest metric, or, without
    series of its own, each caller's strongest metric."""
    own = f"{cand.service}_{cand.metric}"
    if cand.metric not in ("", "-") and own in frame:
        unit = unit_of(cand.metric)
        return cand.service + f": {cand.metric}" + (f" ({shown_unit(unit)})" if unit else ""), [(own, cand.metric)]
    by_id = {c.service: c for c in diagnosis.ranking}
    callers = [name for name in cand.callers if name in by_id and f"{name}_{by_id[name].metric}" in frame]
    lines = [(f"{name}_{by_id[name].metric}", by_id[name].metric) for name in callers]
    if not lines:
        return f"{cand.service}: {kind_words(cand)}", []
    metrics = ", ".join(f"{name} {metric}" for name, (_, metric) in zip(callers, lines))
    unit = unit_of(lines[0][1])
    what = "no metrics of its own" if cand.kind == "no_metrics" else "blamed from its callers"
    return f"{cand.service}: {what}, its callers' {metrics}" + (f" ({shown_unit(unit)})" if unit else ""), lines


def _layers(cmdb: Cmdb, nodes: list[str]) -> dict[str, int]:
    """Depth of each node: callers above, dependencies below (longest path from a top-level caller)."""
    depth = {n: 0 for n in nodes}
    for _ in range(len(nodes)):
        changed = False
        for n in nodes:
            for dep in cmdb.dependencies(n):
                if dep in depth and depth[dep] < depth[n] + 1:
                    depth[dep] = depth[n] + 1
                    changed = True
        if not changed:
            break
    return depth


def cmdb_graph(cmdb: Cmdb, *, anomalous: set[str] = frozenset(), path: list[str] | None = None,
               title: str = "Service dependencies", alerting: str = "") -> go.Figure:
    """The ``depends_on`` graph in layers, callers above their dependencies.

    Parameters
    ----------
    cmdb
        The CMDB (hosts are left out).
    anomalous
        Services drawn red (they left their normal range).
    path
        A propagation path, root cause first (``Candidate.path``): its edges drawn bold red.
    alerting
        The service whose alert opened the incident: drawn with a thick outline and named.
    """
    nodes = [i for i, item in cmdb.items.items() if item.get("kind") != "host"]
    depth = _layers(cmdb, nodes)
    by_layer: dict[int, list[str]] = {}
    for n in sorted(nodes):
        by_layer.setdefault(depth[n], []).append(n)
    pos = {}
    for layer, members in by_layer.items():
        for i, n in enumerate(members):
            pos[n] = ((i + 1) / (len(members) + 1), -layer)
    on_path = set(zip(path, path[1:])) if path else set()
    fig = go.Figure()
    for rel in cmdb.relations:
        s, t = rel["source"], rel["target"]
        if rel["type"] != "depends_on" or s not in pos or t not in pos:
            continue
        hot = (t, s) in on_path
        fig.add_trace(go.Scatter(x=[pos[s][0], pos[t][0]], y=[pos[s][1], pos[t][1]], mode="lines",
                                 line=dict(color=BAD if hot else "#bdbdbd", width=4 if hot else 1),
                                 hoverinfo="skip", showlegend=False))
    root = path[0] if path else None
    colours = [BAD if n in anomalous else OK for n in pos]
    outlines = ["#0d47a1" if n == alerting else "#fff" for n in pos]
    labels = [f"<b>{_plain(n)}</b> (alerting)" if n == alerting else (
        f"<b>{_plain(n)}</b> (root cause)" if n == root else _plain(n)) for n in pos]
    fig.add_trace(go.Scatter(
        x=[p[0] for p in pos.values()], y=[p[1] for p in pos.values()], mode="markers+text",
        text=labels, textposition="top center",
        marker=dict(size=[22 if n in (alerting, root) else 16 for n in pos], color=colours,
                    line=dict(color=outlines, width=[4 if n == alerting else 1 for n in pos])),
        hovertext=[_plain(f"{n} ({cmdb.items[n].get('kind')})") for n in pos], hoverinfo="text", showlegend=False,
    ))
    # room for half of the longest label beside the outermost nodes (centred labels, ~1/150 of the width a
    # character at 1400 px), so "cart-cache (root cause)" is not clipped at the edge
    longest = max((len(re.sub(r"<[^>]+>", "", t)) for t in labels), default=0)
    pad = max(0.08, 0.5 * longest / 150)
    story = " → ".join(_plain(p) for p in path) if path and len(path) > 1 else ""
    subtitle = f"<br><sup>propagation: {story}</sup>" if story else ""
    fig.update_layout(title=dict(text=title + "<br><sup>red: anomalous; bold: propagation path</sup>" + subtitle,
                                 font=dict(size=15)),
                      xaxis=dict(visible=False, range=[-pad, 1 + pad]), yaxis=dict(visible=False), autosize=True,
                      height=160 + 110 * len(by_layer), margin=dict(l=10, r=10, t=80, b=20))
    return fig


def latency_over_time(samples: pd.DataFrame, *, targets: dict | None = None) -> go.Figure:
    """Per-second P50/P95/P99 of a load test (``samples``: ``sent_at`` seconds, ``latency_ms``), in ms.

    ``targets``: ``{"p99_ms": 100, ...}`` drawn as dotted lines.
    """
    second = samples["sent_at"].astype(int)
    grouped = samples.groupby(second)["latency_ms"]
    quantiles = grouped.quantile([0.5, 0.95, 0.99]).unstack()
    x = quantiles.index - quantiles.index.min()
    fig = go.Figure()
    for q, name in ((0.5, "P50"), (0.95, "P95"), (0.99, "P99")):
        fig.add_trace(go.Scatter(x=x, y=quantiles[q], mode="lines", name=name))
    for name, value in (targets or {}).items():
        fig.add_hline(y=value, line=dict(dash="dot", color=MUTED), annotation_text=f"{name} target")
    fig.update_layout(title=dict(text="Latency over time<br><sup>per second, from each request's intended send time (or its issue, when the generator was late)</sup>",
                                 font=dict(size=15)),
                      xaxis_title="seconds into the test", yaxis_title="latency (ms)", height=380, autosize=True,
                      margin=dict(l=10, r=10, t=60, b=40))
    fig.update_yaxes(automargin=True)
    return fig


def latency_histogram(samples: pd.DataFrame) -> go.Figure:
    """How a load test's latencies (``samples['latency_ms']``, ms) are distributed, clipped at P99.9."""
    values = samples["latency_ms"].to_numpy()
    upper = float(np.quantile(values, 0.999)) if len(values) else 1.0
    fig = go.Figure(go.Histogram(x=np.clip(values, 0, upper), nbinsx=60, marker_color="#1565c0"))
    fig.update_layout(title=dict(text="Latency distribution<br><sup>clipped at P99.9</sup>", font=dict(size=15)), xaxis_title="latency (ms)", yaxis_title="requests",
                      height=340, autosize=True, margin=dict(l=10, r=10, t=60, b=40))
    fig.update_yaxes(automargin=True)
    return fig


def score_over_time(score: pd.Series, *, lines=(97, 95)) -> go.Figure:
    """The Ahsan score (0–100) over time, with the P2 (97) and P1 (95) lines dotted."""
    fig = go.Figure(go.Scatter(x=score.index, y=score, mode="lines", name="Ahsan score", line=dict(color="#1565c0")))
    for value, colour in zip(lines, (WARN, BAD)):
        fig.add_hline(y=value, line=dict(dash="dot", color=colour), annotation_text=str(value))
    fig.update_layout(title=dict(text="Ahsan score over the month<br><sup>5-minute window</sup>", font=dict(size=15)),
                      yaxis=dict(range=[max(0, score.min() - 2), 100.5], title="score (0–100)"),
                      height=360, autosize=True, margin=dict(l=10, r=10, t=60, b=40))
    fig.update_yaxes(automargin=True)
    return fig


def stacked_bars(frame: pd.DataFrame, *, title: str, yaxis: str = "") -> go.Figure:
    """One stacked bar per row of ``frame`` (e.g. per day), one colour per column (e.g. per kind)."""
    fig = go.Figure([go.Bar(x=frame.index.astype(str), y=frame[c], name=str(c)) for c in frame.columns])
    fig.update_layout(barmode="stack", title=dict(text=title, font=dict(size=15)), yaxis_title=yaxis, height=360,
                      autosize=True, margin=dict(l=10, r=10, t=60, b=40), legend=dict(orientation="h", y=-0.2))
    fig.update_yaxes(automargin=True)
    return fig


_STATE_COLOURS = {"red": BAD, "amber": WARN, "green": OK, "grey": MUTED}


def error_budget_bars(budgets: list[dict]) -> go.Figure:
    """The error budget remaining per SLO as horizontal bars (%), coloured by its state.

    Parameters
    ----------
    budgets
        ``summary["slos"]`` of an audit (each :meth:`bizra_nb.slo_budget.Budget.to_dict`).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar per SLO, in the spec's order from the top, keyed by the SLO's name (unique in a spec) and
        labelled with its display name (with the name too when display names repeat): red when the budget
        is exhausted (the bar goes below 0) or burning fast, amber when burning or under 25 % remaining,
        green otherwise (:func:`bizra_nb.summaries.budget_state`); an SLO that could not be measured gets no
        bar, its label says so. Shares as :func:`bizra_nb.slo_budget.budget_percent` writes them. Names,
        explanations and errors come from the spec and the source: escaped, shown as text.
    """
    from bizra_nb.slo_budget import budget_percent
    from bizra_nb.summaries import budget_state

    if not budgets:
        return _sentence_figure("Error budget remaining", "The spec has no SLO.")
    shown = list(budgets)[::-1]  # plotly draws the first bar at the bottom
    states = [budget_state(b) for b in shown]
    measured = [b.get("remaining") is not None and not b.get("error") for b in shown]
    values = [round(100 * b["remaining"], 1) if ok else None for b, ok in zip(shown, measured)]
    keys = [str(b.get("slo") or i) for i, b in enumerate(shown)]
    names = [" ".join(str(b.get("display_name") or b.get("slo") or "").split()) for b in shown]
    repeated = {n for n in names if names.count(n) > 1}
    labels = [_plain(_clipped(n, 48) + (f" ({_clipped(k, 40)})" if n in repeated and n != k else ""))
              for n, k in zip(names, keys)]
    texts = [_plain(f"{budget_percent(b['remaining'])} remaining ({state})" if ok else state)
             for b, ok, (state, _) in zip(shown, measured, states)]
    inside = [v is not None and v >= 60 for v in values]  # a long bar holds its words; others get them after 0
    fig = go.Figure(go.Bar(
        x=[0 if v is None else v for v in values], y=keys, orientation="h",
        text=[t if i else "" for t, i in zip(texts, inside)], textposition="inside",
        marker_color=[_STATE_COLOURS[colour] for _, colour in states],
        hovertext=[_plain(_clipped(b.get("explanation") or b.get("error") or "", 600)) for b in shown],
        hoverinfo="text",
    ))
    for value, key, text, placed in zip(values, keys, texts, inside):
        if not placed:
            fig.add_annotation(x=max(value or 0.0, 0.0), y=key, text=text, showarrow=False, xanchor="left", xshift=4)
    low = min([0.0, *(v for v in values if v is not None)])
    fig.add_vline(x=25, line=dict(color=WARN, dash="dot"))
    fig.update_layout(title=dict(text="Error budget remaining<br><sup>per SLO, at the end of its window; "
                                      "red: exhausted or fast burn, amber: burning or under 25 %</sup>",
                                 font=dict(size=15)),
                      xaxis=dict(title="budget remaining (%)", range=[low - 5, 105]),
                      height=140 + 40 * len(shown), autosize=True, margin=dict(l=10, r=10, t=60, b=40))
    fig.update_yaxes(automargin=True, type="category", categoryorder="array", categoryarray=keys,
                     tickmode="array", tickvals=keys, ticktext=labels)
    return fig


def _clipped(text: object, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with ``…`` when cut (an axis label of a figure)."""
    value = " ".join(str(text).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"
