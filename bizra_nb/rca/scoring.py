"""Each series' deviation after the start, and a candidate per service with its evidence and kind."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bizra_nb.dataset import split_column
from bizra_nb.errors import InvalidInput
from bizra_nb.rca.metrics import _SYMPTOM, _badness, is_resource, metric_direction
from bizra_nb.rca.model import Candidate, Evidence
from bizra_nb.rca.series import (MIN_NORMAL_POINTS, _local_shift, _normal_rows, _quiet_nan, _median,
                                 _robust_center_scale, _step, _sustained, step_scores, step_width)

ANOMALOUS = 5.0  # robust z above which a series counts as anomalous
ABRUPT = 3.0  # step score near the onset above which a change is abrupt (a fault), not a drift (a rhythm)
DRIFT_WEIGHT = 0.5  # a deviation without an abrupt change counts this much
ONSET_Z = 4.0


def score_metrics(frame: pd.DataFrame, anomaly_start: pd.Timestamp, end: pd.Timestamp, *,
                  expected: pd.DataFrame | None = None, steps: np.ndarray | None = None) -> pd.DataFrame:
    """Per series: ``service, metric, magnitude, direction, onset, normal, peak, shift, abrupt`` (a row per column).

    ``magnitude`` is the strongest sustained deviation after the start in units of the normal spread;
    ``shift`` the sustained (median) deviation after the start in the bad direction, in standard errors:
    a weak but steady change; ``abrupt`` the largest step score near the series' onset (0 for a slow drift).
    With ``expected`` (the usual value at that time of day), deviations are measured from it.
    """
    normal_mask = frame.index < anomaly_start
    after_mask = (frame.index >= anomaly_start) & (frame.index <= end)
    n_normal, n_after = int(normal_mask.sum()), int(after_mask.sum())
    if n_normal < MIN_NORMAL_POINTS:
        raise InvalidInput(f"the anomaly start {anomaly_start.isoformat()} leaves {n_normal} points of normal data "
                           f"before it; at least {MIN_NORMAL_POINTS} are needed", field="anomaly_start")
    if n_after == 0:
        raise InvalidInput(f"no data between the anomaly start {anomaly_start.isoformat()} and the end "
                           f"{end.isoformat()}", field="anomaly_start")
    actual = frame.to_numpy(dtype="float64")
    values = actual - expected.to_numpy(dtype="float64") if expected is not None else actual
    width = step_width(len(values))
    steps = step_scores(values, width) if steps is None else steps
    normal = _normal_rows(values[:n_normal], n_normal, width, steps)  # the index is sorted: normal rows come first
    center, scale = _robust_center_scale(normal)
    after = values[after_mask]
    z_after = _sustained((after - center) / scale)
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
    peaks = actual[after_mask][peak_rows, np.arange(len(metrics))]
    normals = (expected.to_numpy(dtype="float64")[after_mask][peak_rows, np.arange(len(metrics))] + center
               if expected is not None else center)
    bad = _badness(frame.columns)
    sign = np.where(bad == 0, np.where(moved_up, 1.0, -1.0), bad)
    shift = _local_shift(values, n_normal, sign)
    frame_view = pd.DataFrame(values, index=frame.index, columns=frame.columns)
    onsets = _onsets(frame_view, anomaly_start, end, center, scale, moved_up, magnitude)
    with _quiet_nan(), np.errstate(all="ignore"):
        ratio = _median(actual[after_mask]) / _median(actual[:n_normal])
    steps = steps * np.where(moved_up, 1.0, -1.0)
    lookback = max(pd.Timedelta(minutes=5), 2 * width * _step(frame))
    near = np.asarray((frame.index >= anomaly_start - lookback) & (frame.index <= end))
    abrupt = np.max(np.where(near[:, None], steps, 0.0), axis=0)
    return pd.DataFrame({
        "column": frame.columns, "service": [s for s, _ in metrics], "metric": [m for _, m in metrics],
        "magnitude": magnitude, "direction": np.where(moved_up, "up", "down"), "onset": onsets,
        "normal": normals, "peak": peaks, "shift": shift, "abrupt": abrupt, "ratio": ratio,
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
    """One candidate per service: its strongest metric decides its score; evidence is its anomalous metrics
    that changed for the worse (more traffic is not evidence; less is).

    A deviation without an abrupt change (a slow drift, the daily rhythm) counts half: what broke at the
    start outranks what drifted over hours.
    """
    effective = np.where(scores["abrupt"] >= ABRUPT, scores["magnitude"], scores["magnitude"] * DRIFT_WEIGHT)
    symptom = scores["metric"].str.contains(_SYMPTOM).to_numpy()
    traffic_rows = (scores["metric"].map(metric_direction) == "down").to_numpy()
    wanted = scores["metric"].map(metric_direction).to_numpy()  # evidence is a change for the worse
    bad_way = (wanted == "both") | (wanted == scores["direction"].to_numpy())
    is_evidence = ((scores["magnitude"] >= ANOMALOUS) & (scores["abrupt"] >= ABRUPT)).to_numpy() & bad_way
    shift = scores["shift"].to_numpy()
    services, metrics = scores["service"].to_numpy(), scores["metric"].to_numpy()
    order = np.lexsort((-effective, services))  # by service, strongest first
    candidates = []
    for service in pd.unique(services):
        rows = order[services[order] == service]
        evidence = [Evidence(metrics[i], scores["direction"].iat[i], float(scores["magnitude"].iat[i]),
                             None if pd.isna(scores["onset"].iat[i]) else scores["onset"].iat[i],
                             float(scores["normal"].iat[i]), float(scores["peak"].iat[i]))
                    for i in rows if is_evidence[i]][:5]
        onsets = [e.onset for e in evidence if e.onset is not None]
        kind = "resource" if any(is_resource(e.metric) for e in evidence) or not any(
            _SYMPTOM.search(e.metric) for e in evidence) else "code"
        symptoms = rows[symptom[rows]]
        traffic = rows[traffic_rows[rows]]
        candidates.append(Candidate(service=str(service), score=float(effective[rows[0]]), metric=str(metrics[rows[0]]),
                                    onset=min(onsets) if onsets else None, evidence=evidence, kind=kind,
                                    shift=float(shift[rows].max()),
                                    symptom_shift=float(shift[symptoms].max()) if len(symptoms) else 0.0,
                                    traffic_shift=float(shift[traffic].max()) if len(traffic) else 0.0))
    candidates.sort(key=lambda c: -c.score)
    return candidates
