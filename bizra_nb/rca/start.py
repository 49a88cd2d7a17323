"""When the anomaly began: a consensus of abrupt changes for the worse across services, with its confidence."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bizra_nb.dataset import split_column
from bizra_nb.rca.metrics import _SYMPTOM, _badness
from bizra_nb.rca.series import MIN_NORMAL_POINTS, _median, _noise, step_scores, step_width

SERVICE_CAP = 10.0  # start detection: the most one series counts (in noise units)
COHERENCE_POWER = 6  # start detection: a moment where series also change for the better is a change of period


def detect_start(frame: pd.DataFrame, steps: np.ndarray | None = None, *, earliest: int = 0,
                 alternative: bool = False) -> tuple:
    """The most likely start of the anomaly and the confidence in it (0..1).

    Consensus of abrupt changes: per series, the step score (:func:`step_scores`) signed so that a change
    in the bad direction counts positive (a drop of throughput, a rise of latency, errors, CPU) and one in
    the good direction negative; per service its strongest series; the moment where the most services
    change for the worse together wins (a single noisy series is one service among many; steps in random
    directions, as when the data was recorded in another period, cancel out). The start is then moved back
    to where the contributing series first left their normal band (a slow ramp starts before its steepest
    point). The confidence is the winner's margin over the best moment elsewhere. The start is looked for
    from row ``earliest`` on (the rows before are history). With ``alternative``, a third value: that
    best moment elsewhere (dated the same way), or None.
    """
    values = frame.to_numpy(dtype="float64")
    n = len(values)
    width = step_width(n)
    steps = step_scores(values, width) if steps is None else steps
    lasting = step_scores(values, width, after=4 * width)
    agree = np.sign(steps) == np.sign(lasting)  # the change lasts: the smaller of the two counts
    steps = np.where(agree, np.sign(steps) * np.minimum(np.abs(steps), np.abs(lasting)), 0.0)
    bad = _badness(frame.columns)
    signed = np.where(bad == 0, np.abs(steps), steps * bad)
    signed = np.clip(signed, -SERVICE_CAP, SERVICE_CAP)  # breadth (services changing together) over height
    signed = np.where(np.abs(signed) >= 3.0, signed, 0.0)
    services = np.array([split_column(c)[0] for c in frame.columns])
    codes, inverse = np.unique(services, return_inverse=True)
    worse = np.zeros((n, len(codes)))  # per service: its series that changed for the worse, up to two
    np.add.at(worse.T, inverse, signed.T.clip(min=0))
    worse = np.minimum(worse, 2 * SERVICE_CAP)
    better = np.zeros((n, len(codes)))
    np.maximum.at(better.T, inverse, (-signed).T.clip(min=0))
    spread = max(1, width // 2)
    span = 2 * spread + 1

    def around(x: np.ndarray) -> np.ndarray:  # the largest value within +-spread (propagation delays)
        return pd.DataFrame(x).rolling(span, center=True, min_periods=1).max().to_numpy()

    worse, better = around(worse), around(better)
    # a fault makes things worse coherently; a change of period (data recorded elsewhere) moves series both ways,
    # and latency or errors that abruptly improve are very rarely part of a fault
    n_worse, n_better = (worse > 0).sum(axis=1), (better > 0).sum(axis=1)
    coherence = n_worse / np.maximum(n_worse + n_better, 1)
    symptoms = np.array([bool(_SYMPTOM.search(split_column(c)[1])) for c in frame.columns])
    improved = (around(np.where(symptoms, -signed, 0.0)) >= 3.0).sum(axis=1)
    smooth = worse.sum(axis=1) * coherence ** COHERENCE_POWER * 0.5 ** improved
    lo = min(max(MIN_NORMAL_POINTS, earliest), n - 1)
    hi = n - max(1, width // 2)
    if hi <= lo:
        return (frame.index[(lo + n) // 2], 0.0) + ((None,) if alternative else ())
    best = lo + int(np.argmax(smooth[lo:hi]))
    peak = smooth[best]
    if peak <= 0:
        return (frame.index[(lo + n) // 2], 0.0) + ((None,) if alternative else ())
    # of the moments nearly as strong, the most coherent: a fault makes things worse, all of them
    close = lo + np.flatnonzero(smooth[lo:hi] >= 0.5 * peak)
    purest = close[coherence[close] >= coherence[close].max() - 1e-9]
    if coherence[best] < coherence[purest].max():
        best = int(purest[np.argmax(smooth[purest])])
        peak = smooth[best]
    elsewhere = smooth.copy()
    elsewhere[:lo], elsewhere[hi:] = -np.inf, -np.inf
    elsewhere[max(lo, best - 3 * width):min(hi, best + 3 * width)] = -np.inf
    second = int(np.argmax(elsewhere)) if np.isfinite(elsewhere).any() else None
    runner_up = float(elsewhere[second]) if second is not None else 0.0
    confidence = float(np.clip(1 - max(runner_up, 0.0) / peak, 0, 1))
    raw = np.where(bad == 0, np.abs(steps), steps * bad)  # signed, before the cap and the threshold
    found = frame.index[_earliest_onset(values, best, signed, raw, bad, width, spread, lo)]
    if alternative:
        other = (frame.index[_earliest_onset(values, second, signed, raw, bad, width, spread, lo)]
                 if second is not None and runner_up > 0 else None)
        return found, confidence, other
    return found, confidence


def _earliest_onset(values: np.ndarray, best: int, signed: np.ndarray, raw: np.ndarray, bad: np.ndarray, width: int,
                    spread: int, lo: int) -> int:
    """The earliest consistent onset of the change found at ``best``.

    Each series that steps for the worse there gets its own onset: back from ``best`` while its step score
    (``raw``) stays above half the threshold (a slow ramp keeps it up from where it began), then the
    first of three points in a row 3 noise units beyond its level just before that. The earliest onset that a second series confirms within
    two step widths wins (one noisy series cannot pull the start early; a slower series of the same
    fault still confirms).
    """
    n = len(values)
    around = slice(max(0, best - spread), min(n, best + spread + 1))
    movers = np.flatnonzero(signed[around].max(axis=0) >= 3.0)
    if len(movers) == 0:
        return best
    noise = _noise(values[:, movers])
    onsets = []

    for k, j in enumerate(movers):
        rise = best
        while rise - 1 > lo and raw[rise - 1, j] >= 1.5:  # hysteresis: a noisy ramp dips below 3
            rise -= 1
        before = values[max(0, rise - 3 * width):max(1, rise - spread), j]
        center = _median(before[:, None])[0] if len(before) else values[0, j]
        sign = bad[j] if bad[j] != 0 else np.sign(_median(values[best:best + width, j][:, None])[0] - center) or 1.0
        first = max(lo, rise - width)
        z = (values[first:min(n, best + 2 * width), j] - center) * sign / noise[k]
        above = np.nan_to_num(z) >= 3.0
        run = above[:-2] & above[1:-1] & above[2:] if len(above) > 2 else above
        if run.any():
            onsets.append(first + int(np.argmax(run)))
    if not onsets:
        return best
    onsets = np.sort(onsets)
    for i in range(len(onsets) - 1):
        if onsets[i + 1] - onsets[i] <= 2 * width:
            return int(onsets[i])
    return int(np.median(onsets))


def detect_anomaly_start(frame: pd.DataFrame) -> pd.Timestamp:
    """The most likely start of the anomaly (see :func:`detect_start`, which also gives its confidence)."""
    return detect_start(frame)[0]
