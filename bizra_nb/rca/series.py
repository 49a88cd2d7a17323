"""The numeric ground work: the prepared frame, robust centre and spread, noise, step scores, the usual
value at the same time of day, each series' recent normal level."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd

from bizra_nb.dataset import split_column
from bizra_nb.errors import InvalidInput, excerpt

MIN_NORMAL_POINTS = 3  # fewer normal points than this: refused (below 10 a warning names how few)
FEW_NORMAL_POINTS = 10


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
