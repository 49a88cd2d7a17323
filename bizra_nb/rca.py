"""The RCA engine: rank the services of a metric frame by how likely each is the root cause.

Pipeline (each step a function you can call alone)::

    prepare_frame        order, drop empty series, fill short gaps
    detect_anomaly_start change point on the symptom series (latency, errors) when no start is given
    score_metrics        robust deviation of every series after the start against its normal window
    rank_services        a service's score is its strongest metric; onsets per service
    refine_with_topology with a CMDB: a service explained by an earlier anomalous dependency ranks below it

The per-metric score follows BARO's robust scorer (median and inter-quartile
range of the normal window): a start off by a minute moves the median and IQR of
hours of normal data hardly at all. Direction matters per metric: a rise of
latency, errors, CPU or memory is bad; for throughput a drop is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.dataset import split_column
from bizra_nb.errors import InvalidInput
from bizra_nb.units import unit_of, with_unit

ANOMALOUS = 5.0  # robust z above which a series counts as anomalous
ONSET_Z = 4.0
MIN_NORMAL_POINTS = 10
_RISE_BAD = re.compile(r"lat|latency|duration|time|err|error|fail|cpu|mem|memory|gc|queue|restart|retr|loss|p9\d", re.I)
_DROP_BAD = re.compile(r"rate|load|workload|throughput|qps|rps|tps|requests|success|avail|hit", re.I)
_SYMPTOM = re.compile(r"lat|latency|duration|err|error|fail|p9\d", re.I)


def metric_direction(metric: str) -> str:
    """``"up"`` when a rise is bad, ``"down"`` when a drop is bad, ``"both"`` when unknown."""
    if _DROP_BAD.search(metric) and not _RISE_BAD.search(metric):
        return "down"
    if _RISE_BAD.search(metric):
        return "up"
    return "both"


@dataclass
class Evidence:
    metric: str
    direction: str  # "up" or "down": how the series moved
    magnitude: float  # robust z: deviation in units of the normal spread
    onset: pd.Timestamp | None
    normal: float  # median of the normal window
    peak: float  # the most deviant value after the start

    def as_dict(self) -> dict:
        return {"metric": self.metric, "direction": self.direction, "magnitude": round(self.magnitude, 2),
                "onset": _unix(self.onset), "normal": _round(self.normal), "peak": _round(self.peak)}


@dataclass
class Candidate:
    service: str
    score: float
    metric: str
    onset: pd.Timestamp | None
    evidence: list[Evidence] = field(default_factory=list)
    explanation: str = ""
    path: list[str] | None = None  # propagation path root → … → most affected dependent
    explained_by: str | None = None  # an earlier anomalous dependency that explains this one

    def as_dict(self) -> dict:
        out = {"service": self.service, "score": round(self.score, 3), "metric": self.metric,
               "onset": _unix(self.onset), "evidence": [e.as_dict() for e in self.evidence],
               "explanation": self.explanation}
        if self.path is not None:
            out["path"] = self.path
        return out


@dataclass
class Diagnosis:
    """A ranking of every service in the data, best root-cause candidate first."""

    anomaly_start: pd.Timestamp
    anomaly_start_detected: bool
    end: pd.Timestamp
    ranking: list[Candidate]
    warnings: list[str] = field(default_factory=list)

    def top(self, k: int = 3) -> list[str]:
        return [c.service for c in self.ranking[:k]]

    def as_dict(self) -> dict:
        """The ``bizra-nb diagnose --format json`` contract."""
        return {"anomaly_start": _unix(self.anomaly_start), "anomaly_start_detected": self.anomaly_start_detected,
                "end": _unix(self.end), "ranking": [c.as_dict() for c in self.ranking], "warnings": list(self.warnings)}

    def table(self, k: int | None = None) -> pd.DataFrame:
        """The ranking as a frame, one row per candidate, best first: ``rank`` (index), ``service``,
        ``score`` (deviation in units of normal spread), ``metric`` (the strongest), ``onset`` (UTC),
        ``explanation``.

        Parameters
        ----------
        k
            The top ``k`` candidates; None: all.

        Returns
        -------
        pandas.DataFrame
            Displayed with every explanation in full (no ``…`` at pandas' column width).
        """
        from bizra_nb.tables import FullTextFrame

        rows = [{"rank": n, "service": c.service, "score": round(c.score, 2), "metric": c.metric,
                 "onset": c.onset.strftime("%Y-%m-%d %H:%M:%S") if c.onset is not None else "-",
                 "explanation": c.explanation} for n, c in enumerate(self.ranking[:k], 1)]
        return FullTextFrame(pd.DataFrame(rows).set_index("rank") if rows else pd.DataFrame())


def _unix(ts: pd.Timestamp | None) -> float | None:
    return None if ts is None or pd.isna(ts) else round(ts.timestamp(), 3)


def _round(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(np.round(x, 4))


# -- steps -------------------------------------------------------------------------------


def prepare_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Sorted, numeric, empty series dropped, gaps of up to 4 steps filled; returns it and warnings."""
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise InvalidInput("the metric frame needs a DatetimeIndex (time)", field="data")
    warnings = []
    out = frame
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
        warnings.append("timestamps were not in increasing order (sorted before use)")
    if out.index.tz is None:
        out = out.tz_localize("UTC")
    out = out.apply(pd.to_numeric, errors="coerce").astype("float64")
    empty = [c for c in out.columns if out[c].notna().sum() == 0]
    if empty:
        warnings.append(f"{len(empty)} series without any value ignored: {', '.join(empty[:5])}")
        out = out.drop(columns=empty)
    bad_names = [c for c in out.columns if "_" not in str(c)]
    if bad_names:
        raise InvalidInput(f"column {bad_names[0]!r} is not named <service>_<metric>", field=str(bad_names[0]))
    if out.shape[1] == 0 or len(out) < MIN_NORMAL_POINTS + 2:
        raise InvalidInput(f"not enough data to diagnose: {len(out)} rows, {out.shape[1]} series "
                           f"(need at least {MIN_NORMAL_POINTS + 2} rows)", field="data")
    out = out.ffill(limit=4).bfill(limit=4)
    return out, warnings


def _robust_center_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and a robust spread per column (IQR, else MAD, else a small share of the level)."""
    with np.errstate(all="ignore"):
        q25, center, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
        scale = (q75 - q25) / 1.349
        mad = np.nanmedian(np.abs(values - center), axis=0) * 1.4826
        scale = np.where(scale > 0, scale, mad)
        std = np.nanstd(values, axis=0)
        scale = np.where(scale > 0, scale, std)
        floor = np.maximum(np.abs(center) * 0.01, 1e-6)  # constant normal window: 1 % of the level
        scale = np.where(np.isfinite(scale) & (scale > floor * 0.1), scale, floor)
    return center, scale


def _sustained(z: np.ndarray) -> np.ndarray:
    """The median of each value and its two neighbours: a lone spike does not count, a level shift does."""
    if len(z) < 3:
        return z
    padded = np.vstack([z[:1], z, z[-1:]])
    stacked = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    return np.nanmedian(stacked, axis=0)


def detect_anomaly_start(frame: pd.DataFrame) -> pd.Timestamp:
    """The most likely start of the anomaly: a mean-shift change point on the symptom series.

    Each symptom series (latency, errors; all series when there are none) is
    centred on its median and scaled by its noise, estimated from successive
    differences so that the level shift itself does not inflate it; the
    strongest few deviations per time step form one signal, whose best single
    mean-shift split is refined back to where the excursion began.
    """
    columns = [c for c in frame.columns if _SYMPTOM.search(split_column(c)[1])] or list(frame.columns)
    values = frame[columns].to_numpy(dtype="float64")
    center = np.nanmedian(values, axis=0)
    with np.errstate(all="ignore"):
        noise = np.nanmedian(np.abs(np.diff(values, axis=0)), axis=0) / (0.6745 * np.sqrt(2))
    scale = np.where(noise > 0, noise, np.maximum(np.abs(center) * 0.01, 1e-6))
    z = np.abs((values - center) / scale)
    z = np.nan_to_num(np.minimum(z, 50.0))
    k = max(1, min(3, z.shape[1]))
    signal = np.sort(_sustained(z), axis=1)[:, -k:].mean(axis=1)
    n = len(signal)
    lo = max(MIN_NORMAL_POINTS, int(n * 0.05))
    hi = n - 2
    if hi <= lo:
        return frame.index[n // 2]
    csum = np.concatenate([[0.0], np.cumsum(signal)])
    csq = np.concatenate([[0.0], np.cumsum(signal ** 2)])
    splits = np.arange(lo, hi)
    left_n, right_n = splits, n - splits
    left_sse = csq[splits] - csum[splits] ** 2 / left_n
    right_sse = (csq[n] - csq[splits]) - (csum[n] - csum[splits]) ** 2 / right_n
    split = int(splits[np.argmin(left_sse + right_sse)])
    before = signal[:split]
    base = np.median(before)
    spread = np.median(np.abs(before - base)) * 1.4826 or 1e-9
    threshold = base + 4 * spread
    while split > lo and signal[split - 1] > threshold:
        split -= 1
    return frame.index[split]


def score_metrics(frame: pd.DataFrame, anomaly_start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Per series: ``service, metric, magnitude, direction, onset, normal, peak`` (one row per column)."""
    normal = frame.loc[frame.index < anomaly_start]
    after = frame.loc[(frame.index >= anomaly_start) & (frame.index <= end)]
    if len(normal) < MIN_NORMAL_POINTS:
        raise InvalidInput(f"the anomaly start {anomaly_start.isoformat()} leaves {len(normal)} points of normal data "
                           f"before it; at least {MIN_NORMAL_POINTS} are needed", field="anomaly_start")
    if len(after) == 0:
        raise InvalidInput(f"no data between the anomaly start {anomaly_start.isoformat()} and the end "
                           f"{end.isoformat()}", field="anomaly_start")
    center, scale = _robust_center_scale(normal.to_numpy(dtype="float64"))
    z_after = _sustained((after.to_numpy(dtype="float64") - center) / scale)
    up = np.nanmax(np.where(np.isnan(z_after), -np.inf, z_after), axis=0)
    down = np.nanmax(np.where(np.isnan(z_after), -np.inf, -z_after), axis=0)
    up, down = np.maximum(up, 0), np.maximum(down, 0)
    metrics = [split_column(c) for c in frame.columns]
    dirs = np.array([metric_direction(m) for _, m in metrics])
    w_up = np.where(dirs == "down", 0.5, 1.0)
    w_down = np.where(dirs == "up", 0.25, 1.0)
    magnitude = np.maximum(up * w_up, down * w_down)
    moved_up = up * w_up >= down * w_down
    signed = np.where(moved_up, z_after, -z_after)
    peak_rows = np.nanargmax(np.where(np.isnan(signed), -np.inf, signed), axis=0)
    peaks = after.to_numpy(dtype="float64")[peak_rows, np.arange(len(metrics))]
    onsets = _onsets(frame, anomaly_start, end, center, scale, moved_up, magnitude)
    return pd.DataFrame({
        "column": frame.columns, "service": [s for s, _ in metrics], "metric": [m for _, m in metrics],
        "magnitude": magnitude, "direction": np.where(moved_up, "up", "down"), "onset": onsets,
        "normal": center, "peak": peaks,
    })


def _onsets(frame, anomaly_start, end, center, scale, moved_up, magnitude) -> list:
    """First time each series leaves its normal band for good, looking a little before the start too."""
    lookback = max(pd.Timedelta(minutes=5), (end - anomaly_start) * 0.25)
    window = frame.loc[(frame.index >= anomaly_start - lookback) & (frame.index <= end)]
    z = (window.to_numpy(dtype="float64") - center) / scale
    z = np.where(moved_up, z, -z)
    threshold = np.maximum(ONSET_Z, np.minimum(0.4 * magnitude, 10.0))  # slow ramps: do not wait for the top
    above = np.nan_to_num(z) > threshold
    run = above.copy()
    run[:-1] &= above[1:]  # two consecutive points
    if len(run) > 2:
        run[:-2] &= above[2:]  # three
    first = np.argmax(run, axis=0)
    found = run[first, np.arange(run.shape[1])]
    return [window.index[i] if ok and magnitude[j] >= ANOMALOUS else None
            for j, (i, ok) in enumerate(zip(first, found))]


def rank_services(scores: pd.DataFrame) -> list[Candidate]:
    """One candidate per service: its strongest metric decides its score; evidence is its anomalous metrics."""
    candidates = []
    for service, rows in scores.groupby("service", sort=False):
        rows = rows.sort_values("magnitude", ascending=False)
        best = rows.iloc[0]
        evidence = [Evidence(r.metric, r.direction, float(r.magnitude), None if pd.isna(r.onset) else r.onset,
                             float(r.normal), float(r.peak))
                    for r in rows.itertuples() if r.magnitude >= ANOMALOUS][:5]
        onsets = [e.onset for e in evidence if e.onset is not None]
        candidates.append(Candidate(service=str(service), score=float(best.magnitude), metric=str(best.metric),
                                    onset=min(onsets) if onsets else None, evidence=evidence))
    candidates.sort(key=lambda c: -c.score)
    return candidates


def refine_with_topology(candidates: list[Candidate], cmdb: Cmdb, *, tolerance: pd.Timedelta) -> list[Candidate]:
    """Rank a service explained by an earlier (or simultaneous) anomalous dependency below that dependency.

    A fault spreads from a dependency to its callers. When service S and one of
    its transitive dependencies D are both anomalous and D's onset is no later
    than S's (within ``tolerance``), S is more likely a symptom of D: S's score
    is capped below D's. Dependencies are handled before their callers.
    """
    by_id = {c.service: c for c in candidates}
    anomalous = {c.service for c in candidates if c.score >= ANOMALOUS and c.onset is not None}
    adjusted = {c.service: c.score for c in candidates}
    order = _dependencies_first([c.service for c in candidates], cmdb)
    for service in order:
        cand = by_id[service]
        if service not in anomalous or service not in cmdb.items:
            continue
        explainers = [d["id"] for d in cmdb.upstream(service)
                      if d["id"] in anomalous and by_id[d["id"]].onset <= cand.onset + tolerance]
        if explainers:
            strongest = max(explainers, key=lambda d: adjusted[d])
            cand.explained_by = strongest
            adjusted[service] = min(adjusted[service], 0.9 * adjusted[strongest])
    for cand in candidates:
        cand.score = adjusted[cand.service]
    candidates.sort(key=lambda c: -c.score)
    for cand in candidates:
        if cand.service in anomalous and cand.explained_by is None and cand.service in cmdb.items:
            cand.path = _propagation_path(cand.service, cmdb, anomalous)
    return candidates


def _dependencies_first(services: list[str], cmdb: Cmdb) -> list[str]:
    known = [s for s in services if s in cmdb.items]
    depth = {s: max((d["distance"] for d in cmdb.upstream(s)), default=0) for s in known}
    return sorted(known, key=lambda s: depth[s]) + [s for s in services if s not in cmdb.items]


def _propagation_path(root: str, cmdb: Cmdb, anomalous: set[str]) -> list[str]:
    """The longest chain of anomalous callers starting at ``root`` (root first)."""
    best = [root]
    stack = [[root]]
    while stack:
        path = stack.pop()
        extended = False
        for caller in cmdb.dependents(path[-1]):
            if caller in anomalous and caller not in path:
                stack.append(path + [caller])
                extended = True
        if not extended and len(path) > len(best):
            best = path
    return best


def explain(c: Candidate, ranking: list[Candidate], cmdb: Cmdb | None) -> str:
    """One sentence saying why a candidate ranks where it does."""
    if not c.evidence:
        return f"{c.service}: no metric left its normal range (strongest deviation {c.score:.1f}x the normal spread)."
    e = c.evidence[0]
    moved = "rose" if e.direction == "up" else "fell"
    when = f" from {c.onset:%H:%M:%S} UTC" if c.onset is not None else ""
    unit = unit_of(e.metric, cmdb.items.get(c.service) if cmdb is not None else None)
    head = (f"{c.service}: {e.metric} {moved} to {_fmt(e.peak, unit)} (normally {_fmt(e.normal, unit)}, "
            f"{e.magnitude:.1f}x the normal spread){when}")
    if c.explained_by:
        return head + f", after its dependency {c.explained_by} was already anomalous, so it is likely a symptom."
    if cmdb is not None and c.path and len(c.path) > 1:
        return head + f", before its dependents {' -> '.join(c.path[1:])}; no anomalous dependency explains it."
    if cmdb is not None and c.service in cmdb.items:
        return head + "; no anomalous dependency explains it."
    return head + "."


def _fmt(x: float, unit: str = "") -> str:
    """``x`` in the unit the tables and plots use (a ratio as %: "13.27 %"); a bare number without a unit."""
    if not np.isfinite(x):
        return "n/a"
    return with_unit(x, unit) if unit else f"{x:.4g}"


# -- the whole pipeline ---------------------------------------------------------------------


def rank_root_causes(
    frame: pd.DataFrame,
    *,
    anomaly_start=None,
    end=None,
    cmdb: Cmdb | None = None,
) -> Diagnosis:
    """Rank every service of ``frame`` as a root-cause candidate.

    Parameters
    ----------
    frame
        Wide metric frame: UTC ``DatetimeIndex``, columns ``<service>_<metric>``.
    anomaly_start
        When the incident began (unix seconds, ISO-8601 or Timestamp); detected when None.
    end
        The end of the incident window; the frame's end when None.
    cmdb
        Dependencies between services; refines the ranking and gives propagation paths.

    Returns
    -------
    Diagnosis
        Every service once, best candidate first, with evidence and a one-sentence explanation.

    Examples
    --------
    >>> from bizra_nb.fleet import random_case
    >>> case = random_case(3)
    >>> diagnosis = rank_root_causes(case.metrics, cmdb=case.cmdb)
    >>> diagnosis.top(1) == [case.faults[0].service]
    True
    """
    from bizra_nb.sources import to_timestamp

    data, warnings = prepare_frame(frame)
    start = to_timestamp(anomaly_start, name="anomaly_start")
    stop = to_timestamp(end, name="end") or data.index[-1]
    if start is not None and start >= stop:
        raise InvalidInput(f"anomaly_start ({start.isoformat()}) must be before end ({stop.isoformat()})",
                           field="anomaly_start")
    window = data.loc[:stop]
    detected = start is None
    if detected:
        start = detect_anomaly_start(window)
    elif start <= window.index[0] or start > window.index[-1]:
        raise InvalidInput(f"anomaly_start {start.isoformat()} is outside the data "
                           f"({window.index[0].isoformat()} .. {window.index[-1].isoformat()})", field="anomaly_start")
    scores = score_metrics(window, start, stop)
    ranking = rank_services(scores)
    if cmdb is not None:
        unknown = sorted({c.service for c in ranking} - set(cmdb.items))
        if unknown:
            warnings.append(f"services not in the CMDB (ranked without topology): {', '.join(unknown[:10])}")
        step = window.index.to_series().diff().median()
        ranking = refine_with_topology(ranking, cmdb, tolerance=max(pd.Timedelta(seconds=30), 2 * step))
    for cand in ranking:
        cand.explanation = explain(cand, ranking, cmdb)
    return Diagnosis(anomaly_start=start, anomaly_start_detected=detected, end=stop, ranking=ranking,
                     warnings=warnings)
