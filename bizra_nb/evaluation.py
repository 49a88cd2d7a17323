"""Accuracy of the RCA engine over generated cases with known truth: AC@k and Avg@5."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bizra_nb.fleet import random_case
from bizra_nb.rca import rank_root_causes


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
    return Accuracy(len(ranks), ac[1], ac[3], float(np.mean([ac[k] for k in range(1, 6)])), seconds / max(len(ranks), 1))


def baro_ranking(frame: pd.DataFrame, anomaly_start: pd.Timestamp) -> list[str]:
    """The BARO baseline's ranking: per series, the largest rise after the start in units of the
    normal window's inter-quartile range (no direction rules, no topology), then per service."""
    normal = frame[frame.index < anomaly_start]
    after = frame[frame.index >= anomaly_start]
    q25, median, q75 = np.nanpercentile(normal.to_numpy(), [25, 50, 75], axis=0)
    iqr = np.where(q75 - q25 > 0, q75 - q25, 1.0)
    z = np.nanmax((after.to_numpy() - median) / iqr, axis=0)
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
