"""Plotly figures of the platform: rankings, time series with onsets, the CMDB graph, latency and score views."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bizra_nb.cmdb import Cmdb
from bizra_nb.rca import Diagnosis

OK, WARN, BAD, MUTED = "#2e7d32", "#ef6c00", "#c62828", "#9e9e9e"


def ranking_bar(diagnosis: Diagnosis, k: int = 10) -> go.Figure:
    """The top ``k`` candidates' scores, the strongest metric on each bar."""
    top = diagnosis.ranking[:k][::-1]
    fig = go.Figure(go.Bar(
        x=[c.score for c in top], y=[c.service for c in top], orientation="h",
        text=[c.metric for c in top], textposition="auto",
        marker_color=[BAD if i == len(top) - 1 else (WARN if c.explained_by else MUTED) for i, c in enumerate(top)],
        hovertext=[c.explanation for c in top],
    ))
    fig.update_layout(title="Root-cause candidates (score: deviation in units of normal spread)",
                      xaxis_title="score", height=120 + 32 * len(top), margin=dict(l=140, r=20, t=50, b=40))
    return fig


def candidate_series(frame: pd.DataFrame, diagnosis: Diagnosis, k: int = 3) -> go.Figure:
    """The strongest metric of each top candidate over time, the anomaly start and each onset marked."""
    top = diagnosis.ranking[:k]
    fig = make_subplots(rows=len(top), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"{c.service}: {c.metric}" for c in top])
    for row, cand in enumerate(top, start=1):
        column = f"{cand.service}_{cand.metric}"
        if column in frame:
            fig.add_trace(go.Scatter(x=frame.index, y=frame[column], mode="lines", name=column,
                                     line=dict(color=BAD if row == 1 else "#1565c0")), row=row, col=1)
        if cand.onset is not None:
            fig.add_vline(x=cand.onset, line=dict(color=WARN, dash="dot"), row=row, col=1)
        fig.add_vline(x=diagnosis.anomaly_start, line=dict(color=BAD, dash="dash"), row=row, col=1)
    fig.update_layout(title="Top candidates (dashed: anomaly start, dotted: onset)", showlegend=False,
                      height=220 * max(1, len(top)) + 60, margin=dict(l=60, r=20, t=70, b=40))
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
               title: str = "Service dependencies") -> go.Figure:
    """The depends_on graph in layers (callers on top), anomalous nodes red, the propagation path bold."""
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
    colours = [BAD if n in anomalous else OK for n in pos]
    fig.add_trace(go.Scatter(
        x=[p[0] for p in pos.values()], y=[p[1] for p in pos.values()], mode="markers+text",
        text=list(pos), textposition="top center", marker=dict(size=16, color=colours, line=dict(color="#fff", width=1)),
        hovertext=[f"{n} ({cmdb.items[n].get('kind')})" for n in pos], hoverinfo="text", showlegend=False,
    ))
    fig.update_layout(title=title + " (callers above their dependencies; red: anomalous)",
                      xaxis=dict(visible=False), yaxis=dict(visible=False),
                      height=140 + 110 * len(by_layer), margin=dict(l=20, r=20, t=60, b=20))
    return fig


def latency_over_time(samples: pd.DataFrame, *, targets: dict | None = None) -> go.Figure:
    """Per-second P50/P95/P99 of a load test (``samples``: ``sent_at`` seconds, ``latency_ms``)."""
    second = samples["sent_at"].astype(int)
    grouped = samples.groupby(second)["latency_ms"]
    quantiles = grouped.quantile([0.5, 0.95, 0.99]).unstack()
    x = quantiles.index - quantiles.index.min()
    fig = go.Figure()
    for q, name in ((0.5, "P50"), (0.95, "P95"), (0.99, "P99")):
        fig.add_trace(go.Scatter(x=x, y=quantiles[q], mode="lines", name=name))
    for name, value in (targets or {}).items():
        fig.add_hline(y=value, line=dict(dash="dot", color=MUTED), annotation_text=f"{name} target")
    fig.update_layout(title="Latency over time (per second, from each request's intended send time)",
                      xaxis_title="seconds into the test", yaxis_title="ms", height=380)
    return fig


def latency_histogram(samples: pd.DataFrame) -> go.Figure:
    values = samples["latency_ms"].to_numpy()
    upper = float(np.quantile(values, 0.999)) if len(values) else 1.0
    fig = go.Figure(go.Histogram(x=np.clip(values, 0, upper), nbinsx=60, marker_color="#1565c0"))
    fig.update_layout(title="Latency distribution (clipped at P99.9)", xaxis_title="ms", yaxis_title="requests",
                      height=340)
    return fig


def score_over_time(score: pd.Series, *, lines=(97, 95)) -> go.Figure:
    fig = go.Figure(go.Scatter(x=score.index, y=score, mode="lines", name="Ahsan score", line=dict(color="#1565c0")))
    for value, colour in zip(lines, (WARN, BAD)):
        fig.add_hline(y=value, line=dict(dash="dot", color=colour), annotation_text=str(value))
    fig.update_layout(title="Ahsan score over the month (5-minute window)", yaxis=dict(range=[max(0, score.min() - 2), 100.5]),
                      height=360)
    return fig


def stacked_bars(frame: pd.DataFrame, *, title: str, yaxis: str = "") -> go.Figure:
    fig = go.Figure([go.Bar(x=frame.index.astype(str), y=frame[c], name=str(c)) for c in frame.columns])
    fig.update_layout(barmode="stack", title=title, yaxis_title=yaxis, height=360)
    return fig
