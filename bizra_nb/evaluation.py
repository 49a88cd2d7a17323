"""Accuracy of the RCA engine over generated cases with known truth: AC@k and Avg@5, per case family."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bizra_nb.cases import FAMILIES, FAULT_FREE, Case, make_case
from bizra_nb.errors import InvalidInput
from bizra_nb.fleet import random_case
from bizra_nb.rca import rank_root_causes

START_MODES = ("true", "late", "absent")  # the start given: the true one, 60 s late, none
METHODS = ("bizra", "baro")


@dataclass
class Accuracy:
    cases: int
    ac1: float
    ac3: float
    avg5: float
    seconds_per_case: float

    def as_dict(self) -> dict:
        return {"cases": self.cases, "AC@1": round(self.ac1, 3), "AC@3": round(self.ac3, 3),
                "Avg@5": round(self.avg5, 3), "seconds_per_case": round(self.seconds_per_case, 4)}


def accuracy_of(ranks: list[int | None], seconds: float) -> Accuracy:
    """AC@k: share of cases whose root is in the top k; Avg@5: the mean of AC@1..AC@5."""
    ranks_arr = np.array([r if r is not None else 10**6 for r in ranks])
    ac = {k: float(np.mean(ranks_arr <= k)) for k in range(1, 6)}
    avg5 = float(np.mean([ac[k] for k in range(1, 6)]))
    return Accuracy(len(ranks), ac[1], ac[3], avg5, seconds / max(len(ranks), 1))


def baro_ranking(frame: pd.DataFrame, anomaly_start: pd.Timestamp) -> list[str]:
    """The BARO baseline's ranking: per series, the largest rise after the start in units of the
    normal window's inter-quartile range (no direction rules, no topology), then per service."""
    normal = frame[frame.index < anomaly_start]
    after = frame[frame.index >= anomaly_start]
    with warnings.catch_warnings():  # a series without data before or after the start scores nothing
        warnings.simplefilter("ignore", RuntimeWarning)
        q25, median, q75 = np.nanpercentile(normal.to_numpy(), [25, 50, 75], axis=0)
        iqr = np.where(q75 - q25 > 0, q75 - q25, 1.0)
        z = np.nanmax((after.to_numpy() - median) / iqr, axis=0)
    z = np.where(np.isnan(z), -np.inf, z)
    best: dict[str, float] = {}
    for column, value in zip(frame.columns, z):
        service = column.split("_", 1)[0]
        best[service] = max(best.get(service, -np.inf), value)
    return sorted(best, key=lambda s: -best[s])


def evaluate(cases: int = 100, *, start_offset: str | None = "0s", use_cmdb: bool = True, seed: int = 0,
             method: str = "bizra", magnitude: tuple[float, float] = (0.5, 1.5)) -> Accuracy:
    """Diagnose ``cases`` generated faults and score the rankings.

    Parameters
    ----------
    start_offset
        The anomaly start given to the engine, relative to the true start (``"60s"``: a minute late);
        None gives none, so the engine detects it.
    use_cmdb
        Give the engine the fleet's CMDB.
    method
        ``"bizra"`` (ours) or ``"baro"`` (the baseline; needs a start: a missing one is the true start).
    magnitude
        The faults' strength range (see :func:`bizra_nb.fleet.random_case`).
    """
    ranks: list[int | None] = []
    spent = 0.0
    for n in range(cases):
        case = random_case(seed + n, magnitude=magnitude)
        fault = case.faults[0]
        given = None if start_offset is None else fault.start + pd.Timedelta(start_offset)
        began = time.perf_counter()
        if method == "baro":
            order = baro_ranking(case.metrics, given if given is not None else fault.start)
        else:
            diagnosis = rank_root_causes(case.metrics, anomaly_start=given, cmdb=case.cmdb if use_cmdb else None)
            order = [c.service for c in diagnosis.ranking]
        spent += time.perf_counter() - began
        ranks.append(order.index(fault.service) + 1 if fault.service in order else None)
    return accuracy_of(ranks, spent)


# -- per case family --------------------------------------------------------------------------


@dataclass
class CaseOutcome:
    """One diagnosis of one case: the root's rank (None: not ranked, or refused), whether the diagnosis
    stayed quiet, its confidence level, whether it was right, and the seconds it took."""

    rank: int | None
    quiet: bool
    level: str | None
    right: bool
    refused: bool
    seconds: float


@dataclass
class FamilyResult:
    """The figures of one family under one start mode and one method.

    ``ac1``, ``ac3``, ``avg5`` are over fault cases (None for a fault-free family); ``quiet`` is the
    share of diagnoses saying "nothing to blame" (BARO: always 0; on a fault case, a miss);
    ``confidence`` holds (level, right) per case; ``refused`` counts diagnoses that raised InvalidInput.
    """

    family: str
    start_mode: str
    method: str
    use_cmdb: bool
    cases: int
    ac1: float | None
    ac3: float | None
    avg5: float | None
    quiet: float
    refused: int
    seconds_per_case: float
    confidence: list[tuple[str | None, bool]] = field(default_factory=list)

    def as_dict(self) -> dict:
        r = (lambda x: None if x is None else round(x, 3))
        return {"family": self.family, "start_mode": self.start_mode, "method": self.method,
                "use_cmdb": self.use_cmdb, "cases": self.cases, "AC@1": r(self.ac1), "AC@3": r(self.ac3),
                "Avg@5": r(self.avg5), "quiet": r(self.quiet), "refused": self.refused,
                "seconds_per_case": round(self.seconds_per_case, 4),
                "confidence": [[level, right] for level, right in self.confidence]}


def rank_of(root: str, services: list[str], edges: list[tuple[str, str] | None] | None = None) -> int | None:
    """The 1-based rank of ``root`` in a ranking; a candidate naming an edge into ``root`` counts as ``root``."""
    edges = edges or [None] * len(services)
    for n, (service, edge) in enumerate(zip(services, edges), 1):
        if service == root or (edge is not None and edge[1] == root):
            return n
    return None


def diagnose_case(case: Case, *, start_mode: str = "true", use_cmdb: bool = True, method: str = "bizra") -> CaseOutcome:
    """Diagnose one case as the benchmark does and score the answer.

    Parameters
    ----------
    case
        From :func:`bizra_nb.cases.make_case`.
    start_mode
        ``"true"``: the true start (fault-free cases: the confounder's start, else the window's
        midpoint); ``"late"``: 60 s after it; ``"absent"``: none (BARO has no detector: it gets the true one).
    use_cmdb
        Give the engine the case's CMDB (BARO never uses one).
    method
        ``"bizra"`` (:func:`bizra_nb.rca.rank_root_causes`) or ``"baro"`` (:func:`baro_ranking` on the
        examined window).

    Returns
    -------
    CaseOutcome
        A root without columns cannot be ranked by BARO (a miss); a diagnosis that raises
        :class:`~bizra_nb.errors.InvalidInput` is a miss counted as refused.
    """
    if start_mode not in START_MODES:
        raise ValueError(f"unknown start mode {start_mode!r}; allowed: {', '.join(START_MODES)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    true_start = case.reference_start
    given = {"true": true_start, "late": true_start + pd.Timedelta("60s"), "absent": None}[start_mode]
    began = time.perf_counter()
    if method == "baro":
        order = baro_ranking(case.metrics.loc[case.window_start:], given if given is not None else true_start)
        spent = time.perf_counter() - began
        rank = rank_of(case.root, order) if case.has_fault else None
        return CaseOutcome(rank, False, None, rank == 1, False, spent)
    try:
        diagnosis = rank_root_causes(case.metrics, anomaly_start=given, cmdb=case.cmdb if use_cmdb else None,
                                     start=case.window_start)
    except InvalidInput:
        return CaseOutcome(None, False, None, False, True, time.perf_counter() - began)
    spent = time.perf_counter() - began
    level = (diagnosis.confidence or {}).get("level")
    blames_nothing = diagnosis.verdict == "nothing_to_blame"
    rank = None
    if case.has_fault and not blames_nothing:  # "nothing to blame" names no cause: a miss, wherever the root ranks
        rank = rank_of(case.root, [c.service for c in diagnosis.ranking],
                       [getattr(c, "edge", None) for c in diagnosis.ranking])
    right = rank == 1 if case.has_fault else blames_nothing
    return CaseOutcome(rank, blames_nothing, level, right, False, spent)


def evaluate_family(family: str, cases: int, *, start_mode: str = "true", use_cmdb: bool = True,
                    method: str = "bizra", seed: int = 0) -> FamilyResult:
    """Diagnose ``cases`` cases of ``family`` (seeds ``seed``, ``seed + 1``, ...) and score them.

    Parameters
    ----------
    family
        One of :data:`bizra_nb.cases.FAMILIES`.
    cases
        How many cases.
    start_mode, use_cmdb, method
        As in :func:`diagnose_case`.
    seed
        The first case's seed.

    Returns
    -------
    FamilyResult
        AC@k over fault cases (None for a fault-free family), the quiet share, refusals, time per
        case (the diagnosis only, not the generation) and (confidence level, right) per case.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown case family {family!r}; allowed: {', '.join(FAMILIES)}")
    outcomes = [diagnose_case(make_case(family, seed + n), start_mode=start_mode, use_cmdb=use_cmdb, method=method)
                for n in range(cases)]
    seconds = sum(o.seconds for o in outcomes)
    acc = accuracy_of([o.rank for o in outcomes], seconds) if family not in FAULT_FREE and outcomes else None
    return FamilyResult(
        family=family, start_mode=start_mode, method=method, use_cmdb=use_cmdb and method == "bizra", cases=cases,
        ac1=acc.ac1 if acc else None, ac3=acc.ac3 if acc else None, avg5=acc.avg5 if acc else None,
        quiet=float(np.mean([o.quiet for o in outcomes])) if outcomes else 0.0,
        refused=sum(o.refused for o in outcomes), seconds_per_case=seconds / max(cases, 1),
        confidence=[(o.level, o.right) for o in outcomes])
