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

import contextlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.dataset import split_column
from bizra_nb.errors import InvalidInput, excerpt
from bizra_nb.units import unit_of, with_unit

ANOMALOUS = 5.0  # robust z above which a series counts as anomalous
SERVICE_CAP = 10.0  # start detection: the most one series counts (in noise units)
COHERENCE_POWER = 6  # start detection: a moment where series also change for the better is a change of period
STANDOUT = 3.0  # during a traffic surge, a service this many times more deviant than the typical one is a fault
ABRUPT = 3.0  # step score near the onset above which a change is abrupt (a fault), not a drift (a rhythm)
LATE_WEIGHT = 0.5  # an independent anomaly that began minutes after the first one counts this much
CO_MOVING = 0.4  # correlation of traffic changes above which two services are taken as calling each other
ISOLATED_WEIGHT = 0.5  # an anomaly that reached none of its callers while another did counts this much
DRIFT_WEIGHT = 0.5  # a deviation without an abrupt change counts this much
WEAK_SHIFT = 3.0  # a steady change in standard errors: weak evidence at a quiet dependency (callers' view)
CONFIDENT = (0.5, 0.25)  # confidence score thresholds of "high" and "medium" (calibrated: benchmarks/rca_accuracy.py)
KINDS = ("resource", "code", "dependency_edge", "no_metrics")
_RESOURCE = re.compile(r"^(cpu|mem|memory|gc|threads?|disk|fds?|heap|swap|io|iops|oom)", re.I)  # a name token
ONSET_Z = 4.0
MIN_NORMAL_POINTS = 3  # fewer normal points than this: refused (below 10 a warning names how few)
FEW_NORMAL_POINTS = 10
_RISE_BAD = re.compile(r"lat|latency|duration|time|err|error|fail|cpu|mem|memory|gc|queue|restart|retr|loss|p9\d", re.I)
_DROP_BAD = re.compile(r"rate|load|workload|throughput|qps|rps|tps|requests|success|avail|hit", re.I)
_SYMPTOM = re.compile(r"lat|latency|duration|err|error|fail|p9\d", re.I)


def is_resource(metric: str) -> bool:
    """A resource metric (CPU, memory, GC, threads, disk, file descriptors…), by whole name tokens: not
    ``duration`` nor ``error_ratio`` (their ``io`` is no I/O); a latency or error metric never is one."""
    if _SYMPTOM.search(metric):
        return False
    return any(_RESOURCE.match(token) for token in re.split(r"[_\-.]", metric) if token)


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
    kind: str = "resource"  # one of KINDS: what the evidence points at
    edge: tuple[str, str] | None = None  # kind dependency_edge: (caller, callee) whose calls slowed
    shift: float = 0.0  # the strongest steady change of its series after the start, in standard errors
    symptom_shift: float = 0.0  # the same, of its latency and error series only
    traffic_shift: float = 0.0  # the same, of its throughput series only (a drop is the bad way)
    callers: list[str] = field(default_factory=list)  # callers' view: the anomalous callers that point at it

    @property
    def anomalous(self) -> bool:
        """Anomalous itself (evidence), or blamed from its callers' view."""
        return bool(self.evidence or self.callers)

    def as_dict(self) -> dict:
        out = {"service": self.service, "score": round(self.score, 3), "metric": self.metric,
               "onset": _unix(self.onset), "evidence": [e.as_dict() for e in self.evidence],
               "explanation": self.explanation, "kind": self.kind}
        if self.path is not None:
            out["path"] = self.path
        if self.edge is not None:
            out["edge"] = {"caller": self.edge[0], "callee": self.edge[1]}
        if self.callers:
            out["callers"] = list(self.callers)
        return out


@dataclass
class Diagnosis:
    """A ranking of every service in the data, best root-cause candidate first."""

    anomaly_start: pd.Timestamp
    anomaly_start_detected: bool
    end: pd.Timestamp
    ranking: list[Candidate]
    warnings: list[str] = field(default_factory=list)
    verdict: str = "root_cause"  # or "nothing_to_blame": no service changed beyond its usual behaviour
    confidence: dict = field(default_factory=lambda: {"level": "low", "score": 0.0, "reason": "", "advice": []})
    start_confidence: float | None = None  # a detected start: the share of the evidence that agrees on it

    def top(self, k: int = 3) -> list[str]:
        return [c.service for c in self.ranking[:k]]

    def as_dict(self) -> dict:
        """The ``bizra-nb diagnose --format json`` contract."""
        return {"anomaly_start": _unix(self.anomaly_start), "anomaly_start_detected": self.anomaly_start_detected,
                "end": _unix(self.end), "ranking": [c.as_dict() for c in self.ranking], "warnings": list(self.warnings),
                "verdict": self.verdict, "confidence": dict(self.confidence),
                "anomaly_start_confidence": self.start_confidence}

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
    bad_names = [c for c in out.columns if not _well_named(c)]
    if bad_names:
        raise InvalidInput(f"column {excerpt(bad_names[0])} is not named <service>_<metric>", field="columns")
    if out.columns.duplicated().any():
        twice = out.columns[out.columns.duplicated()][0]
        raise InvalidInput(f"column {excerpt(twice)} appears more than once", field="columns")
    if not all(pd.api.types.is_numeric_dtype(t) for t in out.dtypes):
        out = out.apply(pd.to_numeric, errors="coerce")
    out = out.astype("float64")
    infinite = int(np.isinf(out.to_numpy()).sum())
    if infinite:
        out = out.replace([np.inf, -np.inf], np.nan)
        warnings.append(f"{infinite} infinite values ignored")
    empty = list(out.columns[~out.notna().any().to_numpy()])
    if empty:
        warnings.append(f"{len(empty)} series without any value ignored: {', '.join(empty[:5])}")
        out = out.drop(columns=empty)
    if out.shape[1] == 0 or len(out) < MIN_NORMAL_POINTS + 1:
        raise InvalidInput(f"not enough data to diagnose: {len(out)} rows, {out.shape[1]} series "
                           f"(need at least {MIN_NORMAL_POINTS + 1} rows)", field="data")
    out = out.ffill(limit=4).bfill(limit=4)
    return out, warnings


def _well_named(column) -> bool:
    try:
        split_column(str(column))
    except ValueError:
        return False
    return True


def _robust_center_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and a robust spread per column (IQR, else MAD, else a small share of the level).

    With few points (short history) the spread of the sample underestimates the noise; the successive
    differences of the same points and a floor of 1 % of the level keep a handful of points usable.
    """
    with np.errstate(all="ignore"), _quiet_nan():
        q25, center, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
        scale = (q75 - q25) / 1.349
        mad = np.nanmedian(np.abs(values - center), axis=0) * 1.4826
        scale = np.where(scale > 0, scale, mad)
        std = np.nanstd(values, axis=0)
        scale = np.where(scale > 0, scale, std)
        few = values.shape[0] < FEW_NORMAL_POINTS
        if few and values.shape[0] > 1:
            scale = np.fmax(scale, _median(np.abs(np.diff(values, axis=0))) / (0.6745 * np.sqrt(2)))
        floor = np.maximum(np.abs(center) * (0.02 if few else 0.01), 1e-6)  # constant normal window: 1 % of the level
        scale = np.where(np.isfinite(scale) & (scale > floor * 0.1), scale, floor)
        if few:
            scale = np.fmax(scale, floor)
    return center, scale


@contextlib.contextmanager
def _quiet_nan() -> Iterator[None]:
    """numpy's RuntimeWarnings of all-NaN slices (a series without normal data) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _sustained(z: np.ndarray) -> np.ndarray:
    """The median of each value and its two neighbours: a lone spike does not count, a level shift does."""
    if len(z) < 3:
        return z
    padded = np.vstack([z[:1], z, z[-1:]])
    stacked = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    return _median(stacked, axis=0)


def _median(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """``np.nanmedian``, on its fast path when there is no NaN (numpy's NaN path is per column)."""
    if not np.isnan(values).any():
        return np.median(values, axis=axis)
    with _quiet_nan():
        return np.nanmedian(values, axis=axis)


def _noise(values: np.ndarray) -> np.ndarray:
    """Per column: the noise standard deviation from successive differences (a level shift barely moves it)."""
    with np.errstate(all="ignore"):
        center = _median(values)
        noise = _median(np.abs(np.diff(values, axis=0))) / (0.6745 * np.sqrt(2))
    floor = np.maximum(np.nan_to_num(np.abs(center)) * 0.005, 1e-6)
    return np.where(np.isfinite(noise) & (noise > floor), noise, floor)


def step_width(n: int) -> int:
    """Points on each side of a step: 8 (two minutes at 15 s), fewer in a short window."""
    return int(max(2, min(8, n // 6)))


def step_scores(values: np.ndarray, width: int, *, after: int | None = None) -> np.ndarray:
    """Per time and series: mean of the next ``after`` points (default ``width``) minus mean of the previous
    ``width`` (after a 3-point median, so a lone spike does not count), in units of the series' noise: large
    where the level changes abruptly, near 0 on a slow rhythm; with a long ``after``, only a change that
    lasts scores (a burst that comes back does not). O(n) per series (cumulative sums)."""
    n = len(values)
    out = np.zeros(values.shape)
    after = min(after or width, max(width, n - width))
    if n < width + after:
        return out
    filled = pd.DataFrame(values).ffill().bfill().to_numpy()
    a, b, c = np.vstack([filled[:1], filled[:-1]]), filled, np.vstack([filled[1:], filled[-1:]])
    smooth = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))  # the median of 3 neighbours
    total = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(smooth, axis=0)])
    before = (total[width:] - total[:-width]) / width  # mean of rows t..t+w-1, for t = 0..n-w
    ahead = (total[after:] - total[:-after]) / after  # mean of rows t..t+after-1
    out[width:n - after + 1] = ahead[width:] - before[:n - after - width + 1]
    first = np.arange(MIN_NORMAL_POINTS, min(width, n - after + 1))  # near the start: the rows there are
    out[first] = ahead[first] - total[first] / first[:, None]
    return np.nan_to_num(out / _noise(values), nan=0.0)


def _badness(columns) -> np.ndarray:
    """+1 where a rise of the column is bad, -1 where a drop is, 0.5 where unknown (either way counts)."""
    dirs = [metric_direction(split_column(c)[1]) for c in columns]
    return np.array([1.0 if d == "up" else -1.0 if d == "down" else 0.0 for d in dirs])


def detect_start(frame: pd.DataFrame, steps: np.ndarray | None = None, *,
                 earliest: int = 0) -> tuple[pd.Timestamp, float]:
    """The most likely start of the anomaly and the confidence in it (0..1).

    Consensus of abrupt changes: per series, the step score (:func:`step_scores`) signed so that a change
    in the bad direction counts positive (a drop of throughput, a rise of latency, errors, CPU) and one in
    the good direction negative; per service its strongest series; the moment where the most services
    change for the worse together wins (a single noisy series is one service among many; steps in random
    directions, as when the data was recorded in another period, cancel out). The start is then moved back
    to where the contributing series first left their normal band (a slow ramp starts before its steepest
    point). The confidence is the winner's margin over the best moment elsewhere. The start is looked for
    from row ``earliest`` on (the rows before are history).
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
        return frame.index[n // 2], 0.0
    best = lo + int(np.argmax(smooth[lo:hi]))
    peak = smooth[best]
    if peak <= 0:
        return frame.index[n // 2], 0.0
    # of the moments nearly as strong, the most coherent: a fault makes things worse, all of them
    close = lo + np.flatnonzero(smooth[lo:hi] >= 0.5 * peak)
    purest = close[coherence[close] >= coherence[close].max() - 1e-9]
    if coherence[best] < coherence[purest].max():
        best = int(purest[np.argmax(smooth[purest])])
        peak = smooth[best]
    others = np.concatenate([smooth[lo:max(lo, best - 3 * width)], smooth[min(hi, best + 3 * width):hi]])
    runner_up = float(others.max()) if len(others) else 0.0
    confidence = float(np.clip(1 - max(runner_up, 0.0) / peak, 0, 1))
    raw = np.where(bad == 0, np.abs(steps), steps * bad)  # signed, before the cap and the threshold
    return frame.index[_earliest_onset(values, best, signed, raw, bad, width, spread, lo)], confidence


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


def seasonal_expectation(data: pd.DataFrame, window_start: pd.Timestamp) -> pd.DataFrame | None:
    """Each series' usual value at the same time of day, for the rows from ``window_start`` on.

    The median of up to the last 14 days at the same time of day (rows before ``window_start`` only);
    None when the history before the window spans less than a day.
    """
    history = data.loc[data.index < window_start]
    step = pd.Timedelta(data.index.to_series().diff().median()) if len(data) > 1 else pd.Timedelta(0)
    if len(history) < 10 or history.index[-1] - history.index[0] + step < pd.Timedelta(days=1):
        return None
    if step <= pd.Timedelta(0) or pd.Timedelta(days=1) % step != pd.Timedelta(0):
        return None
    history = history.loc[history.index >= window_start - pd.Timedelta(days=14)]
    slots = int(pd.Timedelta(days=1) / step)
    ns = step.value
    window = data.loc[data.index >= window_start]
    hist_ns, window_ns = history.index.as_unit("ns").asi8, window.index.as_unit("ns").asi8
    hist_slot = (hist_ns // ns) % slots
    hist_day = hist_ns // (ns * slots)
    days = hist_day - hist_day.min()
    grid = np.full((int(days.max()) + 1, slots, data.shape[1]), np.nan)
    grid[days, hist_slot] = history.to_numpy(dtype="float64")
    wanted = np.unique((window_ns // ns) % slots)
    with _quiet_nan():
        profile = np.nanmedian(grid[:, wanted, :], axis=0)
    lookup = np.searchsorted(wanted, (window_ns // ns) % slots)
    expected = profile[lookup]
    if np.isnan(expected).all():
        return None
    return pd.DataFrame(expected, index=window.index, columns=data.columns)


def _normal_rows(values: np.ndarray, start_at: int, width: int, steps: np.ndarray) -> np.ndarray:
    """The normal rows per series: before the start, from after the series' last abrupt level shift
    (a step well before the start that is not the fault), so a series compares with its recent level."""
    normal = values[:start_at].copy()
    if start_at < 4 * width:
        return normal
    steps = np.abs(steps[:start_at])
    steps[: width] = 0
    steps[start_at - 2 * width:] = 0
    shifted = steps >= 6.0
    last = np.where(shifted.any(axis=0), start_at - 1 - np.argmax(shifted[::-1], axis=0), -1)
    for j in np.flatnonzero(last >= 0):
        cut = last[j] + width // 2
        if start_at - cut >= max(MIN_NORMAL_POINTS, width):
            normal[:cut, j] = np.nan
    return normal


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


def _local_shift(values: np.ndarray, start_at: int, sign: np.ndarray, span: int = 30) -> np.ndarray:
    """Per series: the change of level at the start, in the bad direction, in standard errors.

    The median of up to ``span`` points after the start minus that of as many before, over the series'
    noise and the standard error of such a difference: a weak but steady change at the start stands out,
    a slow drift (a rhythm) over the whole window does not.
    """
    span = int(min(span, start_at, len(values) - start_at))
    if span < 2:
        return np.zeros(values.shape[1])
    with _quiet_nan():
        change = _median(values[start_at:start_at + span]) - _median(values[start_at - span:start_at])
    standard_error = _noise(values) * 1.25 * np.sqrt(2.0 / span)
    return np.nan_to_num(change * sign / standard_error)


def _step(frame: pd.DataFrame) -> pd.Timedelta:
    return pd.Timedelta(frame.index.to_series().diff().median()) if len(frame) > 1 else pd.Timedelta(seconds=15)


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
    return _with_paths(candidates, cmdb)


def callers_view(candidates: list[Candidate], cmdb: "Cmdb | InferredCalls", *, tolerance: pd.Timedelta,
                 anomaly_start: pd.Timestamp) -> list[Candidate]:
    """Blame a quiet or unmonitored dependency that the anomalies of its callers point at.

    A code fault, a network delay or a database without an exporter shows in the *callers*: their latency
    and errors rise while the service at fault looks normal or has no data. A *pointing caller* is a
    service that no anomalous dependency explains and whose evidence is latency or errors only: anomalous,
    or with a weak but steady change of its latency or errors at the start (at least ``WEAK_SHIFT``
    standard errors). For each pointing caller, strongest first, its direct dependencies are examined:

    1. a weak but steady change at the dependency from the start (its shift at least ``WEAK_SHIFT``):
       latency or errors (kind ``code``), or only its traffic (kind ``dependency_edge``: the calls from
       the caller to it slowed);
    2. a dependency without any metric in the data (kind ``no_metrics``);
    3. a quiet dependency of which at least two pointing callers changed together (kind ``code``).

    Among several, the one with the stronger class of evidence wins, then the one more callers point at.
    The dependency is ranked just above its callers, which become its symptoms; a dependency blamed for
    a change of its own latency is examined in turn (the fault may sit deeper). With one caller and no
    evidence at the dependency, a fault in the caller and one in the dependency look the same: the
    caller keeps the blame.
    """
    by_id = {c.service: c for c in candidates}
    anomalous = {c.service for c in candidates if c.score >= ANOMALOUS and c.onset is not None}

    def pointing(c: Candidate) -> bool:
        if c.service not in cmdb.items or c.explained_by is not None:
            return False
        if c.service in anomalous:
            return c.kind == "code"
        return c.symptom_shift >= WEAK_SHIFT and not any(d["id"] in anomalous for d in cmdb.upstream(c.service))

    def onset(c: Candidate) -> pd.Timestamp:
        return c.onset if c.onset is not None else anomaly_start

    queue = sorted((c for c in candidates if pointing(c)), key=lambda c: -c.score)
    done: list[Candidate] = []
    while queue:
        caller = queue.pop(0)
        if caller.explained_by is not None or caller in done:
            continue
        done.append(caller)
        pointers = [c for c in candidates if pointing(c) or c is caller]
        options = []
        for dep in cmdb.dependencies(caller.service):
            if cmdb.items.get(dep, {}).get("kind") == "host" or dep in anomalous:
                continue
            known = by_id.get(dep)
            if known is not None and known.callers:
                continue
            group = [c for c in pointers if dep in cmdb.dependencies(c.service)
                     and abs(onset(c) - onset(caller)) <= tolerance]
            if known is not None and max(known.symptom_shift, known.traffic_shift) >= WEAK_SHIFT:
                # its own latency or errors moved a little: its code; only its traffic fell: the calls into it
                kind = "code" if known.symptom_shift >= WEAK_SHIFT else "dependency_edge"
                options.append((3, len(group), max(known.symptom_shift, known.traffic_shift), dep, kind, group))
            elif known is None:
                options.append((2, len(group), 0.0, dep, "no_metrics", group))
            elif len(group) >= 2:
                options.append((1, len(group), 0.0, dep, "code", group))
        if not options:
            continue
        _, _, _, dep, kind, group = max(options, key=lambda o: o[:3])
        blamed = by_id.get(dep)
        if blamed is None:
            blamed = Candidate(service=dep, score=0.0, metric="-", onset=None, kind=kind)
            candidates.append(blamed)
            by_id[dep] = blamed
        blamed.kind = kind
        blamed.onset = min(onset(c) for c in group)
        blamed.callers = sorted(c.service for c in group)
        if kind == "dependency_edge" and len(group) == 1:
            blamed.edge = (caller.service, dep)
        blamed.score = max(blamed.score, 1.05 * max(c.score for c in group))
        for symptom in group:
            symptom.explained_by = dep
            symptom.score = min(symptom.score, 0.9 * blamed.score)
        if pointing(blamed) and blamed not in done:  # its own latency moved: the fault may sit deeper
            queue.insert(0, blamed)
    candidates.sort(key=lambda c: (not c.anomalous, -c.score))  # blamed or anomalous first
    return candidates


class InferredCalls:
    """Call edges inferred from co-moving traffic, for the callers' view when no CMDB is given.

    Traffic flows along calls: a service's request rate follows its callers'. Over the normal window,
    the successive differences of the services' rate series (differences: the shared daily rhythm
    drops out) are correlated pairwise; a pair at ``CO_MOVING`` or more is taken as a call edge of
    unknown direction. Limits: only services that report a rate series take part; shared upstream
    traffic also correlates services that do not call each other (two callees of one caller); direction
    is unknown, so a quiet neighbour of an anomalous service is taken as its dependency (its callers
    would usually be anomalous too); at least 30 normal points are needed.
    """

    def __init__(self, neighbours: dict[str, list[str]]):
        self.neighbours = neighbours
        self.items = {s: {"kind": "service"} for s in neighbours}

    def dependencies(self, service: str) -> list[str]:
        return list(self.neighbours.get(service, ()))

    def upstream(self, service: str) -> list[dict]:
        return [{"id": s, "distance": 1} for s in self.neighbours.get(service, ())]

    @property
    def edges(self) -> list[tuple[str, str]]:
        return sorted({tuple(sorted((a, b))) for a, ns in self.neighbours.items() for b in ns})


def infer_calls(frame: pd.DataFrame, anomaly_start: pd.Timestamp) -> InferredCalls | None:
    """The call edges that co-moving traffic suggests (see :class:`InferredCalls`); None with too little data."""
    rates = [c for c in frame.columns if metric_direction(split_column(c)[1]) == "down"]
    normal = frame.loc[frame.index < anomaly_start, rates]
    if len(normal) < 30 or len(rates) < 2:
        return None
    services = [split_column(c)[0] for c in rates]
    with np.errstate(all="ignore"):
        corr = np.nan_to_num(normal.diff().iloc[1:].corr().to_numpy())
    neighbours: dict[str, list[str]] = {}
    for i, j in zip(*np.nonzero(np.triu(corr, 1) >= CO_MOVING)):
        a, b = services[i], services[j]
        if a != b:
            neighbours.setdefault(a, []).append(b)
            neighbours.setdefault(b, []).append(a)
    return InferredCalls(neighbours) if neighbours else None


def prefer_what_spread(candidates: list[Candidate], cmdb: Cmdb) -> list[Candidate]:
    """Rank an isolated anomaly below one that reached its callers.

    A fault spreads to the callers of the service at fault. When one unexplained anomalous candidate
    reached its callers (or was blamed from them) and another, which has callers in the CMDB, reached
    none of them, the isolated one is more likely an unrelated event in the same window: its score
    counts ``ISOLATED_WEIGHT``.
    """
    anomalous = {c.service for c in candidates if c.anomalous}
    roots = [c for c in candidates if c.anomalous and c.explained_by is None and c.service in cmdb.items]
    spread = {c.service for c in roots if c.callers or any(d in anomalous for d in cmdb.dependents(c.service))}
    if spread:
        for cand in roots:
            if cand.service not in spread and cmdb.dependents(cand.service):
                cand.score *= ISOLATED_WEIGHT
    candidates.sort(key=lambda c: (not c.anomalous, -c.score))
    return candidates


def prefer_the_first(candidates: list[Candidate], cmdb: Cmdb, *, late: pd.Timedelta) -> list[Candidate]:
    """Rank an independent anomaly that began ``late`` or more after the first one below it.

    With a CMDB, the anomalous candidates that no dependency explains are independent of each other; the
    incident began with the first of them, and one that started minutes later is more likely a second
    event in the same window: its score counts ``LATE_WEIGHT``.
    """
    roots = [c for c in candidates if c.anomalous and c.explained_by is None and c.service in cmdb.items
             and c.onset is not None]
    if len(roots) > 1:
        first = min(c.onset for c in roots)
        for cand in roots:
            if cand.onset - first >= late:
                cand.score *= LATE_WEIGHT
    candidates.sort(key=lambda c: (not c.anomalous, -c.score))
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
    if c.callers:
        return _explain_from_callers(c, ranking, cmdb)
    if not c.evidence:
        return f"{c.service}: no metric left its normal range (strongest deviation {c.score:.1f}x the normal spread)."
    e = c.evidence[0]
    head = _head(c, e, cmdb)
    blamed = next((x for x in ranking if x.service == c.explained_by), None)
    if blamed is not None and blamed.callers:
        return head + f"; it points at its dependency {c.explained_by} (see there), so it is likely a symptom."
    if c.explained_by:
        return head + f", after its dependency {c.explained_by} was already anomalous, so it is likely a symptom."
    if cmdb is not None and c.path and len(c.path) > 1:
        return head + f", before its dependents {' -> '.join(c.path[1:])}; no anomalous dependency explains it."
    if cmdb is not None and c.service in cmdb.items:
        return head + "; no anomalous dependency explains it."
    return head + "."


def _head(c: Candidate, e: Evidence, cmdb: Cmdb | None) -> str:
    moved = "rose" if e.direction == "up" else "fell"
    when = f" from {c.onset:%H:%M:%S} UTC" if c.onset is not None else ""
    unit = unit_of(e.metric, cmdb.items.get(c.service) if cmdb is not None else None)
    return (f"{c.service}: {e.metric} {moved} to {_fmt(e.peak, unit)} (normally {_fmt(e.normal, unit)}, "
            f"{e.magnitude:.1f}x the normal spread){when}")


def _explain_from_callers(c: Candidate, ranking: list[Candidate], cmdb: Cmdb | None) -> str:
    """A dependency blamed from its callers' view: what the callers show and what it points at."""
    by_id = {x.service: x for x in ranking}
    shown = [by_id[name] for name in c.callers if name in by_id and by_id[name].evidence]
    seen = "; ".join(_head(x, x.evidence[0], cmdb).split(": ", 1)[1].split(" (normally")[0] + f" at {x.service}"
                     for x in shown[:2])
    seen = f" ({seen})" if seen else ""
    when = f" from {c.onset:%H:%M:%S} UTC" if c.onset is not None else ""
    one = len(c.callers) == 1
    callers = f"its caller {c.callers[0]}" if one else f"its callers {', '.join(c.callers)}"
    changed = ("turned slow or failing" if shown else "changed a little but steadily (latency or errors)") + (
        "" if one else " together")
    if c.kind == "no_metrics":
        return (f"{c.service}: reports no metrics, but {callers} {changed}{when}{seen} and nothing else "
                f"{'it depends' if one else 'they depend'} on explains it: likely {c.service} (an exporter would "
                "confirm it).")
    if c.kind == "dependency_edge" and c.edge is not None:
        return (f"{c.service}: calls from {c.edge[0]} to {c.service} slowed{when}{seen} while {c.service} itself "
                f"looks healthy except that its traffic fell a little: the network or the client path between "
                "them is likely at fault.")
    if c.kind == "dependency_edge":
        return (f"{c.service}: {callers} {changed}{when}{seen} while {c.service} itself looks healthy except that its "
                "traffic fell a little: the network into it is likely at fault.")
    return (f"{c.service}: its own metrics barely moved, but {callers} {changed}{when}{seen} and no other "
            f"dependency explains it: likely a fault in {c.service}'s code or its network (exceptions, slow or "
            "wrong answers) seen by its callers.")


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
    start=None,
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
        Dependencies between services; refines the ranking, gives propagation paths and lets quiet or
        unmonitored dependencies be blamed from their callers' view.
    start
        Where the examined window begins; rows before it are history. With a day or more of history,
        every series is compared with its usual value at the same time of day. None: the frame's start.

    Returns
    -------
    Diagnosis
        Every service once, best candidate first, with evidence, a kind and a one-sentence explanation;
        a verdict (``nothing_to_blame`` when nothing changed beyond its usual behaviour) and a confidence.

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
    given = to_timestamp(anomaly_start, name="anomaly_start")
    stop = to_timestamp(end, name="end") or data.index[-1]
    window_start = to_timestamp(start, name="start")
    if given is not None and given >= stop:
        raise InvalidInput(f"anomaly_start ({given.isoformat()}) must be before end ({stop.isoformat()})",
                           field="anomaly_start")
    data = data.loc[:stop]
    expected = None
    earliest = 0  # where the anomaly may start: not in the history
    if window_start is not None and window_start > data.index[0]:
        expected = seasonal_expectation(data, window_start)
        if expected is not None:
            data = data.loc[window_start:]
            warnings.append("compared with the usual values at the same time of day (history before the window)")
        else:
            earliest = int((data.index < window_start).sum())
            span = window_start - data.index[0]
            why = "it spans less than a day" if span < pd.Timedelta(days=1) else (
                "its time steps are irregular or do not divide a day")
            warnings.append(f"the history before the window ({span}) is used as normal data only, not for a "
                            f"same-time-of-day comparison: {why}")
    if len(data) < MIN_NORMAL_POINTS + 1:
        raise InvalidInput(f"not enough data to diagnose: {len(data)} rows up to the end "
                           f"(need at least {MIN_NORMAL_POINTS + 1})", field="end")
    detected = given is None
    start_confidence = None
    work = data - expected.to_numpy() if expected is not None else data
    steps = step_scores(work.to_numpy(dtype="float64"), step_width(len(work)))
    if detected:
        anomaly_at, start_confidence = detect_start(work, steps, earliest=earliest)
    elif given <= data.index[0] or given > data.index[-1]:
        raise InvalidInput(f"anomaly_start {given.isoformat()} is outside the data "
                           f"({data.index[0].isoformat()} .. {data.index[-1].isoformat()})", field="anomaly_start")
    else:
        anomaly_at = given
    normal_points = int((data.index < anomaly_at).sum())
    if normal_points < FEW_NORMAL_POINTS:
        warnings.append(f"only {normal_points} normal points before the anomaly start: the normal spread is a rough "
                        "estimate (a longer window before the incident makes the ranking firmer)")
    scores = score_metrics(data, anomaly_at, stop, expected=expected, steps=steps)
    ranking = rank_services(scores)
    tolerance = max(pd.Timedelta(seconds=30), 2 * _step(data))
    if cmdb is not None:
        unknown = sorted({c.service for c in ranking} - set(cmdb.items))
        if unknown:
            warnings.append(f"services not in the CMDB (ranked without topology): {', '.join(unknown[:10])}")
        ranking = refine_with_topology(ranking, cmdb, tolerance=tolerance)
        ranking = callers_view(ranking, cmdb, tolerance=tolerance, anomaly_start=anomaly_at)
        ranking = prefer_what_spread(ranking, cmdb)
        ranking = prefer_the_first(ranking, cmdb, late=max(pd.Timedelta(minutes=2), 4 * _step(data)))
        ranking = _with_paths(ranking, cmdb)
    else:
        inferred = infer_calls(data, anomaly_at)
        if inferred is not None:
            ranking = callers_view(ranking, inferred, tolerance=tolerance, anomaly_start=anomaly_at)
            if any(c.callers for c in ranking):
                shown = ", ".join(f"{a}-{b}" for a, b in inferred.edges[:8])
                warnings.append(f"no CMDB: call edges inferred from co-moving traffic ({shown}); a CMDB is surer")
    ranking.sort(key=lambda c: (not c.anomalous, -c.score))  # anomalous (or blamed) first, with or without a CMDB
    verdict, reason = judge(scores, ranking)
    confidence = assess(ranking, verdict, reason, cmdb=cmdb, normal_points=normal_points,
                        start_confidence=start_confidence, seasonal=expected is not None)
    for cand in ranking:
        cand.explanation = explain(cand, ranking, cmdb)
    return Diagnosis(anomaly_start=anomaly_at, anomaly_start_detected=detected, end=stop, ranking=ranking,
                     warnings=warnings, verdict=verdict, confidence=confidence, start_confidence=start_confidence)


def _with_paths(candidates: list[Candidate], cmdb: Cmdb) -> list[Candidate]:
    """Propagation paths of the unexplained anomalous candidates (after the callers' view)."""
    anomalous = {c.service for c in candidates if c.onset is not None and (c.score >= ANOMALOUS or c.callers)}
    for cand in candidates:
        cand.path = None
        if cand.service in anomalous and cand.explained_by is None and cand.service in cmdb.items:
            cand.path = _propagation_path(cand.service, cmdb, anomalous)
    return candidates


def judge(scores: pd.DataFrame, ranking: list[Candidate]) -> tuple[str, str]:
    """``("root_cause", "")``, or ``("nothing_to_blame", why)``: no abrupt anomaly, or a broad rise of traffic.

    A traffic surge raises load, latency and CPU everywhere at once; what it shows is capacity, not a fault
    of one service: when the request rate (its median after the start over its median before) rose by a
    quarter or more, abruptly (not the daily rhythm's morning ramp), at most services that report one, and
    no service's errors rose, the verdict is nothing to blame, unless one service stands out: its deviation ``STANDOUT`` times that of the typical anomalous
    service or more (a fault during a surge).
    """
    if not any(c.evidence for c in ranking):  # blame from weak changes of callers alone is not enough
        strongest = float(scores["magnitude"].max()) if len(scores) else 0.0
        return "nothing_to_blame", (f"no series changed abruptly beyond its usual behaviour (the strongest deviation "
                                    f"is {strongest:.1f}x the normal spread)")
    rates = scores[scores["metric"].map(metric_direction) == "down"]
    if len(rates) >= 3:
        rose = rates[(rates["ratio"] >= 1.25) & (rates["direction"] == "up") & (rates["abrupt"] >= ABRUPT)]
        errors = scores[scores["metric"].str.contains(r"err|fail", case=False) & (scores["magnitude"] >= ANOMALOUS)
                        & (scores["direction"] == "up")]
        own = scores.groupby("service")["magnitude"].max()  # before topology: a symptom's own deviation
        anomalous = sorted((float(own[c.service]) for c in ranking if c.evidence), reverse=True)
        standout = len(anomalous) > 1 and anomalous[0] >= STANDOUT * float(np.median(anomalous[1:]))
        if len(rose) >= 0.6 * len(rates) and errors.empty and not standout:
            factor = float(rose["ratio"].median())
            return "nothing_to_blame", (f"traffic rose {factor:.1f}x at {rose['service'].nunique()} of "
                                        f"{rates['service'].nunique()} services at once and no errors rose: "
                                        "more load, not a fault of one service")
    return "root_cause", ""


def assess(ranking: list[Candidate], verdict: str, reason: str, *, cmdb: Cmdb | None, normal_points: int,
           start_confidence: float | None, seasonal: bool) -> dict:
    """The diagnosis' confidence: ``level`` (high, medium, low), ``score`` (0..1), ``reason`` and ``advice``.

    The score starts from the margin of the first candidate over the best one it does not explain, and is
    lowered for each reason to doubt: the evidence is indirect (a dependency blamed from its callers); the
    first candidate shows only latency or errors while some of its dependencies look normal (a fault in
    one of them, seen only by this caller, would look the same); another independent anomaly is in the
    window; the history is short; the start was detected with little agreement; there is no CMDB. The
    levels' thresholds (``CONFIDENT``) are calibrated on the generated benchmark families
    (``benchmarks/rca_accuracy.py`` prints the calibration) so that "high" is right at least 90 % of the
    time there.
    """
    advice: list[str] = []
    if verdict == "nothing_to_blame":
        pointed = [c.service for c in ranking if c.callers]
        if reason.startswith("traffic"):
            level, score = "medium", 0.5
        elif pointed:
            level, score = "low", 0.2
            reason += f"; weak changes at the callers of {', '.join(pointed[:3])} were seen"
        else:
            strongest = max((c.score for c in ranking), default=0.0)
            level, score = ("high", 1.0) if strongest < ANOMALOUS * 0.8 else ("medium", 0.5)
        return {"level": level, "score": score, "reason": reason, "advice": advice}
    top = ranking[0]
    by_id = {c.service: c for c in ranking}

    def cause_of(c: Candidate) -> str:  # the end of its explained_by chain (symptoms of symptoms too)
        seen = {c.service}
        while c.explained_by and c.explained_by in by_id and c.explained_by not in seen:
            c = by_id[c.explained_by]
            seen.add(c.service)
        return c.service

    rivals = [c for c in ranking[1:] if cause_of(c) != top.service and c.service not in top.callers]
    second = rivals[0].score if rivals else 0.0
    score = float(np.clip((top.score - second) / top.score, 0, 1)) if top.score > 0 else 0.0
    notes = [f"the first candidate leads the next independent one by {score:.0%}"]
    if top.kind in ("no_metrics", "dependency_edge") or top.callers:
        score *= 0.7
        notes.append("blamed from its callers' view (indirect evidence)")
    elif top.kind == "code" and cmdb is not None and top.service in cmdb.items:
        quiet = [d for d in cmdb.dependencies(top.service) if cmdb.items.get(d, {}).get("kind") != "host"
                 and not (d in by_id and by_id[d].anomalous)]
        if quiet:
            score *= 0.5
            notes.append(f"only its latency or errors moved, and its dependencies {', '.join(quiet[:3])} look normal: "
                         "a fault in one of them seen only by this caller would look the same")
            advice.append("latency and errors per dependency as the caller sees them (client-side metrics)")
    independent = [c.service for c in rivals if c.anomalous and c.explained_by is None][:2]
    if independent:
        score *= 0.6
        notes.append(f"another independent anomaly in the window: {', '.join(independent)}")
    if normal_points < FEW_NORMAL_POINTS:
        score *= 0.6
        notes.append(f"only {normal_points} normal points")
        advice.append("a window that starts earlier before the incident (more normal data)")
    if start_confidence is not None and start_confidence < 0.5:
        score *= 0.8
        notes.append("the detected start is uncertain")
        advice.append("the anomaly start, if known (--anomaly-start)")
    if cmdb is None:
        score *= 0.8
        advice.append("a CMDB of the services' dependencies (--cmdb)")
    level = "high" if score >= CONFIDENT[0] else "medium" if score >= CONFIDENT[1] else "low"
    if level != "high" and not seasonal:
        advice.append("a day or more of history before the window (the usual values at that time of day)")
    return {"level": level, "score": round(score, 3), "reason": "; ".join(notes), "advice": advice}


