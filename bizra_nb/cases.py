"""The RCA benchmark's case families: generated incidents (and quiet windows) with known truth, easy and hard."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.fleet import (CODE_FAULT_KINDS, FAULT_KINDS, METRICS, Fault, FleetData, demo_cmdb, generate, noise_sd,
                            random_case)

FAMILIES: dict[str, str] = {
    "clean": "one resource fault at a random service, magnitude 0.5-1.5 (the old benchmark)",
    "clean_weak": "the same, magnitude 0.15-0.5",
    "code_fault": "code error/latency: the root's resources stay normal, its callers' latency/errors move",
    "network_delay": "calls into a service slowed (one edge, or all its callers); the callee looks healthy",
    "no_metrics": "a latency, error or packet-loss fault at a database/cache/queue without metrics: callers show it",
    "weak_root": "a weak fault whose direct callers amplify it 1.5-3x (retries, fan-out)",
    "surge": "no fault: traffic rises 1.5-2.5x, load and latency up everywhere (nothing to blame)",
    "unrelated": "a weak fault plus a 15-40 sigma step at an unrelated service near the start",
    "gaps": "a clean fault plus gaps in 20 % of the series (one at the start) and a service missing half the window",
    "level_shift": "a weak fault plus 30 % of the other series stepping 10-30 sigmas 3-10 min before it",
    "rhythm_fault": "28 days at 1 min with the daily rhythm, a weak fault in the last 6 h window",
    "rhythm_quiet": "28 days at 1 min, no fault: the 6 h window around the daily peak or trough",
    "rhythm_quiet_short": "no fault: only the last 6 h at 1 min, no history (the explore notebook's window)",
    "short_3": "a clean fault with only 3 rows before its start",
    "short_5": "a clean fault with only 5 rows before its start",
    "short_8": "a clean fault with only 8 rows before its start",
}
FAULT_FREE = ("surge", "rhythm_quiet", "rhythm_quiet_short")
RHYTHM = ("rhythm_fault", "rhythm_quiet", "rhythm_quiet_short")
ROOT_KINDS = ("resource", "code", "dependency_edge", "no_metrics")

# the confounders' strength in noise sigmas (tunable: how hard the families are)
# confounders as large as a weak fault's own change (smaller ones never fool even the baseline)
UNRELATED_SIGMAS = (15.0, 40.0)
LEVEL_SHIFT_SIGMAS = (10.0, 30.0)
LEVEL_SHIFT_MINUTES = (3.0, 10.0)  # how long before the fault the series step: most "normal" data is the old level
COUPLING = 0.7  # the families built on a fault of their own: traffic flows along the calls (see fleet.generate)
WEAK = (0.15, 0.5)  # the fault magnitude of the families whose confounders must compete with it
CALLER_VISIBLE_KINDS = ("latency", "error_burst", "packet_loss")  # faults at a database that its callers see

_EPOCH = pd.Timestamp("2026-10-01", tz="UTC")
_STEP = pd.Timedelta("15s")
_WINDOW = pd.Timedelta("1h")


@dataclass
class Case:
    """One generated case: the frame to diagnose, the CMDB and the truth.

    ``start`` is the true anomaly start (fault-free families: when the confounder begins, or None);
    ``window_start`` is where the examined window begins (rows before it are history); pass it
    as ``start=`` to :func:`bizra_nb.rca.rank_root_causes`. ``edge`` is (caller, callee) for a
    network delay. ``generated`` holds what :func:`fault_free` needs to regenerate the same noise,
    ``detail`` what the family injected besides the fault (gaps, steps, ...).
    """

    family: str
    metrics: pd.DataFrame
    cmdb: Cmdb
    root: str | None
    root_kind: str | None
    edge: tuple[str, str] | None
    start: pd.Timestamp | None
    window_start: pd.Timestamp
    faults: list[Fault] = field(default_factory=list)
    generated: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)

    @property
    def end(self) -> pd.Timestamp:
        return self.metrics.index[-1]

    @property
    def has_fault(self) -> bool:
        return self.root is not None

    @property
    def reference_start(self) -> pd.Timestamp:
        """The start given to a diagnosis "with the true start": the fault's (or the confounder's) start,
        else the examined window's midpoint."""
        if self.start is not None:
            return self.start
        index = self.metrics.index[self.metrics.index >= self.window_start]
        return index[len(index) // 2]


def make_case(family: str, seed: int) -> Case:
    """The case number ``seed`` of ``family`` (one of :data:`FAMILIES`); seeded and deterministic.

    Parameters
    ----------
    family
        A family name; see :data:`FAMILIES` for what each one injects.
    seed
        Chooses the fault, the noise and the confounders.

    Returns
    -------
    Case

    Raises
    ------
    ValueError
        For an unknown family (the message names the allowed ones).
    """
    maker = _MAKERS.get(family)
    if maker is None:
        raise ValueError(f"unknown case family {family!r}; allowed: {', '.join(FAMILIES)}")
    return maker(family, int(seed), np.random.default_rng([zlib.crc32(family.encode()), int(seed)]))


def fault_free(case: Case) -> pd.DataFrame:
    """The same noise as ``case`` over its whole generated span, without any fault, surge or confounder."""
    g = case.generated
    return generate(start=g["start"], duration=g["duration"], step=g["step"], seed=g["seed"],
                    coupling=g.get("coupling", 0.0)).metrics


def service_of(column: str) -> str:
    """The service of a ``<service>_<metric>`` column of the fleet (service names may hold ``-``, not ``_``)."""
    return column.rsplit("_", 2)[0] if column.endswith(("_lat_50", "_lat_99")) else column.rsplit("_", 1)[0]


# -- shared steps ---------------------------------------------------------------------------


def _items(cmdb: Cmdb, *, kinds: tuple[str, ...] | None = None, with_callers: bool = False) -> list[str]:
    """The fleet's items (no hosts), in CMDB order, optionally of some kinds or only those someone calls."""
    out = [i for i, item in cmdb.items.items() if item.get("kind") != "host"]
    if kinds is not None:
        out = [i for i in out if cmdb.items[i].get("kind") in kinds]
    if with_callers:
        out = [i for i in out if cmdb.dependents(i)]
    return out


def _window_and_fault_time(rng) -> tuple[pd.Timestamp, pd.Timestamp]:
    """As :func:`bizra_nb.fleet.random_case`: a window starting at a random hour of 28 days, the fault at 55–75 %."""
    begin = _EPOCH + pd.Timedelta(hours=int(rng.integers(0, 24 * 28)))
    return begin, (begin + _WINDOW * rng.uniform(0.55, 0.75)).floor(_STEP)


def _generated(begin, duration, step, seed, coupling: float = 0.0) -> dict:
    return {"start": begin, "duration": pd.Timedelta(duration), "step": pd.Timedelta(step), "seed": seed,
            "coupling": coupling}


def _fleet_case(family: str, seed: int, fault: Fault, begin: pd.Timestamp, *, root_kind: str,
                edge: tuple[str, str] | None = None, traffic: Callable | None = None) -> Case:
    noise_seed = seed + 1_000_000
    data = generate(start=begin, duration=_WINDOW, step=_STEP, faults=[fault], seed=noise_seed, traffic=traffic,
                    coupling=COUPLING)
    return Case(family, data.metrics, data.cmdb, fault.service, root_kind, edge, fault.start, data.metrics.index[0],
                faults=[fault], generated=_generated(begin, _WINDOW, _STEP, noise_seed, COUPLING))


def _from_clean(family: str, data: FleetData, seed: int, *, magnitude=(0.5, 1.5)) -> Case:
    fault = data.faults[0]
    return Case(family, data.metrics, data.cmdb, fault.service, "resource", None, fault.start, data.metrics.index[0],
                faults=[fault], generated=_generated(data.metrics.index[0], _WINDOW, _STEP, seed + 1_000_000),
                detail={"magnitude_range": magnitude})


def _clip(frame: pd.DataFrame) -> pd.DataFrame:
    """Values back in their domains (ratios in [0, 1], cpu in [0, 100], nothing negative), rounded as generated."""
    upper = np.array([1.0 if c.endswith("_error") else 100.0 if c.endswith("_cpu") else np.inf for c in frame.columns])
    values = np.round(np.clip(frame.to_numpy(dtype="float64"), 0.0, upper), 4)
    return pd.DataFrame(values, index=frame.index, columns=frame.columns)


# -- the families ---------------------------------------------------------------------------


def _clean(family, seed, rng) -> Case:
    return _from_clean(family, random_case(seed), seed)


def _clean_weak(family, seed, rng) -> Case:
    return _from_clean(family, random_case(seed, magnitude=(0.15, 0.5)), seed, magnitude=(0.15, 0.5))


def _code_fault(family, seed, rng) -> Case:
    cmdb = demo_cmdb()
    begin, at = _window_and_fault_time(rng)
    root = str(rng.choice(_items(cmdb, kinds=("service",), with_callers=True)))
    fault = Fault(service=root, kind=str(rng.choice(CODE_FAULT_KINDS)), start=at)
    return _fleet_case(family, seed, fault, begin, root_kind="code")


def _network_delay(family, seed, rng) -> Case:
    cmdb = demo_cmdb()
    begin, at = _window_and_fault_time(rng)
    callee = str(rng.choice(_items(cmdb, with_callers=True)))
    callers = cmdb.dependents(callee)
    caller = str(rng.choice(callers))
    one_edge = bool(rng.random() < 0.5)
    fault = Fault(service=callee, kind="network_delay", start=at, caller=caller if one_edge else None)
    case = _fleet_case(family, seed, fault, begin, root_kind="dependency_edge",
                       edge=(caller, callee) if one_edge else (callers[0], callee))
    case.detail["scope"] = "edge" if one_edge else "node"
    case.detail["slowed_callers"] = [caller] if one_edge else list(callers)
    return case


def _no_metrics(family, seed, rng) -> Case:
    cmdb = demo_cmdb()
    begin, at = _window_and_fault_time(rng)
    root = str(rng.choice(_items(cmdb, kinds=("database", "cache", "queue"))))
    fault = Fault(service=root, kind=str(rng.choice(CALLER_VISIBLE_KINDS)), start=at,
                  magnitude=float(rng.uniform(0.5, 1.5)))
    case = _fleet_case(family, seed, fault, begin, root_kind="no_metrics")
    case.metrics = case.metrics.drop(columns=[f"{root}_{m}" for m in METRICS])
    return case


def _weak_root(family, seed, rng) -> Case:
    cmdb = demo_cmdb()
    begin, at = _window_and_fault_time(rng)
    root = str(rng.choice(_items(cmdb, with_callers=True)))
    fault = Fault(service=root, kind=str(rng.choice(("cpu_hog", "memory_leak", "latency", "error_burst"))), start=at,
                  magnitude=float(rng.uniform(0.15, 0.4)), amplify=float(rng.uniform(1.5, 3.0)))
    return _fleet_case(family, seed, fault, begin, root_kind="resource")


def _surge(family, seed, rng) -> Case:
    cmdb = demo_cmdb()
    begin, at = _window_and_fault_time(rng)
    factor = float(rng.uniform(1.5, 2.5))
    rise = float(rng.uniform(60, 180))

    def shape(index: pd.DatetimeIndex) -> np.ndarray:
        return np.clip((index - at).total_seconds().to_numpy() / rise, 0, 1)

    noise_seed = seed + 1_000_000
    data = generate(start=begin, duration=_WINDOW, step=_STEP, seed=noise_seed,
                    traffic=lambda index: 1.0 + (factor - 1.0) * shape(index))
    frame = data.metrics.copy()
    services = _items(cmdb)
    queueing = {str(s): float(rng.uniform(0.1, 0.4))
                for s in rng.choice(services, size=int(rng.integers(3, 6)), replace=False)}
    on = shape(frame.index)
    for service, extra in queueing.items():
        for metric in ("lat_50", "lat_99"):
            frame[f"{service}_{metric}"] = frame[f"{service}_{metric}"] * (1 + extra * on)
    return Case(family, _clip(frame), data.cmdb, None, None, None, at, frame.index[0],
                generated=_generated(begin, _WINDOW, _STEP, noise_seed),
                detail={"factor": factor, "rise_seconds": rise, "queueing": queueing})


def _unrelated(family, seed, rng) -> Case:
    cmdb = demo_cmdb()
    for attempt in range(50):  # a root at the top of the graph (frontend) has no unrelated service: take the next
        data_seed = seed + attempt * 100_003
        data = random_case(data_seed, magnitude=WEAK)
        root = data.faults[0].service
        related = {root} | {d["id"] for d in cmdb.impact(root)} | {d["id"] for d in cmdb.upstream(root)}
        others = [s for s in _items(cmdb) if s not in related]
        if others:
            break
    case = _from_clean(family, data, data_seed)
    frame = case.metrics.copy()
    other = str(rng.choice(others))
    column = f"{other}_{rng.choice(('mem', 'cpu', 'lat_50'))}"
    at = (case.start + pd.Timedelta(minutes=float(rng.uniform(-20, 10)))).floor(_STEP)
    before = frame.loc[frame.index < min(at, case.start), column].to_numpy()
    size = float(rng.uniform(*UNRELATED_SIGMAS)) * noise_sd(before)
    frame.loc[frame.index >= at, column] += size
    case.metrics = _clip(frame)
    case.detail.update({"service": other, "column": column, "at": at, "size": size})
    return case


def _gaps(family, seed, rng) -> Case:
    case = _from_clean(family, random_case(seed), seed)
    frame = case.metrics.copy()
    n = len(frame)
    at = frame.index.get_loc(case.start)
    columns = list(frame.columns)
    chosen = [str(c) for c in rng.choice(columns, size=round(0.2 * len(columns)), replace=False)]
    root_columns = [c for c in columns if service_of(c) == case.root]
    if not any(c in root_columns for c in chosen):
        chosen[0] = str(rng.choice(root_columns))
    at_start = next(c for c in chosen if c in root_columns)  # the gap at the start hides the root's onset
    gaps: dict[str, list[tuple[int, int]]] = {}
    values = frame.to_numpy(copy=True)
    for column in chosen:
        j = columns.index(column)
        spans = []
        for g in range(int(rng.integers(1, 4))):
            length = int(rng.integers(2, 11))
            near_start = column == at_start and g == 0
            begin = at + int(rng.integers(-5, 6)) if near_start else int(rng.integers(0, n - length))
            values[begin:begin + length, j] = np.nan
            spans.append((begin, length))
        gaps[column] = spans
    late = str(rng.choice([s for s in _items(case.cmdb) if s != case.root]))
    late_columns = [columns.index(f"{late}_{m}") for m in METRICS]
    values[: n // 2, late_columns] = np.nan
    case.metrics = pd.DataFrame(values, index=frame.index, columns=frame.columns)
    case.detail.update({"gaps": gaps, "gap_at_start": at_start, "late_service": late, "late_rows": n // 2})
    return case


def _level_shift(family, seed, rng) -> Case:
    case = _from_clean(family, random_case(seed, magnitude=WEAK), seed)
    frame = case.metrics.copy()
    room = (case.start - frame.index[0]) / pd.Timedelta(minutes=1) - 5
    low, high = LEVEL_SHIFT_MINUTES
    at = (case.start - pd.Timedelta(minutes=float(rng.uniform(low, min(high, room))))).floor(_STEP)
    columns = [c for c in frame.columns if service_of(c) != case.root]
    chosen = [str(c) for c in rng.choice(columns, size=round(0.3 * len(columns)), replace=False)]
    before = frame.index < at
    steps = {}
    for column in chosen:
        old = frame.loc[before, column].to_numpy()
        size = float(rng.uniform(*LEVEL_SHIFT_SIGMAS) * rng.choice((-1.0, 1.0))) * noise_sd(old)
        size = max(size, -0.8 * float(np.median(old)))  # a step down keeps a fifth of the level (no latency of 0)
        frame.loc[~before, column] += size
        steps[column] = size
    case.metrics = _clip(frame)
    case.detail.update({"at": at, "steps": steps})
    return case


_MONTH = pd.Timedelta(days=28)
_MINUTE = pd.Timedelta("1min")
_RHYTHM_WINDOW = pd.Timedelta(hours=6)  # as the explore notebook looks at the last 6 h


def _last_day(rng) -> pd.Timestamp:
    """Midnight of the last day of a 28-day span (a random weekday)."""
    return _EPOCH + _MONTH + pd.Timedelta(days=int(rng.integers(0, 7)))


def _month_case(family, seed, end: pd.Timestamp, faults: list[Fault]) -> Case:
    noise_seed = seed + 1_000_000
    data = generate(start=end - _MONTH, duration=_MONTH, step=_MINUTE, faults=faults, seed=noise_seed)
    fault = faults[0] if faults else None
    return Case(family, data.metrics, data.cmdb, fault.service if fault else None, "resource" if fault else None,
                None, fault.start if fault else None, end - _RHYTHM_WINDOW, faults=list(faults),
                generated=_generated(end - _MONTH, _MONTH, _MINUTE, noise_seed))


def _rhythm_fault(family, seed, rng) -> Case:
    end = _last_day(rng) + pd.Timedelta(hours=int(rng.integers(2, 25)))
    at = (end - _RHYTHM_WINDOW + _RHYTHM_WINDOW * rng.uniform(0.55, 0.75)).floor(_MINUTE)
    fault = Fault(service=str(rng.choice(_items(demo_cmdb()))), kind=str(rng.choice(FAULT_KINDS)), start=at,
                  magnitude=float(rng.uniform(*WEAK)))
    return _month_case(family, seed, end, [fault])


def _rhythm_quiet(family, seed, rng) -> Case:
    centre = 15 if rng.random() < 0.5 else 3  # the daily peak or trough
    case = _month_case(family, seed, _last_day(rng) + pd.Timedelta(hours=centre) + _RHYTHM_WINDOW / 2, [])
    case.detail["centre_hour"] = centre
    return case


def _rhythm_quiet_short(family, seed, rng) -> Case:
    end = _last_day(rng) + pd.Timedelta(hours=int(rng.integers(0, 24)))
    span = pd.Timedelta(hours=6)
    noise_seed = seed + 1_000_000
    data = generate(start=end - span, duration=span, step=_MINUTE, seed=noise_seed)
    return Case(family, data.metrics, data.cmdb, None, None, None, None, data.metrics.index[0],
                generated=_generated(end - span, span, _MINUTE, noise_seed))


def _short(rows: int):
    def make(family, seed, rng) -> Case:
        case = _from_clean(family, random_case(seed), seed)
        at = case.metrics.index.get_loc(case.start)
        case.metrics = case.metrics.iloc[at - rows:]
        case.window_start = case.metrics.index[0]
        return case
    return make


_MAKERS: dict[str, Callable[[str, int, np.random.Generator], Case]] = {
    "clean": _clean, "clean_weak": _clean_weak, "code_fault": _code_fault, "network_delay": _network_delay,
    "no_metrics": _no_metrics, "weak_root": _weak_root, "surge": _surge, "unrelated": _unrelated, "gaps": _gaps,
    "level_shift": _level_shift, "rhythm_fault": _rhythm_fault, "rhythm_quiet": _rhythm_quiet,
    "rhythm_quiet_short": _rhythm_quiet_short, "short_3": _short(3), "short_5": _short(5), "short_8": _short(8),
}
assert list(_MAKERS) == list(FAMILIES)
