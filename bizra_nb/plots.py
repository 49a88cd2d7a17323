"""Plotly figures of the platform: rankings, time series with onsets, the CMDB graph, latency and score views."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bizra_nb.cmdb import Cmdb
from bizra_nb.rca import Diagnosis
from bizra_nb.units import shown_unit, unit_of

OK, WARN, BAD, MUTED = "#2e7d32", "#ef6c00", "#c62828", "#9e9e9e"


def ranking_bar(diagnosis: Diagnosis, k: int = 10) -> go.Figure:
    """The root-cause candidates with evidence as horizontal bars, the strongest metric on each.

    Parameters
    ----------
    diagnosis
        From :func:`bizra_nb.diagnose.diagnose` or :func:`bizra_nb.rca.rank_root_causes`.
    k
        At most this many bars. Services without evidence (never left their normal
        range) get no bar: the title says how many there are.

    Returns
    -------
    plotly.graph_objects.Figure
        Red: the most likely cause; orange: explained by an earlier anomalous dependency.
    """
    with_evidence = [c for c in diagnosis.ranking if c.evidence]
    quiet = len(diagnosis.ranking) - len(with_evidence)
    top = with_evidence[:k][::-1]
    fig = go.Figure(go.Bar(
        x=[c.score for c in top], y=[c.service for c in top], orientation="h",
        text=[f"{c.metric} ({shown_unit(unit_of(c.metric)) or 'no unit'})" for c in top], textposition="auto",
        marker_color=[BAD if i == len(top) - 1 else (WARN if c.explained_by else MUTED) for i, c in enumerate(top)],
        hovertext=[c.explanation for c in top],
    ))
    note = f"<br><sup>most likely cause on top; {quiet} other service(s) stayed normal</sup>" if quiet else \
        "<br><sup>most likely cause on top</sup>"
    fig.update_layout(title=dict(text=f"Anomalous services{note}", font=dict(size=15)),
                      xaxis_title="deviation (× normal spread)", height=140 + 36 * max(1, len(top)),
                      margin=dict(l=10, r=10, t=50, b=40), autosize=True)
    fig.update_yaxes(automargin=True)
    return fig


def candidate_series(frame: pd.DataFrame, diagnosis: Diagnosis, k: int = 3) -> go.Figure:
    """The strongest metric of each of the top ``k`` candidates with evidence over time, with units.

    The dashed line marks the anomaly start, the dotted one each candidate's onset.
    """
    top = [c for c in diagnosis.ranking if c.evidence][:k] or diagnosis.ranking[:1]
    fig = make_subplots(rows=max(1, len(top)), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"{c.service}: {c.metric}" + (f" ({shown_unit(unit_of(c.metric))})" if unit_of(c.metric) else "")
                                        for c in top])
    for row, cand in enumerate(top, start=1):
        column = f"{cand.service}_{cand.metric}"
        unit = unit_of(cand.metric)
        if column in frame:
            values = frame[column] * (100 if unit == "ratio" else 1)
            fig.add_trace(go.Scatter(x=frame.index, y=values, mode="lines", name=column,
                                     line=dict(color=BAD if row == 1 else "#1565c0")), row=row, col=1)
            fig.update_yaxes(title_text=shown_unit(unit), row=row, col=1)
        if cand.onset is not None:
            fig.add_vline(x=cand.onset, line=dict(color=WARN, dash="dot"), row=row, col=1)
        fig.add_vline(x=diagnosis.anomaly_start, line=dict(color=BAD, dash="dash"), row=row, col=1)
    fig.update_layout(title=dict(text="Top candidates over time<br><sup>dashed: anomaly start, dotted: onset</sup>",
                                 font=dict(size=15)),
                      showlegend=False, height=220 * max(1, len(top)) + 60, margin=dict(l=10, r=10, t=80, b=40),
                      autosize=True)
    fig.update_yaxes(automargin=True)
    return fig


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
    labels = [f"<b>{n}</b> (alerting)" if n == alerting else (f"<b>{n}</b> (root cause)" if n == root else n)
              for n in pos]
    fig.add_trace(go.Scatter(
        x=[p[0] for p in pos.values()], y=[p[1] for p in pos.values()], mode="markers+text",
        text=labels, textposition="top center",
        marker=dict(size=[22 if n in (alerting, root) else 16 for n in pos], color=colours,
                    line=dict(color=outlines, width=[4 if n == alerting else 1 for n in pos])),
        hovertext=[f"{n} ({cmdb.items[n].get('kind')})" for n in pos], hoverinfo="text", showlegend=False,
    ))
    # room for half of the longest label beside the outermost nodes (centred labels, ~1/150 of the width a
    # character at 1400 px), so "cart-cache (root cause)" is not clipped at the edge
    longest = max((len(re.sub(r"<[^>]+>", "", t)) for t in labels), default=0)
    pad = max(0.08, 0.5 * longest / 150)
    story = " → ".join(path) if path and len(path) > 1 else ""
    subtitle = f"<br><sup>propagation: {story}</sup>" if story else ""  # names are CMDB ids: plotly shows text
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
    fig.update_layout(title=dict(text="Latency over time<br><sup>per second, from each request's intended send time</sup>",
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
